"""The journal: the only way a balance changes, and the statement of a wallet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from protos.ledger.v1 import ledger_pb2 as pb

from . import accounts, validation
from .database import run_transaction
from .errors import LedgerError
from .model import AccountKey

# Where money moves. One statement changes the balance and appends the journal
# entry that proves it, so neither can happen without the other. The caller
# holds the wallet's row lock (accounts.lock) and has decided the amount.
_POST_ENTRY = """
WITH moved AS (
    UPDATE accounts
    SET balance = balance + $4, entry_count = entry_count + 1
    WHERE company_id = $1 AND customer = $2 AND currency = $3
    RETURNING balance, entry_count
)
INSERT INTO journal_entries (
    company_id, customer, currency, entry_no, amount, balance_after,
    cause, request_unique_no, operation_type, overtrading_policy, trace_id)
SELECT $1, $2, $3, moved.entry_count, $4, moved.balance, $5, $6, $7, $8, $9 FROM moved
RETURNING balance_after"""

_PAGE = """
SELECT entry_no, amount, balance_after, cause, request_unique_no, operation_type,
       overtrading_policy, trace_id, created_at
FROM journal_entries
WHERE company_id = $1 AND customer = $2 AND currency = $3 AND entry_no < $4
ORDER BY entry_no DESC
LIMIT $5"""


@dataclass(frozen=True)
class Entry:
    entry_no: int
    amount: Decimal
    balance_after: Decimal
    cause: str
    request_unique_no: str
    operation_type: str | None
    overtrading_policy: str | None
    trace_id: str
    created_at: datetime


async def post_entry(
    connection: asyncpg.Connection,
    key: AccountKey,
    amount: Decimal,
    *,
    cause: str,
    request_unique_no: str,
    trace_id: str,
    operation_type: str | None = None,
    overtrading_policy: str | None = None,
) -> Decimal:
    """Move the balance by amount and journal it; return the balance after."""
    balance_after: Decimal = await connection.fetchval(
        _POST_ENTRY,
        key.company_id,
        key.customer,
        key.currency,
        amount,
        cause,
        request_unique_no,
        operation_type,
        overtrading_policy,
        trace_id,
    )
    return balance_after


MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


async def list_entries(
    pool: asyncpg.Pool, key: AccountKey, page_size: int, page_token: str, deadline: float
) -> tuple[int, list[Entry], str]:
    """The wallet's digits and its entries newest first; the token is the entry
    number to continue below."""
    validation.account_key(key)
    if page_size == 0:
        page_size = DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise LedgerError(
            pb.OUTCOME_INVALID_ARGUMENT, f"page_size must be 1..{MAX_PAGE_SIZE}", "page_size"
        )
    if page_token and not (page_token.isascii() and page_token.isdigit() and len(page_token) < 19):
        raise LedgerError(pb.OUTCOME_INVALID_ARGUMENT, "page_token is not valid", "page_token")
    below = int(page_token) if page_token else 2**63 - 1

    async def read(connection: asyncpg.Connection) -> tuple[int, list[Entry], str]:
        account = await accounts.find(connection, key)
        rows = await connection.fetch(_PAGE, *_key(key), below, page_size + 1)
        entries = [Entry(**dict(row)) for row in rows[:page_size]]
        more = len(rows) > page_size
        return account.digits, entries, str(entries[-1].entry_no) if more else ""

    return await run_transaction(pool, read, deadline)


def _key(key: AccountKey) -> tuple[int, str, str]:
    return key.company_id, key.customer, key.currency
