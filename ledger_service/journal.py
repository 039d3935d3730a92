"""The journal's statement of a wallet. Entries are appended only by the
server-side function ledger_post_entry (functions/10_post_entry.sql), which
moves the wallet and its system account share and appends the entry together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from . import accounts, validation
from .database import run_transaction
from .errors import LedgerError
from .model import AccountKey
from .outcomes import Outcome

_PAGE = """
SELECT entry_no, amount, counterparty, balance_after, cause, request_unique_no, operation_type,
       overtrading_policy, trace_id, created_at
FROM journal_entries
WHERE company_id = $1 AND customer = $2 AND currency = $3 AND entry_no < $4
ORDER BY entry_no DESC
LIMIT $5"""


@dataclass(frozen=True)
class Entry:
    entry_no: int
    amount: Decimal
    counterparty: str  # the system account on the other side: clearing or funding
    balance_after: Decimal
    cause: str
    request_unique_no: str
    operation_type: str | None
    overtrading_policy: str | None
    trace_id: str
    created_at: datetime


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
            Outcome.INVALID_ARGUMENT, f"page_size must be 1..{MAX_PAGE_SIZE}", "page_size"
        )
    if page_token and not (page_token.isascii() and page_token.isdigit() and len(page_token) < 19):
        raise LedgerError(Outcome.INVALID_ARGUMENT, "page_token is not valid", "page_token")
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
