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
from .model import AccountKey, Balance
from .outcomes import Outcome

# A page of the statement, newest first; each filter applies when its
# parameter is not NULL (order_id: the TradeBoss orderId of the entry's request).
# The columns an Entry is made of (journal_entries j), for every reader.
ENTRY_COLUMNS = """j.entry_no, j.amount, j.counterparty, j.counterparty_customer, j.balance_after,
       j.held_change, j.held_after, j.cause, j.request_unique_no, j.operation_type,
       j.overtrading_policy, j.trace_id, j.created_at"""

_PAGE = f"""
SELECT {ENTRY_COLUMNS}
FROM journal_entries j
WHERE j.company_id = $1 AND j.customer = $2 AND j.currency = $3 AND j.entry_no < $4
  AND ($6::text IS NULL OR j.request_unique_no = $6)
  AND ($7::bigint IS NULL OR EXISTS (
        SELECT FROM requests r
        WHERE r.company_id = j.company_id AND r.customer = j.customer
          AND r.request_unique_no = j.request_unique_no AND r.order_id = $7))
  AND ($8::timestamptz IS NULL OR j.created_at >= $8)
  AND ($9::timestamptz IS NULL OR j.created_at < $9)
ORDER BY j.entry_no DESC
LIMIT $5"""


@dataclass(frozen=True)
class EntryFilter:
    """Which entries a statement shows; None: no condition."""

    request_unique_no: str | None = None
    order_id: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass(frozen=True)
class Entry:
    entry_no: int
    amount: Decimal
    # The other side: a system account (clearing, funding), or another
    # account's customer (transfers and holds).
    counterparty: str | None
    counterparty_customer: str | None
    balance_after: Decimal
    held_change: Decimal
    held_after: Decimal
    cause: str
    request_unique_no: str
    operation_type: str | None
    overtrading_policy: str | None
    trace_id: str
    created_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> Entry:
        """The entry of a row that has ENTRY_COLUMNS (and maybe more)."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class AccountEntry:
    """An entry with the account it belongs to: what an export carries."""

    account: AccountKey
    digits: int
    entry: Entry


# A wallet's balance at a point of its history: the balance_after of its last
# entry by then (one backward index step: journal_entries_by_wallet_time, or
# the primary key for an entry number).
_AS_OF_TIME = """
SELECT entry_no, balance_after FROM journal_entries
WHERE company_id = $1 AND customer = $2 AND currency = $3 AND created_at <= $4
ORDER BY created_at DESC, entry_no DESC
LIMIT 1"""
_AS_OF_ENTRY = """
SELECT entry_no, balance_after FROM journal_entries
WHERE company_id = $1 AND customer = $2 AND currency = $3 AND entry_no <= $4
ORDER BY entry_no DESC
LIMIT 1"""


async def balance_as_of(
    pool: asyncpg.Pool,
    key: AccountKey,
    deadline: float,
    *,
    time: datetime | None = None,
    entry_no: int | None = None,
) -> tuple[Balance, int]:
    """The wallet's balance after its last entry by `time`, or after entry
    `entry_no`, from the journal; and that entry's number (0: none yet)."""
    validation.account_key(key)
    if entry_no is not None and entry_no < 0:
        raise LedgerError(Outcome.INVALID_ARGUMENT, "as_of_entry_no must be >= 0", "as_of_entry_no")
    query, point = (_AS_OF_TIME, time) if entry_no is None else (_AS_OF_ENTRY, entry_no)

    async def read(connection: asyncpg.Connection) -> tuple[Balance, int]:
        account = await accounts.find(connection, key)
        row = await connection.fetchrow(query, *_key(key), point)
        if row is None:
            return account.as_balance(Decimal(0)), 0
        return account.as_balance(row["balance_after"]), row["entry_no"]

    return await run_transaction(pool, read, deadline, appends_journal=False)


MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


async def list_entries(
    pool: asyncpg.Pool,
    key: AccountKey,
    page_size: int,
    page_token: str,
    deadline: float,
    only: EntryFilter = EntryFilter(),
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
        rows = await connection.fetch(
            _PAGE,
            *_key(key),
            below,
            page_size + 1,
            only.request_unique_no,
            only.order_id,
            only.start_time,
            only.end_time,
        )
        entries = [Entry.of(row) for row in rows[:page_size]]
        more = len(rows) > page_size
        return account.digits, entries, str(entries[-1].entry_no) if more else ""

    return await run_transaction(pool, read, deadline, appends_journal=False)


def _key(key: AccountKey) -> tuple[int, str, str]:
    return key.company_id, key.customer, key.currency
