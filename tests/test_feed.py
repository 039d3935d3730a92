"""WatchJournal end to end (real PostgreSQL, real ledger processes): every
committed entry once, in feed order, per company; resumed from a stored
position, also across a SIGKILL of the ledger; a stalled consumer neither slows
the writers nor grows the ledger; another replica's write wakes the watchers.

What a consumer received is always compared with the journal table itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from ledger_client import open_channel, pb, pb_grpc, watch_journal

from .conftest import LedgerProcess, make_wallet, release_before, unique
from .ledger_calls import CLOSE, OPEN, adjust_request

# (transaction id, sequence, company, customer, currency, entry_no, amount,
# balance after, request id): what identifies an entry and what it says.
Row = tuple[int, int, int, str, str, int, Decimal, Decimal, str]

_TABLE = """
SELECT xact_id, feed_seq, company_id, customer, currency, entry_no, amount, balance_after,
       request_unique_no
FROM journal_entries
WHERE (xact_id, feed_seq) > ($1::xid8, $2::bigint) AND ($3::bigint = 0 OR company_id = $3)
ORDER BY xact_id, feed_seq"""

# A hang guard, not a timing assertion: generous beyond any expected run.
PATIENCE = 90


def new_company() -> int:
    return random.randint(10**9, 2 * 10**9)


async def table(
    db: asyncpg.Pool, company_id: int, after: pb.JournalPosition | None = None
) -> list[Row]:
    after = after or pb.JournalPosition()
    async with db.acquire() as connection:
        rows = await connection.fetch(_TABLE, after.transaction_id, after.sequence, company_id)
    return [tuple(row) for row in rows]  # type: ignore[misc]


def row_of(item: pb.WatchedEntry) -> Row:
    return (
        item.position.transaction_id,
        item.position.sequence,
        item.account.company_id,
        item.account.customer,
        item.account.currency,
        item.entry.entry_no,
        Decimal(item.entry.amount),
        Decimal(item.entry.balance_after),
        item.entry.request_id,
    )


async def read_entries(call: Any, count: int, into: list[pb.WatchedEntry]) -> None:
    """Read the stream's responses until `into` holds count entries."""

    async def read() -> None:
        while len(into) < count:
            response = await call.read()
            assert response is not grpc.aio.EOF, "the stream ended"
            into.extend(response.entries)

    await asyncio.wait_for(read(), PATIENCE)


def assert_wallets_in_entry_order(rows: list[Row]) -> None:
    """Per wallet, entry_no 1, 2, 3... in the order received (from a wallet's start)."""
    seen: dict[tuple[int, str, str], int] = {}
    for row in rows:
        wallet = row[2:5]
        assert row[5] == seen.get(wallet, 0) + 1, (
            f"{wallet}: entry {row[5]} after {seen.get(wallet)}"
        )
        seen[wallet] = row[5]


async def write_load(
    stub: pb_grpc.LedgerServiceStub,
    wallets: list[Any],
    movements: int,
    *,
    callers: int = 8,
    batch: int = 10,
) -> list[str]:
    """Concurrent Adjusts, ApplyMovements and Deposits on overlapping wallets;
    every answer's result name."""
    results: list[str] = []
    left = movements

    async def caller() -> None:
        nonlocal left
        while left > 0:
            kind = random.random()
            if kind < 0.4:
                left -= 1
                wallet = random.choice(wallets)
                answer = await stub.Adjust(
                    adjust_request(wallet, "1.00", random.choice([OPEN, CLOSE])), timeout=30
                )
                results.append(pb.AdjustResult.Name(answer.result))
            elif kind < 0.9:
                left -= batch
                items = [
                    pb.MovementRequest(
                        adjust=adjust_request(
                            random.choice(wallets), "0.50", random.choice([OPEN, CLOSE])
                        )
                    )
                    for _ in range(batch)
                ]
                answer = await stub.ApplyMovements(
                    pb.ApplyMovementsRequest(movements=items), timeout=30
                )
                results.extend(pb.AdjustResult.Name(m.adjust.result) for m in answer.movements)
            else:
                left -= 1
                deposit = await stub.Deposit(
                    pb.DepositRequest(
                        account=random.choice(wallets).key, amount="2.00", request_id=unique("dep")
                    ),
                    timeout=30,
                )
                results.append(pb.DepositResult.Name(deposit.result))

    await asyncio.gather(*(caller() for _ in range(callers)))
    return results


def all_applied(results: list[str]) -> bool:
    return all(result.endswith("_APPLIED") for result in results)


async def metric(ledger: LedgerProcess, name: str) -> float:
    def get() -> str:
        with urllib.request.urlopen(ledger.metrics_url, timeout=5) as answer:
            return answer.read().decode()

    for line in (await asyncio.to_thread(get)).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --- order, filter -------------------------------------------------------------


async def test_every_committed_entry_arrives_once_in_feed_order(ledger_stub, db):
    company, other = new_company(), new_company()
    wallets = [await make_wallet(ledger_stub, "1000.00", company_id=company) for _ in range(6)]
    others = [await make_wallet(ledger_stub, "1000.00", company_id=other) for _ in range(3)]
    everything = ledger_stub.WatchJournal(pb.WatchJournalRequest(from_now=True))
    first = await everything.read()
    now = first.position  # sent at once: where "now" is
    assert list(first.entries) == []
    # From the journal's start, only this company: its wallets' openings included.
    one_company = ledger_stub.WatchJournal(pb.WatchJournalRequest(company_id=company))

    results = await write_load(ledger_stub, wallets + others, 600)
    assert all_applied(results)

    expected_all = await table(db, 0, now)
    expected_company = await table(db, company)
    got_all: list[pb.WatchedEntry] = []
    got_company: list[pb.WatchedEntry] = []
    await read_entries(everything, len(expected_all), got_all)
    await read_entries(one_company, len(expected_company), got_company)
    everything.cancel()
    one_company.cancel()

    assert len(expected_all) >= 600
    assert [row_of(item) for item in got_all] == expected_all
    assert [row_of(item) for item in got_company] == expected_company
    assert {row[2] for row in expected_all} == {company, other}
    assert {row[2] for row in expected_company} == {company}
    assert_wallets_in_entry_order([row_of(item) for item in got_company])


async def test_a_position_ahead_of_the_journal_is_refused(ledger_stub):
    call = ledger_stub.WatchJournal(
        pb.WatchJournalRequest(after=pb.JournalPosition(transaction_id=2**62, sequence=1))
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call.read()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- resume --------------------------------------------------------------------


async def test_resuming_from_a_stored_position_misses_nothing_and_repeats_nothing(ledger_stub, db):
    company = new_company()
    wallets = [await make_wallet(ledger_stub, "1000.00", company_id=company) for _ in range(4)]
    assert all_applied(await write_load(ledger_stub, wallets, 200))

    received: list[pb.WatchedEntry] = []
    async for item in watch_journal(ledger_stub, company):
        received.append(item)
        if len(received) == 80:
            break  # the consumer stops; it stored this position
    stored = received[-1].position

    # Writers go on while the consumer is away, and while it resumes.
    more = asyncio.create_task(write_load(ledger_stub, wallets, 300))
    resumed = watch_journal(ledger_stub, company, after=stored)

    arrived = asyncio.Event()

    async def consume() -> None:
        async for item in resumed:
            received.append(item)
            arrived.set()

    async def caught_up() -> None:
        # Counted once the writers are done: the last entry may arrive before
        # their last answer does, and then no other entry ever comes.
        assert all_applied(await more)
        total = len(await table(db, company))
        while len(received) < total:
            arrived.clear()
            await arrived.wait()

    consumer = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(caught_up(), PATIENCE)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await resumed.aclose()
    expected = await table(db, company)
    assert [row_of(item) for item in received] == expected
    assert_wallets_in_entry_order(expected)


async def test_a_consumer_killed_by_sigkill_of_its_ledger_resumes_with_nothing_missing(
    ledger_factory, ledger_stub, db
):
    """Writers keep writing (through the session's ledger, and through the
    victim until it dies) while the consumer's ledger is SIGKILLed mid-stream
    and restarted; the client package resumes from the last position."""
    victim: LedgerProcess = ledger_factory()
    victim.start()
    await victim.wait_ready()
    company = new_company()
    wallets = [await make_wallet(ledger_stub, "100000.00", company_id=company) for _ in range(6)]
    stop = asyncio.Event()
    answered = 0

    async def writer(stub: pb_grpc.LedgerServiceStub) -> None:
        nonlocal answered
        while not stop.is_set():
            try:
                results = await write_load(stub, wallets, 20, callers=2)
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.05)  # the victim is down: its outcome is unknown
                continue
            assert all_applied(results)
            answered += len(results)
            progress.set()

    progress = asyncio.Event()

    async def answered_more(count: int) -> None:
        target = answered + count
        while answered < target:
            await progress.wait()
            progress.clear()

    received: list[pb.WatchedEntry] = []
    changed = asyncio.Event()
    async with open_channel(victim.target) as channel:
        victim_stub = pb_grpc.LedgerServiceStub(channel)

        async def consume() -> None:
            async for item in watch_journal(victim_stub, company):
                received.append(item)
                changed.set()

        writers = [asyncio.create_task(writer(ledger_stub)) for _ in range(3)]
        writers.append(asyncio.create_task(writer(victim_stub)))
        consumer = asyncio.create_task(consume())
        try:
            async with asyncio.timeout(PATIENCE):
                while len(received) < 200:
                    await changed.wait()
                    changed.clear()
            at_kill = len(received)
            victim.kill()
            await asyncio.wait_for(answered_more(300), PATIENCE)  # written while it is dead
            victim.start()
            await victim.wait_ready()
            await asyncio.wait_for(answered_more(300), PATIENCE)  # and after it came back
            stop.set()
            await asyncio.gather(*writers)
            expected = await table(db, company)
            async with asyncio.timeout(PATIENCE):
                while len(received) < len(expected):
                    await changed.wait()
                    changed.clear()
        finally:
            stop.set()
            consumer.cancel()
            for task in writers:
                task.cancel()
    assert at_kill < len(expected), "the kill should land mid-stream"
    assert [row_of(item) for item in received] == expected
    assert_wallets_in_entry_order(expected)
    assert victim.terminate() == 0


# --- slow consumers --------------------------------------------------------------


async def test_a_stalled_consumer_neither_slows_writers_nor_grows_the_ledger(ledger_factory, db):
    """The consumer (`ledger watch --json` in a process of its own) is frozen
    with SIGSTOP, so it reads nothing, not even from its socket, while 30,000
    entries are written; then it is let go and catches up from the table."""
    ledger: LedgerProcess = ledger_factory()
    ledger.start()
    await ledger.wait_ready()
    assert ledger.process is not None
    company = new_company()
    async with open_channel(ledger.target) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        wallets = [await make_wallet(stub, "1000000.00", company_id=company) for _ in range(20)]
        consumer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ledger_service.operator_cli",
            "--target",
            ledger.target,
            "watch",
            "--company-id",
            str(company),
            "--json",
            stdout=asyncio.subprocess.PIPE,
        )
        assert consumer.stdout is not None
        received: list[Row] = []
        arrived = asyncio.Event()

        async def read_lines() -> None:
            assert consumer.stdout is not None
            async for line in consumer.stdout:
                received.append(_row_of_json(json.loads(line)))
                arrived.set()

        reader = asyncio.create_task(read_lines())
        try:
            async with asyncio.timeout(PATIENCE):
                while len(received) < len(wallets):  # the openings: the stream runs
                    await arrived.wait()
                    arrived.clear()
            consumer.send_signal(signal.SIGSTOP)
            await write_load(stub, wallets, 2000, batch=100)  # warm the ledger up
            rss_before = rss_kib(ledger.process.pid)

            results = await write_load(stub, wallets, 30_000, callers=6, batch=100)

            rss_after = rss_kib(ledger.process.pid)
            assert len(results) >= 30_000 and all_applied(results)  # every write answered
            expected = await table(db, company)
            # The ledger's memory does not grow with what its frozen consumer
            # has not read: the watcher holds one page; what it handed to gRPC
            # sits in the kernel's socket buffers (loopback: a few MB, here
            # about all 30,000 entries; `ss` showed 3.7 MB in the send queue
            # and RSS +28 KiB), and anything beyond waits in the table.
            assert rss_after - rss_before < 50 * 1024, (rss_before, rss_after)

            consumer.send_signal(signal.SIGCONT)
            async with asyncio.timeout(PATIENCE):
                while len(received) < len(expected):  # it catches up
                    await arrived.wait()
                    arrived.clear()
        finally:
            consumer.send_signal(signal.SIGCONT)
            consumer.kill()
            await consumer.wait()
            reader.cancel()
    assert received == expected
    assert ledger.terminate() == 0


def _row_of_json(item: dict[str, Any]) -> Row:
    position, key, entry = item["position"], item["account"], item["entry"]
    return (
        int(position["transaction_id"]),
        int(position.get("sequence", 0)),
        int(key["company_id"]),
        key["customer"],
        key["currency"],
        int(entry["entry_no"]),
        Decimal(entry["amount"]),
        Decimal(entry["balance_after"]),
        entry.get("request_id", ""),
    )


# --- replicas ----------------------------------------------------------------------


async def test_a_write_through_another_replica_wakes_this_ones_watchers(ledger_factory, db):
    """The watcher's ledger never re-reads on its timer (an hour), so only the
    other replica's NOTIFY can bring it the entries."""
    # Nor does it sweep expired holds (a sweep is a commit, which NOTIFYs).
    watched: LedgerProcess = ledger_factory(feed_recheck_after="3600", hold_sweep_interval="3600")
    writing: LedgerProcess = ledger_factory()
    for ledger in (watched, writing):
        ledger.start()
    for ledger in (watched, writing):
        await ledger.wait_ready()
    company = new_company()
    async with open_channel(watched.target) as one, open_channel(writing.target) as two:
        watcher_stub, writer_stub = pb_grpc.LedgerServiceStub(one), pb_grpc.LedgerServiceStub(two)
        call = watcher_stub.WatchJournal(pb.WatchJournalRequest(company_id=company, from_now=True))
        await call.read()
        wallet = await make_wallet(writer_stub, "0", company_id=company)
        received: list[pb.WatchedEntry] = []
        deposits = 0

        async def deposit_until_received() -> None:
            # One deposit would do; more in case the first was held back by a
            # transaction elsewhere (each one NOTIFYs again).
            nonlocal deposits
            while not received:
                await writer_stub.Deposit(
                    pb.DepositRequest(account=wallet.key, amount="1.00", request_id=unique("dep"))
                )
                deposits += 1
                await asyncio.sleep(0.2)

        writer = asyncio.create_task(deposit_until_received())
        await read_entries(call, 1, received)
        await asyncio.wait_for(writer, PATIENCE)
        call.cancel()
        assert await metric(watched, "ledger_journal_notifies_total") == 0  # it wrote nothing
        assert await metric(watched, "ledger_journal_wakeups_total") >= 1
    assert received[0].account.customer == wallet.customer
    assert received[0].entry.entry_no == 1
    for ledger in (watched, writing):
        assert ledger.terminate() == 0


async def test_a_stopping_ledger_ends_its_watch_streams_as_unavailable(ledger_factory):
    ledger: LedgerProcess = ledger_factory(shutdown_grace="30")
    ledger.start()
    await ledger.wait_ready()
    async with open_channel(ledger.target) as channel:
        call = pb_grpc.LedgerServiceStub(channel).WatchJournal(
            pb.WatchJournalRequest(from_now=True)
        )
        await call.read()
        stopping = asyncio.create_task(asyncio.to_thread(ledger.terminate))
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(call.read(), PATIENCE)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        # Not held until the grace period ran out: the stream ended first.
        assert await asyncio.wait_for(stopping, PATIENCE) == 0


# --- the operator CLI ----------------------------------------------------------------


async def test_ledger_watch_prints_one_line_per_entry_and_goes_on_after_one(
    ledger_server, ledger_stub, db
):
    company = new_company()
    wallet = await make_wallet(ledger_stub, "10.00", company_id=company)
    for _ in range(2):
        await ledger_stub.Deposit(
            pb.DepositRequest(account=wallet.key, amount="1.50", request_id=unique("dep"))
        )

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ledger_service.operator_cli",
            "--target",
            ledger_server.target,
            "watch",
            "--company-id",
            str(company),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), PATIENCE)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, out, err = await cli("--count", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    assert [line.split()[2] for line in lines] == ["#1", "#2", "#3"]
    assert lines[1].split()[1] == f"{company}/{wallet.customer}/USD"
    assert "deposit  1.50  balance 11.50" in lines[1]
    # The first column is the position to go on from.
    code, out, err = await cli("--after", lines[0].split()[0], "--count", "2", "--json")
    assert code == 0, err
    assert [line.count('"entry_no": "') for line in out.splitlines()] == [1, 1]
    assert '"entry_no": "2"' in out.splitlines()[0]
    code, _, err = await cli("--after", "not-a-position")
    assert code == 2 and "transaction_id:sequence" in err


# --- the migration on a database that already has a journal ---------------------------


async def test_entries_written_before_the_feed_existed_get_positions_wallet_by_wallet(
    database_url,
):
    from ledger_service import migrations, sql_functions

    name = f"feed_upgrade_{random.randint(0, 10**9)}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(database_url)._replace(path="/" + name))
    try:
        connection = await asyncpg.connect(url)
        try:
            # Found by name: its number depends on what merged before it.
            with release_before("_journal_feed.sql") as feed:
                await migrations.apply(connection)
            # The functions of this release, minus nothing they need from 0004.
            await sql_functions.apply(connection)
            for customer in ("b", "a"):
                await connection.execute(
                    "INSERT INTO accounts (company_id, customer, currency, digits)"
                    " VALUES (1, $1, 'USD', 2)",
                    customer,
                )
            for number in range(3):
                for customer in ("b", "a"):
                    await connection.fetchrow(
                        "SELECT * FROM ledger_fund(p_company_id => 1, p_customer => $1,"
                        " p_currency => 'USD', p_kind => 'deposit', p_amount => 1,"
                        " p_fraction_digits => 0, p_idempotency_key => $2, p_note => '',"
                        " p_balance_limit => 1e18, p_trace_id => '')",
                        customer,
                        f"k{number}{customer}",
                    )
            assert feed.name in await migrations.apply(connection)
            await sql_functions.apply(connection)
            rows = await connection.fetch(
                "SELECT customer, entry_no, xact_id, feed_seq FROM journal_entries"
                " ORDER BY xact_id, feed_seq"
            )
            assert [(r["customer"], r["entry_no"]) for r in rows] == [
                ("a", 1),
                ("a", 2),
                ("a", 3),
                ("b", 1),
                ("b", 2),
                ("b", 3),
            ]
            assert len({r["xact_id"] for r in rows}) == 1
            # A new entry comes after them all, and history stays append-only.
            await connection.fetchrow(
                "SELECT * FROM ledger_fund(p_company_id => 1, p_customer => 'a',"
                " p_currency => 'USD', p_kind => 'deposit', p_amount => 1,"
                " p_fraction_digits => 0, p_idempotency_key => 'late', p_note => '',"
                " p_balance_limit => 1e18, p_trace_id => '')"
            )
            last = await connection.fetchrow(
                "SELECT entry_no, xact_id, feed_seq FROM journal_entries"
                " ORDER BY xact_id DESC, feed_seq DESC LIMIT 1"
            )
            assert last["entry_no"] == 4 and last["xact_id"] > rows[-1]["xact_id"]
            assert last["feed_seq"] == 7
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute("UPDATE journal_entries SET trace_id = trace_id")
        finally:
            await connection.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
