"""The live journal feed (WatchJournal): every committed entry, in an order a
caller can resume from without gaps or duplicates.

Position. Every journal row carries `xact_id`, the id of the transaction that
wrote it, and `feed_seq`, a sequence in write order (migration 0005, both
column defaults). The feed's order is (xact_id, feed_seq); a caller stores the
position of the last entry it processed and resumes after it.

Why resuming is safe. A reader only reads rows with
`xact_id < pg_snapshot_xmin(pg_current_snapshot())`: every transaction below
the snapshot's xmin has ended, and every transaction that has not started yet
will get a larger id. So once the feed has sent a position, no row can commit
below it later: a resume from a stored position has no gaps and, as positions
only grow, no duplicates. Rows of transactions that committed above xmin wait
for the next read; they are not lost, only held back.

Why each wallet's entries come in entry_no order. Every money-moving
transaction takes the advisory locks of all its accounts, in one global order,
before its first write (functions/05_locks.sql), and a transaction is given
its id at its first write. A transaction that waited for another on a shared
account therefore has the larger id; within one transaction, feed_seq follows
the order the entries were written in. The feed's order is so consistent with
every wallet's own; it is not commit order between unrelated wallets (two
transactions on different wallets may commit in either order), and it needs
no order there.

The limit. A long-running transaction that holds an xid anywhere on the
database server (CREATE INDEX CONCURRENTLY, a stuck session, a prepared
transaction) holds xmin, so it holds the feed back until it ends; nothing is
lost, the entries then all arrive. On Citus each worker has its own
transaction ids, so this order holds per worker only (the feed reads the
coordinator's view).

Reading. Each watcher reads one page of rows at a time from the table, and
reads the next only when gRPC has taken the previous response from it: a slow
consumer holds at most one page in memory and never slows writers (they do
not know it exists); one that fell behind catches up from the table.

Waking up. One connection per ledger process LISTENs on `ledger_journal` and
wakes every watcher of the process. Writers NOTIFY after their commit, never
inside the money transaction (NOTIFY takes a database-wide lock at commit and
would serialize every writer): database.run_transaction calls
JournalFeed.journal_appended, which sends at most one NOTIFY at a time and at
most one per NOTIFY_INTERVAL, folding the commits meanwhile into the next.
Another replica's NOTIFY wakes this one's watchers the same way. A watcher
also reads again after RECHECK_AFTER without a wake-up: rows held back by xmin
(above) and a lost LISTEN connection need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import asyncpg

from . import database, metrics
from .errors import LedgerError
from .journal import ENTRY_COLUMNS, AccountEntry, Entry
from .model import AccountKey
from .outcomes import Outcome

log = logging.getLogger(__name__)

CHANNEL = "ledger_journal"
# Entries per response, at most: what one watcher holds in memory.
PAGE_SIZE = 500
# At most one NOTIFY per this many seconds per process.
NOTIFY_INTERVAL = 0.02
# A caught-up watcher reads again after this long without a wake-up (the
# default of settings.feed_recheck_after).
RECHECK_AFTER = 1.0
# A watcher that has nothing to send tells its caller how far it has read
# (an empty response) at most this often.
PROGRESS_EVERY = 5.0
# A transaction id is a PostgreSQL xid8; positions beyond int64 are not ones
# the feed ever gave out.
_MAX_ID = 2**63 - 1


class Position(NamedTuple):
    """A place in the feed: the entries after it are still to come."""

    xact_id: int
    sequence: int


# Before the journal's first entry.
START = Position(0, 0)


@dataclass(frozen=True)
class FeedEntry:
    position: Position
    entry: AccountEntry


@dataclass(frozen=True)
class Batch:
    """What one response carries: entries in feed order, and how far the feed
    has read for the caller (at or beyond the last entry's position)."""

    entries: list[FeedEntry]
    reached: Position


def checked_position(position: Position) -> Position:
    """A caller's start position, refused when it cannot be one the feed gave out."""
    if not (0 <= position.xact_id <= _MAX_ID and -_MAX_ID <= position.sequence <= _MAX_ID):
        raise LedgerError(Outcome.INVALID_ARGUMENT, "the position is out of range", "after")
    return position


def reached_after(
    position: Position, page: list[FeedEntry], page_size: int, horizon: int
) -> Position:
    """How far a read after `position` got. A full page: to its last entry.
    A shorter one saw every row below the horizon (the snapshot's xmin), so
    the feed is at (horizon, 0): rows of the transaction at the horizon, still
    running, come after it."""
    if len(page) >= page_size:
        return page[-1].position
    candidates = [position, Position(horizon, 0)]
    if page:
        candidates.append(page[-1].position)
    return max(candidates)


# One page after a position, below the horizon; the horizon and the next
# unassigned transaction id come with it (one row of NULLs when the page is
# empty). One statement: one snapshot for the horizon and the rows.
_PAGE = f"""
SELECT h.horizon, h.ceiling, j.company_id, j.customer, j.currency, a.digits,
       j.xact_id, j.feed_seq, {ENTRY_COLUMNS}
FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon,
             pg_snapshot_xmax(pg_current_snapshot()) AS ceiling) h
LEFT JOIN LATERAL (
    SELECT * FROM journal_entries e
    WHERE (e.xact_id, e.feed_seq) > ($1::xid8, $2::bigint) AND e.xact_id < h.horizon
      AND ($3::bigint = 0 OR e.company_id = $3)
    ORDER BY e.xact_id, e.feed_seq
    LIMIT $4) j ON true
LEFT JOIN accounts a
  ON a.company_id = j.company_id AND a.customer = j.customer AND a.currency = j.currency
ORDER BY j.xact_id, j.feed_seq"""


@dataclass(frozen=True)
class _Page:
    entries: list[FeedEntry]
    horizon: int
    ceiling: int


async def _read_page(
    connection: asyncpg.Connection, after: Position, company_id: int, page_size: int
) -> _Page:
    rows = await connection.fetch(_PAGE, after.xact_id, after.sequence, company_id, page_size)
    entries = [
        FeedEntry(
            Position(row["xact_id"], row["feed_seq"]),
            AccountEntry(
                AccountKey(row["company_id"], row["customer"], row["currency"]),
                row["digits"],
                Entry.of(row),
            ),
        )
        for row in rows
        if row["xact_id"] is not None
    ]
    return _Page(entries, rows[0]["horizon"], rows[0]["ceiling"])


class Coalesced:
    """Calls send() soon after each request(), but never two at once and never
    two within min_interval: requests made meanwhile are served by the next
    call (one NOTIFY stands for every commit before it)."""

    def __init__(self, send: Callable[[], Awaitable[None]], min_interval: float) -> None:
        self._send = send
        self._min_interval = min_interval
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="coalesced call")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            self._pending = False
            started = loop.time()
            await self._send()
            await asyncio.sleep(max(0.0, started + self._min_interval - loop.time()))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class JournalFeed:
    """One per ledger process: the LISTEN connection and its watchers, the
    coalescing NOTIFY sender, and the watchers' reads."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        *,
        read_deadline: float,
        recheck_after: float = RECHECK_AFTER,
        page_size: int = PAGE_SIZE,
        max_concurrent_reads: int = 2,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._read_deadline = read_deadline
        self._recheck_after = recheck_after
        self._page_size = page_size
        # Watchers catching up share a few pool connections, never all of them:
        # the writers' share of the pool stays theirs.
        self._reads = asyncio.Semaphore(max_concurrent_reads)
        self._watchers: set[asyncio.Event] = set()
        self._connection: asyncpg.Connection | None = None
        # The NOTIFY and the liveness check share the connection: one at a time.
        self._connection_lock = asyncio.Lock()
        self._notify = Coalesced(self._send_notify, NOTIFY_INTERVAL)
        self._keeper: asyncio.Task[None] | None = None
        self._closing = False

    # --- the LISTEN connection ------------------------------------------------

    async def start(self) -> None:
        """Start listening (in the background: a database that is down now is
        listened to once it is back; watchers read on their timer meanwhile)."""
        self._keeper = asyncio.create_task(self._keep_listening(), name="journal feed listener")

    async def close(self) -> None:
        """End every watch (UNAVAILABLE: callers resume elsewhere) and stop listening."""
        self._closing = True
        self._wake_all()
        await self._notify.close()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _keep_listening(self) -> None:
        pause = 0.1
        while True:
            try:
                connection = await self._connect()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("journal feed cannot listen (%r); retrying in %.1fs", error, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            pause = 0.1
            try:
                await self._listen_on(connection)
            finally:
                self._connection = None
                connection.terminate()
            log.warning("journal feed lost its LISTEN connection; reconnecting")
            # Until it is back, the watchers read on their timer.
            self._wake_all()

    async def _connect(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(
            self._dsn,
            timeout=10,
            server_settings={"application_name": "ledger-service journal feed"},
        )
        try:
            await connection.add_listener(CHANNEL, self._notified)
        except BaseException:
            connection.terminate()
            raise
        return connection

    async def _listen_on(self, connection: asyncpg.Connection) -> None:
        """Until the connection is lost."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        self._connection = connection
        log.info("journal feed listening on %s", CHANNEL)
        # What was committed while nobody listened: every watcher reads again.
        self._wake_all()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await lost.wait()
            if lost.is_set() or not await self._alive(connection):
                return

    async def _alive(self, connection: asyncpg.Connection) -> bool:
        """A connection a network cut silently is found by asking it something."""
        try:
            async with self._connection_lock, asyncio.timeout(5):
                await connection.execute("SELECT 1")
            return True
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False

    def _notified(self, *_: object) -> None:
        metrics.JOURNAL_WAKEUPS.inc()
        self._wake_all()

    def _wake_all(self) -> None:
        for woken in self._watchers:
            woken.set()

    # --- writers: NOTIFY after commit -------------------------------------------

    def journal_appended(self) -> None:
        """A transaction that may have appended journal entries committed:
        wake the watchers of every replica (soon, not once per commit)."""
        self._notify.request()

    async def _send_notify(self) -> None:
        connection = self._connection
        if connection is None:
            return  # the watchers' timer reads what this would have announced
        try:
            async with self._connection_lock:
                await connection.execute(f"NOTIFY {CHANNEL}")
            metrics.JOURNAL_NOTIFIES.inc()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.info("journal feed NOTIFY failed: %r", error)

    # --- watchers ---------------------------------------------------------------

    @contextlib.contextmanager
    def _watcher(self) -> Iterator[asyncio.Event]:
        woken = asyncio.Event()
        self._watchers.add(woken)
        metrics.JOURNAL_WATCHERS.inc()
        try:
            yield woken
        finally:
            self._watchers.discard(woken)
            metrics.JOURNAL_WATCHERS.dec()

    async def _page(self, after: Position, company_id: int, limit: int) -> _Page:
        async def read(connection: asyncpg.Connection) -> _Page:
            return await _read_page(connection, after, company_id, limit)

        deadline = asyncio.get_running_loop().time() + self._read_deadline
        async with self._reads:
            return await database.run_transaction(self._pool, read, deadline, appends_journal=False)

    async def watch(self, company_id: int, after: Position | None) -> AsyncIterator[Batch]:
        """Batches of entries after `after` (None: from now), forever. The
        next page is read only once the caller took the previous batch."""
        if after is not None:
            checked_position(after)
        loop = asyncio.get_running_loop()
        with self._watcher() as woken:
            if after is None:
                # From now: the horizon alone (what is below it has happened).
                now = await self._page(START, company_id, 0)
                after = Position(now.horizon, 0)
            position = told = after
            told_at, first = loop.time(), True
            while True:
                if self._closing:
                    raise LedgerError(Outcome.UNAVAILABLE, "the ledger is shutting down")
                woken.clear()
                page = await self._page(position, company_id, self._page_size)
                if first and position.xact_id > page.ceiling:
                    raise LedgerError(
                        Outcome.INVALID_ARGUMENT,
                        "the position is ahead of the journal (another database?)",
                        "after",
                    )
                position = reached_after(position, page.entries, self._page_size, page.horizon)
                progress = position > told and loop.time() - told_at >= PROGRESS_EVERY
                if first or page.entries or progress:
                    yield Batch(page.entries, position)
                    metrics.JOURNAL_ENTRIES_SENT.inc(len(page.entries))
                    told, told_at, first = position, loop.time(), False
                if len(page.entries) >= self._page_size:
                    continue  # behind: the next page at once
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._recheck_after):
                        await woken.wait()
