"""Bad input gets a specific outcome and writes nothing."""

from __future__ import annotations

import grpc
import pytest

from protos.ledger.v1 import ledger_pb2 as pb

from .conftest import assert_books_balance, unique
from .ledger_calls import CLOSE, OPEN, OVERTRADE, adjust_request, cancel_request, error_detail

INVALID = grpc.StatusCode.INVALID_ARGUMENT

ADJUST_CASES = [
    # (case, amount, operation_type, extra fields, status, outcome, field)
    ("non-numeric", "ten", OPEN, {}, INVALID, pb.OUTCOME_INVALID_AMOUNT, "amount"),
    ("empty amount", "", OPEN, {}, INVALID, pb.OUTCOME_INVALID_AMOUNT, "amount"),
    ("NaN", "NaN", OPEN, {}, INVALID, pb.OUTCOME_INVALID_AMOUNT, "amount"),
    ("infinity", "Infinity", OPEN, {}, INVALID, pb.OUTCOME_INVALID_AMOUNT, "amount"),
    ("exponent", "1E+2", OPEN, {}, INVALID, pb.OUTCOME_INVALID_AMOUNT, "amount"),
    ("plus sign", "+5.00", OPEN, {}, INVALID, pb.OUTCOME_INVALID_AMOUNT, "amount"),
    ("spaces", " 5.00", OPEN, {}, INVALID, pb.OUTCOME_INVALID_AMOUNT, "amount"),
    ("unicode digits", "\u0665.00", OPEN, {}, INVALID, pb.OUTCOME_INVALID_AMOUNT, "amount"),
    ("huge", "1" * 19, CLOSE, {}, INVALID, pb.OUTCOME_INVALID_AMOUNT, "amount"),
    ("too many digits", "1.001", OPEN, {}, INVALID, pb.OUTCOME_TOO_MANY_DIGITS, "amount"),
    ("negative open", "-1.00", OPEN, {}, INVALID, pb.OUTCOME_AMOUNT_SIGN_MISMATCH, "amount"),
    ("zero close", "0.00", CLOSE, {}, INVALID, pb.OUTCOME_AMOUNT_SIGN_MISMATCH, "amount"),
    (
        "positive overtrading",
        "1.00",
        OVERTRADE,
        {},
        INVALID,
        pb.OUTCOME_AMOUNT_SIGN_MISMATCH,
        "amount",
    ),
    ("no operation", "1.00", 0, {}, INVALID, pb.OUTCOME_INVALID_ARGUMENT, "operation_type"),
    ("unknown operation", "1.00", 99, {}, INVALID, pb.OUTCOME_INVALID_ARGUMENT, "operation_type"),
    (
        "no number",
        "1.00",
        OPEN,
        {"request_unique_no": ""},
        INVALID,
        pb.OUTCOME_INVALID_ARGUMENT,
        "request_unique_no",
    ),
    (
        "long number",
        "1.00",
        OPEN,
        {"request_unique_no": "n" * 49},
        INVALID,
        pb.OUTCOME_INVALID_ARGUMENT,
        "request_unique_no",
    ),
    ("no user", "1.00", OPEN, {"user_name": ""}, INVALID, pb.OUTCOME_INVALID_ARGUMENT, "user_name"),
    (
        "long user",
        "1.00",
        OPEN,
        {"user_name": "u" * 49},
        INVALID,
        pb.OUTCOME_INVALID_ARGUMENT,
        "user_name",
    ),
    (
        "NUL in user",
        "1.00",
        OPEN,
        {"user_name": "a\x00b"},
        INVALID,
        pb.OUTCOME_INVALID_ARGUMENT,
        "user_name",
    ),
    (
        "long metadata",
        "1.00",
        OPEN,
        {"metadata": "m" * 201},
        INVALID,
        pb.OUTCOME_INVALID_ARGUMENT,
        "metadata",
    ),
    (
        "digits out of range",
        "1.00",
        OPEN,
        {"amount_digits": 19},
        INVALID,
        pb.OUTCOME_INVALID_ARGUMENT,
        "amount_digits",
    ),
    (
        "digits mismatch",
        "1.000",
        OPEN,
        {"amount_digits": 3},
        grpc.StatusCode.FAILED_PRECONDITION,
        pb.OUTCOME_ACCOUNT_SCALE_MISMATCH,
        "amount_digits",
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
    ("case", "amount", "operation_type", "fields", "status", "outcome", "field"),
    ADJUST_CASES,
    ids=[case[0] for case in ADJUST_CASES],
)
async def test_bad_adjust_is_refused_specifically_and_writes_nothing(
    ledger_stub, open_wallet, db, case, amount, operation_type, fields, status, outcome, field
):
    wallet = await open_wallet(balance="100.00")
    before = await _writes_for(db, wallet.customer)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.Adjust(adjust_request(wallet, amount, operation_type, **fields))
    assert refused.value.code() == status
    detail = error_detail(refused.value)
    assert (pb.Outcome.Name(detail.outcome), detail.field) == (pb.Outcome.Name(outcome), field)
    assert detail.message
    assert await _writes_for(db, wallet.customer) == before


@pytest.mark.parametrize(
    ("key_change", "outcome", "field"),
    [
        ({"currency": "XYZ"}, pb.OUTCOME_ACCOUNT_NOT_FOUND, "customer"),
        ({"customer": "nobody"}, pb.OUTCOME_ACCOUNT_NOT_FOUND, "customer"),
        ({"company_id": 0}, pb.OUTCOME_INVALID_ARGUMENT, "company_id"),
        ({"currency": "C" * 17}, pb.OUTCOME_INVALID_ARGUMENT, "currency"),
        ({"customer": "c" * 65}, pb.OUTCOME_INVALID_ARGUMENT, "customer"),
    ],
)
async def test_unknown_or_malformed_wallet_is_refused(
    ledger_stub, open_wallet, db, key_change, outcome, field
):
    wallet = await open_wallet(balance="100.00")
    request = adjust_request(wallet, "1.00", OPEN)
    for name, value in key_change.items():
        setattr(request.account, name, value)
    before = await _writes_for(db, wallet.customer)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.Adjust(request)
    detail = error_detail(refused.value)
    assert (detail.outcome, detail.field) == (outcome, field)
    assert await _writes_for(db, wallet.customer) == before


@pytest.mark.parametrize(
    ("change", "outcome", "field"),
    [
        ({"amount": "-1.00"}, pb.OUTCOME_AMOUNT_SIGN_MISMATCH, "amount"),
        ({"amount": "1e3"}, pb.OUTCOME_INVALID_AMOUNT, "amount"),
        ({"cancel_remark": ""}, pb.OUTCOME_INVALID_ARGUMENT, "cancel_remark"),
        ({"cancel_remark": "r" * 201}, pb.OUTCOME_INVALID_ARGUMENT, "cancel_remark"),
        (
            {"reverse_request_unique_no": ""},
            pb.OUTCOME_INVALID_ARGUMENT,
            "reverse_request_unique_no",
        ),
        (
            {"reverse_request_unique_no": "SELF"},
            pb.OUTCOME_INVALID_ARGUMENT,
            "reverse_request_unique_no",
        ),
    ],
)
async def test_bad_cancel_is_refused_and_leaves_no_tombstone(
    ledger_stub, open_wallet, db, change, outcome, field
):
    wallet = await open_wallet(balance="100.00")
    request = cancel_request(wallet, unique("never"), "1.00")
    for name, value in change.items():
        setattr(request, name, request.request_unique_no if value == "SELF" else value)
    before = await _writes_for(db, wallet.customer)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_stub.CancelAdjustment(request)
    detail = error_detail(refused.value)
    assert (detail.outcome, detail.field) == (outcome, field)
    assert await _writes_for(db, wallet.customer) == before
    await assert_books_balance(db)
