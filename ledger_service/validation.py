"""Checks on identifiers and free text, before anything reaches SQL."""

from __future__ import annotations

import re

from .errors import LedgerError
from .model import AccountKey
from .outcomes import OperationType, Outcome

MAX_CUSTOMER = 64
MAX_CURRENCY = 16
MAX_USER_NAME = 48
MAX_REQUEST_NO = 48
MAX_CLIENT_IP = 64
MAX_REMARK = 200
MAX_DIGITS = 18
_CURRENCY = re.compile(r"[A-Z0-9]{1,16}", re.ASCII)
# C0/C1 control characters (NUL cannot even be stored in a PostgreSQL text).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def text(value: str, field: str, max_length: int, *, required: bool = True) -> str:
    if required and not value:
        raise LedgerError(Outcome.INVALID_ARGUMENT, f"{field} is required", field)
    if len(value) > max_length:
        raise LedgerError(
            Outcome.INVALID_ARGUMENT,
            f"{field} is {len(value)} characters long, at most {max_length} allowed",
            field,
        )
    if _CONTROL.search(value):
        raise LedgerError(Outcome.INVALID_ARGUMENT, f"{field} contains control characters", field)
    return value


def account_key(account: AccountKey) -> AccountKey:
    if account.company_id <= 0:
        raise LedgerError(Outcome.INVALID_ARGUMENT, "company_id must be > 0", "company_id")
    text(account.customer, "customer", MAX_CUSTOMER)
    text(account.currency, "currency", MAX_CURRENCY)
    return account


def new_currency(currency: str) -> str:
    """Currency codes of new wallets: 1..16 upper-case letters and digits (USD, USDT)."""
    if not _CURRENCY.fullmatch(currency):
        raise LedgerError(
            Outcome.INVALID_ARGUMENT,
            "currency must be 1..16 upper-case letters or digits",
            "currency",
        )
    return currency


def digits(value: int, field: str) -> int:
    if not 0 <= value <= MAX_DIGITS:
        raise LedgerError(
            Outcome.INVALID_ARGUMENT, f"{field} must be between 0 and {MAX_DIGITS}", field
        )
    return value


def operation_type(value: int) -> OperationType:
    if value not in (
        OperationType.OPEN_POSITION,
        OperationType.NORMAL_CLOSE,
        OperationType.ABNORMAL_OVERTRADING,
    ):
        raise LedgerError(
            Outcome.INVALID_ARGUMENT,
            "operation_type must be OPEN_POSITION, NORMAL_CLOSE or ABNORMAL_OVERTRADING",
            "operation_type",
        )
    return OperationType(value)
