"""Money rules: the one place that parses amounts and decides signs and overdraft.

Pure functions only; every boundary hands amounts in as decimal strings.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal
from enum import Enum

from .errors import LedgerError
from .outcomes import OperationType, Outcome

# The stated maximum: an amount has at most 18 integer and 18 fractional
# digits; a movement that would take a balance to 10^19 or beyond (either
# sign) is refused. A reversal is never refused and moves at most one amount,
# so a balance stays within 20 integer digits, which CONTEXT holds exactly.
MAX_INTEGER_DIGITS = 18
MAX_SCALE = 18
MAX_BALANCE = Decimal(10) ** 19
# Python's default 28 digits would round (or raise on) an 18.18-digit amount.
CONTEXT = Context(prec=60)
# A plain decimal: optional minus, digits, optional fraction. No plus sign,
# spaces, exponent, NaN or infinity; ASCII digits only (Unicode digits are
# digits to Python's Decimal, not to anybody's accounting).
_PLAIN_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?", re.ASCII)


class OvertradingPolicy(Enum):
    """What ABNORMAL_OVERTRADING does to the wallet."""

    DEDUCT = "deduct"  # debit |amount|, even below zero
    IGNORE = "ignore"  # record the request, move no money


def parse_amount(text: str, max_fraction_digits: int, field: str = "amount") -> Decimal:
    """A plain decimal string whose value needs at most max_fraction_digits
    fractional digits (trailing zeros do not count: "1.50" fits in 1)."""
    amount = parse_plain_decimal(text, field)
    check_fraction_digits(amount, max_fraction_digits, field)
    return amount


def parse_plain_decimal(text: str, field: str = "amount") -> Decimal:
    """A plain decimal: optional minus, at most 18 integer digits, optional fraction."""
    match = _PLAIN_DECIMAL.fullmatch(text)
    if match is None:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise LedgerError(
            Outcome.INVALID_AMOUNT,
            f"amount must be a plain decimal like 12.50, got {shown!r}",
            field,
        )
    integer_part = match.group(2)
    if len(integer_part.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise LedgerError(
            Outcome.INVALID_AMOUNT,
            f"amount has more than {MAX_INTEGER_DIGITS} integer digits",
            field,
        )
    return Decimal(text)


def fraction_digits(amount: Decimal) -> int:
    """Fractional digits the value needs: 1.50 needs 1, 3.00 needs 0."""
    _, coefficient, exponent = amount.as_tuple()
    if not isinstance(exponent, int):
        return 0
    significant = "".join(map(str, coefficient)).rstrip("0")
    if not significant:
        return 0
    return max(0, -(exponent + len(coefficient) - len(significant)))


def check_fraction_digits(amount: Decimal, max_fraction_digits: int, field: str = "amount") -> None:
    needed = fraction_digits(amount)
    if needed > max_fraction_digits:
        raise LedgerError(
            Outcome.TOO_MANY_DIGITS,
            f"amount needs {needed} fractional digits, at most {max_fraction_digits} allowed",
            field,
        )


def require_positive(amount: Decimal, what: str) -> None:
    if amount <= 0:
        raise LedgerError(Outcome.AMOUNT_SIGN_MISMATCH, f"{what} needs an amount > 0", "amount")


def check_sign(operation_type: OperationType, amount: Decimal) -> None:
    """OPEN_POSITION and NORMAL_CLOSE take amount > 0; ABNORMAL_OVERTRADING takes amount < 0."""
    name = OperationType(operation_type).name
    if operation_type == OperationType.ABNORMAL_OVERTRADING:
        if amount >= 0:
            raise LedgerError(Outcome.AMOUNT_SIGN_MISMATCH, f"{name} needs an amount < 0", "amount")
    else:
        require_positive(amount, name)


def adjustment_delta(
    operation_type: OperationType, amount: Decimal, policy: OvertradingPolicy
) -> tuple[Decimal, OvertradingPolicy | None]:
    """The signed change an adjustment makes to the balance, and the policy it applied."""
    if operation_type == OperationType.OPEN_POSITION:
        return amount.copy_negate(), None
    if operation_type == OperationType.NORMAL_CLOSE:
        return amount, None
    # ABNORMAL_OVERTRADING: amount is negative already.
    if policy is OvertradingPolicy.IGNORE:
        return Decimal(0), policy
    return amount, policy


def may_overdraw(operation_type: OperationType | None) -> bool:
    """Only ABNORMAL_OVERTRADING may take a balance below zero (credits never need to)."""
    return operation_type == OperationType.ABNORMAL_OVERTRADING


def format_amount(amount: Decimal, digits: int) -> str:
    """Exactly `digits` fractional digits, no exponent, no negative zero; exact
    for every amount and balance within the stated maximum."""
    quantized = amount.quantize(Decimal(1).scaleb(-digits), context=CONTEXT)
    if quantized == 0:
        quantized = quantized.copy_abs()
    return f"{quantized:f}"
