"""Operator funding: deposits and withdrawals, idempotent by the caller's key.

The transaction is one call of the server-side function `ledger_fund`
(functions/30_funding.sql): a transfer between the operator's funding account
and the wallet."""

from __future__ import annotations

from typing import Literal

import asyncpg

from . import accounts, metrics, money, validation
from .database import fetch_one, run_transaction
from .errors import LedgerError
from .model import AccountKey, Balance, FundingResult
from .outcomes import Outcome
from .request_records import RequestRecord, first_difference
from .statuses import MovementStatus

MAX_NOTE = 200
_FUND = """SELECT * FROM ledger_fund(
    p_company_id => $1, p_customer => $2, p_currency => $3, p_kind => $4, p_amount => $5,
    p_fraction_digits => $6, p_idempotency_key => $7, p_note => $8, p_balance_limit => $9,
    p_trace_id => $10)"""


async def fund(
    pool: asyncpg.Pool,
    kind: Literal["deposit", "withdrawal"],
    key: AccountKey,
    amount_text: str,
    idempotency_key: str,
    note: str,
    trace_id: str,
    deadline: float,
) -> FundingResult:
    """Operator funding: a deposit credits the wallet, a withdrawal debits it
    (never below zero); once per request id, like every movement."""
    validation.account_key(key)
    validation.text(idempotency_key, "request_id", validation.MAX_REQUEST_NO)
    validation.text(note, "note", MAX_NOTE, required=False)
    # The wallet's scale is checked in the transaction; the shape and sign here.
    amount = money.parse_amount(amount_text, validation.MAX_DIGITS)
    money.require_positive(amount, f"a {kind}")
    fraction_digits = money.fraction_digits(amount)

    async def transaction(connection: asyncpg.Connection) -> asyncpg.Record:
        return await fetch_one(
            connection,
            _FUND,
            key.company_id,
            key.customer,
            key.currency,
            kind,
            amount,
            fraction_digits,
            idempotency_key,
            note,
            money.MAX_BALANCE,
            trace_id,
        )

    row = await run_transaction(pool, transaction, deadline)
    status = MovementStatus(row["status"])
    if status is MovementStatus.ACCOUNT_NOT_FOUND:
        raise accounts.account_not_found(key)
    if status is MovementStatus.TOO_MANY_DIGITS:
        raise LedgerError(
            Outcome.TOO_MANY_DIGITS,
            f"amount has {fraction_digits} fractional digits, at most {row['digits']} allowed",
            "amount",
        )
    balance = Balance(key, row["balance"], row["digits"], row["user_name"] or "")
    if status is MovementStatus.SEEN:
        seen = RequestRecord(**dict(row["seen"]))
        different = first_difference(
            [
                ("kind", seen.kind, kind),
                ("currency", seen.currency, key.currency),
                ("amount", seen.amount, amount),
            ]
        )
        if different:
            return FundingResult(Outcome.CONFLICT, balance, conflict_field=different)
        return FundingResult(seen.outcome_value, balance, replayed=True)
    if status is not MovementStatus.APPLIED:
        return FundingResult(Outcome[status], balance)
    metrics.money_moved(key.currency, kind, amount)
    return FundingResult(Outcome.APPLIED, balance, amount=amount)
