"""ApplyMovements: items sent together are each answered exactly as their own
Adjust, CancelAdjustment or GetBalance would be, with their own trace and deadline; the
client's MovementSender coalesces calls in flight at the same time."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from urllib.request import urlopen

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from ledger_client import pb, pb_grpc
from ledger_client.movements import MovementFailed, MovementSender

from .conftest import CITUS_CLUSTER, assert_books_balance, unique
from .ledger_calls import OPEN, adjust_request, balance_of, cancel_request, outcome_of


def _item(request: pb.AdjustRequest | pb.CancelAdjustmentRequest, trace: str) -> pb.MovementRequest:
    if isinstance(request, pb.AdjustRequest):
        return pb.MovementRequest(adjust=request, trace_id=trace)
    return pb.MovementRequest(cancel=request, trace_id=trace)


async def test_each_item_gets_the_answer_of_its_own_call(ledger_stub, open_wallet, db) -> None:
    wallet = await open_wallet(balance="10.00")
    first = adjust_request(wallet, "4.00", OPEN)
    unidentifiable = adjust_request(wallet, "1.00", OPEN, request_id="")
    refused = adjust_request(wallet, "1.001", OPEN)
    too_much = adjust_request(wallet, "50.00", OPEN)
    answer = await ledger_stub.ApplyMovements(
        pb.ApplyMovementsRequest(
            movements=[
                _item(first, "trace-1"),
                _item(cancel_request(wallet, first.request_id, "4.00"), "trace-2"),
                _item(unidentifiable, "trace-3"),
                _item(refused, "trace-4"),
                _item(too_much, "trace-5"),
                pb.MovementRequest(trace_id="empty"),
            ]
        )
    )
    items = list(answer.movements)
    assert [item.WhichOneof("answer") for item in items] == [
        "adjust",
        "cancel",
        "error",
        "adjust",
        "adjust",
        "error",
    ]
    assert outcome_of(items[0].adjust) == "APPLIED"
    assert outcome_of(items[1].cancel) == "REVERSED"
    # What the lone Adjust would have ended with: INVALID_ARGUMENT, request_id.
    error = items[2].error
    assert (grpc.StatusCode.INVALID_ARGUMENT.value[0], "INVALID_ARGUMENT", "request_id") == (
        error.code,
        error.reason,
        error.field,
    )
    assert (outcome_of(items[3].adjust), items[3].adjust.refused_field) == (
        "TOO_MANY_DIGITS",
        "amount",
    )
    assert outcome_of(items[4].adjust) == "INSUFFICIENT_BALANCE"
    assert items[5].error.field == "movement"
    assert await balance_of(ledger_stub, wallet) == "10.00"
    # Each item's own trace is on what it wrote.
    async with db.acquire() as connection:
        traces = dict(
            await connection.fetch(
                "SELECT request_unique_no, trace_id FROM requests WHERE customer = $1",
                wallet.customer,
            )
        )
    assert traces[first.request_id] == "trace-1"
    assert traces[refused.request_id] == "trace-4"
    await assert_books_balance(db)


async def test_balance_reads_ride_along_and_see_the_items_before_them(
    ledger_stub, open_wallet, db
) -> None:
    """A balance item is answered as its own GetBalance: the wallet's balance
    (available, held), its binding rule for user_name, ACCOUNT_NOT_FOUND for
    an unknown wallet; it moves nothing."""
    wallet = await open_wallet(balance="10.00")
    # Bound first: the items of one call run concurrently, so a bind inside
    # it would race the mismatch below.
    await ledger_stub.GetBalance(
        pb.GetBalanceRequest(account=wallet.key, user_name=wallet.user_name)
    )
    unknown = pb.AccountKey(company_id=wallet.company_id, customer=unique("nobody"), currency="USD")
    answer = await ledger_stub.ApplyMovements(
        pb.ApplyMovementsRequest(
            movements=[
                pb.MovementRequest(
                    balance=pb.GetBalanceRequest(account=wallet.key, user_name=wallet.user_name),
                    trace_id="read-1",
                ),
                pb.MovementRequest(balance=pb.GetBalanceRequest(account=unknown)),
                pb.MovementRequest(
                    balance=pb.GetBalanceRequest(account=wallet.key, user_name="someone-else")
                ),
            ]
        )
    )
    read, missing, mismatch = answer.movements
    assert read.WhichOneof("answer") == "balance"
    assert (read.balance.balance.amount, read.balance.balance.available) == ("10.00", "10.00")
    assert read.balance.entry_no == 1  # the deposit
    assert (missing.error.reason, missing.error.code) == (
        "ACCOUNT_NOT_FOUND",
        grpc.StatusCode.NOT_FOUND.value[0],
    )
    lone = None
    try:
        await ledger_stub.GetBalance(
            pb.GetBalanceRequest(account=wallet.key, user_name="someone-else")
        )
    except grpc.aio.AioRpcError as error:
        lone = error.code().value[0]
    assert lone is not None and mismatch.error.code == lone  # what its own call ends with
    assert await balance_of(ledger_stub, wallet) == "10.00"
    await assert_books_balance(db)


async def test_an_item_that_runs_out_of_time_fails_alone(ledger_stub, open_wallet, db) -> None:
    """An item's own timeout: it is answered DEADLINE_EXCEEDED when it runs
    out (its outcome unknown, as for any call that ran out of time), and the
    other items are answered as usual."""
    wallet = await open_wallet(balance="10.00")
    locked = await open_wallet(balance="10.00")
    slow = adjust_request(locked, "1.00", OPEN)
    quick = adjust_request(wallet, "1.00", OPEN)
    holding = asyncio.Event()

    async def hold_the_wallet() -> None:
        async with db.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT 1 FROM accounts WHERE customer = $1 FOR UPDATE", locked.customer
            )
            holding.set()
            await asyncio.sleep(0.5)

    holder = asyncio.create_task(hold_the_wallet())
    await holding.wait()
    answer = await ledger_stub.ApplyMovements(
        pb.ApplyMovementsRequest(
            movements=[
                pb.MovementRequest(adjust=slow, trace_id="t", timeout=Duration(nanos=100_000_000)),
                pb.MovementRequest(adjust=quick, trace_id="t"),
            ]
        ),
        timeout=10,
    )
    await holder
    timed_out, applied = answer.movements
    assert (timed_out.error.reason, timed_out.error.code) == (
        "DEADLINE_EXCEEDED",
        grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
    )
    assert outcome_of(applied.adjust) == "APPLIED"
    await assert_books_balance(db)


async def test_too_many_items_are_refused_whole(ledger_stub, open_wallet) -> None:
    wallet = await open_wallet(balance="10.00")
    items = [_item(adjust_request(wallet, "0.01", OPEN), "t") for _ in range(1001)]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.ApplyMovements(pb.ApplyMovementsRequest(movements=items))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await balance_of(ledger_stub, wallet) == "10.00"


async def test_the_sender_coalesces_calls_and_answers_each(
    ledger_server, open_wallet, db: asyncpg.Pool
) -> None:
    """300 executes and their cancels through one MovementSender: fewer calls
    than items, every answer right, a bad item fails only its caller."""
    wallets = [await open_wallet(balance="100.00") for _ in range(10)]
    async with grpc.aio.insecure_channel(ledger_server.target) as channel:
        calls = _CountingStub(pb_grpc.LedgerServiceStub(channel))
        sender = MovementSender(calls, max_size=50, max_in_flight=2)
        executes = [adjust_request(random.choice(wallets), "1.00", OPEN) for _ in range(300)]
        answers = await asyncio.gather(
            *(sender.adjust(request, unique("trace"), 10) for request in executes)
        )
        assert {outcome_of(answer) for answer in answers} == {"APPLIED"}
        assert calls.made < 300
        bad = adjust_request(wallets[0], "1.00", OPEN, request_id="")
        cancels = [
            cancel_request(
                next(w for w in wallets if w.customer == r.account.customer), r.request_id, "1.00"
            )
            for r in executes[:100]
        ]
        results = await asyncio.gather(
            sender.adjust(bad, "t", 10),
            *(sender.cancel(request, "t", 10) for request in cancels),
            return_exceptions=True,
        )
    failed = results[0]
    assert isinstance(failed, MovementFailed)
    assert failed.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failed.detail is not None and failed.detail.field == "request_id"
    assert {outcome_of(answer) for answer in results[1:]} == {"REVERSED"}
    for wallet in wallets:
        kept = sum(1 for r in executes[100:] if r.account.customer == wallet.customer)
        assert Decimal(await balance_of_wallet(db, wallet.customer)) == Decimal(100 - kept)
    await assert_books_balance(db)


class _CountingStub:
    """The real stub, counting ApplyMovements calls."""

    def __init__(self, stub: pb_grpc.LedgerServiceStub) -> None:
        self._stub = stub
        self.made = 0

    async def ApplyMovements(self, request: pb.ApplyMovementsRequest, **options: object) -> object:
        self.made += 1
        return await self._stub.ApplyMovements(request, **options)


async def balance_of_wallet(db: asyncpg.Pool, customer: str) -> Decimal:
    async with db.acquire() as connection:
        return await connection.fetchval(
            "SELECT balance FROM accounts WHERE customer = $1", customer
        )


async def _batched_reads(ledger_server) -> tuple[float, float]:
    """(balance read batches, wallets read in them) from the ledger's /metrics."""
    text = await asyncio.to_thread(lambda: urlopen(ledger_server.metrics_url).read().decode())
    values = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("ledger_read_batch")
    )
    return float(values["ledger_read_batch_size_count"]), float(
        values["ledger_read_batch_size_sum"]
    )


async def test_concurrent_balance_reads_share_statements_and_keep_their_own_answers(
    ledger_stub, ledger_server, open_wallet, db
) -> None:
    """300 GetBalance calls at once over known wallets, unknown ones, a wallet
    bound on its first read and a mismatched name: fewer statements than
    reads, and each call ends as it would alone."""
    wallets = [await open_wallet(balance=f"{n}.00") for n in range(1, 11)]
    for wallet in wallets:  # bound to their names by a first read
        await ledger_stub.GetBalance(
            pb.GetBalanceRequest(account=wallet.key, user_name=wallet.user_name)
        )
    unbound = await open_wallet(balance="5.00")
    unknown = pb.AccountKey(company_id=wallets[0].company_id, customer=unique("no"), currency="USD")

    async def read(request: pb.GetBalanceRequest) -> str:
        try:
            answer = await ledger_stub.GetBalance(request, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code().name
        return str(answer.balance.available)

    calls: list[tuple[pb.GetBalanceRequest, str]] = []
    for n in range(300):
        wallet = wallets[n % 10]
        if n % 10 == 3:
            calls.append((pb.GetBalanceRequest(account=unknown), "NOT_FOUND"))
        elif n % 50 == 7:
            mismatch = pb.GetBalanceRequest(account=wallet.key, user_name="not-" + wallet.user_name)
            calls.append((mismatch, "FAILED_PRECONDITION"))
        else:
            named = pb.GetBalanceRequest(account=wallet.key, user_name=wallet.user_name * (n % 2))
            calls.append((named, f"{n % 10 + 1}.00"))
    calls.append((pb.GetBalanceRequest(account=unbound.key, user_name="first-name"), "5.00"))
    before = await _batched_reads(ledger_server)
    async with db.acquire() as blocker:
        # The reads that reach the database first wait on this lock, so the
        # rest arrive while they are in flight and queue: sharing is then
        # certain, not a matter of how fast the calls arrive.
        async with blocker.transaction():
            if not CITUS_CLUSTER:
                await blocker.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
            reads = asyncio.gather(*(read(request) for request, _ in calls))
            await asyncio.sleep(0.5)
        answers = await reads
    assert answers == [expected for _, expected in calls]
    after = await _batched_reads(ledger_server)
    batches, wallets_read = after[0] - before[0], after[1] - before[1]
    if CITUS_CLUSTER:  # a many-wallet read would span shards: reads go alone
        assert wallets_read == 0
    else:
        assert wallets_read == len(calls)  # every call read its row in a batch
        assert 0 < batches < len(calls)
    # The first read bound the name; another name is now refused.
    assert await read(pb.GetBalanceRequest(account=unbound.key, user_name="first-name")) == "5.00"
    assert (
        await read(pb.GetBalanceRequest(account=unbound.key, user_name="other-name"))
        == "FAILED_PRECONDITION"
    )
    await assert_books_balance(db)
