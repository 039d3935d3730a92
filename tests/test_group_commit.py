"""Group commit (ledger_service/group_commit.py): movements that arrive together
share one transaction, in arrival order per wallet, each with its own result;
a batch's failure is only its bad movement's; nothing deadlocks."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import asyncpg
import pytest

from ledger_client import pb, pb_grpc
from ledger_service import adjustments, metrics
from ledger_service.group_commit import GroupCommit, Movement
from ledger_service.model import AccountKey, AdjustCommand, CancelCommand
from ledger_service.money import OvertradingPolicy
from ledger_service.outcomes import Outcome

from .conftest import Wallet, assert_books_balance, ledger_batches, unique
from .ledger_calls import OPEN, adjust_request, balance_of


def _deadline(seconds: float = 10.0) -> float:
    return asyncio.get_running_loop().time() + seconds


def _key(wallet: Wallet) -> AccountKey:
    return AccountKey(wallet.company_id, wallet.customer, wallet.currency)


def _execute(wallet: Wallet, amount: str, number: str | None = None) -> AdjustCommand:
    return AdjustCommand(
        account=_key(wallet),
        user_name=wallet.user_name,
        request_unique_no=number or unique("exe"),
        operation_type=int(OPEN),
        amount=amount,
        amount_digits=wallet.digits,
    )


def _cancel(wallet: Wallet, target: str, amount: str) -> CancelCommand:
    return CancelCommand(
        account=_key(wallet),
        user_name=wallet.user_name,
        request_unique_no=unique("cxl"),
        reverse_request_unique_no=target,
        amount=amount,
        amount_digits=wallet.digits,
        cancel_remark="timeout",
    )


def _batches() -> tuple[float, float]:
    """(batches committed, movements in them) so far, in this process."""
    collected = {
        sample.name: sample.value
        for family in metrics.BATCH_SIZE.collect()
        for sample in family.samples
    }
    return collected["ledger_batch_size_count"], collected["ledger_batch_size_sum"]


async def test_movements_sent_together_share_one_transaction_in_arrival_order(
    db: asyncpg.Pool, open_wallet
) -> None:
    wallet = await open_wallet(balance="10.00")
    movements = GroupCommit(db, max_size=64, max_in_flight=1)
    policy = OvertradingPolicy.DEDUCT
    first, cancelled_first = unique("exe"), unique("exe")
    batches_before, items_before = _batches()
    # All six join the queue before the first batch leaves: one batch.
    results = await asyncio.gather(
        adjustments.adjust(movements, _execute(wallet, "4.00", first), policy, "t1", _deadline()),
        adjustments.cancel_adjustment(movements, _cancel(wallet, first, "4.00"), "t2", _deadline()),
        adjustments.cancel_adjustment(
            movements, _cancel(wallet, cancelled_first, "1.00"), "t3", _deadline()
        ),
        adjustments.adjust(
            movements, _execute(wallet, "1.00", cancelled_first), policy, "t4", _deadline()
        ),
        adjustments.adjust(movements, _execute(wallet, "9.00"), policy, "t5", _deadline()),
        adjustments.adjust(movements, _execute(wallet, "2.00"), policy, "t6", _deadline()),
    )
    batches_after, items_after = _batches()
    assert (batches_after - batches_before, items_after - items_before) == (1, 6)
    assert [result.outcome for result in results] == [
        Outcome.APPLIED,  # 10 - 4 = 6
        Outcome.REVERSED,  # back to 10: the cancel came after its execute
        Outcome.NEVER_RECEIVED,  # the cancel came first: a tombstone
        Outcome.ALREADY_CANCELLED,  # ...which refuses its execute
        Outcome.APPLIED,  # 10 - 9 = 1
        Outcome.INSUFFICIENT_BALANCE,  # 1 - 2 < 0: refused, the others unaffected
    ]
    assert results[-1].balance is not None and results[-1].balance.amount == Decimal("1.00")
    await assert_books_balance(db)


async def test_a_movement_that_breaks_its_batch_fails_alone(db: asyncpg.Pool, open_wallet) -> None:
    wallet = await open_wallet(balance="10.00")
    movements = GroupCommit(db, max_size=64, max_in_flight=1)
    policy = OvertradingPolicy.DEDUCT
    # A NUL byte cannot be stored in a text column: PostgreSQL refuses the
    # whole statement, as it would any defect in one movement.
    broken = Movement(
        is_cancel=False,
        company_id=wallet.company_id,
        customer=wallet.customer,
        request_unique_no="nul\x00byte",
        currency=wallet.currency,
        user_name=wallet.user_name,
        amount=Decimal("1.00"),
        amount_as_sent="1.00",
        amount_digits=2,
        biz_type=0,
        order_id=0,
        request_time_ms=0,
        client_ip="",
        metadata="",
        header_timestamp_ms=None,
        input_notes=None,
        trace_id="t",
        operation_type="OPEN_POSITION",
        delta=Decimal("-1.00"),
        may_overdraw=False,
    )
    results = await asyncio.gather(
        adjustments.adjust(movements, _execute(wallet, "1.00"), policy, "t1", _deadline()),
        movements.apply(broken, _deadline()),
        adjustments.adjust(movements, _execute(wallet, "2.00"), policy, "t3", _deadline()),
        return_exceptions=True,
    )
    assert isinstance(results[1], asyncpg.exceptions.PostgresError), results[1]
    assert [r.outcome for r in (results[0], results[2])] == [Outcome.APPLIED, Outcome.APPLIED]
    assert results[2].balance.amount == Decimal("7.00")
    await assert_books_balance(db)


async def test_a_caller_that_gave_up_before_its_batch_left_moves_nothing(
    db: asyncpg.Pool, open_wallet
) -> None:
    wallet = await open_wallet(balance="10.00")
    movements = GroupCommit(db, max_size=64, max_in_flight=1)
    policy = OvertradingPolicy.DEDUCT
    # The first batch holds the only slot; the second waits in the queue,
    # and its caller is cancelled there.
    running = asyncio.create_task(
        adjustments.adjust(movements, _execute(wallet, "1.00"), policy, "t1", _deadline())
    )
    await asyncio.sleep(0)
    number = unique("exe")
    waiting = asyncio.create_task(
        adjustments.adjust(movements, _execute(wallet, "5.00", number), policy, "t2", _deadline())
    )
    await asyncio.sleep(0)
    waiting.cancel()
    assert (await running).outcome == Outcome.APPLIED
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0.1)
    async with db.acquire() as connection:
        recorded = await connection.fetchval(
            "SELECT count(*) FROM requests WHERE request_unique_no = $1", number
        )
    assert recorded == 0
    assert await _balance(db, wallet) == Decimal("9.00")


async def test_a_burst_runs_as_parallel_batches_by_customer(db: asyncpg.Pool, open_wallet) -> None:
    """Movements arriving at once while both slots are free leave as two
    batches, each customer's movements in one of them, in arrival order."""
    wallets = [await open_wallet(balance="10.00") for _ in range(4)]
    while len({hash(wallet.customer) % 2 for wallet in wallets}) < 2:
        wallets.append(await open_wallet(balance="10.00"))  # both shares non-empty
    movements = GroupCommit(db, max_size=64, max_in_flight=2)
    policy = OvertradingPolicy.DEDUCT
    burst = [wallet for wallet in wallets for _ in range(3)]
    numbers = [unique("exe") for _ in burst]
    batches_before, items_before = _batches()
    results = await asyncio.gather(
        *(
            adjustments.adjust(
                movements, _execute(wallet, "4.00", number), policy, "t", _deadline()
            )
            for wallet, number in zip(burst, numbers, strict=True)
        )
    )
    batches_after, items_after = _batches()
    assert (batches_after - batches_before, items_after - items_before) == (2, len(burst))
    # Each wallet's three debits of 4.00 on 10.00, in arrival order: two
    # applied, the third refused (it would go below zero).
    outcomes = [result.outcome for result in results]
    expected = [Outcome.APPLIED, Outcome.APPLIED, Outcome.INSUFFICIENT_BALANCE] * len(wallets)
    assert outcomes == expected
    for wallet in wallets:
        assert await _balance(db, wallet) == Decimal("2.00")
    await assert_books_balance(db)


async def test_crossing_batches_never_deadlock(db: asyncpg.Pool, open_wallet) -> None:
    """Batches in flight together name the same wallets in every order; the
    global lock order keeps them from deadlocking (a deadlock would show as a
    conflict retry)."""
    wallets = [await open_wallet(balance="1000.00") for _ in range(6)]
    movements = GroupCommit(db, max_size=8, max_in_flight=4)
    policy = OvertradingPolicy.DEDUCT
    conflicts_before = metrics.TRANSACTION_RETRIES.labels("conflict")._value.get()
    chosen = [random.choice(wallets) for _ in range(400)]
    results = await asyncio.gather(
        *(
            adjustments.adjust(movements, _execute(wallet, "1.00"), policy, "t", _deadline(30))
            for wallet in chosen
        )
    )
    assert {result.outcome for result in results} == {Outcome.APPLIED}
    assert metrics.TRANSACTION_RETRIES.labels("conflict")._value.get() == conflicts_before
    for wallet in wallets:
        assert await _balance(db, wallet) == Decimal("1000.00") - chosen.count(wallet)
    await assert_books_balance(db)


async def test_concurrent_calls_to_the_ledger_are_batched(
    ledger_stub: pb_grpc.LedgerServiceStub, ledger_server, open_wallet, db: asyncpg.Pool
) -> None:
    """Through the real server: 300 executes at once on 20 wallets travel in
    fewer transactions than calls, and every answer is the one a lone call
    would have had."""
    wallets = [await open_wallet(balance="100.00") for _ in range(20)]
    requests = [adjust_request(random.choice(wallets), "1.00") for _ in range(300)]
    before = await ledger_batches(ledger_server)
    answers = await asyncio.gather(*(ledger_stub.Adjust(r, timeout=30) for r in requests))
    after = await ledger_batches(ledger_server)
    assert after[1] - before[1] == 300
    assert after[0] - before[0] < 300, "no batch held more than one movement"
    assert {answer.result for answer in answers} == {pb.ADJUST_RESULT_APPLIED}
    for wallet in wallets:
        count = sum(1 for r in requests if r.account.customer == wallet.customer)
        assert Decimal(await balance_of(ledger_stub, wallet)) == Decimal(100 - count)
    await assert_books_balance(db)


async def _balance(db: asyncpg.Pool, wallet: Wallet) -> Decimal:
    async with db.acquire() as connection:
        return await connection.fetchval(
            "SELECT balance FROM accounts WHERE company_id = $1 AND customer = $2"
            " AND currency = $3",
            wallet.company_id,
            wallet.customer,
            wallet.currency,
        )
