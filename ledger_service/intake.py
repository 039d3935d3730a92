"""What the ledger takes in from a webhook: which requests it can identify,
the first problem with the rest of an execute (recorded as its refusal), and
free text kept as sent. Pure functions; checks run in the proto's Outcome order.

The rules (README, "Webhook rules"): an execute or a cancel is identified by
its company, customer and number; an identified execute is recorded whatever
else is wrong with it; a cancel is refused only for its target.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from . import money, validation
from .errors import LedgerError
from .model import AccountKey, AdjustCommand
from .outcomes import Outcome

# Where the ledger keeps the amount exactly as sent, however long it was.
MAX_AMOUNT_AS_SENT = 100
# A request number is derived from its cancel's target with this prefix,
# which TradeBoss's numbers (1..48 characters, no control characters) and the
# operators' keys do not start with by convention.
DERIVED_KEY_PREFIX = "~cancel~"


@dataclass(frozen=True)
class Refusal:
    """The outcome an identified execute is recorded with, and the field at fault."""

    outcome: Outcome
    field: str
    message: str


def identify(account: AccountKey, number: str, number_field: str) -> None:
    """Refuse (unrecorded) a request the ledger cannot file under its customer."""
    if account.company_id <= 0:
        raise LedgerError(Outcome.INVALID_ARGUMENT, "company_id must be > 0", "company_id")
    validation.text(account.customer, "customer", validation.MAX_CUSTOMER)
    validation.text(number, number_field, validation.MAX_REQUEST_NO)
    if number.startswith(DERIVED_KEY_PREFIX):
        raise LedgerError(
            Outcome.INVALID_ARGUMENT,
            f"{number_field} may not start with {DERIVED_KEY_PREFIX!r}",
            number_field,
        )


def usable_number(number: str) -> bool:
    try:
        validation.text(number, "request_id", validation.MAX_REQUEST_NO)
    except LedgerError:
        return False
    return not number.startswith(DERIVED_KEY_PREFIX)


def adjustment_refusal(command: AdjustCommand) -> Refusal | None:
    """The first problem with an identified execute, or None when only the
    wallet can decide (exists, scale, userName, balance)."""
    try:
        if command.input_error is not None:
            field, message = command.input_error
            raise LedgerError(Outcome.INVALID_ARGUMENT, message, field)
        validation.text(command.account.currency, "currency", validation.MAX_CURRENCY)
        validation.text(command.user_name, "user_name", validation.MAX_USER_NAME)
        operation_type = validation.operation_type(command.operation_type)
        validation.digits(command.amount_digits, "amount_digits")
        amount = money.parse_plain_decimal(command.amount)
        money.check_sign(operation_type, amount)
        money.check_fraction_digits(amount, command.amount_digits)
    except LedgerError as error:
        return Refusal(error.outcome, error.field, error.message)
    return None


def plain_decimal_or_none(text: str) -> Decimal | None:
    """The amount when it is a plain decimal; None otherwise (kept as sent)."""
    try:
        return money.parse_plain_decimal(text)
    except LedgerError:
        return None


def identifier_or_none(value: str, max_length: int) -> str | None:
    """A cancel's currency or userName when sent and usable; None: not compared."""
    try:
        return validation.text(value, "value", max_length)
    except LedgerError:
        return None


def free_text(value: str, field: str, max_length: int, notes: list[str]) -> str:
    """Free text as sent: control characters kept (logs escape them), NUL
    (which PostgreSQL cannot store) shown as U+FFFD, cut at max_length; each
    change noted."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
        notes.append(f"{field}: NUL shown as U+FFFD")
    if len(value) > max_length:
        notes.append(f"{field}: {len(value)} characters, first {max_length} kept")
        value = value[:max_length]
    return value


def kept(value: str) -> str:
    """An identifier as it is stored even when refused: NUL shown as U+FFFD and
    cut at 200 characters (the limits themselves are refusals, elsewhere)."""
    return value.replace("\x00", "\ufffd")[:200]


def joined(notes: list[str]) -> str | None:
    return "; ".join(notes) if notes else None
