"""Transfers and holds for internal services (ledger.v2 CreateTransfer(s),
CreateHold, PostHold, VoidHold), against the real ledger and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest

from ledger_client import pb
from ledger_service import reconciliation

from .conftest import Wallet, assert_books_balance, unique
from .ledger_calls import OPEN, adjust_request, error_detail, outcome_of


async def _internal(stub, company_id: int = 1, allow_negative: bool = True) -> Wallet:
    account = Wallet(company_id, unique("@bonus"), "USD", 2, unique("user"))
    await stub.OpenAccount(
        pb.OpenAccountRequest(
            account=account.key,
            digits=2,
            kind=pb.ACCOUNT_KIND_INTERNAL,
            allow_negative=allow_negative,
        )
    )
    return account


def _transfer(debit: Wallet, credit: Wallet, amount: str, transfer_id: str = "", **more):
    return pb.CreateTransferRequest(
        transfer_id=transfer_id or unique("tr"),
        debit_account=debit.key,
        credit_customer=credit.customer,
        amount=amount,
        **more,
    )


def _hold(debit: Wallet, credit: Wallet, amount: str, hold_id: str = "", **more):
    return pb.CreateHoldRequest(
        hold_id=hold_id or unique("hold"),
        debit_account=debit.key,
        credit_customer=credit.customer,
        amount=amount,
        **more,
    )


async def _balance(stub, wallet: Wallet) -> pb.Balance:
    return (await stub.GetBalance(pb.GetBalanceRequest(account=wallet.key))).balance


async def test_a_transfer_moves_money_once_and_a_repeat_gets_the_first_answer(
    ledger_stub, open_wallet, db
):
    payer, payee = await open_wallet(balance="100.00"), await open_wallet(balance="0")
    request = _transfer(payer, payee, "30.00", reference="invoice-7")
    first = await ledger_stub.CreateTransfer(request)
    assert first.result == pb.TRANSFER_RESULT_APPLIED and not first.replayed
    assert (first.debit_balance.amount, first.credit_balance.amount) == ("70.00", "30.00")
    again = await ledger_stub.CreateTransfer(request)
    assert again.result == pb.TRANSFER_RESULT_APPLIED and again.replayed
    assert (await _balance(ledger_stub, payee)).amount == "30.00"

    other = pb.CreateTransferRequest()
    other.CopyFrom(request)
    other.amount = "31.00"
    changed = await ledger_stub.CreateTransfer(other)
    assert changed.result == pb.TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_AMOUNT
    other.CopyFrom(request)
    other.reference = "invoice-8"
    changed = await ledger_stub.CreateTransfer(other)
    assert changed.result == pb.TRANSFER_RESULT_EXISTS_WITH_DIFFERENT_REFERENCE

    entries = await ledger_stub.ListJournalEntries(pb.ListJournalEntriesRequest(account=payee.key))
    [credit] = entries.entries
    assert credit.cause == pb.ENTRY_CAUSE_TRANSFER
    assert (credit.amount, credit.counterparty_customer, credit.counterparty) == (
        "30.00",
        payer.customer,
        "",
    )
    await assert_books_balance(db)


async def test_a_wallet_never_goes_below_zero_an_internal_account_may(ledger_stub, open_wallet, db):
    bonus = await _internal(ledger_stub)
    wallet = await open_wallet(balance="5.00")
    issued = await ledger_stub.CreateTransfer(_transfer(bonus, wallet, "20.00"))
    assert issued.result == pb.TRANSFER_RESULT_APPLIED
    assert issued.debit_balance.amount == "-20.00"

    request = _transfer(wallet, bonus, "25.01")
    refused = await ledger_stub.CreateTransfer(request)
    assert refused.result == pb.TRANSFER_RESULT_INSUFFICIENT_BALANCE
    # Remembered: the same id is refused again even once money arrives.
    await ledger_stub.CreateTransfer(_transfer(bonus, wallet, "1.00"))
    again = await ledger_stub.CreateTransfer(request)
    assert again.result == pb.TRANSFER_RESULT_INSUFFICIENT_BALANCE and again.replayed

    strict = await _internal(ledger_stub, allow_negative=False)
    refused = await ledger_stub.CreateTransfer(_transfer(strict, wallet, "0.01"))
    assert refused.result == pb.TRANSFER_RESULT_INSUFFICIENT_BALANCE
    await assert_books_balance(db)


async def test_webhooks_see_no_internal_account(ledger_stub):
    bonus = await _internal(ledger_stub)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.GetBalance(pb.GetBalanceRequest(account=bonus.key, user_name="alice"))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    answer = await ledger_stub.Adjust(adjust_request(bonus, "1.00", OPEN))
    assert outcome_of(answer) == "ACCOUNT_NOT_FOUND"


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"amount": "-1.00"}, "AMOUNT_SIGN_MISMATCH", "amount"),
        ({"amount": "1.001"}, "TOO_MANY_DIGITS", "amount"),
        ({"amount": "1e3"}, "INVALID_AMOUNT", "amount"),
        ({"transfer_id": ""}, "INVALID_ARGUMENT", "transfer_id"),
        ({"credit_customer": "SELF"}, "INVALID_ARGUMENT", "credit_customer"),
        ({"credit_customer": "nobody-here"}, "ACCOUNT_NOT_FOUND", "credit_customer"),
        ({"reference": "x" * 201}, "INVALID_ARGUMENT", "reference"),
    ],
)
async def test_a_bad_transfer_is_refused_with_its_field_and_moves_nothing(
    ledger_stub, open_wallet, change, reason, field
):
    payer, payee = await open_wallet(balance="10.00"), await open_wallet(balance="0")
    request = _transfer(payer, payee, "1.00")
    for name, value in change.items():
        setattr(request, name, payer.customer if value == "SELF" else value)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.CreateTransfer(request)
    detail = error_detail(refused.value)
    assert (detail.reason, detail.field) == (reason, field)
    assert (await _balance(ledger_stub, payer)).amount == "10.00"


async def test_twenty_racing_copies_of_a_transfer_apply_it_once(ledger_stub, open_wallet, db):
    payer, payee = await open_wallet(balance="100.00"), await open_wallet(balance="0")
    request = _transfer(payer, payee, "7.00")
    answers = await asyncio.gather(*(ledger_stub.CreateTransfer(request) for _ in range(20)))
    assert {answer.result for answer in answers} == {pb.TRANSFER_RESULT_APPLIED}
    assert sum(not answer.replayed for answer in answers) == 1
    assert (await _balance(ledger_stub, payer)).amount == "93.00"
    await assert_books_balance(db)


async def test_create_transfers_answers_each_item_in_one_transaction(ledger_stub, open_wallet, db):
    payer, payee = await open_wallet(balance="10.00"), await open_wallet(balance="0")
    answer = await ledger_stub.CreateTransfers(
        pb.CreateTransfersRequest(
            transfers=[
                _transfer(payer, payee, "4.00"),
                _transfer(payer, payee, "-1"),
                _transfer(payer, payee, "7.00"),  # 6.00 left: refused
                _transfer(payer, payee, "6.00"),
            ]
        )
    )
    kinds = [item.WhichOneof("answer") for item in answer.transfers]
    assert kinds == ["transfer", "error", "transfer", "transfer"]
    assert answer.transfers[1].error.reason == "AMOUNT_SIGN_MISMATCH"
    assert [item.transfer.result for item in answer.transfers if item.HasField("transfer")] == [
        pb.TRANSFER_RESULT_APPLIED,
        pb.TRANSFER_RESULT_INSUFFICIENT_BALANCE,
        pb.TRANSFER_RESULT_APPLIED,
    ]
    assert (await _balance(ledger_stub, payee)).amount == "10.00"
    await assert_books_balance(db)


async def test_a_hold_reserves_then_posts_part_and_releases_the_rest(ledger_stub, open_wallet, db):
    customer, merchant = await open_wallet(balance="100.00"), await open_wallet(balance="0")
    hold = _hold(customer, merchant, "60.00")
    created = await ledger_stub.CreateHold(hold)
    assert created.result == pb.HOLD_RESULT_APPLIED
    assert (created.balance.amount, created.balance.held, created.balance.available) == (
        "100.00",
        "60.00",
        "40.00",
    )
    # A TradeBoss debit may not spend held money.
    debit = await ledger_stub.Adjust(adjust_request(customer, "40.01", OPEN))
    assert outcome_of(debit) == "INSUFFICIENT_BALANCE"

    post = pb.PostHoldRequest(debit_account=customer.key, hold_id=hold.hold_id, amount="45.00")
    posted = await ledger_stub.PostHold(post)
    assert posted.result == pb.POST_HOLD_RESULT_APPLIED and not posted.replayed
    assert (posted.debit_balance.amount, posted.debit_balance.held) == ("55.00", "0.00")
    assert posted.credit_balance.amount == "45.00"
    again = await ledger_stub.PostHold(post)
    assert again.result == pb.POST_HOLD_RESULT_APPLIED and again.replayed
    post.amount = "50.00"
    assert (await ledger_stub.PostHold(post)).result == (
        pb.POST_HOLD_RESULT_EXISTS_WITH_DIFFERENT_AMOUNT
    )
    void = await ledger_stub.VoidHold(
        pb.VoidHoldRequest(debit_account=customer.key, hold_id=hold.hold_id)
    )
    assert void.result == pb.VOID_HOLD_RESULT_ALREADY_POSTED
    assert (await ledger_stub.CreateHold(hold)).replayed
    await assert_books_balance(db)


async def test_a_void_releases_a_hold_and_a_post_cannot_exceed_it(ledger_stub, open_wallet, db):
    customer, merchant = await open_wallet(balance="10.00"), await open_wallet(balance="0")
    hold = _hold(customer, merchant, "8.00")
    await ledger_stub.CreateHold(hold)
    too_much = await ledger_stub.PostHold(
        pb.PostHoldRequest(debit_account=customer.key, hold_id=hold.hold_id, amount="8.01")
    )
    assert too_much.result == pb.POST_HOLD_RESULT_POST_EXCEEDS_HOLD
    void = pb.VoidHoldRequest(debit_account=customer.key, hold_id=hold.hold_id)
    assert (await ledger_stub.VoidHold(void)).result == pb.VOID_HOLD_RESULT_APPLIED
    assert (await ledger_stub.VoidHold(void)).replayed
    assert (await _balance(ledger_stub, customer)).available == "10.00"
    late = await ledger_stub.PostHold(
        pb.PostHoldRequest(debit_account=customer.key, hold_id=hold.hold_id)
    )
    assert late.result == pb.POST_HOLD_RESULT_ALREADY_VOIDED
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await ledger_stub.VoidHold(pb.VoidHoldRequest(debit_account=customer.key, hold_id="nope"))
    assert error_detail(unknown.value).reason == "HOLD_NOT_FOUND"
    await assert_books_balance(db)


async def test_twenty_racing_posts_and_voids_close_a_hold_once(ledger_stub, open_wallet, db):
    customer, merchant = await open_wallet(balance="50.00"), await open_wallet(balance="0")
    hold = _hold(customer, merchant, "20.00")
    await ledger_stub.CreateHold(hold)
    copies = [ledger_stub.CreateHold(hold) for _ in range(5)]
    posts = [
        ledger_stub.PostHold(pb.PostHoldRequest(debit_account=customer.key, hold_id=hold.hold_id))
        for _ in range(10)
    ]
    voids = [
        ledger_stub.VoidHold(pb.VoidHoldRequest(debit_account=customer.key, hold_id=hold.hold_id))
        for _ in range(10)
    ]
    answers = await asyncio.gather(*copies, *posts, *voids)
    assert all(answer.replayed for answer in answers[:5])
    winners = [answer for answer in answers[5:] if answer.result and not answer.replayed]
    winners = [
        a for a in winners if a.result in (pb.POST_HOLD_RESULT_APPLIED, pb.VOID_HOLD_RESULT_APPLIED)
    ]
    assert len(winners) == 1
    moved = (await _balance(ledger_stub, merchant)).amount
    assert moved in ("20.00", "0.00")
    assert (await _balance(ledger_stub, customer)).held == "0.00"
    await assert_books_balance(db)


async def test_an_expired_hold_releases_itself_and_refuses_a_late_post(
    ledger_stub, open_wallet, db
):
    if float(os.environ.get("LEDGER_HOLD_SWEEP_INTERVAL", "1")) > 5:
        pytest.skip("the hold sweeper is slowed here (make test-citus)")
    customer, merchant = await open_wallet(balance="10.00"), await open_wallet(balance="0")
    soon = datetime.now(UTC) + timedelta(seconds=1)
    hold = _hold(customer, merchant, "10.00")
    hold.expire_time.FromDatetime(soon)
    assert (await ledger_stub.CreateHold(hold)).result == pb.HOLD_RESULT_APPLIED
    assert (await _balance(ledger_stub, customer)).available == "0.00"
    # The sweeper releases it (LEDGER_HOLD_SWEEP_INTERVAL, 1 s by default).
    for _ in range(100):
        if (await _balance(ledger_stub, customer)).held == "0.00":
            break
        await asyncio.sleep(0.1)
    assert (await _balance(ledger_stub, customer)).available == "10.00"
    late = await ledger_stub.PostHold(
        pb.PostHoldRequest(debit_account=customer.key, hold_id=hold.hold_id)
    )
    assert late.result == pb.POST_HOLD_RESULT_HOLD_EXPIRED
    entries = await ledger_stub.ListJournalEntries(
        pb.ListJournalEntriesRequest(account=customer.key)
    )
    assert entries.entries[0].cause == pb.ENTRY_CAUSE_HOLD_EXPIRY
    await assert_books_balance(db)


async def test_a_debit_releases_expired_holds_before_the_sweeper_comes(
    ledger_stub, open_wallet, db
):
    """An expired hold never blocks a debit, however late the sweeper."""
    customer, merchant = await open_wallet(balance="10.00"), await open_wallet(balance="0")
    hold = _hold(customer, merchant, "10.00")
    hold.expire_time.FromDatetime(datetime.now(UTC) + timedelta(milliseconds=300))
    await ledger_stub.CreateHold(hold)
    await asyncio.sleep(0.35)
    debit = await ledger_stub.Adjust(adjust_request(customer, "10.00", OPEN))
    assert outcome_of(debit) in ("APPLIED",)
    await assert_books_balance(db)


async def test_holds_racing_webhook_debits_never_spend_held_money(ledger_stub, open_wallet, db):
    customer, merchant = await open_wallet(balance="100.00"), await open_wallet(balance="0")
    holds = [ledger_stub.CreateHold(_hold(customer, merchant, "10.00")) for _ in range(10)]
    debits = [ledger_stub.Adjust(adjust_request(customer, "10.00", OPEN)) for _ in range(10)]
    answers = await asyncio.gather(*holds, *debits)
    held = sum(answer.result == pb.HOLD_RESULT_APPLIED for answer in answers[:10])
    spent = sum(outcome_of(answer) == "APPLIED" for answer in answers[10:])
    assert held + spent == 10  # exactly what 100.00 covers
    balance = await _balance(ledger_stub, customer)
    assert Decimal(balance.available) == 0 and Decimal(balance.held) == 10 * held
    await assert_books_balance(db)


async def test_reconcile_catches_a_held_amount_no_hold_explains(ledger_stub, open_wallet, db):
    customer, merchant = await open_wallet(balance="10.00"), await open_wallet(balance="0")
    await ledger_stub.CreateHold(_hold(customer, merchant, "3.00"))
    async with db.acquire() as connection:
        tampering = connection.transaction()
        await tampering.start()
        try:
            await connection.execute(
                "UPDATE accounts SET held = held + 1 "
                "WHERE company_id = $1 AND customer = $2 AND currency = $3",
                customer.company_id,
                customer.customer,
                customer.currency,
            )
            found = await connection.fetch(reconciliation.CHECKS["held"], customer.company_id)
        finally:
            await tampering.rollback()
    assert [row["customer"] for row in found] == [customer.customer]
    assert "held 4, open holds 3, journal 3" in found[0]["format"]
    await assert_books_balance(db)


async def test_the_operator_cli_transfers_holds_posts_and_voids(ledger_server, open_wallet, db):
    from .test_reconciliation import _cli

    wallet = await open_wallet(balance="20.00")
    fees = unique("@fees")
    where = ["--company-id", str(wallet.company_id), "--currency", "USD"]

    def cli(*args: str) -> str:
        done = _cli(ledger_server.target, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def run() -> None:
        cli("open-account", *where, "--customer", fees, "--digits", "2", "--internal")
        mine = [*where, "--customer", wallet.customer]
        said = cli("transfer", *mine, "--to", fees, "--amount", "1.50", "--key", "fee-1")
        assert "applied" in said and "18.50" in said
        again = cli("transfer", *mine, "--to", fees, "--amount", "1.50", "--key", "fee-1")
        assert "repeat of an earlier request" in again
        said = cli("hold", *mine, "--to", fees, "--amount", "5.00", "--key", "h-1")
        assert "held 5.00, available 13.50" in said
        said = cli("post", *mine, "--id", "h-1", "--amount", "2.00")
        assert "posted 2.00" in said
        cli("hold", *mine, "--to", fees, "--amount", "3.00", "--key", "h-2", "--expires-in", "60")
        assert "voided" in cli("void", *mine, "--id", "h-2")
        refused = _cli(ledger_server.target, "transfer", *mine, "--to", fees, "--amount", "99")
        assert refused.returncode == 1 and "INSUFFICIENT_BALANCE" in refused.stderr
        shown = cli("balance", *where, "--customer", fees)
        assert "3.50" in shown

    await asyncio.to_thread(run)
    await assert_books_balance(db)


@pytest.mark.parametrize("step", ["create", "post", "void"])
async def test_twenty_racing_copies_of_each_hold_step_apply_it_once(
    ledger_stub, open_wallet, db, step
):
    customer, merchant = await open_wallet(balance="50.00"), await open_wallet(balance="0")
    hold = _hold(customer, merchant, "20.00")
    if step == "create":
        calls = [ledger_stub.CreateHold(hold) for _ in range(20)]
    else:
        await ledger_stub.CreateHold(hold)
        key = {"debit_account": customer.key, "hold_id": hold.hold_id}
        calls = [
            ledger_stub.PostHold(pb.PostHoldRequest(**key))
            if step == "post"
            else ledger_stub.VoidHold(pb.VoidHoldRequest(**key))
            for _ in range(20)
        ]
    answers = await asyncio.gather(*calls)
    assert {answer.result for answer in answers} == {
        {"create": pb.HOLD_RESULT_APPLIED, "post": pb.POST_HOLD_RESULT_APPLIED}.get(
            step, pb.VOID_HOLD_RESULT_APPLIED
        )
    }
    assert sum(not answer.replayed for answer in answers) == 1
    balance = await _balance(ledger_stub, customer)
    assert (balance.amount, balance.held) == {
        "create": ("50.00", "20.00"),
        "post": ("30.00", "0.00"),
        "void": ("50.00", "0.00"),
    }[step]
    await assert_books_balance(db)


async def test_reconcile_catches_a_transfer_its_entries_do_not_match(ledger_stub, open_wallet, db):
    payer, payee = await open_wallet(balance="10.00"), await open_wallet(balance="0")
    request = _transfer(payer, payee, "2.00")
    await ledger_stub.CreateTransfer(request)
    async with db.acquire() as connection:
        tampering = connection.transaction()
        await tampering.start()
        try:
            await connection.execute(
                "UPDATE transfers SET amount = 3 WHERE company_id = $1 AND customer = $2 "
                "AND transfer_id = $3",
                payer.company_id,
                payer.customer,
                request.transfer_id,
            )
            found = await connection.fetch(
                reconciliation.CHECKS["transfer_entries"], payer.company_id
            )
        finally:
            await tampering.rollback()
    assert [row["transfer_id"] for row in found] == [request.transfer_id]
    await assert_books_balance(db)


async def test_a_hold_named_with_another_currency_is_not_found_and_stays_open(
    ledger_stub, open_wallet, db
):
    customer, merchant = await open_wallet(balance="10.00"), await open_wallet(balance="0")
    hold = _hold(customer, merchant, "4.00")
    await ledger_stub.CreateHold(hold)
    elsewhere = pb.AccountKey(
        company_id=customer.company_id, customer=customer.customer, currency="EUR"
    )
    for close in (
        ledger_stub.PostHold(pb.PostHoldRequest(debit_account=elsewhere, hold_id=hold.hold_id)),
        ledger_stub.VoidHold(pb.VoidHoldRequest(debit_account=elsewhere, hold_id=hold.hold_id)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await close
        assert error_detail(refused.value).reason == "HOLD_NOT_FOUND"
    balance = await _balance(ledger_stub, customer)
    assert (balance.amount, balance.held) == ("10.00", "4.00")
    assert (await _balance(ledger_stub, merchant)).amount == "0.00"
    await assert_books_balance(db)
