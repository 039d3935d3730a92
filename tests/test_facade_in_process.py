"""The facade's shape and header rules, in process: Starlette's TestClient
against the real app with a fake ledger client that records what it is asked.
No processes, no network: the rule's edge cases run in milliseconds; the
end-to-end suite keeps the real servers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from http_facade.app import create_app
from http_facade.settings import FacadeSettings
from ledger_client import pb

HEADERS = {"trace": "t-1", "companyId": "7", "timestamp": "1764000000000"}
EXECUTE = {
    "thirdServerCode": "C1",
    "userName": "alice",
    "currency": "USD",
    "bizType": 1,
    "operationType": "OPEN_POSITION",
    "amount": "1.00",
    "amountDigits": 2,
    "orderId": 9,
    "requestUniqueNo": "n-1",
    "requestTime": 1764000000000,
    "ip": "203.0.113.1",
}


class FakeLedger:
    """Answers every call APPLIED / REVERSED and keeps what it was sent."""

    target = "fake"
    deadline = 2.5

    def __init__(self) -> None:
        self.sent: list[tuple[Any, float]] = []

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ready(self) -> bool:
        return True

    async def balance(self, request: Any, trace: str, seconds: float) -> Any:
        self.sent.append((request, seconds))
        return pb.GetBalanceResponse(balance=pb.Balance(amount="5.00", digits=2, user_name="alice"))

    async def adjust(self, request: Any, trace: str, seconds: float) -> Any:
        self.sent.append((request, seconds))
        result = (
            pb.ADJUST_RESULT_INVALID_ARGUMENT
            if request.HasField("input_error")
            else pb.ADJUST_RESULT_APPLIED
        )
        return pb.AdjustResponse(result=result, refused_field=request.input_error.field)

    async def cancel(self, request: Any, trace: str, seconds: float) -> Any:
        self.sent.append((request, seconds))
        return pb.CancelAdjustmentResponse(result=pb.CANCEL_RESULT_REVERSED)


@pytest.fixture
def facade() -> Any:
    ledger = FakeLedger()
    app = create_app(FacadeSettings(admin_listen="", allowed_companies="7"), ledger)  # type: ignore[arg-type]
    with TestClient(app) as client:
        client.ledger = ledger  # type: ignore[attr-defined]
        yield client


def _post(client: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = client.post(
        path,
        content=raw,
        headers={**HEADERS, "content-type": "application/json", **(headers or {})},
    )
    return answer.json()


def test_lawful_variants_reach_the_ledger_in_its_own_shape(facade):
    body = {**EXECUTE, "bizType": "1", "orderId": "9007199254740993", "metadata": {"k": [1]}}
    assert _post(facade, "/external-system-credit-limit-adjustment", body)["code"] == "0"
    sent, seconds = facade.ledger.sent[-1]
    tradeboss = sent.tradeboss
    assert (tradeboss.biz_type, tradeboss.order_id, tradeboss.metadata) == (
        1,
        9007199254740993,
        '{"k":[1]}',
    )
    assert tradeboss.header_timestamp_ms == 1764000000000
    assert 0 < seconds <= 2.5  # the webhook's budget, less the margin to answer


def test_a_field_of_the_wrong_shape_goes_to_the_ledger_as_the_input_error(facade):
    answer = _post(facade, "/external-system-credit-limit-adjustment", {**EXECUTE, "bizType": 1.5})
    assert (answer["code"], answer["msgParams"]) == ("LW_1002", "bizType")
    sent, _ = facade.ledger.sent[-1]
    assert (
        sent.input_error.field == "tradeboss.biz_type"
    )  # recorded by the ledger, not dropped here


@pytest.mark.parametrize(
    ("headers", "code", "params"),
    [
        ({"trace": ""}, "LW_1001", "trace"),
        ({"companyId": "x"}, "LW_1001", "companyId"),
        ({"companyId": "8"}, "LW_2002", "8"),
        ({"content-type": "text/plain"}, "LW_1007", ""),
        ({"timestamp": "never"}, "0", ""),  # recorded when it parses, else ignored
    ],
)
def test_header_rules(facade, headers, code, params):
    answer = _post(facade, "/get-user-amount", EXECUTE, headers)
    assert (answer["code"], answer["msgParams"]) == (code, params)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "LW_1006"),
        (b"[1]", "LW_1006"),
        (b'{"amount": "1", "amount": "2"}', "LW_1006"),
        (b'{"a": "' + b"x" * 17000 + b'"}', "LW_1008"),
    ],
)
def test_body_rules(facade, raw, code):
    assert _post(facade, "/external-system-credit-limit-adjustment", raw)["code"] == code
    assert facade.ledger.sent == []


def test_a_cancel_passes_whatever_it_carries_to_the_ledger(facade):
    body = {
        "thirdServerCode": "C1",
        "reverseRequestUniqueNo": "n-1",
        "amount": -3,
        "bizType": "x",
        "cancelRemark": "a\nb",
    }
    assert _post(facade, "/cancel-external-system-credit-limit-adjustment", body)["code"] == "0"
    sent, _ = facade.ledger.sent[-1]
    assert (sent.amount, sent.tradeboss.biz_type, sent.tradeboss.remark) == ("-3", 0, "a\nb")
    assert any(note.startswith("bizType") for note in sent.input_notes)


def test_unknown_paths_and_methods_answer_in_the_envelope(facade):
    assert facade.get("/get-user-amount").json()["code"] == "LW_1010"
    assert facade.post("/metrics").json()["code"] == "LW_1009"
