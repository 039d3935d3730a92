"""What the money-moving SQL functions answer: the PostgreSQL enum
movement_status, mirrored here (tests/test_journal.py keeps the two equal)."""

from __future__ import annotations

from enum import StrEnum


class MovementStatus(StrEnum):
    # The number is known: the caller replays the recorded answer.
    SEEN = "SEEN"
    # A cancel naming something it may not reverse; nothing written.
    TARGET_NOT_ADJUSTMENT = "TARGET_NOT_ADJUSTMENT"
    TARGET_CURRENCY_MISMATCH = "TARGET_CURRENCY_MISMATCH"
    TARGET_USER_NAME_MISMATCH = "TARGET_USER_NAME_MISMATCH"
    REBOUND = "REBOUND"
    # The outcome the request was recorded with (its ledger.v1.Outcome name).
    APPLIED = "APPLIED"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    BALANCE_LIMIT_EXCEEDED = "BALANCE_LIMIT_EXCEEDED"
    ALREADY_CANCELLED = "ALREADY_CANCELLED"
    REVERSED = "REVERSED"
    ALREADY_REVERSED = "ALREADY_REVERSED"
    NOT_APPLIED = "NOT_APPLIED"
    NEVER_RECEIVED = "NEVER_RECEIVED"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    AMOUNT_SIGN_MISMATCH = "AMOUNT_SIGN_MISMATCH"
    TOO_MANY_DIGITS = "TOO_MANY_DIGITS"
    ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
    ACCOUNT_SCALE_MISMATCH = "ACCOUNT_SCALE_MISMATCH"
    USER_NAME_MISMATCH = "USER_NAME_MISMATCH"
