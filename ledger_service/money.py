"""Money rules: the one place that parses amounts and decides signs and overdraft.

Pure functions only; every boundary hands amounts in as decimal strings.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import Enum

from protos.ledger.v1 import ledger_pb2 as pb

from .errors import LedgerError

MAX_INTEGER_DIGITS = 18
MAX_SCALE = 18
# A plain decimal: optional minus, digits, optional fraction. No plus sign,
# spaces, exponent, NaN or infinity; ASCII digits only (Unicode digits are
# digits to Python's Decimal, not to anybody's accounting).
_PLAIN_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?", re.ASCII)


class OvertradingPolicy(Enum):
    """What ABNORMAL_OVERTRADING does to the wallet."""

    DEDUCT = "deduct"  # debit |amount|, even below zero
    IGNORE = "ignore"  # record the request, move no money


def parse_amount(text: str, max_fraction_digits: int, field: str = "amount") -> Decimal:
    """Parse a plain decimal string with at most max_fraction_digits after the point."""
    match = _PLAIN_DECIMAL.fullmatch(text)
    if match is None:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise LedgerError(
            pb.OUTCOME_INVALID_AMOUNT,
            f"amount must be a plain decimal like 12.50, got {shown!r}",
            field,
        )
    _, integer_part, fraction = match.groups()
    if len(integer_part.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise LedgerError(
            pb.OUTCOME_INVALID_AMOUNT,
            f"amount has more than {MAX_INTEGER_DIGITS} integer digits",
            field,
        )
    if fraction is not None and len(fraction) > max_fraction_digits:
        raise LedgerError(
            pb.OUTCOME_TOO_MANY_DIGITS,
            f"amount has {len(fraction)} fractional digits, at most {max_fraction_digits} allowed",
            field,
        )
    return Decimal(text)


def require_positive(amount: Decimal, what: str) -> None:
    if amount <= 0:
        raise LedgerError(pb.OUTCOME_AMOUNT_SIGN_MISMATCH, f"{what} needs an amount > 0", "amount")


def check_sign(operation_type: pb.OperationType.ValueType, amount: Decimal) -> None:
    """OPEN_POSITION and NORMAL_CLOSE take amount > 0; ABNORMAL_OVERTRADING takes amount < 0."""
    name = pb.OperationType.Name(operation_type).removeprefix("OPERATION_TYPE_")
    if operation_type == pb.OPERATION_TYPE_ABNORMAL_OVERTRADING:
        if amount >= 0:
            raise LedgerError(
                pb.OUTCOME_AMOUNT_SIGN_MISMATCH, f"{name} needs an amount < 0", "amount"
            )
    else:
        require_positive(amount, name)


def adjustment_delta(
    operation_type: pb.OperationType.ValueType, amount: Decimal, policy: OvertradingPolicy
) -> tuple[Decimal, OvertradingPolicy | None]:
    """The signed change an adjustment makes to the balance, and the policy it applied."""
    if operation_type == pb.OPERATION_TYPE_OPEN_POSITION:
        return -amount, None
    if operation_type == pb.OPERATION_TYPE_NORMAL_CLOSE:
        return amount, None
    # ABNORMAL_OVERTRADING: amount is negative already.
    if policy is OvertradingPolicy.IGNORE:
        return Decimal(0), policy
    return amount, policy


def may_overdraw(operation_type: pb.OperationType.ValueType | None) -> bool:
    """Only ABNORMAL_OVERTRADING may take a balance below zero (credits never need to)."""
    return operation_type == pb.OPERATION_TYPE_ABNORMAL_OVERTRADING


def format_amount(amount: Decimal, digits: int) -> str:
    """Exactly `digits` fractional digits, no exponent, no negative zero."""
    quantized = amount.quantize(Decimal(1).scaleb(-digits))
    if quantized == 0:
        quantized = abs(quantized)
    return f"{quantized:f}"
