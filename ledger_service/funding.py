"""Operator funding: deposits and withdrawals, idempotent by the caller's key.

The transaction is one call of the server-side function `ledger_fund`
(migrations/0003_money_movements.sql)."""

from __future__ import annotations

import asyncpg

from protos.ledger.v1 import ledger_pb2 as pb

from . import accounts, money, validation
from .database import fetch_one, run_transaction
from .errors import LedgerError
from .model import AccountKey, Balance, FundingResult
from .request_records import RequestRecord, first_difference

MAX_NOTE = 200
_FUND = "SELECT * FROM ledger_fund($1, $2, $3, $4, $5, $6, $7, $8, $9)"


async def deposit(
    pool: asyncpg.Pool,
    key: AccountKey,
    amount_text: str,
    idempotency_key: str,
    note: str,
    trace_id: str,
    deadline: float,
) -> FundingResult:
    return await _fund(pool, "deposit", key, amount_text, idempotency_key, note, trace_id, deadline)


async def withdraw(
    pool: asyncpg.Pool,
    key: AccountKey,
    amount_text: str,
    idempotency_key: str,
    note: str,
    trace_id: str,
    deadline: float,
) -> FundingResult:
    return await _fund(
        pool, "withdrawal", key, amount_text, idempotency_key, note, trace_id, deadline
    )


async def _fund(
    pool: asyncpg.Pool,
    kind: str,
    key: AccountKey,
    amount_text: str,
    idempotency_key: str,
    note: str,
    trace_id: str,
    deadline: float,
) -> FundingResult:
    validation.account_key(key)
    validation.text(idempotency_key, "idempotency_key", validation.MAX_REQUEST_NO)
    validation.text(note, "note", MAX_NOTE, required=False)
    # The wallet's scale is checked in the transaction; the shape and sign here.
    amount = money.parse_amount(amount_text, validation.MAX_DIGITS)
    money.require_positive(amount, f"a {kind}")
    fraction_digits = len(amount_text.partition(".")[2])

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
            trace_id,
        )

    row = await run_transaction(pool, transaction, deadline)
    status = row["status"]
    accounts.raise_wallet_refusal(status, key, None, row["digits"])
    if status == "TOO_MANY_DIGITS":
        raise LedgerError(
            pb.OUTCOME_TOO_MANY_DIGITS,
            f"amount has {fraction_digits} fractional digits, at most {row['digits']} allowed",
            "amount",
        )
    balance = Balance(key, row["balance"], row["digits"], row["user_name"] or "")
    if status == "SEEN":
        seen = RequestRecord(**dict(row["seen"]))
        different = first_difference(
            [
                ("kind", seen.kind, kind),
                ("currency", seen.currency, key.currency),
                ("amount", seen.amount, amount),
            ]
        )
        if different:
            return FundingResult(pb.OUTCOME_CONFLICT, balance, conflict_field=different)
        return FundingResult(seen.outcome_value, balance, replayed=True)
    if status == "INSUFFICIENT_BALANCE":
        return FundingResult(pb.OUTCOME_INSUFFICIENT_BALANCE, balance)
    return FundingResult(pb.OUTCOME_APPLIED, balance, amount=amount)
