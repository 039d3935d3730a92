"""Bad input at the facade: a specific code naming the field, HTTP 200 with the
full envelope, never a 5xx, and nothing written."""

from __future__ import annotations

import httpx
import pytest

from .conftest import unique
from .tradeboss import CANCEL, EXECUTE, QUERY, TradeBoss


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


EXECUTE_CASES = [
    # (case, change to the body, code, msgParams)
    ("amount as number", {"amount": 10}, "LW_1002", "amount"),
    ("amount NaN", {"amount": "NaN"}, "LW_1003", "amount"),
    ("amount exponent", {"amount": "1E+3"}, "LW_1003", "amount"),
    ("amount words", {"amount": "ten"}, "LW_1003", "amount"),
    ("amount huge", {"amount": "9" * 40}, "LW_1003", "amount"),
    ("amount empty", {"amount": ""}, "LW_1002", "amount"),
    ("too many digits", {"amount": "1.001"}, "LW_1005", "amount"),
    ("negative open", {"amount": "-1.00"}, "LW_1004", "amount"),
    ("zero", {"amount": "0.00"}, "LW_1004", "amount"),
    ("digits as string", {"amountDigits": "2"}, "LW_1002", "amountDigits"),
    ("digits out of range", {"amountDigits": 40}, "LW_1002", "amountDigits"),
    ("bizType as string", {"bizType": "1"}, "LW_1002", "bizType"),
    ("bizType float", {"bizType": 1.0}, "LW_1002", "bizType"),
    ("bizType bool", {"bizType": True}, "LW_1002", "bizType"),
    ("orderId as string", {"orderId": "42"}, "LW_1002", "orderId"),
    ("orderId too big", {"orderId": 2**63}, "LW_1002", "orderId"),
    ("orderId missing", {"orderId": None}, "LW_1002", "orderId"),
    ("unknown operation", {"operationType": "WITHDRAW"}, "LW_1002", "operationType"),
    ("operation lower case", {"operationType": "open_position"}, "LW_1002", "operationType"),
    ("requestTime 10 digits", {"requestTime": 1764000000}, "LW_1002", "requestTime"),
    ("requestTime string", {"requestTime": "1764000000000"}, "LW_1002", "requestTime"),
    ("number too long", {"requestUniqueNo": "n" * 49}, "LW_1002", "requestUniqueNo"),
    ("number missing", {"requestUniqueNo": None}, "LW_1002", "requestUniqueNo"),
    ("number as int", {"requestUniqueNo": 12345}, "LW_1002", "requestUniqueNo"),
    ("userName too long", {"userName": "u" * 49}, "LW_1002", "userName"),
    ("currency too long", {"currency": "C" * 17}, "LW_1002", "currency"),
    ("thirdServerCode missing", {"thirdServerCode": None}, "LW_1002", "thirdServerCode"),
    ("NUL in ip", {"ip": "1.2.3.4\u0000"}, "LW_1002", "ip"),
    ("metadata too long", {"metadata": "m" * 201}, "LW_1002", "metadata"),
]


@pytest.mark.parametrize(
    ("case", "change", "code", "params"), EXECUTE_CASES, ids=[c[0] for c in EXECUTE_CASES]
)
async def test_bad_execute_fields(tradeboss, open_wallet, db, case, change, code, params):
    wallet = await open_wallet(balance="100.00")
    body = tradeboss.execute_body(wallet, "1.00")
    for name, value in change.items():
        if value is None:
            body.pop(name)
        else:
            body[name] = value
    before = await _writes(db, wallet.customer)
    answer = await tradeboss.post(EXECUTE, body)
    assert (answer["code"], answer["msgParams"]) == (code, params), answer
    assert await _writes(db, wallet.customer) == before


@pytest.mark.parametrize(
    ("case", "change", "params"),
    [
        ("no remark", {"cancelRemark": None}, "cancelRemark"),
        ("long remark", {"cancelRemark": "r" * 201}, "cancelRemark"),
        ("no reverse number", {"reverseRequestUniqueNo": None}, "reverseRequestUniqueNo"),
        ("negative amount", {"amount": "-1.00"}, "amount"),
    ],
)
async def test_bad_cancel_fields(tradeboss, open_wallet, db, case, change, params):
    wallet = await open_wallet(balance="100.00")
    body = tradeboss.cancel_body(wallet, unique("never"), "1.00")
    for name, value in change.items():
        if value is None:
            body.pop(name)
        else:
            body[name] = value
    before = await _writes(db, wallet.customer)
    answer = await tradeboss.post(CANCEL, body)
    assert answer["msgParams"] == params and answer["code"] != "0"
    assert await _writes(db, wallet.customer) == before, "no tombstone for a bad cancel"


@pytest.mark.parametrize(
    ("case", "drop", "value", "params"),
    [
        ("no trace", "trace", None, "trace"),
        ("no companyId", "companyId", None, "companyId"),
        ("companyId not a number", "companyId", "abc", "companyId"),
        ("companyId negative", "companyId", "-1", "companyId"),
        ("no timestamp", "timestamp", None, "timestamp"),
        ("timestamp seconds", "timestamp", "1764000000", "timestamp"),
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


async def test_unknown_path_and_wrong_method_are_not_5xx(facade):
    async with httpx.AsyncClient() as client:
        assert (await client.get(facade.url + EXECUTE)).status_code == 405
        assert (await client.post(facade.url + "/nope", json={})).status_code == 404
