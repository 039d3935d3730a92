"""The webhook rules at the facade, end to end: bad input gets a specific code
naming the field (HTTP 200, full envelope, never a 5xx) and moves no money;
an identified execute is recorded with its refusal; a cancel settles unless
its target cannot be identified; lawful variants are accepted."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from .conftest import unique
from .tradeboss import CANCEL, ENVELOPE_FIELDS, EXECUTE, QUERY, TradeBoss


@pytest.fixture
async def tradeboss(facade):
    async with httpx.AsyncClient() as client:
        yield TradeBoss(facade.url, client)


async def _writes(db, customer: str) -> tuple[int, int]:
    async with db.acquire() as connection:
        return (
            await connection.fetchval(
                "SELECT count(*) FROM requests WHERE customer = $1", customer
            ),
            await connection.fetchval(
                "SELECT count(*) FROM journal_entries WHERE customer = $1", customer
            ),
        )


# An identified execute (companyId, thirdServerCode, requestUniqueNo usable)
# is recorded with its refusal, whatever else is wrong with it.
RECORDED_REFUSALS = [
    # (case, change to the body, code, msgParams)
    ("amount as number", {"amount": 10}, "LW_1002", "amount"),
    ("amount NaN", {"amount": "NaN"}, "LW_1003", "amount"),
    ("amount exponent", {"amount": "1E+3"}, "LW_1003", "amount"),
    ("amount words", {"amount": "ten"}, "LW_1003", "amount"),
    ("amount huge", {"amount": "9" * 40}, "LW_1003", "amount"),
    ("amount empty", {"amount": ""}, "LW_1003", "amount"),
    ("too many digits", {"amount": "1.001"}, "LW_1005", "amount"),
    (
        "not exact at the wallet's scale",
        {"amount": "1.00001", "amountDigits": 5},
        "LW_3003",
        "amount",
    ),
    ("negative open", {"amount": "-1.00"}, "LW_1004", "amount"),
    ("zero", {"amount": "0.00"}, "LW_1004", "amount"),
    ("digits out of range", {"amountDigits": 40}, "LW_1002", "amountDigits"),
    ("digits negative string", {"amountDigits": "-2"}, "LW_1002", "amountDigits"),
    ("bizType float", {"bizType": 1.0}, "LW_1002", "bizType"),
    ("bizType bool", {"bizType": True}, "LW_1002", "bizType"),
    ("bizType words", {"bizType": "one"}, "LW_1002", "bizType"),
    ("orderId too big", {"orderId": 2**63}, "LW_1002", "orderId"),
    ("orderId too big as string", {"orderId": str(2**63)}, "LW_1002", "orderId"),
    ("orderId missing", {"orderId": None}, "LW_1002", "orderId"),
    ("unknown operation", {"operationType": "WITHDRAW"}, "LW_1002", "operationType"),
    ("operation lower case", {"operationType": "open_position"}, "LW_1002", "operationType"),
    ("userName too long", {"userName": "u" * 49}, "LW_1002", "userName"),
    ("currency too long", {"currency": "C" * 17}, "LW_1002", "currency"),
    ("unknown currency", {"currency": "XYZ"}, "LW_3001", ""),
    ("another userName", {"userName": "somebody-else"}, "LW_3002", ""),
]


async def _execute_with(tradeboss, wallet, change):
    body = tradeboss.execute_body(wallet, "1.00")
    for name, value in change.items():
        if value is None:
            body.pop(name)
        else:
            body[name] = value
    return body, await tradeboss.post(EXECUTE, body)


@pytest.mark.parametrize(
    ("case", "change", "code", "params"), RECORDED_REFUSALS, ids=[c[0] for c in RECORDED_REFUSALS]
)
async def test_an_identified_bad_execute_is_recorded_with_its_refusal(
    tradeboss, open_wallet, db, case, change, code, params
):
    """Rule 1: its repeat gets the same answer, its cancel US_0000001, no money moves."""
    wallet = await open_wallet(balance="100.00")
    await tradeboss.query(wallet)  # binds the userName
    requests, entries = await _writes(db, wallet.customer)
    body, answer = await _execute_with(tradeboss, wallet, change)
    assert (answer["code"], answer["msgParams"]) == (code, params), answer
    assert await _writes(db, wallet.customer) == (requests + 1, entries)
    assert (await tradeboss.post(EXECUTE, body))["code"] == code
    cancel = tradeboss.cancel_body(wallet, body["requestUniqueNo"], "1.00")
    cancel["userName"] = body.get("userName", wallet.user_name)
    cancel["currency"] = body.get("currency", wallet.currency)
    assert (await tradeboss.post(CANCEL, cancel))["code"] == "US_0000001"
    assert (await tradeboss.query(wallet))["data"]["amount"] == "100.00"


UNIDENTIFIED = [
    ("number too long", {"requestUniqueNo": "n" * 49}, "requestUniqueNo"),
    ("number missing", {"requestUniqueNo": None}, "requestUniqueNo"),
    ("number as int", {"requestUniqueNo": 12345}, "requestUniqueNo"),
    ("thirdServerCode missing", {"thirdServerCode": None}, "thirdServerCode"),
    ("thirdServerCode empty", {"thirdServerCode": ""}, "thirdServerCode"),
]


@pytest.mark.parametrize(
    ("case", "change", "params"), UNIDENTIFIED, ids=[c[0] for c in UNIDENTIFIED]
)
async def test_an_unidentifiable_execute_is_refused_and_writes_nothing(
    tradeboss, open_wallet, db, case, change, params
):
    wallet = await open_wallet(balance="100.00")
    before = await _writes(db, wallet.customer)
    _, answer = await _execute_with(tradeboss, wallet, change)
    assert (answer["code"], answer["msgParams"]) == ("LW_1002", params), answer
    assert await _writes(db, wallet.customer) == before


LAWFUL_VARIANTS = [
    # Rule 3: accepted when nothing is lost.
    ("amountDigits as string", {"amountDigits": "2"}),
    ("bizType as string", {"bizType": "1"}),
    ("bizType not in the documented list", {"bizType": 77}),
    ("orderId as string", {"orderId": "9007199254740993"}),
    ("requestTime as string", {"requestTime": "1764000000000"}),
    ("requestTime of 10 digits", {"requestTime": 1764000000}),
    ("requestTime unusable", {"requestTime": "soon"}),
    ("ip empty", {"ip": ""}),
    ("ip missing", {"ip": None}),
    ("NUL in ip", {"ip": "1.2.3.4\u0000"}),
    ("metadata with a newline", {"metadata": '{\n  "source": "stop-loss"\n}'}),
    ("metadata as an object", {"metadata": {"source": "stop-loss", "n": [1, 2]}}),
    ("metadata too long", {"metadata": "m" * 500}),
    # Rule 4: scale by value, not by label.
    ("3 with amountDigits 0", {"amount": "3", "amountDigits": 0}),
    ("1.50 with amountDigits 1", {"amount": "1.50", "amountDigits": 1}),
    ("1.5 with amountDigits 4", {"amount": "1.5", "amountDigits": 4}),
]


@pytest.mark.parametrize(("case", "change"), LAWFUL_VARIANTS, ids=[c[0] for c in LAWFUL_VARIANTS])
async def test_lawful_variants_are_accepted(tradeboss, open_wallet, db, case, change):
    wallet = await open_wallet(balance="100.00")
    body, answer = await _execute_with(tradeboss, wallet, change)
    assert answer["code"] == "0", answer
    async with db.acquire() as connection:
        record = await connection.fetchrow(
            "SELECT amount, metadata, client_ip FROM requests"
            " WHERE customer = $1 AND request_unique_no = $2",
            wallet.customer,
            body["requestUniqueNo"],
        )
    assert record["amount"] == Decimal(str(body["amount"]))
    if isinstance(change.get("metadata"), dict):
        assert json.loads(record["metadata"]) == change["metadata"]
    if "metadata" in change:
        assert len(record["metadata"]) <= 200
    assert (await tradeboss.query(wallet))["data"]["amount"] == format(
        Decimal("100.00") - Decimal(str(body["amount"])), ".2f"
    )


CANCEL_VARIANTS = [
    # Rule 2: only the target's identity can refuse a cancel.
    ("no remark", {"cancelRemark": None}),
    ("long remark", {"cancelRemark": "r" * 500}),
    ("remark with newlines", {"cancelRemark": "timed out\nretry 3"}),
    ("negative amount", {"amount": "-1.00"}),
    ("amount with other digits", {"amount": "1.0000"}),
    ("amount as number", {"amount": 1}),
    ("amount missing", {"amount": None}),
    ("amountDigits as string", {"amountDigits": "2"}),
    ("amountDigits missing", {"amountDigits": None}),
    ("bizType as string", {"bizType": "1"}),
    ("bizType float", {"bizType": 1.5}),
    ("orderId as string", {"orderId": "42"}),
    ("ip empty", {"ip": ""}),
    ("metadata object", {"metadata": {"why": "timeout"}}),
    ("own number missing", {"requestUniqueNo": None}),
    ("own number too long", {"requestUniqueNo": "c" * 60}),
    ("userName missing", {"userName": None}),
    ("currency missing", {"currency": None}),
]


@pytest.mark.parametrize(("case", "change"), CANCEL_VARIANTS, ids=[c[0] for c in CANCEL_VARIANTS])
async def test_a_cancel_settles_whatever_else_it_carries(tradeboss, open_wallet, db, case, change):
    wallet = await open_wallet(balance="100.00")
    execute = tradeboss.execute_body(wallet, "1.00")
    assert (await tradeboss.post(EXECUTE, execute))["code"] == "0"
    body = tradeboss.cancel_body(wallet, execute["requestUniqueNo"], "1.00")
    for name, value in change.items():
        if value is None:
            body.pop(name)
        else:
            body[name] = value
    headers = tradeboss.headers(with_timestamp=False)
    headers["timestamp"] = "yesterday"  # recorded when it parses, ignored otherwise
    for _ in range(2):  # TradeBoss retries: settled again
        answer = await tradeboss.post(CANCEL, body, headers=headers)
        assert answer["code"] == "0", answer
    assert (await tradeboss.query(wallet))["data"]["amount"] == "100.00"
    # The execute replayed now never answers success (rule 5).
    assert (await tradeboss.post(EXECUTE, execute))["code"] == "LW_4003"


@pytest.mark.parametrize(
    ("case", "change", "params"),
    [
        ("no reverse number", {"reverseRequestUniqueNo": None}, "reverseRequestUniqueNo"),
        ("reverse number as int", {"reverseRequestUniqueNo": 7}, "reverseRequestUniqueNo"),
        ("no thirdServerCode", {"thirdServerCode": None}, "thirdServerCode"),
    ],
)
async def test_a_cancel_without_an_identifiable_target_is_refused(
    tradeboss, open_wallet, db, case, change, params
):
    wallet = await open_wallet(balance="100.00")
    body = tradeboss.cancel_body(wallet, unique("never"), "1.00")
    for name, value in change.items():
        if value is None:
            body.pop(name)
        else:
            body[name] = value
    before = await _writes(db, wallet.customer)
    answer = await tradeboss.post(CANCEL, body)
    assert (answer["code"], answer["msgParams"]) == ("LW_1002", params)
    assert await _writes(db, wallet.customer) == before, "no tombstone for an unidentified cancel"


@pytest.mark.parametrize(
    ("case", "drop", "value", "params"),
    [
        ("no trace", "trace", None, "trace"),
        ("no companyId", "companyId", None, "companyId"),
        ("companyId not a number", "companyId", "abc", "companyId"),
        ("companyId negative", "companyId", "-1", "companyId"),
        ("trace too long", "trace", "t" * 129, "trace"),
    ],
)
async def test_bad_headers(tradeboss, open_wallet, db, case, drop, value, params):
    wallet = await open_wallet(balance="100.00")
    headers = tradeboss.headers()
    if value is None:
        headers.pop(drop)
    else:
        headers[drop] = value
    before = await _writes(db, wallet.customer)
    answer = await tradeboss.post(EXECUTE, tradeboss.execute_body(wallet, "1.00"), headers=headers)
    assert (answer["code"], answer["msgParams"]) == ("LW_1001", params)
    if drop != "trace":
        assert answer["trace"] == headers["trace"]
    assert await _writes(db, wallet.customer) == before


@pytest.mark.parametrize("timestamp", [None, "1764000000", "soon", "-5"])
async def test_the_timestamp_header_never_refuses(tradeboss, open_wallet, db, timestamp):
    wallet = await open_wallet(balance="100.00")
    headers = tradeboss.headers(with_timestamp=False)
    if timestamp is not None:
        headers["timestamp"] = timestamp
    for path, body in (
        (
            QUERY,
            {
                "thirdServerCode": wallet.customer,
                "userName": wallet.user_name,
                "currency": wallet.currency,
            },
        ),
        (EXECUTE, tradeboss.execute_body(wallet, "1.00")),
    ):
        assert (await tradeboss.post(path, body, headers=headers))["code"] == "0"


@pytest.mark.parametrize(
    ("case", "content", "content_type", "code"),
    [
        ("empty body", b"", "application/json", "LW_1006"),
        ("whitespace body", b"   ", "application/json", "LW_1006"),
        ("invalid JSON", b'{"amount": ', "application/json", "LW_1006"),
        ("JSON array", b"[1, 2]", "application/json", "LW_1006"),
        ("JSON string", b'"hello"', "application/json", "LW_1006"),
        ("NaN literal", b'{"amount": NaN}', "application/json", "LW_1006"),
        ("not UTF-8", b'{"a": "\xff\xfe"}', "application/json", "LW_1006"),
        ("form body", b"a=1", "application/x-www-form-urlencoded", "LW_1007"),
        ("no content type", b"{}", "", "LW_1007"),
        ("oversized", b'{"x": "' + b"a" * 20000 + b'"}', "application/json", "LW_1008"),
        ("deep nesting", b"[" * 100000, "application/json", "LW_1008"),
    ],
)
async def test_bad_bodies(tradeboss, case, content, content_type, code):
    headers = tradeboss.headers()
    headers["content-type"] = content_type
    for path in (QUERY, EXECUTE, CANCEL):
        answer = await tradeboss.post(path, None, headers=headers, content=content)
        assert answer["code"] == code, (path, answer)


async def test_unknown_paths_and_methods_get_the_envelope_and_no_redirect(facade):
    async with httpx.AsyncClient() as client:
        wrong_method = await client.get(facade.url + EXECUTE, headers={"trace": "t-405"})
        assert wrong_method.status_code == 405
        assert (wrong_method.json()["code"], wrong_method.json()["trace"]) == ("LW_1010", "t-405")
        unknown = await client.post(facade.url + "/nope", json={})
        assert unknown.status_code == 404 and unknown.json()["code"] == "LW_1009"
        # Finding 7: no 307 to whatever Host: said for a trailing slash.
        slash = await client.post(
            facade.url + EXECUTE + "/", json={}, headers={"Host": "evil.example"}
        )
        assert slash.status_code == 404 and "location" not in slash.headers
        for answer in (wrong_method, unknown, slash):
            assert set(answer.json()) == ENVELOPE_FIELDS


@pytest.mark.parametrize(
    ("content", "code", "params"),
    [
        # Finding 7: which amount was meant is ambiguous.
        (b'{"amount": "1.00", "amount": "100.00"}', "LW_1006", "duplicate key amount"),
        # Half a UTF-16 pair is no text: a field error, never a 5xx...
        (b'{"userName": "a\\ud800"}', "LW_1002", "userName"),
    ],
)
async def test_ambiguous_or_broken_json_is_refused(tradeboss, content, code, params):
    answer = await tradeboss.post(EXECUTE, None, content=content)
    assert (answer["code"], answer["msgParams"]) == (code, params)


async def test_a_lone_surrogate_in_free_text_never_blocks_a_cancel(tradeboss, open_wallet, db):
    """...except in free text, where it is shown as U+FFFD."""
    wallet = await open_wallet(balance="10.00")
    execute = tradeboss.execute_body(wallet, "1.00")
    assert (await tradeboss.post(EXECUTE, execute))["code"] == "0"
    cancel = json.dumps(tradeboss.cancel_body(wallet, execute["requestUniqueNo"], "1.00"))
    content = cancel.replace('"cancelRemark": "timeout"', '"cancelRemark": "time\\udc00out"')
    answer = await tradeboss.post(CANCEL, None, content=content.encode())
    assert answer["code"] == "0"
    async with db.acquire() as connection:
        remark = await connection.fetchval(
            "SELECT cancel_remark FROM requests WHERE customer = $1 AND kind = 'cancel'",
            wallet.customer,
        )
    assert remark == "time\ufffdout"
