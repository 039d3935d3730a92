"""The connection pool and the one way every transaction runs: bounded by the
caller's deadline, retried on transient failures while time remains."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import asyncpg

from . import metrics
from .errors import LedgerError
from .outcomes import Outcome

log = logging.getLogger(__name__)
T = TypeVar("T")

# Failures after which the whole transaction can simply run again: it rolled
# back, and request numbers make a re-run of a committed one a harmless replay.
_RETRY = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    # Two transactions inserted the same request number through different
    # wallets of one customer; the re-run finds the winner's record.
    asyncpg.exceptions.UniqueViolationError,
)


class _ConnectionLost(Exception):
    """The connection died under a transaction (a restart cut it)."""


# The database is not there (down, restarting, refusing connections).
_UNAVAILABLE = (
    _ConnectionLost,
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def _is_lost(connection: asyncpg.pool.PoolConnectionProxy) -> bool:
    try:
        return connection.is_closed()
    except asyncpg.exceptions.InterfaceError:
        return True  # the pool already took the dead connection back


async def _release(pool: asyncpg.Pool, connection: asyncpg.pool.PoolConnectionProxy) -> None:
    """Give the connection back; one that a restart cut cannot be reset, and
    the pool has already terminated it (a new one is made on demand)."""
    try:
        await pool.release(connection)
    except (
        asyncpg.exceptions.InterfaceError,
        asyncpg.exceptions.InternalClientError,
        asyncpg.exceptions.PostgresConnectionError,
        OSError,
    ) as error:
        log.info("dropped a broken database connection: %r", error)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The ledger sets no session state (no SET, LISTEN, advisory locks or
    cursors outlive a transaction), so a returned connection needs no RESET
    ALL round trip; asyncpg still rolls back anything left open."""


# An answer of "0" is a promise that the money moved: the commit must be on
# disk (and on a synchronous standby, if the server has one) before the ledger
# answers, whatever the server's or database's default says.
SESSION_SETTINGS = {"application_name": "ledger-service", "synchronous_commit": "on"}


class UnsafeDatabase(RuntimeError):
    """The server's settings could lose committed transactions."""


async def create_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings=SESSION_SETTINGS,
        reset=_keep_session,
    )
    assert pool is not None
    async with pool.acquire() as connection:
        await check_durability(connection)
    return pool


async def check_durability(
    connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
) -> None:
    """Refuse a server that does not flush its commits to disk."""
    for setting in ("fsync", "full_page_writes"):
        if await connection.fetchval(f"SHOW {setting}") != "on":
            raise UnsafeDatabase(
                f"PostgreSQL runs with {setting}=off: a crash could lose transactions the "
                f"ledger has answered as done. Set {setting}=on (README, 'Durability')."
            )


async def fetch_one(connection: asyncpg.Connection, query: str, *args: object) -> asyncpg.Record:
    """Run a statement that always returns one row (the money-movement functions)."""
    row = await connection.fetchrow(query, *args)
    if row is None:
        raise RuntimeError(f"no row from {query}")
    return row


async def wait_for_database(dsn: str, within: float) -> None:
    """Block until the database accepts connections (a fresh container, a restart)."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + within
    attempts = 0
    while True:
        try:
            connection = await asyncpg.connect(dsn, timeout=max(0.5, give_up_at - loop.time()))
        except (*_UNAVAILABLE, TimeoutError) as error:
            if loop.time() >= give_up_at:
                raise
            attempts += 1
            if attempts == 1:  # once, not once per retry
                log.warning("database not reachable yet (%s); retrying for %.0fs", error, within)
            await asyncio.sleep(0.5)
        else:
            await connection.close()
            return


# What runs after each transaction of a pool that may have appended journal
# entries: the journal feed's wake-up (feed.JournalFeed.journal_appended),
# set by the server. Here because every transaction that moves money commits
# in run_transaction, whoever wrote it (group commit, funding, the next use
# case): none of them needs to know the feed exists.
_AFTER_COMMIT: dict[asyncpg.Pool, Callable[[], None]] = {}


def journal_appended(pool: asyncpg.Pool) -> None:
    """Tell pool's hook that a transaction run with appends_journal=False
    did append entries after all (it learnt so from its result)."""
    hook = _AFTER_COMMIT.get(pool)
    if hook is not None:
        hook()


def after_commit(pool: asyncpg.Pool, hook: Callable[[], None] | None) -> None:
    """Call hook after every committed run_transaction on pool (None: stop)."""
    if hook is None:
        _AFTER_COMMIT.pop(pool, None)
    else:
        _AFTER_COMMIT[pool] = hook


def deadline_exceeded() -> LedgerError:
    """What a call whose deadline ran out before its answer ends with (counted)."""
    metrics.DEADLINE_EXPIRIES.inc()
    return LedgerError(
        Outcome.DEADLINE_EXCEEDED, "the deadline ran out before the ledger could answer"
    )


async def until_deadline(answer: Awaitable[T], deadline: float) -> T:
    """The answer, or DEADLINE_EXCEEDED once the loop-time deadline passes
    (a batched item's caller waiting for its batch)."""
    try:
        async with asyncio.timeout_at(deadline):
            return await answer
    except TimeoutError:
        raise deadline_exceeded() from None


async def run_transaction(
    pool: asyncpg.Pool,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    deadline: float,
    *,
    appends_journal: bool = True,
) -> T:
    """Run work(connection) until it returns, or the loop-time deadline passes.

    work opens its own `connection.transaction()`, so a reader sees the whole
    transaction in one function. Once it committed, the pool's after_commit
    hook runs, unless the caller says it appends no journal entries (reads:
    a forgotten one only costs the feed's watchers a read).
    """
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        attempt += 1
        try:
            async with asyncio.timeout_at(deadline):
                connection = await pool.acquire()
                try:
                    result = await work(cast(asyncpg.Connection, connection))
                    hook = _AFTER_COMMIT.get(pool) if appends_journal else None
                    if hook is not None:
                        hook()
                    return result
                except (
                    asyncpg.exceptions.InterfaceError,
                    asyncpg.exceptions.InternalClientError,
                ) as error:
                    # asyncpg reports a connection cut mid-operation in these
                    # too; anything else of the kind is a defect.
                    if _is_lost(connection):
                        raise _ConnectionLost(str(error)) from error
                    raise
                finally:
                    await _release(pool, connection)
        except TimeoutError:
            raise deadline_exceeded() from None
        except _RETRY as error:
            last_error: BaseException = error
            outcome = Outcome.ABORTED
        except _UNAVAILABLE as error:
            last_error = error
            outcome = Outcome.UNAVAILABLE
        # Exponential backoff with jitter, while the deadline allows another try.
        pause = min(0.2, 0.005 * 2**attempt) * random.uniform(0.5, 1.0)
        if loop.time() + pause >= deadline:
            log.warning("giving up after %d attempts: %r", attempt, last_error)
            message = (
                "the database is unavailable"
                if outcome == Outcome.UNAVAILABLE
                else "the transaction kept conflicting with others; try again"
            )
            raise LedgerError(outcome, message) from last_error
        log.info("transaction attempt %d failed (%r); retrying", attempt, last_error)
        metrics.TRANSACTION_RETRIES.labels(
            "unavailable" if outcome == Outcome.UNAVAILABLE else "conflict"
        ).inc()
        await asyncio.sleep(pause)
