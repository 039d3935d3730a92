"""Numbered, forward-only SQL migrations (tables and data), applied once each
and recorded with a checksum; functions and triggers are re-applied apart
(sql_functions.py).

- The advisory lock is taken before anything else, so replicas starting
  together on an empty database never race.
- A shipped migration whose text differs from what was applied is refused
  (MigrationError naming the file): a migration is never edited once applied.
- A file whose first line is `-- migrate: no-transaction` runs outside a
  transaction (for CREATE INDEX CONCURRENTLY, which would otherwise block
  writers while it builds); keep such a file to one statement.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")
# Replicas starting together must not apply the same migration twice.
ADVISORY_LOCK_KEY = 0x1ED6E4
NO_TRANSACTION = "-- migrate: no-transaction"


class MigrationError(RuntimeError):
    """The database's migrations and the shipped ones disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def in_transaction(self) -> bool:
        return not self.sql.startswith(NO_TRANSACTION)


def available() -> list[Migration]:
    """Every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("ledger_service.migrations").iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a number: {versions}")
    return found


_RECORD = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text,
    applied_at timestamptz NOT NULL DEFAULT now())"""


async def _recorded(connection: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    await connection.execute(_RECORD)
    # Databases made before checksums were kept get the column; their
    # checksums are filled in from the shipped files on this run.
    await connection.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text")
    rows = await connection.fetch("SELECT version, name, checksum FROM schema_migrations")
    return {row["version"]: row for row in rows}


def _verify(shipped: list[Migration], recorded: dict[int, asyncpg.Record]) -> None:
    by_version = {migration.version: migration for migration in shipped}
    for version, row in sorted(recorded.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {row['name']} that this release does not ship"
            )
        if row["checksum"] is not None and row["checksum"] != migration.checksum:
            raise MigrationError(
                f"{migration.name} differs from the one applied to this database "
                "(a migration is never edited once applied: add a new one)"
            )


async def apply(connection: asyncpg.Connection) -> list[str]:
    """Apply the migrations this database lacks; return the names applied."""
    applied_now = []
    await connection.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        shipped = available()
        recorded = await _recorded(connection)
        _verify(shipped, recorded)
        for migration in shipped:
            if migration.version in recorded:
                if recorded[migration.version]["checksum"] is None:
                    await connection.execute(
                        "UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                        migration.version,
                        migration.checksum,
                    )
                continue
            if migration.in_transaction:
                async with connection.transaction():
                    await _run(connection, migration)
            else:
                await _run(connection, migration)
            log.info("applied migration %s", migration.name)
            applied_now.append(migration.name)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    return applied_now


async def _run(connection: asyncpg.Connection, migration: Migration) -> None:
    await connection.execute(migration.sql)
    await connection.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        migration.version,
        migration.name,
        migration.checksum,
    )


async def status(connection: asyncpg.Connection) -> list[str]:
    """One line per migration: applied (when) or pending; a differing one flagged."""
    exists = await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    rows: dict[int, asyncpg.Record] = {}
    if exists:
        query = "SELECT version, checksum, applied_at FROM schema_migrations"
        for found in await connection.fetch(query):
            rows[found["version"]] = found
    lines = []
    for migration in available():
        record = rows.get(migration.version)
        if record is None:
            lines.append(f"pending  {migration.name}")
            continue
        when = f"{record['applied_at']:%Y-%m-%d %H:%M}"
        changed = record["checksum"] not in (None, migration.checksum)
        lines.append(f"{'CHANGED' if changed else 'applied'}  {migration.name} ({when})")
    return lines
