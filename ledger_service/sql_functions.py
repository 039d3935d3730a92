"""The server-side functions and triggers: one current definition of each, in
ledger_service/functions/*.sql, re-applied on every migrate (Flyway's
"repeatable" migrations), so a fix is an edit of that file and `git log -p`
shows it. Tables and data changes stay in the numbered migrations."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import resources

import asyncpg

from .migrations import ADVISORY_LOCK_KEY

log = logging.getLogger(__name__)


def available() -> list[tuple[str, str]]:
    """(file name, SQL) of every function file shipped with the package, in name order."""
    files = resources.files("ledger_service") / "functions"
    return sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in files.iterdir()
        if entry.name.endswith(".sql")
    )


async def apply(
    connection: asyncpg.Connection,
    then: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> list[str]:
    """Define every function and trigger anew, all in one transaction; `then`
    runs in it last (distribution.delegate_functions on a cluster), so no call
    ever sees the new definitions without it."""
    applied = []
    async with connection.transaction():
        # The migrations' lock: replicas starting together apply these one at
        # a time, never half of one's and half of another's.
        await connection.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
        for name, sql in available():
            await connection.execute(sql)
            applied.append(name)
        if then is not None:
            await then(connection)
    log.info("applied functions %s", ", ".join(applied))
    return applied
