"""What the money-moving SQL functions answer: the PostgreSQL enums
movement_status and transfer_status, mirrored here (tests/test_journal.py
keeps each pair equal)."""

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


class TransferStatus(StrEnum):
    """What the transfer and hold functions answer (functions/50_transfers.sql)."""

    SEEN = "SEEN"
    DEBIT_ACCOUNT_NOT_FOUND = "DEBIT_ACCOUNT_NOT_FOUND"
    CREDIT_ACCOUNT_NOT_FOUND = "CREDIT_ACCOUNT_NOT_FOUND"
    TOO_MANY_DIGITS = "TOO_MANY_DIGITS"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    BALANCE_LIMIT_EXCEEDED = "BALANCE_LIMIT_EXCEEDED"
    CREATED = "CREATED"
    HOLD_NOT_FOUND = "HOLD_NOT_FOUND"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    HOLD_POSTED = "HOLD_POSTED"
    HOLD_VOIDED = "HOLD_VOIDED"
    POST_EXCEEDS_HOLD = "POST_EXCEEDS_HOLD"
    POSTED = "POSTED"
    VOIDED = "VOIDED"
