"""The ledger on a Citus cluster (`make test-citus`: a coordinator and two
workers, deploy/citus/cluster.py): wallets routed to the worker Citus puts
them on, every hot-path statement single-shard and delegated, the books kept
through a worker restart under load. Skipped on a single PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import httpx
import pytest

from ledger_client import pb
from ledger_service import distribution, reconciliation, shard_routing

from .conftest import (
    CITUS_CLUSTER,
    LedgerProcess,
    assert_books_balance,
    citus_cluster,
    fetch_once,
    release_before,
    unique,
)
from .ledger_calls import OPEN, adjust_request, balance_of, outcome_of
from .tradeboss import CANCEL, EXECUTE, TradeBoss

pytestmark = pytest.mark.skipif(not CITUS_CLUSTER, reason="needs a Citus cluster (make test-citus)")

# The money-moving functions whose bodies must run on the workers only.
_DELEGATED = [function for function, _ in distribution.DELEGATED_FUNCTIONS]


def _worker_urls(database_url: str) -> list[str]:
    state = json.loads(Path(CITUS_CLUSTER).read_text())
    database = database_url.rsplit("/", 1)[1]
    return [f"postgresql://postgres@127.0.0.1:{w['port']}/{database}" for w in state["workers"]]


_FUNCTION_CALLS = """
SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_user_functions WHERE funcname = ANY($1)"""
_SHARD_COUNTS = """
SELECT query_execution_single_shard AS single, query_execution_multi_shard AS multi
FROM citus_stat_counters WHERE name = current_database()"""


async def _node_stats(url: str) -> tuple[int, int, int]:
    """(calls of the money-moving functions run here, single-shard, multi-shard executions)."""
    calls = (await fetch_once(url, _FUNCTION_CALLS, _DELEGATED))[0][0]
    counts = (await fetch_once(url, _SHARD_COUNTS))[0]
    return calls, counts["single"], counts["multi"]


async def test_the_ledger_routes_each_wallet_to_the_worker_citus_puts_it_on(db):
    customers = [unique("cust") for _ in range(500)] + ["", "ü✓ mixed", "x" * 300]
    shard_map = await shard_routing.load(db, distributed=True)
    async with db.acquire() as connection:
        rows = await connection.fetch(
            """SELECT c, p.groupid FROM unnest($1::text[]) c
               JOIN pg_dist_placement p
                 ON p.shardid = get_shard_id_for_distribution_column($2::regclass, c)""",
            customers,
            distribution.COLOCATION_ANCHOR,
        )
    assert len(rows) == len(customers)
    assert {row["c"]: shard_map.group_of(row["c"]) for row in rows} == {
        row["c"]: row["groupid"] for row in rows
    }
    assert len({row["groupid"] for row in rows}) == 2, "both workers hold wallets"


async def test_webhooks_run_single_shard_and_delegated_to_the_workers(
    facade, open_wallet, ledger_stub, database_url, db
):
    """Issue 15, single-shard hot path: executes, cancels and balance queries
    through the facade never run a multi-shard statement, and the bodies of
    the money-moving functions run on the workers, never on the coordinator."""
    wallets = [await open_wallet(balance="100.00") for _ in range(12)]
    workers = _worker_urls(database_url)
    before = {url: await _node_stats(url) for url in [database_url, *workers]}
    async with httpx.AsyncClient() as client:
        tradeboss = TradeBoss(facade.url, client)
        bodies = [tradeboss.execute_body(wallets[i % 12], "1.00") for i in range(120)]
        answers = await asyncio.gather(*(tradeboss.post(EXECUTE, body) for body in bodies))
        assert {answer["code"] for answer in answers} == {"0"}
        cancels = [
            tradeboss.cancel_body(wallets[i % 12], body["requestUniqueNo"], "1.00")
            for i, body in enumerate(bodies[:24])
        ]
        answers = await asyncio.gather(*(tradeboss.post(CANCEL, body) for body in cancels))
        assert {answer["code"] for answer in answers} == {"0"}
        for wallet in wallets:
            answer = await tradeboss.query(wallet)
            assert (answer["code"], Decimal(answer["data"]["amount"])) == ("0", Decimal("92.00"))

    # Function statistics reach the shared counters when a backend goes idle,
    # but one that flushed less than a second before holds them for 10 s
    # (PostgreSQL's PGSTAT_IDLE_INTERVAL): wait for every worker's counters,
    # not for the first ones to arrive.
    async def stats_after() -> dict[str, tuple[int, int, int]]:
        for _ in range(40):
            now = {url: await _node_stats(url) for url in [database_url, *workers]}
            calls = [now[url][0] - before[url][0] for url in workers]
            if sum(calls) >= 10 and min(calls) > 0:
                break
            await asyncio.sleep(0.5)
        return now

    after = await stats_after()
    delta = {
        url: tuple(a - b for a, b in zip(after[url], before[url], strict=True)) for url in after
    }
    coordinator_calls, coordinator_single, coordinator_multi = delta[database_url]
    assert coordinator_calls == 0, "a money-moving function ran on the coordinator"
    assert coordinator_single > 0
    assert coordinator_multi == 0, "a hot-path statement spanned shards"
    for url in workers:
        calls, single, multi = delta[url]
        assert calls > 0 and single > 0, f"worker {url} ran no delegated call"
        assert multi == 0, f"a statement on worker {url} spanned shards"
    await assert_books_balance(db)


async def test_reports_with_a_global_view_work_across_the_workers(ledger_stub, open_wallet, db):
    """Reconcile, exposure (now and as of a time) and the export read every
    shard through the coordinator (multi-shard queries are fine there)."""
    company = 1515
    wallets = [await open_wallet(balance="50.00", company_id=company) for _ in range(8)]
    async with db.acquire() as connection:
        groups = await connection.fetchval(
            """SELECT count(DISTINCT p.groupid) FROM unnest($1::text[]) c
               JOIN pg_dist_placement p
                 ON p.shardid = get_shard_id_for_distribution_column('accounts', c)""",
            [wallet.customer for wallet in wallets],
        )
        funded_at = await connection.fetchval("SELECT now()")
    assert groups == 2, "the wallets should span both workers"
    for wallet in wallets:
        answer = await ledger_stub.Adjust(adjust_request(wallet, "5.00", OPEN))
        assert outcome_of(answer) == "APPLIED"
    await assert_books_balance(db)

    [now] = await reconciliation.exposure(db, company, None)
    assert (now.wallets, now.customers, now.clearing, now.funding) == (
        8,
        Decimal("360.00"),
        Decimal("40.00"),
        Decimal("-400.00"),
    )
    [then] = await reconciliation.exposure(db, company, funded_at)
    assert (then.customers, then.clearing, then.funding) == (
        Decimal("400.00"),
        Decimal("0"),
        Decimal("-400.00"),
    )
    exported = [
        item
        async for item in reconciliation.export_journal(
            db, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC), company
        )
    ]
    assert exported[0] == 16
    times = [item.entry.created_at for item in exported[1:]]
    assert times == sorted(times), "the export is in time order across shards"
    found = [item async for item in reconciliation.reconcile(db, company)]
    assert [item for item in found if isinstance(item, reconciliation.Discrepancy)] == []


async def test_a_worker_restarted_under_load_loses_nothing_and_applies_nothing_twice(
    ledger_server, ledger_stub, open_wallet, database_url, db
):
    """Executes on wallets of both workers while one worker stops for 1.5 s and
    starts again: the ledger retries what the restart cut while the caller's
    deadline allows; a call that still fails is UNAVAILABLE or out of time;
    every execute sent again with its own number afterwards is applied exactly
    once, and the books balance."""
    wallets = [await open_wallet(balance="1000.00") for _ in range(16)]
    requests = [adjust_request(random.choice(wallets), "1.00", OPEN) for _ in range(600)]
    answered: dict[str, str] = {}
    failed: list[grpc.StatusCode] = []
    worker = _worker_urls(database_url)[0]
    started = (await fetch_once(worker, "SELECT pg_postmaster_start_time()"))[0][0]
    retries_before = await _unavailable_retries(ledger_server)

    async def send(request: pb.AdjustRequest) -> None:
        try:
            answer = await ledger_stub.Adjust(request, timeout=5)
        except grpc.aio.AioRpcError as error:
            failed.append(error.code())
            return
        answered[request.request_id] = outcome_of(answer)

    tasks: list[asyncio.Task[None]] = []

    async def paced() -> None:
        for request in requests:
            tasks.append(asyncio.create_task(send(request)))
            await asyncio.sleep(0.005)

    pacing = asyncio.create_task(paced())
    await asyncio.sleep(0.5)
    await asyncio.to_thread(citus_cluster, "restart-worker", "0", "--down", "1.5")
    await pacing
    await asyncio.gather(*tasks)
    assert (await fetch_once(worker, "SELECT pg_postmaster_start_time()"))[0][0] > started
    assert await _unavailable_retries(ledger_server) > retries_before, "the restart cut nothing"
    assert set(failed) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    assert set(answered.values()) == {"APPLIED"}

    # TradeBoss sends every execute again with its own number: each applies once.
    for request in requests:
        for _ in range(20):
            try:
                answer = await ledger_stub.Adjust(request, timeout=5)
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.5)
        else:
            pytest.fail(f"{request.request_id} never answered after the restart")
        assert (outcome_of(answer), answer.replayed) == ("APPLIED", True)
    for wallet in wallets:
        debits = sum(1 for r in requests if r.account.customer == wallet.customer)
        assert await balance_of(ledger_stub, wallet) == f"{1000 - debits}.00"
    await assert_books_balance(db)


async def _unavailable_retries(ledger: LedgerProcess) -> float:
    text = await asyncio.to_thread(lambda: httpx.get(ledger.metrics_url).text)
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("ledger_transaction_retries_total{") and "unavailable" in line
    )


# --- column statistics (migration 0006) -------------------------------------------

_SHARD_TARGETS = """
SELECT DISTINCT regexp_replace(c.relname, '_[0-9]+$', '') AS table_name, a.attname, a.attstattarget
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relname ~ '^(journal_entries|requests)_[0-9]+$' AND a.attname = ANY($1)"""
# (table, column) -> target: keys some query uses, payload columns none does.
_EXPECTED_TARGETS = {
    ("journal_entries", "customer"): 30,
    ("journal_entries", "request_unique_no"): 30,
    ("journal_entries", "trace_id"): 0,
    ("requests", "customer"): 30,
    ("requests", "request_unique_no"): 30,
    ("requests", "trace_id"): 0,
    ("requests", "metadata"): 0,
}


@pytest.fixture
def new_database(database_url: str) -> Iterator[str]:
    """The URL of a database of its own on the cluster, nothing migrated yet
    (an upgrade test's older release), dropped after."""
    name = unique("upgrade").replace("-", "_")
    citus_cluster("create-database", name)
    try:
        yield urlunsplit(urlsplit(database_url)._replace(path="/" + name))
    finally:
        citus_cluster("drop-database", name)


async def _targets_on_the_workers(database_url: str) -> dict[tuple[str, str], set[int]]:
    columns = list({column for _, column in _EXPECTED_TARGETS})
    found: dict[tuple[str, str], set[int]] = {}
    for url in _worker_urls(database_url):
        connection = await asyncpg.connect(url)
        try:
            # Citus hides shards from other applications' catalog queries.
            await connection.execute("SET citus.show_shards_for_app_name_prefixes = '*'")
            for row in await connection.fetch(_SHARD_TARGETS, columns):
                key = (row["table_name"], row["attname"])
                found.setdefault(key, set()).add(row["attstattarget"])
        finally:
            await connection.close()
    return found


async def test_column_statistics_targets_reach_every_shard(database_url, ledger_server):
    """Where ANALYZE runs on Citus: the shards on the workers. A fresh database
    is migrated, then distributed (Citus copies each column's target)."""
    assert await _targets_on_the_workers(database_url) == {
        key: {target} for key, target in _EXPECTED_TARGETS.items()
    }


async def test_column_statistics_targets_reach_the_shards_of_tables_distributed_before(
    new_database: str,
):
    """A cluster distributed before migration 0006: Citus refuses SET
    STATISTICS on a distributed table, so the migration sets it on each shard."""
    from ledger_service import server

    with release_before("_statistics_where_queries_look.sql") as statistics:
        await server.migrate(new_database, distributed=True)
    before = await _targets_on_the_workers(new_database)
    assert before and all(0 not in targets for targets in before.values())
    assert statistics.name in await server.migrate(new_database, distributed=True)
    assert await _targets_on_the_workers(new_database) == {
        key: {target} for key, target in _EXPECTED_TARGETS.items()
    }
    coordinator = await asyncpg.connect(new_database)
    try:
        assert (
            await coordinator.fetchval(
                "SELECT attstattarget FROM pg_attribute"
                " WHERE attrelid = 'requests'::regclass AND attname = 'metadata'"
            )
            == 0
        ), "new shards copy the coordinator's table"
    finally:
        await coordinator.close()


# --- the journal's counterparty check as a call (migrations 0007, 0008) -----------

_SHARD_CHECKS = """
SELECT c.relname, k.convalidated, pg_get_constraintdef(k.oid) AS definition
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
WHERE c.relname ~ '^journal_entries_[0-9]+$' AND k.conname ~ '^counterparty_of_cause(_[0-9]+)?$'"""


async def test_the_journal_counterparty_check_reaches_the_shards_of_tables_distributed_before(
    new_database: str,
):
    """A cluster distributed before migration 0007: the check becomes a call
    on every shard, is validated there, and refuses an entry that does not fit."""
    from ledger_service import migrations, server

    with release_before("0007_") as first_new:
        await server.migrate(new_database, distributed=True)
    applied = await server.migrate(new_database, distributed=True)
    shipped = migrations.available()
    assert {m.name for m in shipped if m.version >= first_new.version} <= set(applied)

    shards: list[asyncpg.Record] = []
    for worker in _worker_urls(new_database):
        connection = await asyncpg.connect(worker)
        try:
            await connection.execute("SET citus.show_shards_for_app_name_prefixes = '*'")
            shards += await connection.fetch(_SHARD_CHECKS)
        finally:
            await connection.close()
    assert shards
    assert all(row["convalidated"] for row in shards), shards
    assert all("journal_counterparty_fits_cause" in row["definition"] for row in shards)

    coordinator = await asyncpg.connect(new_database)
    try:
        await coordinator.execute(
            "INSERT INTO accounts (company_id, customer, currency, digits)"
            " VALUES (1, 'upgrade', 'USD', 2)"
        )
        with pytest.raises(asyncpg.CheckViolationError, match="counterparty_of_cause"):
            await coordinator.execute(
                "INSERT INTO journal_entries (company_id, customer, currency, entry_no,"
                " amount, counterparty, balance_after, cause, request_unique_no)"
                " VALUES (1, 'upgrade', 'USD', 1, 1, NULL, 1, 'adjustment', 'x')"
            )
    finally:
        await coordinator.close()
