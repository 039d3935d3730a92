"""Operator funding: deposits and withdrawals, idempotent by the caller's key."""

from __future__ import annotations

from dataclasses import replace

import asyncpg

from protos.ledger.v1 import ledger_pb2 as pb

from . import accounts, journal, money, request_records, validation
from .database import run_transaction
from .model import AccountKey, FundingResult
from .request_records import RequestRecord, first_difference

MAX_NOTE = 200


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
    # The wallet's scale is only known inside the transaction; parse the shape
    # now so bad input never opens one.
    money.parse_amount(amount_text, validation.MAX_DIGITS)

    async def transaction(connection: asyncpg.Connection) -> FundingResult:
        async with connection.transaction():
            account = await accounts.lock(connection, key)
            amount = money.parse_amount(amount_text, account.digits)
            money.require_positive(amount, f"a {kind}")

            seen = await request_records.find(connection, key, idempotency_key)
            if seen is not None:
                different = first_difference(
                    [
                        ("kind", seen.kind, kind),
                        ("currency", seen.currency, key.currency),
                        ("amount", seen.amount, amount),
                    ]
                )
                if different:
                    return FundingResult(
                        pb.OUTCOME_CONFLICT, account.as_balance(), False, different
                    )
                return FundingResult(seen.outcome_value, account.as_balance(), replayed=True)

            delta = amount if kind == "deposit" else -amount
            record = RequestRecord(
                company_id=key.company_id,
                customer=key.customer,
                request_unique_no=idempotency_key,
                kind=kind,
                currency=key.currency,
                outcome="APPLIED",
                amount=amount,
                amount_digits=account.digits,
                note=note,
                trace_id=trace_id,
            )
            if account.balance + delta < 0:
                record = replace(
                    record, outcome="INSUFFICIENT_BALANCE", balance_after=account.balance
                )
                await request_records.insert(connection, record)
                return FundingResult(pb.OUTCOME_INSUFFICIENT_BALANCE, account.as_balance())

            balance_after = await journal.post_entry(
                connection,
                key,
                delta,
                cause=kind,
                request_unique_no=idempotency_key,
                trace_id=trace_id,
            )
            record = replace(record, applied_amount=delta, balance_after=balance_after)
            await request_records.insert(connection, record)
            return FundingResult(
                pb.OUTCOME_APPLIED, account.as_balance(balance_after), amount=amount
            )

    return await run_transaction(pool, transaction, deadline)
