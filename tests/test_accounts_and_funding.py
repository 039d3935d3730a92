"""Opening wallets and operator funding."""

from __future__ import annotations

import grpc
import pytest

from ledger_client import pb

from .conftest import Wallet, assert_books_balance, unique
from .ledger_calls import error_detail, outcome_of


async def test_open_account_is_idempotent_and_scale_is_fixed(ledger_stub):
    key = pb.AccountKey(company_id=7, customer=unique("c"), currency="USDT")
    first = await ledger_stub.OpenAccount(pb.OpenAccountRequest(account=key, digits=4))
    again = await ledger_stub.OpenAccount(pb.OpenAccountRequest(account=key, digits=4))
    assert (first.created, again.created) == (True, False)
    assert first.balance.amount == "0.0000"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.OpenAccount(pb.OpenAccountRequest(account=key, digits=2))
    assert error_detail(refused.value).reason == "ACCOUNT_SCALE_MISMATCH"


@pytest.mark.parametrize(
    ("currency", "digits", "field"),
    [("usd", 2, "currency"), ("US D", 2, "currency"), ("", 2, "currency"), ("USD", 19, "digits")],
)
async def test_open_account_rejects_bad_currency_and_scale(ledger_stub, currency, digits, field):
    key = pb.AccountKey(company_id=1, customer=unique("c"), currency=currency)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.OpenAccount(pb.OpenAccountRequest(account=key, digits=digits))
    detail = error_detail(refused.value)
    assert (outcome_of(detail), detail.field) == ("INVALID_ARGUMENT", field)


async def test_balance_has_exactly_the_wallets_digits(ledger_stub, open_wallet):
    for digits, funded, shown in [
        (0, "5", "5"),
        (2, "5.5", "5.50"),
        (8, "0.00000001", "0.00000001"),
    ]:
        wallet: Wallet = await open_wallet(balance=funded, digits=digits)
        answer = await ledger_stub.GetBalance(pb.GetBalanceRequest(account=wallet.key))
        assert (answer.balance.amount, answer.balance.digits) == (shown, digits)


async def test_deposit_and_withdraw_are_idempotent_by_key(ledger_stub, open_wallet, db):
    wallet = await open_wallet(balance="0")
    key = unique("dep")
    deposit = pb.DepositRequest(account=wallet.key, amount="25.00", request_id=key)
    first = await ledger_stub.Deposit(deposit)
    repeat = await ledger_stub.Deposit(deposit)
    assert (outcome_of(first), first.replayed, repeat.replayed) == ("APPLIED", False, True)
    assert repeat.balance.amount == "25.00"

    changed = pb.DepositRequest(account=wallet.key, amount="26.00", request_id=key)
    conflict = await ledger_stub.Deposit(changed)
    assert outcome_of(conflict) == "EXISTS_WITH_DIFFERENT_AMOUNT"
    as_withdrawal = await ledger_stub.Withdraw(
        pb.WithdrawRequest(account=wallet.key, amount="25.00", request_id=key)
    )
    assert outcome_of(as_withdrawal) == "EXISTS_WITH_DIFFERENT_KIND"

    too_much = pb.WithdrawRequest(account=wallet.key, amount="25.01", request_id=unique("w"))
    assert outcome_of(await ledger_stub.Withdraw(too_much)) == "INSUFFICIENT_BALANCE"
    exact = pb.WithdrawRequest(account=wallet.key, amount="25.00", request_id=unique("w"))
    answer = await ledger_stub.Withdraw(exact)
    assert (outcome_of(answer), answer.balance.amount) == ("APPLIED", "0.00")
    await assert_books_balance(db)


@pytest.mark.parametrize(
    ("amount", "outcome"),
    [
        ("0", "AMOUNT_SIGN_MISMATCH"),
        ("-5", "AMOUNT_SIGN_MISMATCH"),
        ("5.001", "TOO_MANY_DIGITS"),
        ("five", "INVALID_AMOUNT"),
        ("1" * 40, "INVALID_AMOUNT"),
    ],
)
async def test_bad_funding_writes_nothing(ledger_stub, open_wallet, db, amount, outcome):
    wallet = await open_wallet(balance="0")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.Deposit(
            pb.DepositRequest(account=wallet.key, amount=amount, request_id=unique("d"))
        )
    assert error_detail(refused.value).reason == outcome
    async with db.acquire() as connection:
        written = await connection.fetchval(
            "SELECT count(*) FROM requests WHERE customer = $1", wallet.customer
        )
    assert written == 0
