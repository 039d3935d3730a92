"""CancelAdjustment (TradeBoss's cancel): invariant 2, cancel is final."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from ledger_client import pb

from .conftest import assert_books_balance, unique
from .ledger_calls import (
    OPEN,
    OVERTRADE,
    adjust_request,
    balance_of,
    cancel_request,
    error_detail,
    outcome_of,
)


async def test_cancel_of_an_applied_debit_reverses_it_once(ledger_stub, open_wallet, db):
    wallet = await open_wallet(balance="100.00")
    execute = adjust_request(wallet, "40.00", OPEN)
    await ledger_stub.Adjust(execute)

    cancel = cancel_request(wallet, execute.request_id, "40.00")
    reversed_ = await ledger_stub.CancelAdjustment(cancel)
    assert (outcome_of(reversed_), reversed_.reversed_amount, reversed_.balance.amount) == (
        "REVERSED",
        "40.00",
        "100.00",
    )
    # The same cancel retried: same answer, nothing moves.
    retried = await ledger_stub.CancelAdjustment(cancel)
    assert (outcome_of(retried), retried.replayed) == ("REVERSED", True)
    # Another cancel (new number) for the same execute: already reversed.
    another = await ledger_stub.CancelAdjustment(
        cancel_request(wallet, execute.request_id, "40.00")
    )
    assert outcome_of(another) == "ALREADY_REVERSED"
    assert await balance_of(ledger_stub, wallet) == "100.00"

    record = await ledger_stub.GetRequest(
        pb.GetRequestRequest(account=wallet.key, request_id=execute.request_id)
    )
    assert record.request.reversed_by == cancel.request_id
    assert record.request.HasField("reverse_time")
    await assert_books_balance(db)


async def test_cancel_reverses_what_was_applied_not_what_it_says(ledger_stub, open_wallet, db):
    wallet = await open_wallet(balance="100.00")
    execute = adjust_request(wallet, "40.00", OPEN)
    await ledger_stub.Adjust(execute)
    answer = await ledger_stub.CancelAdjustment(cancel_request(wallet, execute.request_id, "99.00"))
    assert (outcome_of(answer), answer.reversed_amount) == ("REVERSED", "40.00")
    assert await balance_of(ledger_stub, wallet) == "100.00"
    await assert_books_balance(db)


async def test_reversal_may_take_the_balance_below_zero(ledger_stub, open_wallet, db):
    """A reversal is a repair, never refused for lack of balance."""
    wallet = await open_wallet(balance="0.00")
    execute = adjust_request(wallet, "30.00", pb.OPERATION_TYPE_NORMAL_CLOSE)
    await ledger_stub.Adjust(execute)
    await ledger_stub.Adjust(adjust_request(wallet, "25.00", OPEN))
    answer = await ledger_stub.CancelAdjustment(cancel_request(wallet, execute.request_id, "30.00"))
    assert (outcome_of(answer), answer.balance.amount) == ("REVERSED", "-25.00")
    await assert_books_balance(db)


async def test_cancel_of_an_overtrading_deduction_gives_it_back(ledger_stub, open_wallet, db):
    wallet = await open_wallet(balance="1.00")
    execute = adjust_request(wallet, "-3.00", OVERTRADE)
    await ledger_stub.Adjust(execute)
    answer = await ledger_stub.CancelAdjustment(cancel_request(wallet, execute.request_id, "3.00"))
    assert (outcome_of(answer), answer.balance.amount) == ("REVERSED", "1.00")
    await assert_books_balance(db)


async def test_cancel_of_a_refused_execute_is_not_applied(ledger_stub, open_wallet, db):
    """Received but refused -> US_0000001's outcome."""
    wallet = await open_wallet(balance="1.00")
    execute = adjust_request(wallet, "5.00", OPEN)
    assert outcome_of(await ledger_stub.Adjust(execute)) == "INSUFFICIENT_BALANCE"
    answer = await ledger_stub.CancelAdjustment(cancel_request(wallet, execute.request_id, "5.00"))
    assert outcome_of(answer) == "NOT_APPLIED"
    assert await balance_of(ledger_stub, wallet) == "1.00"
    await assert_books_balance(db)


async def test_cancel_before_execute_leaves_a_tombstone(ledger_stub, open_wallet, db):
    """Never received -> US_0000002's outcome, and the late execute is refused."""
    wallet = await open_wallet(balance="100.00")
    late_number = unique("late")
    cancel = cancel_request(wallet, late_number, "10.00")
    answer = await ledger_stub.CancelAdjustment(cancel)
    assert outcome_of(answer) == "NEVER_RECEIVED"

    late = await ledger_stub.Adjust(adjust_request(wallet, "10.00", OPEN, late_number))
    assert outcome_of(late) == "ALREADY_CANCELLED"
    assert await balance_of(ledger_stub, wallet) == "100.00"

    # Retried cancels keep the same answer.
    assert outcome_of(await ledger_stub.CancelAdjustment(cancel)) == "NEVER_RECEIVED"
    other = await ledger_stub.CancelAdjustment(cancel_request(wallet, late_number, "10.00"))
    assert outcome_of(other) == "NEVER_RECEIVED"
    record = await ledger_stub.GetRequest(
        pb.GetRequestRequest(account=wallet.key, request_id=late_number)
    )
    assert record.request.kind == pb.REQUEST_KIND_TOMBSTONE
    assert record.request.target_request_id == cancel.request_id
    await assert_books_balance(db)


async def test_concurrent_cancels_reverse_once(ledger_stub, open_wallet, db):
    wallet = await open_wallet(balance="100.00")
    execute = adjust_request(wallet, "60.00", OPEN)
    await ledger_stub.Adjust(execute)
    same_cancel = cancel_request(wallet, execute.request_id, "60.00")
    distinct = [cancel_request(wallet, execute.request_id, "60.00") for _ in range(10)]
    answers = await asyncio.gather(
        *(ledger_stub.CancelAdjustment(same_cancel) for _ in range(10)),
        *(ledger_stub.CancelAdjustment(c) for c in distinct),
    )
    outcomes = [outcome_of(a) for a in answers]
    assert set(outcomes) <= {"REVERSED", "ALREADY_REVERSED"}
    assert await balance_of(ledger_stub, wallet) == "100.00"
    async with db.acquire() as connection:
        reversals = await connection.fetchval(
            "SELECT count(*) FROM journal_entries WHERE customer = $1 AND cause = 'reversal'",
            wallet.customer,
        )
    assert reversals == 1
    await assert_books_balance(db)


async def test_execute_and_cancel_racing_never_debit_and_say_never_received(
    ledger_stub, open_wallet, db
):
    """50 rounds of an execute and its cancel sent together: the pair ends in
    one consistent state, never a debit that stays plus NEVER_RECEIVED."""
    wallet = await open_wallet(balance="1000.00")
    seen = set()
    for _ in range(50):
        execute = adjust_request(wallet, "1.00", OPEN)
        cancel = cancel_request(wallet, execute.request_id, "1.00")
        executed, cancelled = await asyncio.gather(
            ledger_stub.Adjust(execute), ledger_stub.CancelAdjustment(cancel)
        )
        pair = (outcome_of(executed), outcome_of(cancelled))
        seen.add(pair)
        assert pair in {
            ("APPLIED", "REVERSED"),
            ("ALREADY_CANCELLED", "NEVER_RECEIVED"),
        }
    # Every debit was reversed or never happened.
    assert await balance_of(ledger_stub, wallet) == "1000.00"
    await assert_books_balance(db)


@pytest.mark.parametrize("mismatch", ["currency", "user_name", "kind"])
async def test_cancel_naming_another_wallets_request_is_refused(
    ledger_stub, open_wallet, db, mismatch
):
    wallet = await open_wallet(balance="100.00", currency="USD")
    execute = adjust_request(wallet, "10.00", OPEN)
    await ledger_stub.Adjust(execute)
    if mismatch == "currency":
        # Same customer, its EUR wallet.
        other = await open_wallet(balance="0", currency="EUR", customer=wallet.customer)
        cancel = cancel_request(other, execute.request_id, "10.00")
    elif mismatch == "user_name":
        other = await open_wallet(balance="0", currency="EUR", customer=wallet.customer)
        # Bind the EUR wallet to the user of the cancel, which differs.
        cancel = cancel_request(other, execute.request_id, "10.00")
        cancel.account.currency = "USD"
        cancel.user_name = wallet.user_name + "-x"
    else:
        deposit_key = unique("dep")
        await ledger_stub.Deposit(
            pb.DepositRequest(account=wallet.key, amount="1", request_id=deposit_key)
        )
        cancel = cancel_request(wallet, deposit_key, "1.00")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.CancelAdjustment(cancel)
    detail = error_detail(refused.value)
    assert outcome_of(detail) == "CANCEL_TARGET_MISMATCH"
    assert await balance_of(ledger_stub, wallet) in ("90.00", "91.00")
    async with db.acquire() as connection:
        cancels = await connection.fetchval(
            "SELECT count(*) FROM requests WHERE customer = $1 AND request_unique_no = $2",
            wallet.customer,
            cancel.request_id,
        )
    assert cancels == 0
    await assert_books_balance(db)


async def test_a_cancel_whose_number_is_taken_still_settles(ledger_stub, open_wallet, db):
    """Every cancel settles unless its target cannot be found: a cancel number
    already used by another request (another cancel, an execute) does not
    strand the reversal; the cancel is recorded under a key derived from its
    target, and a repeat of it is answered from there."""
    wallet = await open_wallet(balance="100.00")
    first, second = adjust_request(wallet, "10.00", OPEN), adjust_request(wallet, "5.00", OPEN)
    await ledger_stub.Adjust(first)
    await ledger_stub.Adjust(second)
    cancel = cancel_request(wallet, first.request_id, "10.00")
    assert outcome_of(await ledger_stub.CancelAdjustment(cancel)) == "REVERSED"
    # The same cancel number for another target; then an execute's number as a cancel's.
    for number in (cancel.request_id, first.request_id):
        reuse = cancel_request(wallet, second.request_id, "5.00", request_id=number)
        answer = await ledger_stub.CancelAdjustment(reuse)
        assert outcome_of(answer) in ("REVERSED", "ALREADY_REVERSED")
    assert answer.replayed  # the second one found the derived key's record
    assert await balance_of(ledger_stub, wallet) == "100.00"
    record = await ledger_stub.GetRequest(
        pb.GetRequestRequest(account=wallet.key, request_id="~cancel~" + second.request_id)
    )
    assert record.request.target_request_id == second.request_id
    await assert_books_balance(db)


async def test_an_execute_replayed_after_its_reversal_never_answers_success(
    ledger_stub, open_wallet, db
):
    wallet = await open_wallet(balance="100.00")
    execute = adjust_request(wallet, "10.00", OPEN)
    assert outcome_of(await ledger_stub.Adjust(execute)) == "APPLIED"
    await ledger_stub.CancelAdjustment(cancel_request(wallet, execute.request_id, "10.00"))
    replay = await ledger_stub.Adjust(execute)
    assert outcome_of(replay) == "ALREADY_CANCELLED"
    assert await balance_of(ledger_stub, wallet) == "100.00"
    await assert_books_balance(db)


async def test_request_numbers_are_scoped_to_a_customer(ledger_stub, open_wallet, db):
    """Documented decision: the same number at two customers is two requests; a
    cancel from one customer never touches the other's request."""
    first = await open_wallet(balance="100.00")
    second = await open_wallet(balance="100.00")
    number = unique("shared")
    await ledger_stub.Adjust(adjust_request(first, "10.00", OPEN, number))
    await ledger_stub.Adjust(adjust_request(second, "20.00", OPEN, number))
    answer = await ledger_stub.CancelAdjustment(cancel_request(second, number, "20.00"))
    assert outcome_of(answer) == "REVERSED"
    assert await balance_of(ledger_stub, first) == "90.00"
    assert await balance_of(ledger_stub, second) == "100.00"
    await assert_books_balance(db)
