"""The standard kit around the ledger: health, reflection, migrations, the
operator CLI and graceful shutdown, each against a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ledger_client import pb, pb_grpc
from ledger_service import migrations

from .conftest import ROOT, LedgerProcess, assert_books_balance, free_port, make_wallet, unique
from .ledger_calls import OPEN, adjust_request, outcome_of


async def test_health_and_reflection(ledger_server):
    async with grpc.aio.insecure_channel(ledger_server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "ledger.v2.LedgerService"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        async for answer in call:
            names = {s.name for s in answer.list_services_response.service}
            break
    assert "ledger.v2.LedgerService" in names


def _cli(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger_service.operator_cli", "--target", target, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


async def test_operator_cli_opens_funds_and_shows_a_statement(ledger_server):
    target = ledger_server.target
    customer = unique("cli")
    wallet = ["--company-id", "1", "--customer", customer, "--currency", "USD"]
    run = asyncio.to_thread

    opened = await run(_cli, target, "open-account", *wallet, "--digits", "2")
    assert opened.returncode == 0 and "opened" in opened.stdout, opened.stderr
    deposit = await run(_cli, target, "deposit", *wallet, "--amount", "100.00", "--key", "dep-1")
    assert deposit.returncode == 0 and "100.00 USD" in deposit.stdout
    repeat = await run(_cli, target, "deposit", *wallet, "--amount", "100.00", "--key", "dep-1")
    assert repeat.returncode == 0 and "repeat" in repeat.stdout
    too_much = await run(_cli, target, "withdraw", *wallet, "--amount", "500", "--key", "w-1")
    assert too_much.returncode == 1 and "INSUFFICIENT_BALANCE" in too_much.stderr
    withdrawn = await run(_cli, target, "withdraw", *wallet, "--amount", "30", "--key", "w-2")
    assert withdrawn.returncode == 0, withdrawn.stderr
    balance = await run(_cli, target, "balance", *wallet)
    assert balance.stdout.strip().endswith("70.00 USD")
    statement = await run(_cli, target, "statement", *wallet)
    lines = statement.stdout.splitlines()
    assert lines[0].split()[:4] == ["#", "time", "(UTC)", "cause"]
    assert "withdrawal" in lines[1] and "-30.00" in lines[1] and "70.00" in lines[1]
    assert "deposit" in lines[2] and "dep-1" in lines[2]
    request = await run(_cli, target, "request", *wallet, "--number", "w-1")
    assert "INSUFFICIENT_BALANCE" in request.stdout


async def test_operator_cli_errors_are_clear_and_non_zero(ledger_server):
    missing = await asyncio.to_thread(
        _cli,
        ledger_server.target,
        "balance",
        "--company-id",
        "1",
        "--customer",
        "nobody",
        "--currency",
        "USD",
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ACCOUNT_NOT_FOUND")
    bad = await asyncio.to_thread(
        _cli,
        ledger_server.target,
        "deposit",
        "--company-id",
        "1",
        "--customer",
        "x",
        "--currency",
        "USD",
        "--amount",
        "1e5",
    )
    assert bad.returncode == 1 and "INVALID_AMOUNT [amount]" in bad.stderr
    down = await asyncio.to_thread(
        _cli,
        "127.0.0.1:1",
        "balance",
        "--company-id",
        "1",
        "--customer",
        "x",
        "--currency",
        "USD",
    )
    assert down.returncode == 3 and "cannot reach the ledger" in down.stderr
    assert "Traceback" not in missing.stderr + bad.stderr + down.stderr


def _service(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger_service", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


async def test_migrate_is_idempotent_and_says_where_it_stands(database_url, ledger_server, db):
    done = await asyncio.to_thread(_service, "migrate", "--database-url", database_url)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    async with db.acquire() as connection:
        rows = await connection.fetch(
            "SELECT version, checksum FROM schema_migrations ORDER BY version"
        )
    shipped = migrations.available()
    assert [(r["version"], r["checksum"]) for r in rows] == [
        (m.version, m.checksum) for m in shipped
    ]
    status = await asyncio.to_thread(
        _service, "migrate", "--status", "--database-url", database_url
    )
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0].startswith(f"applied  {shipped[0].name}")


async def test_analyze_keeps_statistics_only_on_the_columns_queries_use(ledger_server, db):
    """Migration 0006: on the tables every movement appends to, ANALYZE skips
    the payload columns (it took a core for up to half a second under load)."""
    async with grpc.aio.insecure_channel(ledger_server.target) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        wallet = await make_wallet(stub, balance="5.00")
        answer = await stub.Adjust(adjust_request(wallet, "1.00", OPEN))
        assert outcome_of(answer) == "APPLIED"
    async with db.acquire() as connection:
        await connection.execute("ANALYZE journal_entries, requests")
        kept = {
            (row["tablename"], row["attname"])
            for row in await connection.fetch(
                "SELECT tablename, attname FROM pg_stats"
                " WHERE tablename IN ('journal_entries', 'requests')"
            )
        }
    assert ("requests", "request_unique_no") in kept
    assert ("journal_entries", "customer") in kept
    assert not kept & {
        ("requests", "metadata"),
        ("requests", "trace_id"),
        ("journal_entries", "amount"),
    }


async def test_an_edited_migration_is_refused_and_old_databases_get_checksums(
    own_postgres, tmp_path
):
    url = own_postgres.url
    assert (await asyncio.to_thread(_service, "migrate", "--database-url", url)).returncode == 0
    connection = await asyncpg.connect(url)
    try:
        # A database made before checksums were kept: the column is filled in.
        await connection.execute("UPDATE schema_migrations SET checksum = NULL")
        again = await asyncio.to_thread(_service, "migrate", "--database-url", url)
        assert again.returncode == 0, again.stderr
        rows = await connection.fetch(
            "SELECT version, checksum FROM schema_migrations ORDER BY version"
        )
        assert [(r["version"], r["checksum"]) for r in rows] == [
            (m.version, m.checksum) for m in migrations.available()
        ]
        # The applied text differs from the shipped one: refuse, name the file.
        await connection.execute(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1"
        )
        refused = await asyncio.to_thread(_service, "migrate", "--database-url", url)
        assert refused.returncode == 1
        assert "0001_ledger.sql differs from the one applied" in refused.stderr
        assert "Traceback" not in refused.stderr
        status = await asyncio.to_thread(_service, "migrate", "--status", "--database-url", url)
        assert status.stdout.startswith("CHANGED  0001_ledger.sql")
    finally:
        await connection.close()


async def test_migrations_take_the_lock_before_anything_and_may_skip_the_transaction(
    own_postgres,
):
    """Two replicas on an empty database: the second waits for the first's lock
    before it even looks for the table; a no-transaction file runs as written."""
    url = own_postgres.url
    blocker = await asyncpg.connect(url)
    try:
        await blocker.execute("SELECT pg_advisory_lock($1)", migrations.ADVISORY_LOCK_KEY)
        waiting = asyncio.create_task(asyncio.to_thread(_service, "migrate", "--database-url", url))
        await asyncio.sleep(3)
        assert not waiting.done()
        assert await blocker.fetchval("SELECT to_regclass('schema_migrations')") is None
        await blocker.execute("SELECT pg_advisory_unlock($1)", migrations.ADVISORY_LOCK_KEY)
        assert (await waiting).returncode == 0
    finally:
        await blocker.close()
    plain = migrations.Migration(99, "0099_x.sql", "CREATE INDEX CONCURRENTLY x ON t (a)")
    loose = migrations.Migration(99, "0099_x.sql", migrations.NO_TRANSACTION + "\n" + plain.sql)
    assert plain.in_transaction and not loose.in_transaction


async def test_bad_settings_and_an_unreachable_database_are_one_clear_line(tmp_path):
    bad = await asyncio.to_thread(
        _service, "serve", env={"LEDGER_POOL_MAX_SIZE": "ten", "LEDGER_LOG_LEVEL": "verbose"}
    )
    assert bad.returncode == 2
    assert "LEDGER_POOL_MAX_SIZE='ten'" in bad.stderr and "a number" in bad.stderr
    assert "LEDGER_LOG_LEVEL='VERBOSE'" in bad.stderr and "DEBUG, INFO" in bad.stderr
    assert "Traceback" not in bad.stderr
    unreachable = await asyncio.to_thread(
        _service, "migrate", "--database-url", "postgresql://nobody@127.0.0.1:1/none"
    )
    assert unreachable.returncode == 1
    assert "migrate failed" in unreachable.stderr and "Traceback" not in unreachable.stderr
    assert len(unreachable.stderr.splitlines()) <= 3


async def test_check_config_prints_the_effective_settings_with_secrets_masked():
    done = await asyncio.to_thread(
        _service,
        "check-config",
        "--pool-max-size",
        "20",
        env={
            "LEDGER_AUTH_TOKENS": "very-secret",
            "LEDGER_DATABASE_URL": "postgresql://ledger:hunter2@db/ledger",
        },
    )
    assert done.returncode == 0, done.stderr
    assert "LEDGER_POOL_MAX_SIZE=20" in done.stdout
    assert "LEDGER_AUTH_TOKENS=****" in done.stdout
    assert "LEDGER_DATABASE_URL=postgresql://ledger:****@db/ledger" in done.stdout
    assert "very-secret" not in done.stdout and "hunter2" not in done.stdout


async def test_serve_without_migrating_needs_no_ddl(ledger_factory, own_postgres):
    """`serve --no-migrate` (LEDGER_MIGRATE_ON_START=false) for a DML-only role:
    it creates nothing, and works on a migrated database."""
    url = own_postgres.url
    assert (await asyncio.to_thread(_service, "migrate", "--database-url", url)).returncode == 0
    ledger: LedgerProcess = ledger_factory(database_url=url, migrate_on_start="false")
    ledger.start()
    try:
        await ledger.wait_ready()
        async with grpc.aio.insecure_channel(ledger.target) as channel:
            await make_wallet(pb_grpc.LedgerServiceStub(channel), balance="1.00")
    finally:
        ledger.terminate()
    assert "applied functions" not in ledger.log()


async def test_sigterm_drains_in_flight_calls_and_exits_zero(ledger_factory, db):
    """SIGTERM: stop accepting, finish what is in flight, close the pool, exit 0."""
    ledger: LedgerProcess = ledger_factory(shutdown_grace="15")
    ledger.start()
    await ledger.wait_ready()
    async with grpc.aio.insecure_channel(ledger.target) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        wallet = await make_wallet(stub, balance="500.00")
        where = "company_id = $1 AND customer = $2 AND currency = $3"
        async with db.acquire() as blocker:
            # Hold the wallet's lock so that every debit is still in flight
            # when the signal arrives.
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute(
                f"SELECT 1 FROM accounts WHERE {where} FOR UPDATE",
                wallet.company_id,
                wallet.customer,
                wallet.currency,
            )
            calls = [
                asyncio.ensure_future(stub.Adjust(adjust_request(wallet, "1.00", OPEN), timeout=30))
                for _ in range(20)
            ]
            await _until(lambda: _in_flight(ledger) == 20)
            ledger.process.send_signal(signal.SIGTERM)
            # New calls are refused once draining has begun...
            with pytest.raises(grpc.aio.AioRpcError):
                await _until_refused(ledger)
            await transaction.rollback()
        # ...and every call that was in flight gets its answer.
        answers = await asyncio.gather(*calls)
    assert [outcome_of(a) for a in answers] == ["APPLIED"] * 20
    assert await asyncio.to_thread(ledger.process.wait, 30) == 0
    assert "ledger service stopped" in ledger.log()
    ledger.start()
    await ledger.wait_ready()
    async with grpc.aio.insecure_channel(ledger.target) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        balance = await stub.GetBalance(pb.GetBalanceRequest(account=wallet.key))
    assert balance.balance.amount == "480.00"
    assert ledger.terminate() == 0
    await assert_books_balance(db)


def _in_flight(ledger: LedgerProcess) -> float:
    with urllib.request.urlopen(ledger.metrics_url, timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith('ledger_requests_in_flight{method="Adjust"}'):
                return float(line.split()[-1])
    return 0.0


async def _until(condition, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + within
    while not await asyncio.to_thread(condition):
        assert loop.time() < give_up_at, "condition not met in time"
        await asyncio.sleep(0.05)


async def _until_refused(ledger: LedgerProcess, within: float = 10.0) -> None:
    """Raise the refusal a new call gets from a draining server."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + within
    async with grpc.aio.insecure_channel(ledger.target) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        while loop.time() < give_up_at:
            key = pb.AccountKey(company_id=1, customer="probe", currency="USD")
            try:
                await stub.GetBalance(pb.GetBalanceRequest(account=key), timeout=1)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            await asyncio.sleep(0.05)


async def test_operator_rebinds_a_user_name_with_who_and_why(
    ledger_server, ledger_stub, open_wallet, db
):
    """Rule 8 of the webhook rules: the CLI rebinds a wallet's userName; the
    operator actions log keeps who, why and the name before, and cannot be edited."""
    wallet = await open_wallet(balance="5.00")
    await ledger_stub.GetBalance(
        pb.GetBalanceRequest(account=wallet.key, user_name=wallet.user_name)
    )
    account = ["--company-id", "1", "--customer", wallet.customer, "--currency", "USD"]
    done = await asyncio.to_thread(
        _cli,
        ledger_server.target,
        "rebind-user-name",
        *account,
        "--user-name",
        "renamed-user",
        "--reason",
        "TradeBoss re-registered the user (ticket 42)",
        "--operator",
        "alice",
    )
    assert done.returncode == 0, done.stderr
    assert f"userName {wallet.user_name} -> renamed-user" in done.stdout
    shown = await asyncio.to_thread(_cli, ledger_server.target, "balance", *account)
    assert "renamed-user" in shown.stdout
    async with db.acquire() as connection:
        action = await connection.fetchrow(
            "SELECT old_value, new_value, reason, operator FROM operator_actions"
            " WHERE customer = $1",
            wallet.customer,
        )
        assert dict(action) == {
            "old_value": wallet.user_name,
            "new_value": "renamed-user",
            "reason": "TradeBoss re-registered the user (ticket 42)",
            "operator": "alice",
        }
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(
                "DELETE FROM operator_actions WHERE customer = $1", wallet.customer
            )
    missing = await asyncio.to_thread(
        _cli,
        ledger_server.target,
        "rebind-user-name",
        "--company-id",
        "1",
        "--customer",
        "nobody",
        "--currency",
        "USD",
        "--user-name",
        "x",
        "--reason",
        "y",
    )
    assert missing.returncode == 1 and "ACCOUNT_NOT_FOUND" in missing.stderr


async def test_a_no_transaction_migration_builds_an_index_concurrently(own_postgres, monkeypatch):
    """The per-file opt-out: CREATE INDEX CONCURRENTLY cannot run in a
    transaction; a file marked `-- migrate: no-transaction` applies, and is
    recorded with its checksum like any other."""
    shipped = migrations.available()
    concurrently = migrations.Migration(
        9999,
        "9999_index_requests_by_time.sql",
        migrations.NO_TRANSACTION
        + "\nCREATE INDEX CONCURRENTLY requests_by_time ON requests (created_at)",
    )
    monkeypatch.setattr(migrations, "available", lambda: [*shipped, concurrently])
    connection = await asyncpg.connect(own_postgres.url)
    try:
        assert await migrations.apply(connection) == [m.name for m in shipped] + [concurrently.name]
        assert await connection.fetchval("SELECT to_regclass('requests_by_time')") is not None
        assert (
            await connection.fetchval("SELECT checksum FROM schema_migrations WHERE version = 9999")
            == concurrently.checksum
        )
    finally:
        await connection.close()


async def test_make_run_starts_the_whole_system_and_stops_on_ctrl_c(database_url, tmp_path):
    """The README's first command (`make run` runs ledger_service.devstack):
    both services come up, a webhook is answered, Ctrl-C stops everything, exit 0."""
    ports = {name: free_port() for name in ("grpc", "http", "ledger_admin", "facade_admin")}
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_LISTEN": f"127.0.0.1:{ports['grpc']}",
        "LEDGER_ADMIN_LISTEN": f"127.0.0.1:{ports['ledger_admin']}",
        "FACADE_LISTEN": f"127.0.0.1:{ports['http']}",
        "FACADE_ADMIN_LISTEN": f"127.0.0.1:{ports['facade_admin']}",
    }
    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(  # noqa: ASYNC220 (a child that outlives this coroutine)
        [sys.executable, "-m", "ledger_service.devstack"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(300):
            if "Ctrl-C stops everything" in (tmp_path / "run.log").read_text():
                break
            assert run.poll() is None, (tmp_path / "run.log").read_text()
            await asyncio.sleep(0.2)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel:
            wallet = await make_wallet(pb_grpc.LedgerServiceStub(channel), balance="2.00")
        body = {
            "thirdServerCode": wallet.customer,
            "userName": wallet.user_name,
            "currency": wallet.currency,
        }
        headers = {"trace": "run", "companyId": "1", "content-type": "application/json"}
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports['http']}/get-user-amount", json.dumps(body).encode(), headers
        )
        answer = json.load(await asyncio.to_thread(urllib.request.urlopen, request, timeout=5))
        assert (answer["code"], answer["data"]["amount"]) == ("0", "2.00")
    finally:
        run.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(run.wait, 60)
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()
