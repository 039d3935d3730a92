"""History: a wallet's balance at a time or after a journal entry, read from
the journal, checked against a replay of the journal; statements filtered by
reference, orderId and time; and the as_of read on a wallet with a very long
journal touches a handful of pages (one index step), not the journal."""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ledger_client import pb
from ledger_service import journal, server

from .conftest import unique
from .ledger_calls import CLOSE, OPEN, adjust_request, cancel_request, outcome_of

# `make soak` (LEDGER_SOAK=1) runs the long-journal test at the size the
# design promises; the everyday suite at a tenth of it.
LONG_JOURNAL = 1_000_000 if os.environ.get("LEDGER_SOAK") else 100_000


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def _journal(stub, wallet) -> list[pb.JournalEntry]:
    answer = await stub.ListJournalEntries(
        pb.ListJournalEntriesRequest(account=wallet.key, page_size=1000)
    )
    return list(reversed(answer.entries))


async def test_balance_as_of_matches_a_replay_of_the_journal(ledger_stub, open_wallet):
    wallet = await open_wallet(balance="100.00")
    executes = []
    for step in range(30):
        choice = random.random()
        if choice < 0.6 or not executes:
            request = adjust_request(wallet, f"{random.randint(1, 900) / 100:.2f}", OPEN)
            executes.append(request)
            await ledger_stub.Adjust(request)
        elif choice < 0.8:
            await ledger_stub.Adjust(adjust_request(wallet, "3.00", CLOSE))
        else:
            target = executes.pop(random.randrange(len(executes)))
            await ledger_stub.CancelAdjustment(
                cancel_request(wallet, target.request_id, target.amount)
            )
        if step % 7 == 0:
            await asyncio.sleep(0.01)  # some entries a visible moment apart
    entries = await _journal(ledger_stub, wallet)
    # The replay: each entry's balance is the running sum of the amounts.
    running, replay = Decimal(0), {0: Decimal(0)}
    for entry in entries:
        running += Decimal(entry.amount)
        replay[entry.entry_no] = running
        assert Decimal(entry.balance_after) == running
    for entry_no, expected in replay.items():
        answer = await ledger_stub.GetBalance(
            pb.GetBalanceRequest(account=wallet.key, as_of_entry_no=entry_no)
        )
        assert (Decimal(answer.balance.amount), answer.entry_no) == (expected, entry_no)
    for entry in entries:
        moment = entry.create_time.ToDatetime(tzinfo=UTC)
        # The last entry created at or before that moment (a tie goes to the later one).
        last = max(e.entry_no for e in entries if e.create_time.ToDatetime(tzinfo=UTC) <= moment)
        answer = await ledger_stub.GetBalance(
            pb.GetBalanceRequest(account=wallet.key, as_of_time=entry.create_time)
        )
        assert (Decimal(answer.balance.amount), answer.entry_no) == (replay[last], last)
    first = entries[0].create_time.ToDatetime(tzinfo=UTC)
    before = await ledger_stub.GetBalance(
        pb.GetBalanceRequest(
            account=wallet.key, as_of_time=_stamp(first - timedelta(microseconds=1))
        )
    )
    assert (before.balance.amount, before.entry_no) == ("0.00", 0)
    now = await ledger_stub.GetBalance(pb.GetBalanceRequest(account=wallet.key))
    beyond = await ledger_stub.GetBalance(
        pb.GetBalanceRequest(account=wallet.key, as_of_entry_no=10**9)
    )
    assert (beyond.balance.amount, beyond.entry_no) == (now.balance.amount, now.entry_no)
    assert now.entry_no == entries[-1].entry_no


async def test_as_of_refuses_what_it_cannot_answer(ledger_stub, open_wallet):
    wallet = await open_wallet(balance="1.00")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.GetBalance(pb.GetBalanceRequest(account=wallet.key, as_of_entry_no=-1))
    assert outcome_of(refused.value) == "INVALID_ARGUMENT"
    missing = pb.AccountKey(company_id=1, customer=unique("nobody"), currency="USD")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.GetBalance(pb.GetBalanceRequest(account=missing, as_of_entry_no=1))
    assert outcome_of(refused.value) == "ACCOUNT_NOT_FOUND"


async def test_statement_filters_by_reference_order_and_time(ledger_stub, open_wallet):
    wallet = await open_wallet(balance="100.00")
    first = adjust_request(wallet, "1.00", OPEN, order_id=7001)
    await ledger_stub.Adjust(first)
    await asyncio.sleep(0.02)
    second = adjust_request(wallet, "2.00", OPEN, order_id=7002)
    await ledger_stub.Adjust(second)
    await ledger_stub.CancelAdjustment(
        cancel_request(wallet, second.request_id, "2.00", order_id=7002)
    )

    async def listed(**filters: object) -> list[str]:
        answer = await ledger_stub.ListJournalEntries(
            pb.ListJournalEntriesRequest(account=wallet.key, **filters)  # type: ignore[arg-type]
        )
        return [entry.amount for entry in answer.entries]

    assert await listed(request_id=first.request_id) == ["-1.00"]
    assert await listed(order_id=7002) == ["2.00", "-2.00"]  # the debit and its reversal
    assert await listed(order_id=7003) == []
    entries = await _journal(ledger_stub, wallet)
    second_at = entries[2].create_time.ToDatetime(tzinfo=UTC)
    assert await listed(end_time=_stamp(second_at)) == ["-1.00", "100.00"]
    assert await listed(start_time=_stamp(second_at), order_id=7002) == ["2.00", "-2.00"]


async def test_as_of_on_a_long_journal_is_one_index_step(database_url):
    """A wallet with LONG_JOURNAL entries, in a database of its own: the as_of
    reads touch a handful of buffers, as if the journal were short."""
    name = f"ledger_history_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(database_url)._replace(path="/" + name))
    try:
        await server.migrate(url, wait=10)
        connection = await asyncpg.connect(url)
        try:
            await _long_journal(connection, LONG_JOURNAL)
            middle = await connection.fetchval(
                "SELECT created_at FROM journal_entries WHERE entry_no = $1", LONG_JOURNAL // 2
            )
            wallet = (1, "long", "USD")
            for query, point, expected in (
                (journal._AS_OF_TIME, middle, LONG_JOURNAL // 2),
                (journal._AS_OF_ENTRY, LONG_JOURNAL // 3, LONG_JOURNAL // 3),
            ):
                row = await connection.fetchrow(query, *wallet, point)
                assert (row["entry_no"], row["balance_after"]) == (expected, expected)
                plan = await connection.fetchval(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query, *wallet, point
                )
                top = json.loads(plan)[0]["Plan"]
                touched = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
                assert touched < 20, (query, touched)
        finally:
            await connection.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _long_journal(connection: asyncpg.Connection, count: int) -> None:
    """One wallet, `count` deposits of 1, a second apart, written straight in SQL."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with connection.transaction():
        await connection.execute(
            """INSERT INTO accounts (company_id, customer, currency, digits, balance,
                                     funding_share, entry_count)
               VALUES (1, 'long', 'USD', 0, $1::bigint, -$1::bigint, $1::bigint)""",
            count,
        )
        await connection.execute(
            """INSERT INTO journal_entries (company_id, customer, currency, entry_no, amount,
                                            counterparty, balance_after, cause,
                                            request_unique_no, created_at)
               SELECT 1, 'long', 'USD', g, 1, 'funding', g, 'deposit', 'long-' || g,
                      $2::timestamptz + g * interval '1 second'
               FROM generate_series(1, $1) g""",
            count,
            start,
        )
    # In a journal shared by many wallets the index by time alone does not
    # lead to one wallet's entries; without it here, this wallet stands for that.
    await connection.execute("DROP INDEX journal_entries_by_time")
    await connection.execute("ANALYZE journal_entries")
