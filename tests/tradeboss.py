"""A TradeBoss-like HTTP client for the tests: builds the three webhooks as
TradeBoss sends them and checks every answer against TradeBoss's own response
schemas and the envelope rules of spec/webhooks.md."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from .conftest import ROOT, Wallet, unique

# TradeBoss's published OpenAPI file (shared/spec/), kept beside the tests so
# they run from any checkout; test_readme.py checks it still matches shared/.
SPEC = ROOT / "tests" / "data" / "multimarkets-webhook.json"
QUERY = "/get-user-amount"
EXECUTE = "/external-system-credit-limit-adjustment"
CANCEL = "/cancel-external-system-credit-limit-adjustment"
ENVELOPE_FIELDS = {"code", "msg", "msgParams", "bizCode", "trace", "tm", "data", "ok", "fail"}


def _response_schemas() -> dict[str, dict[str, Any]]:
    document = json.loads(Path(SPEC).read_text())
    return {
        path: operation["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        for path, operation in document["paths"].items()
    }


RESPONSE_SCHEMAS = _response_schemas()


def check_envelope(path: str, answer: httpx.Response, trace: str | None) -> dict[str, Any]:
    """Every answer: HTTP 200, JSON, all nine fields, TradeBoss's types, ok/fail agree."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = answer.json()
    assert set(body) == ENVELOPE_FIELDS, body
    jsonschema.validate(body, RESPONSE_SCHEMAS[path])
    for name in ("code", "msg", "msgParams", "bizCode", "trace"):
        assert isinstance(body[name], str), (name, body)
    assert isinstance(body["tm"], int) and body["tm"] >= 0
    assert isinstance(body["data"], dict)
    assert body["ok"] is (body["code"] == "0")
    assert body["fail"] is (not body["ok"])
    if trace is not None:
        # Echoed as sent; a trace too long or unprintable to log is echoed as "".
        assert body["trace"] == (trace if len(trace) <= 128 and trace.isprintable() else "")
    return body


@dataclass
class TradeBoss:
    """Sends webhooks to a facade as TradeBoss would."""

    base_url: str
    client: httpx.AsyncClient
    company_id: int = 1
    prefix: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)

    def headers(self, trace: str | None = None, with_timestamp: bool = True) -> dict[str, str]:
        headers = {
            "trace": trace or uuid.uuid4().hex,
            "companyId": str(self.company_id),
            "content-type": "application/json",
            **self.extra_headers,
        }
        if with_timestamp:
            headers["timestamp"] = str(int(time.time() * 1000))
        return headers

    async def post(
        self,
        path: str,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        wait: float = 10.0,
    ) -> dict[str, Any]:
        sent = headers if headers is not None else self.headers()
        answer = await self.client.post(
            self.base_url + self.prefix + path,
            content=content if content is not None else json.dumps(body).encode(),
            headers=sent,
            timeout=wait,
        )
        return check_envelope(path, answer, sent.get("trace"))

    async def query(self, wallet: Wallet, **changes: Any) -> dict[str, Any]:
        body = {
            "thirdServerCode": wallet.customer,
            "userName": wallet.user_name,
            "currency": wallet.currency,
            **changes,
        }
        return await self.post(QUERY, body)

    def execute_body(
        self, wallet: Wallet, amount: str, operation: str = "OPEN_POSITION", **changes: Any
    ) -> dict[str, Any]:
        return {
            "thirdServerCode": wallet.customer,
            "userName": wallet.user_name,
            "currency": wallet.currency,
            "bizType": 1,
            "operationType": operation,
            "amount": amount,
            "amountDigits": wallet.digits,
            "orderId": 123456789,
            "requestUniqueNo": unique("exe"),
            "requestTime": int(time.time() * 1000),
            "ip": "203.0.113.7",
            "metadata": '{"source": "test"}',
            **changes,
        }

    def cancel_body(
        self, wallet: Wallet, target_request_id: str, amount: str, **changes: Any
    ) -> dict[str, Any]:
        return {
            "thirdServerCode": wallet.customer,
            "userName": wallet.user_name,
            "currency": wallet.currency,
            "bizType": 1,
            "amount": amount,
            "amountDigits": wallet.digits,
            "requestUniqueNo": unique("cxl"),
            "reverseRequestUniqueNo": target_request_id,
            "requestTime": int(time.time() * 1000),
            "ip": "203.0.113.7",
            "cancelRemark": "timeout",
            **changes,
        }
