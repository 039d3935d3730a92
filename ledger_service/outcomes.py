"""The ledger's vocabulary of answers and operations, in plain Python: what
the use cases decide. The gRPC edge (servicer.py) maps them onto the proto;
tests/test_money.py keeps names and numbers equal to ledger.v1's."""

from __future__ import annotations

from enum import IntEnum


class Outcome(IntEnum):
    """Every outcome, in the order the ledger checks them (the proto documents each)."""

    UNSPECIFIED = 0
    # Refusals of the input or the wallet.
    INVALID_ARGUMENT = 1
    INVALID_AMOUNT = 2
    AMOUNT_SIGN_MISMATCH = 3
    TOO_MANY_DIGITS = 4
    ACCOUNT_NOT_FOUND = 5
    ACCOUNT_SCALE_MISMATCH = 6
    USER_NAME_MISMATCH = 7
    CANCEL_TARGET_MISMATCH = 8
    REQUEST_NOT_FOUND = 9
    HOLD_NOT_FOUND = 10
    # Answers.
    CONFLICT = 20
    ALREADY_CANCELLED = 21
    INSUFFICIENT_BALANCE = 22
    APPLIED = 23
    REVERSED = 24
    ALREADY_REVERSED = 25
    NOT_APPLIED = 26
    NEVER_RECEIVED = 27
    BALANCE_LIMIT_EXCEEDED = 28
    # A hold's life.
    HOLD_EXPIRED = 29
    ALREADY_POSTED = 30
    ALREADY_VOIDED = 31
    POST_EXCEEDS_HOLD = 32
    # Infrastructure.
    UNAVAILABLE = 40
    DEADLINE_EXCEEDED = 41
    ABORTED = 42
    INTERNAL = 43


class OperationType(IntEnum):
    UNSPECIFIED = 0
    OPEN_POSITION = 1  # debit by amount (> 0); refused below zero
    NORMAL_CLOSE = 2  # credit by amount (> 0)
    ABNORMAL_OVERTRADING = 3  # amount < 0: debit by |amount| even below zero, or ignore
