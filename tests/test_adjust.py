"""Adjust (TradeBoss's execute): directions, idempotency, overdraft, concurrency."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import grpc
import pytest

from ledger_client import pb, pb_grpc

from .conftest import (
    LedgerProcess,
    assert_books_balance,
    ledger_statements_ended,
    make_wallet,
    unique,
)
from .ledger_calls import (
    CLOSE,
    OPEN,
    OVERTRADE,
    adjust_request,
    balance_of,
    error_detail,
    outcome_of,
)


async def test_open_position_debits_and_normal_close_credits(ledger_stub, open_wallet, db):
    wallet = await open_wallet(balance="100.00")

    opened = await ledger_stub.Adjust(adjust_request(wallet, "30.25", OPEN))
    assert outcome_of(opened) == "APPLIED"
    assert (opened.balance.amount, opened.applied_amount) == ("69.75", "-30.25")

    closed = await ledger_stub.Adjust(adjust_request(wallet, "45.50", CLOSE))
    assert outcome_of(closed) == "APPLIED"
    assert (closed.balance.amount, closed.applied_amount) == ("115.25", "45.50")
    assert closed.balance.user_name == wallet.user_name
    await assert_books_balance(db)


async def test_overdraft_is_refused_and_the_refusal_remembered(ledger_stub, open_wallet, db):
    """Invariant 4: a debit below zero is refused; only the refusal is written,
    and a retry after a deposit gets the same refusal (a new attempt needs a new number)."""
    wallet = await open_wallet(balance="10.00")
    request = adjust_request(wallet, "10.01", OPEN)

    refused = await ledger_stub.Adjust(request)
    assert outcome_of(refused) == "INSUFFICIENT_BALANCE"
    assert refused.balance.amount == "10.00"

    await ledger_stub.Deposit(
        pb.DepositRequest(account=wallet.key, amount="100", request_id=unique("dep"))
    )
    again = await ledger_stub.Adjust(request)
    assert (outcome_of(again), again.replayed) == ("INSUFFICIENT_BALANCE", True)
    assert await balance_of(ledger_stub, wallet) == "110.00"
    async with db.acquire() as connection:
        entries = await connection.fetchval(
            "SELECT count(*) FROM journal_entries WHERE request_unique_no = $1",
            request.request_id,
        )
    assert entries == 0
    await assert_books_balance(db)


async def test_abnormal_overtrading_deducts_below_zero_by_default(ledger_stub, open_wallet, db):
    wallet = await open_wallet(balance="5.00")
    request = adjust_request(wallet, "-12.34", OVERTRADE)
    answer = await ledger_stub.Adjust(request)
    assert outcome_of(answer) == "APPLIED"
    assert answer.overtrading_policy == pb.OVERTRADING_POLICY_DEDUCT
    assert (answer.balance.amount, answer.applied_amount) == ("-7.34", "-12.34")
    async with db.acquire() as connection:
        policy = await connection.fetchval(
            "SELECT overtrading_policy FROM journal_entries WHERE request_unique_no = $1",
            request.request_id,
        )
    assert policy == "deduct"
    await assert_books_balance(db)


async def test_abnormal_overtrading_policy_ignore_records_without_moving(ledger_factory, db):
    ledger: LedgerProcess = ledger_factory(overtrading_policy="ignore")
    ledger.start()
    try:
        await ledger.wait_ready()
        async with grpc.aio.insecure_channel(ledger.target) as channel:
            stub = pb_grpc.LedgerServiceStub(channel)
            wallet = await make_wallet(stub, balance="5.00")
            request = adjust_request(wallet, "-12.34", OVERTRADE)
            answer = await stub.Adjust(request)
            assert outcome_of(answer) == "APPLIED"
            assert answer.overtrading_policy == pb.OVERTRADING_POLICY_IGNORE
            assert (answer.balance.amount, answer.applied_amount) == ("5.00", "0.00")
            record = await stub.GetRequest(
                pb.GetRequestRequest(account=wallet.key, request_id=request.request_id)
            )
            assert record.request.overtrading_policy == pb.OVERTRADING_POLICY_IGNORE
        async with db.acquire() as connection:
            policy = await connection.fetchval(
                "SELECT overtrading_policy FROM journal_entries WHERE request_unique_no = $1",
                request.request_id,
            )
        assert policy == "ignore"
    finally:
        assert ledger.terminate() == 0
    await assert_books_balance(db)


async def test_repeat_returns_the_first_answer_and_moves_nothing(ledger_stub, open_wallet, db):
    """Invariant 1: the same requestUniqueNo with the same content is applied once."""
    wallet = await open_wallet(balance="100.00")
    request = adjust_request(wallet, "10.00", OPEN)
    first = await ledger_stub.Adjust(request)
    # A redelivery may carry another requestTime, ip or metadata.
    redelivered = adjust_request(
        wallet,
        "10.00",
        OPEN,
        request.request_id,
        request_time_ms=request.tradeboss.request_time_ms + 500,
        client_ip="198.51.100.1",
        metadata='{"retry": 1}',
    )
    repeat = await ledger_stub.Adjust(redelivered)
    assert (outcome_of(first), first.replayed) == ("APPLIED", False)
    assert (outcome_of(repeat), repeat.replayed, repeat.applied_amount) == (
        "APPLIED",
        True,
        "-10.00",
    )
    assert await balance_of(ledger_stub, wallet) == "90.00"
    await assert_books_balance(db)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "10.01"}, "amount"),
        ({"operation_type": CLOSE}, "operation_type"),
        ({"biz_type": 2}, "biz_type"),
        ({"order_id": 43}, "order_id"),
    ],
)
async def test_repeat_with_different_content_is_a_named_conflict(
    ledger_stub, open_wallet, db, change, field
):
    wallet = await open_wallet(balance="100.00")
    request = adjust_request(wallet, "10.00", OPEN)
    await ledger_stub.Adjust(request)
    values = {"amount": "10.00", "operation_type": OPEN, **change}
    amount = str(values.pop("amount"))
    operation_type = int(values.pop("operation_type"))  # type: ignore[call-overload]
    conflicting = adjust_request(wallet, amount, operation_type, request.request_id, **values)
    answer = await ledger_stub.Adjust(conflicting)
    assert outcome_of(answer) == f"EXISTS_WITH_DIFFERENT_{field.upper()}"
    assert await balance_of(ledger_stub, wallet) == "90.00"
    await assert_books_balance(db)


async def test_one_number_from_twenty_concurrent_callers_is_applied_once(
    ledger_stub, open_wallet, db
):
    """Invariant 1 under races: all callers get the same answer, one application."""
    wallet = await open_wallet(balance="100.00")
    request = adjust_request(wallet, "7.00", OPEN)
    answers = await asyncio.gather(*(ledger_stub.Adjust(request) for _ in range(20)))
    assert {(outcome_of(a), a.applied_amount) for a in answers} == {("APPLIED", "-7.00")}
    assert sum(not a.replayed for a in answers) == 1
    assert await balance_of(ledger_stub, wallet) == "93.00"
    await assert_books_balance(db)


async def test_two_hundred_concurrent_debits_never_overdraw(ledger_stub, open_wallet, db):
    """Invariants 4 and 5: 200 debits of 1.00 on 100.00 -> exactly 100 succeed."""
    wallet = await open_wallet(balance="100.00")
    answers = await asyncio.gather(
        *(ledger_stub.Adjust(adjust_request(wallet, "1.00", OPEN)) for _ in range(200))
    )
    outcomes = [outcome_of(a) for a in answers]
    assert outcomes.count("APPLIED") == 100
    assert outcomes.count("INSUFFICIENT_BALANCE") == 100
    assert await balance_of(ledger_stub, wallet) == "0.00"
    async with db.acquire() as connection:
        total = await connection.fetchval(
            "SELECT sum(amount) FROM journal_entries WHERE company_id = $1 AND customer = $2",
            wallet.company_id,
            wallet.customer,
        )
    assert total == Decimal("0.00")
    await assert_books_balance(db)


async def test_wallets_do_not_block_each_other(ledger_stub, db):
    """Invariant 5: a transaction holding one wallet's lock does not stop another wallet."""
    busy = await make_wallet(ledger_stub, balance="10.00")
    free = await make_wallet(ledger_stub, balance="10.00")
    async with db.acquire() as connection, connection.transaction():
        await connection.execute(
            "SELECT 1 FROM accounts WHERE company_id = $1 AND customer = $2 FOR UPDATE",
            busy.company_id,
            busy.customer,
        )
        # The other wallet answers while the first one is locked...
        answer = await ledger_stub.Adjust(adjust_request(free, "1.00", OPEN), timeout=10)
        assert outcome_of(answer) == "APPLIED"
        # ...and the locked one waits (its deadline runs out, nothing written).
        with pytest.raises(grpc.aio.AioRpcError) as waited:
            await ledger_stub.Adjust(adjust_request(busy, "1.00", OPEN), timeout=0.5)
        assert waited.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The ledger cancels its statement at the deadline; the lock is let go
        # once that cancel has landed (on a Citus cluster it travels on from
        # the coordinator to the worker, which takes a moment; released sooner,
        # the waiting call could still commit, as any call past its deadline may).
        await ledger_statements_ended(connection)
    assert await balance_of(ledger_stub, busy) == "10.00"
    await assert_books_balance(db)


async def test_user_name_binds_on_first_use_and_must_match(ledger_stub, open_wallet, db):
    wallet = await open_wallet(balance="50.00")
    await ledger_stub.Adjust(adjust_request(wallet, "1.00", OPEN))
    # An identified execute is recorded with its refusal, and a repeat gets it again.
    other = adjust_request(wallet, "1.00", OPEN, user_name="someone-else")
    for _ in range(2):
        refused = await ledger_stub.Adjust(other)
        assert (outcome_of(refused), refused.refused_field) == (
            "USER_NAME_MISMATCH",
            "user_name",
        )
    with pytest.raises(grpc.aio.AioRpcError) as balance_refused:
        await ledger_stub.GetBalance(
            pb.GetBalanceRequest(account=wallet.key, user_name="someone-else")
        )
    assert error_detail(balance_refused.value).reason == "USER_NAME_MISMATCH"
    assert await balance_of(ledger_stub, wallet) == "49.00"
    await assert_books_balance(db)


async def test_credits_land_on_a_balance_below_zero(ledger_stub, open_wallet, db):
    """Credits are never refused for lack of balance (found by the model test)."""
    wallet = await open_wallet(balance="1.00")
    await ledger_stub.Adjust(adjust_request(wallet, "-3.00", OVERTRADE))
    closed = await ledger_stub.Adjust(adjust_request(wallet, "0.50", CLOSE))
    assert (outcome_of(closed), closed.balance.amount) == ("APPLIED", "-1.50")
    deposit = await ledger_stub.Deposit(
        pb.DepositRequest(account=wallet.key, amount="0.25", request_id=unique("dep"))
    )
    assert (outcome_of(deposit), deposit.balance.amount) == ("APPLIED", "-1.25")
    refused = await ledger_stub.Adjust(adjust_request(wallet, "0.01", OPEN))
    assert outcome_of(refused) == "INSUFFICIENT_BALANCE"
    await assert_books_balance(db)
