"""Facade metrics and logs after real traffic; one trace id across both services."""

from __future__ import annotations

import json

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from ledger_client import pb_grpc

from .conftest import FacadeProcess, LedgerProcess, make_wallet, unique
from .tradeboss import CANCEL, EXECUTE, TradeBoss


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_and_one_trace_across_both_services(ledger_factory, facade_factory):
    ledger: LedgerProcess = ledger_factory(log_format="json")
    ledger.start()
    await ledger.wait_ready()
    facade: FacadeProcess = facade_factory(ledger_target=ledger.target, log_format="json")
    facade.start()
    await facade.wait_ready(path="/readyz")
    trace = unique("trace")
    try:
        async with grpc.aio.insecure_channel(ledger.target) as channel:
            wallet = await make_wallet(
                pb_grpc.LedgerServiceStub(channel), balance="100.00", currency="GBP"
            )
        async with httpx.AsyncClient() as client:
            tradeboss = TradeBoss(facade.url, client)
            body = tradeboss.execute_body(wallet, "10.00")
            await tradeboss.post(EXECUTE, body, headers=tradeboss.headers(trace=trace))
            await tradeboss.post(EXECUTE, body)  # a repeat moves nothing
            await tradeboss.post(EXECUTE, tradeboss.execute_body(wallet, "1.001"))
            await tradeboss.post(
                CANCEL, tradeboss.cancel_body(wallet, body["requestUniqueNo"], "10.00")
            )
            await tradeboss.post(CANCEL, tradeboss.cancel_body(wallet, unique("never"), "1.00"))
            await tradeboss.query(wallet)
            text = (await client.get(facade.admin_url + "/metrics")).text
    finally:
        assert facade.terminate() == 0
        assert ledger.terminate() == 0
    samples = _samples(text)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    execute = "external-system-credit-limit-adjustment"
    cancel = "cancel-external-system-credit-limit-adjustment"
    assert value("facade_requests_total", endpoint=execute, code="0") == 2
    assert value("facade_requests_total", endpoint=execute, code="LW_1005") == 1
    assert value("facade_requests_total", endpoint=cancel, code="0") == 1
    assert value("facade_requests_total", endpoint=cancel, code="US_0000002") == 1
    assert value("facade_requests_total", endpoint="get-user-amount", code="0") == 1
    assert value("facade_request_seconds_count", endpoint=execute) == 3
    assert value("facade_requests_in_flight", endpoint=execute) == 0
    assert value("facade_money_moved_total", currency="GBP", operation="OPEN_POSITION") == 10.0
    assert value("facade_money_moved_total", currency="GBP", operation="reversal") == 10.0

    facade_lines = [json.loads(x) for x in facade.log().splitlines() if x.startswith("{")]
    ledger_lines = [json.loads(x) for x in ledger.log().splitlines() if x.startswith("{")]
    traced_facade = [x for x in facade_lines if x.get("trace") == trace]
    traced_ledger = [x for x in ledger_lines if x.get("trace") == trace]
    assert len(traced_facade) == 1 and len(traced_ledger) == 1
    assert traced_facade[0]["request_unique_no"] == body["requestUniqueNo"]
    assert traced_facade[0]["code"] == "0" and traced_facade[0]["company_id"] == 1
    assert isinstance(traced_facade[0]["duration_ms"], float)
    assert traced_ledger[0]["reference"] == body["requestUniqueNo"]
    # No bodies or secrets in the facade's lines.
    assert not any("amount" in line or "userName" in json.dumps(line) for line in facade_lines)
