"""Durability is the ledger's, not only the server's settings' (hardening,
finding 6): with synchronous_commit=off on the server, an answered "0" could
be lost to a crash; with fsync=off, anything could."""

from __future__ import annotations

import asyncio

import asyncpg

from ledger_service import database

from .conftest import EmbeddedPostgres, LedgerProcess


async def _execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def test_the_ledger_commits_synchronously_whatever_the_server_default(
    own_postgres: EmbeddedPostgres,
):
    await _execute(
        own_postgres.url, "ALTER SYSTEM SET synchronous_commit = off", "SELECT pg_reload_conf()"
    )
    await asyncio.sleep(0.2)
    plain = await asyncpg.connect(own_postgres.url)
    try:
        assert await plain.fetchval("SHOW synchronous_commit") == "off"
    finally:
        await plain.close()
    pool = await database.create_pool(own_postgres.url, 1, 2)
    try:
        async with pool.acquire() as connection:
            assert await connection.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await pool.close()


async def test_the_ledger_refuses_to_serve_without_fsync(
    ledger_factory, own_postgres: EmbeddedPostgres
):
    await _execute(own_postgres.url, "ALTER SYSTEM SET fsync = off", "SELECT pg_reload_conf()")
    await asyncio.sleep(0.2)
    ledger: LedgerProcess = ledger_factory(database_url=own_postgres.url)
    ledger.start()
    assert ledger.process is not None
    code = await asyncio.to_thread(ledger.process.wait, 60)
    assert code == 2
    assert "refusing to serve: PostgreSQL runs with fsync=off" in ledger.log()
    assert "Traceback" not in ledger.log()
