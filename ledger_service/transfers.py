"""Transfers and holds between two accounts of one company and currency: what
internal services move (fees, bonuses, payouts, reservations).

Python checks the input's shape (ids, amount, the two accounts differ); the
rest is one server-side function (functions/50_transfers.sql): a batch of
transfers and holds is one `ledger_transfer_batch` statement, so CreateTransfers
commits up to 1,000 together; a post or void is one `ledger_close_hold` call.
A transfer_id (a hold_id too) counts once per debit customer of a company.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

import asyncpg

from . import metrics, money, validation
from .database import fetch_one, journal_appended, run_transaction
from .errors import LedgerError
from .model import AccountKey, Balance
from .outcomes import Outcome
from .request_records import first_difference
from .statuses import TransferStatus

log = logging.getLogger(__name__)

MAX_REFERENCE = 200
MAX_METADATA = 1000
MAX_TRANSFERS = 1000

_BATCH = """SELECT * FROM ledger_transfer_batch(
    p_company_id => $1, p_customer => $2, p_transfer_id => $3, p_kind => $4::transfer_kind[],
    p_credit_customer => $5, p_currency => $6, p_amount => $7, p_fraction_digits => $8,
    p_reference => $9, p_metadata => $10, p_expires_at => $11, p_trace_id => $12,
    p_balance_limit => $13)"""
_CLOSE = """SELECT * FROM ledger_close_hold(
    p_company_id => $1, p_customer => $2, p_currency => $3, p_hold_id => $4, p_post => $5,
    p_amount => $6, p_fraction_digits => $7, p_balance_limit => $8, p_trace_id => $9)"""
_EXPIRE = "SELECT ledger_expire_holds(p_limit => $1)"

# What each recorded refusal or success of the SQL functions means.
_RECORDED = {
    TransferStatus.CREATED: Outcome.APPLIED,
    TransferStatus.INSUFFICIENT_FUNDS: Outcome.INSUFFICIENT_BALANCE,
    TransferStatus.BALANCE_LIMIT_EXCEEDED: Outcome.BALANCE_LIMIT_EXCEEDED,
}


@dataclass(frozen=True)
class TransferCommand:
    """A transfer (kind 'transfer') or a hold of `amount` from `debit` to the
    account of `credit_customer` in the same company and currency."""

    transfer_id: str
    debit: AccountKey
    credit_customer: str
    amount: str
    reference: str = ""
    metadata: str = ""
    kind: Literal["transfer", "hold"] = "transfer"
    expire_time: datetime | None = None
    trace_id: str = ""

    @property
    def credit(self) -> AccountKey:
        return AccountKey(self.debit.company_id, self.credit_customer, self.debit.currency)


@dataclass(frozen=True)
class TransferResult:
    outcome: Outcome
    debit: Balance
    credit: Balance
    replayed: bool = False
    conflict_field: str = ""


@dataclass(frozen=True)
class CloseResult:
    """A PostHold or VoidHold: its outcome, both accounts after it, and what
    was posted (0 for a void)."""

    outcome: Outcome
    debit: Balance
    credit: Balance
    posted: Decimal = Decimal(0)
    replayed: bool = False


def _checked(command: TransferCommand, now: datetime) -> tuple[Decimal, int]:
    """The amount and its fractional digits, once the command's shape is sound."""
    id_field = "hold_id" if command.kind == "hold" else "transfer_id"
    validation.text(command.transfer_id, id_field, validation.MAX_REQUEST_NO)
    validation.account_key(command.debit)
    validation.text(command.credit_customer, "credit_customer", validation.MAX_CUSTOMER)
    if command.credit_customer == command.debit.customer:
        raise LedgerError(
            Outcome.INVALID_ARGUMENT, "the credit account is the debit account", "credit_customer"
        )
    validation.text(command.reference, "reference", MAX_REFERENCE, required=False)
    validation.text(command.metadata, "metadata", MAX_METADATA, required=False)
    if command.expire_time is not None and command.expire_time <= now:
        raise LedgerError(
            Outcome.INVALID_ARGUMENT, "expire_time is not in the future", "expire_time"
        )
    amount = money.parse_amount(command.amount, validation.MAX_DIGITS)
    money.require_positive(amount, f"a {command.kind}")
    return amount, money.fraction_digits(amount)


async def create(
    pool: asyncpg.Pool, commands: list[TransferCommand], deadline: float
) -> list[TransferResult | LedgerError]:
    """Apply the transfers and holds in one transaction, in order; each gets its
    own result, or the error its own call would have had (nothing written for it)."""
    if len(commands) > MAX_TRANSFERS:
        raise LedgerError(
            Outcome.INVALID_ARGUMENT, f"at most {MAX_TRANSFERS} transfers per call", "transfers"
        )
    answers: list[TransferResult | LedgerError | None] = []
    sound: list[tuple[int, TransferCommand, Decimal, int]] = []
    now = datetime.now(UTC)
    for index, command in enumerate(commands):
        try:
            amount, digits = _checked(command, now)
        except LedgerError as error:
            answers.append(error)
            continue
        answers.append(None)
        sound.append((index, command, amount, digits))
    if sound:
        rows = await run_transaction(pool, lambda connection: _apply(connection, sound), deadline)
        for (index, command, amount, digits), row in zip(sound, rows, strict=True):
            answers[index] = _answer(command, amount, digits, row)
    return [answer for answer in answers if answer is not None]


async def _apply(
    connection: asyncpg.Connection, sound: list[tuple[int, TransferCommand, Decimal, int]]
) -> list[asyncpg.Record]:
    """One statement for the batch: ledger_transfer_batch's parallel arrays,
    one element per transfer, in the order sent."""
    rows = [
        (
            command.debit.company_id,
            command.debit.customer,
            command.transfer_id,
            command.kind,
            command.credit_customer,
            command.debit.currency,
            amount,
            digits,
            command.reference,
            command.metadata,
            command.expire_time,
            command.trace_id,
        )
        for _, command, amount, digits in sound
    ]
    columns = [list(column) for column in zip(*rows, strict=True)]
    return await connection.fetch(_BATCH, *columns, money.MAX_BALANCE)


def _answer(
    command: TransferCommand, amount: Decimal, fraction_digits: int, row: asyncpg.Record
) -> TransferResult | LedgerError:
    status = TransferStatus(row["status"])
    if status is TransferStatus.DEBIT_ACCOUNT_NOT_FOUND:
        return _not_found(command.debit, "debit_account")
    if status is TransferStatus.CREDIT_ACCOUNT_NOT_FOUND:
        return _not_found(command.credit, "credit_customer")
    if status is TransferStatus.TOO_MANY_DIGITS:
        return LedgerError(
            Outcome.TOO_MANY_DIGITS,
            f"amount has {fraction_digits} fractional digits, at most {row['digits']} allowed",
            "amount",
        )
    digits = row["digits"] or 0
    debit = Balance(command.debit, row["debit_balance"], digits, "", row["debit_held"])
    credit = Balance(command.credit, row["credit_balance"], digits, "")
    if status is TransferStatus.SEEN:
        seen = row["seen"]
        different = first_difference(
            [
                ("kind", seen["kind"], command.kind),
                ("currency", seen["currency"], command.debit.currency),
                ("credit_customer", seen["credit_customer"], command.credit_customer),
                ("amount", seen["amount"], amount),
                ("reference", seen["reference"], command.reference),
            ]
            + (
                [("expire_time", seen["expires_at"], command.expire_time)]
                if seen["kind"] == "hold"
                else []
            )
        )
        if different:
            return TransferResult(Outcome.CONFLICT, debit, credit, conflict_field=different)
        return TransferResult(
            _RECORDED[TransferStatus(seen["result"])], debit, credit, replayed=True
        )
    outcome = _RECORDED[status]
    if outcome is Outcome.APPLIED and command.kind == "transfer":
        metrics.money_moved(command.debit.currency, "transfer", amount)
    return TransferResult(outcome, debit, credit)


def _not_found(key: AccountKey, field: str) -> LedgerError:
    return LedgerError(
        Outcome.ACCOUNT_NOT_FOUND,
        f"no account for company {key.company_id}, customer {key.customer!r}, "
        f"currency {key.currency!r}",
        field,
    )


async def close_hold(
    pool: asyncpg.Pool,
    debit: AccountKey,
    hold_id: str,
    post: bool,
    amount_text: str,
    trace_id: str,
    deadline: float,
) -> CloseResult:
    """Post (all, or amount_text of it) or void the open hold hold_id of the
    debit account. Posting or voiding it again the same way is answered
    again (replayed); an expired hold is refused."""
    validation.account_key(debit)
    validation.text(hold_id, "hold_id", validation.MAX_REQUEST_NO)
    amount: Decimal | None = None
    if post and amount_text:
        amount = money.parse_amount(amount_text, validation.MAX_DIGITS)
        money.require_positive(amount, "a post")

    async def transaction(connection: asyncpg.Connection) -> asyncpg.Record:
        return await fetch_one(
            connection,
            _CLOSE,
            debit.company_id,
            debit.customer,
            debit.currency,
            hold_id,
            post,
            amount,
            money.fraction_digits(amount) if amount is not None else 0,
            money.MAX_BALANCE,
            trace_id,
        )

    row = await run_transaction(pool, transaction, deadline)
    status = TransferStatus(row["status"])
    hold = row["hold"]
    if status is TransferStatus.HOLD_NOT_FOUND:
        raise LedgerError(Outcome.HOLD_NOT_FOUND, f"account has no hold {hold_id!r}", "hold_id")
    if status is TransferStatus.TOO_MANY_DIGITS:
        raise LedgerError(
            Outcome.TOO_MANY_DIGITS,
            f"amount has more than {row['digits']} fractional digits",
            "amount",
        )
    credit_key = AccountKey(debit.company_id, hold["credit_customer"], debit.currency)
    digits = row["digits"]
    balances = (
        Balance(debit, row["debit_balance"], digits, "", row["debit_held"]),
        Balance(credit_key, row["credit_balance"], digits, ""),
    )
    posted = hold["posted_amount"] or Decimal(0)
    if status is TransferStatus.HOLD_POSTED:
        # Posted before: the same post again is answered again.
        if post and (amount if amount is not None else hold["amount"]) == posted:
            return CloseResult(Outcome.APPLIED, *balances, posted, replayed=True)
        if post:
            return CloseResult(Outcome.CONFLICT, *balances, posted)
        return CloseResult(Outcome.ALREADY_POSTED, *balances, posted)
    if status is TransferStatus.HOLD_VOIDED:
        if post:
            return CloseResult(Outcome.ALREADY_VOIDED, *balances)
        return CloseResult(Outcome.APPLIED, *balances, replayed=True)
    outcome = {
        TransferStatus.HOLD_EXPIRED: Outcome.HOLD_EXPIRED,
        TransferStatus.POST_EXCEEDS_HOLD: Outcome.POST_EXCEEDS_HOLD,
        TransferStatus.BALANCE_LIMIT_EXCEEDED: Outcome.BALANCE_LIMIT_EXCEEDED,
        TransferStatus.POSTED: Outcome.APPLIED,
        TransferStatus.VOIDED: Outcome.APPLIED,
    }[status]
    if status is TransferStatus.POSTED:
        metrics.money_moved(debit.currency, "hold_post", posted)
    return CloseResult(outcome, *balances, posted)


async def sweep_expired_holds(pool: asyncpg.Pool, interval: float) -> None:
    """Release expired holds every `interval` seconds until cancelled. Every
    movement on an account releases its own expired holds first, so this
    only keeps balances, the journal and the feed current for idle accounts;
    replicas sweeping together are safe (the release happens under the
    account's locks, once)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            while await expire_holds(pool, _SWEEP_BATCH, loop.time() + interval) == _SWEEP_BATCH:
                pass
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("releasing expired holds failed, will retry: %r", error)
        await asyncio.sleep(interval)


_SWEEP_BATCH = 500


async def expire_holds(pool: asyncpg.Pool, limit: int, deadline: float) -> int:
    """Release up to `limit` expired holds (the sweeper); how many were."""

    async def transaction(connection: asyncpg.Connection) -> int:
        return int(await connection.fetchval(_EXPIRE, limit))

    # Most sweeps release nothing: only a release wakes the journal feed.
    released = await run_transaction(pool, transaction, deadline, appends_journal=False)
    if released:
        journal_appended(pool)
    return released
