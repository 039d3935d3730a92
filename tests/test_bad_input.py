"""Bad input moves no money. An identified execute is recorded with its
refusal (a repeat gets it again, its cancel answers NOT_APPLIED); only a
request the ledger cannot identify is an error that writes nothing; a cancel
is refused only for its target."""

from __future__ import annotations

import grpc
import pytest

from ledger_client import pb

from .conftest import assert_books_balance, unique
from .ledger_calls import (
    CLOSE,
    OPEN,
    OVERTRADE,
    adjust_request,
    cancel_request,
    error_detail,
    outcome_of,
)

RECORDED_REFUSALS = [
    # (case, amount, operation_type, extra fields, outcome, field)
    ("non-numeric", "ten", OPEN, {}, "INVALID_AMOUNT", "amount"),
    ("empty amount", "", OPEN, {}, "INVALID_AMOUNT", "amount"),
    ("NaN", "NaN", OPEN, {}, "INVALID_AMOUNT", "amount"),
    ("infinity", "Infinity", OPEN, {}, "INVALID_AMOUNT", "amount"),
    ("exponent", "1E+2", OPEN, {}, "INVALID_AMOUNT", "amount"),
    ("plus sign", "+5.00", OPEN, {}, "INVALID_AMOUNT", "amount"),
    ("spaces", " 5.00", OPEN, {}, "INVALID_AMOUNT", "amount"),
    ("unicode digits", "\u0665.00", OPEN, {}, "INVALID_AMOUNT", "amount"),
    ("huge", "1" * 19, CLOSE, {}, "INVALID_AMOUNT", "amount"),
    ("too many digits", "1.001", OPEN, {}, "TOO_MANY_DIGITS", "amount"),
    ("negative open", "-1.00", OPEN, {}, "AMOUNT_SIGN_MISMATCH", "amount"),
    ("zero close", "0.00", CLOSE, {}, "AMOUNT_SIGN_MISMATCH", "amount"),
    ("positive overtrading", "1.00", OVERTRADE, {}, "AMOUNT_SIGN_MISMATCH", "amount"),
    ("no operation", "1.00", 0, {}, "INVALID_ARGUMENT", "operation_type"),
    ("unknown operation", "1.00", 99, {}, "INVALID_ARGUMENT", "operation_type"),
    ("no user", "1.00", OPEN, {"user_name": ""}, "INVALID_ARGUMENT", "user_name"),
    ("long user", "1.00", OPEN, {"user_name": "u" * 49}, "INVALID_ARGUMENT", "user_name"),
    (
        "NUL in user",
        "1.00",
        OPEN,
        {"user_name": "a\x00b"},
        "INVALID_ARGUMENT",
        "user_name",
    ),
    (
        "digits out of range",
        "1.00",
        OPEN,
        {"amount_digits": 19},
        "INVALID_ARGUMENT",
        "amount_digits",
    ),
    (
        "not exact at the wallet's scale",
        "1.001",
        OPEN,
        {"amount_digits": 3},
        "ACCOUNT_SCALE_MISMATCH",
        "amount",
    ),
    (
        "shape error from the facade",
        "1.00",
        OPEN,
        {"input_error": pb.InputError(field="biz_type", message="bizType must be an integer")},
        "INVALID_ARGUMENT",
        "biz_type",
    ),
]


async def _writes_for(db, customer: str) -> tuple[int, int]:
    async with db.acquire() as connection:
        requests = await connection.fetchval(
            "SELECT count(*) FROM requests WHERE customer = $1", customer
        )
        entries = await connection.fetchval(
            "SELECT count(*) FROM journal_entries WHERE customer = $1", customer
        )
    return requests, entries


@pytest.mark.parametrize(
    ("case", "amount", "operation_type", "fields", "outcome", "field"),
    RECORDED_REFUSALS,
    ids=[case[0] for case in RECORDED_REFUSALS],
)
async def test_identified_bad_execute_is_recorded_and_moves_nothing(
    ledger_stub, open_wallet, db, case, amount, operation_type, fields, outcome, field
):
    wallet = await open_wallet(balance="100.00")
    request = adjust_request(wallet, amount, operation_type, **fields)
    requests_before, entries_before = await _writes_for(db, wallet.customer)
    first = await ledger_stub.Adjust(request)
    assert (outcome_of(first), first.refused_field) == (outcome, field)
    assert first.refusal_message
    # The refusal is recorded; no journal entry.
    assert await _writes_for(db, wallet.customer) == (requests_before + 1, entries_before)
    again = await ledger_stub.Adjust(request)
    assert (outcome_of(again), again.refused_field, again.replayed) == (outcome, field, True)
    # TradeBoss's cancel carries the execute's own userName and currency.
    cancel = await ledger_stub.CancelAdjustment(
        cancel_request(wallet, request.request_id, "1.00", user_name=request.user_name)
    )
    assert outcome_of(cancel) == "NOT_APPLIED"
    record = await ledger_stub.GetRequest(
        pb.GetRequestRequest(account=wallet.key, request_id=request.request_id)
    )
    assert (outcome_of(record.request), record.request.refused_field) == (outcome, field)
    assert record.request.amount_as_sent == amount.replace("\x00", "\ufffd")
    assert (
        await ledger_stub.GetBalance(pb.GetBalanceRequest(account=wallet.key))
    ).balance.amount == "100.00"
    await assert_books_balance(db)


@pytest.mark.parametrize(
    ("key_change", "outcome", "field"),
    [
        ({"currency": "XYZ"}, "ACCOUNT_NOT_FOUND", "currency"),
        ({"currency": "C" * 17}, "INVALID_ARGUMENT", "currency"),
        ({"currency": ""}, "INVALID_ARGUMENT", "currency"),
    ],
)
async def test_execute_for_no_such_wallet_is_recorded(
    ledger_stub, open_wallet, db, key_change, outcome, field
):
    wallet = await open_wallet(balance="100.00")
    request = adjust_request(wallet, "1.00", OPEN)
    for name, value in key_change.items():
        setattr(request.account, name, value)
    answer = await ledger_stub.Adjust(request)
    assert (outcome_of(answer), answer.refused_field) == (outcome, field)
    assert not answer.HasField("balance")
    assert (await ledger_stub.Adjust(request)).replayed
    cancel = cancel_request(wallet, request.request_id, "1.00")
    cancel.account.currency = request.account.currency
    assert outcome_of(await ledger_stub.CancelAdjustment(cancel)) == "NOT_APPLIED"
    await assert_books_balance(db)


@pytest.mark.parametrize(
    ("fields", "key_change", "field"),
    [
        ({"request_id": ""}, {}, "request_id"),
        ({"request_id": "n" * 49}, {}, "request_id"),
        ({"request_id": "~cancel~x"}, {}, "request_id"),
        ({}, {"company_id": 0}, "company_id"),
        ({}, {"customer": "c" * 65}, "customer"),
        ({}, {"customer": ""}, "customer"),
    ],
)
async def test_unidentifiable_execute_is_an_error_and_writes_nothing(
    ledger_stub, open_wallet, db, fields, key_change, field
):
    wallet = await open_wallet(balance="100.00")
    request = adjust_request(wallet, "1.00", OPEN, **fields)
    for name, value in key_change.items():
        setattr(request.account, name, value)
    before = await _writes_for(db, wallet.customer)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.Adjust(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_detail(refused.value)
    assert (outcome_of(detail), detail.field) == ("INVALID_ARGUMENT", field)
    assert await _writes_for(db, wallet.customer) == before


async def test_free_text_is_kept_never_refused(ledger_stub, open_wallet, db):
    """ip, metadata: any text, control characters kept, cut with a note past
    the stored length; the execute applies."""
    wallet = await open_wallet(balance="100.00")
    request = adjust_request(
        wallet, "1.00", OPEN, client_ip="", metadata="line1\nline2\x00" + "m" * 300
    )
    answer = await ledger_stub.Adjust(request)
    assert outcome_of(answer) == "APPLIED"
    record = await ledger_stub.GetRequest(
        pb.GetRequestRequest(account=wallet.key, request_id=request.request_id)
    )
    assert "metadata: NUL shown as U+FFFD" in record.request.input_notes
    assert "first 200 kept" in record.request.input_notes
    async with db.acquire() as connection:
        metadata = await connection.fetchval(
            "SELECT metadata FROM requests WHERE customer = $1 AND request_unique_no = $2",
            wallet.customer,
            request.request_id,
        )
    assert metadata.startswith("line1\nline2\ufffd") and len(metadata) == 200
    await assert_books_balance(db)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "-1.00"},
        {"amount": "1e3"},
        {"amount": ""},
        {"amount_digits": 7},
        {"tradeboss.remark": ""},
        {"tradeboss.remark": "r" * 201},
        {"tradeboss.ip": ""},
        {"tradeboss.metadata": '{\n  "pretty": true\n}'},
        {"request_id": ""},
        {"request_id": "SELF"},
        {"user_name": ""},
    ],
)
async def test_a_cancel_settles_whatever_its_other_fields(ledger_stub, open_wallet, db, change):
    """Applied, then cancelled with an odd field: reversed all the same."""
    wallet = await open_wallet(balance="100.00")
    execute = adjust_request(wallet, "10.00", OPEN)
    assert outcome_of(await ledger_stub.Adjust(execute)) == "APPLIED"
    request = cancel_request(wallet, execute.request_id, "10.00")
    for name, value in change.items():
        *parents, leaf = name.split(".")
        target = request.tradeboss if parents else request
        setattr(target, leaf, execute.request_id if value == "SELF" else value)
    answer = await ledger_stub.CancelAdjustment(request)
    assert outcome_of(answer) == "REVERSED"
    assert answer.balance.amount == "100.00"
    again = await ledger_stub.CancelAdjustment(request)
    assert outcome_of(again) in ("REVERSED", "ALREADY_REVERSED")
    assert again.balance.amount == "100.00"
    await assert_books_balance(db)


async def test_a_cancel_without_currency_settles_on_its_targets_wallet(
    ledger_stub, open_wallet, db
):
    wallet = await open_wallet(balance="100.00")
    execute = adjust_request(wallet, "10.00", OPEN)
    await ledger_stub.Adjust(execute)
    request = cancel_request(wallet, execute.request_id, "10.00")
    request.account.currency = ""
    answer = await ledger_stub.CancelAdjustment(request)
    assert (outcome_of(answer), answer.balance.amount) == ("REVERSED", "100.00")
    await assert_books_balance(db)


@pytest.mark.parametrize(
    ("key_change", "reverse", "field"),
    [
        ({}, "", "target_request_id"),
        ({}, "r" * 49, "target_request_id"),
        ({"customer": ""}, None, "customer"),
        ({"company_id": 0}, None, "company_id"),
    ],
)
async def test_a_cancel_without_an_identifiable_target_is_refused_and_leaves_no_tombstone(
    ledger_stub, open_wallet, db, key_change, reverse, field
):
    wallet = await open_wallet(balance="100.00")
    request = cancel_request(wallet, unique("never") if reverse is None else reverse, "1.00")
    for name, value in key_change.items():
        setattr(request.account, name, value)
    before = await _writes_for(db, wallet.customer)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.CancelAdjustment(request)
    detail = error_detail(refused.value)
    assert (outcome_of(detail), detail.field) == ("INVALID_ARGUMENT", field)
    assert await _writes_for(db, wallet.customer) == before
    await assert_books_balance(db)
