"""Metrics and structured logs of the ledger service, after real traffic."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import grpc
from prometheus_client.parser import text_string_to_metric_families

from ledger_client import pb_grpc

from .conftest import LedgerProcess, make_wallet, unique
from .ledger_calls import CLOSE, OPEN, adjust_request, cancel_request


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_and_json_logs_follow_real_traffic(ledger_factory):
    ledger: LedgerProcess = ledger_factory(log_format="json")
    ledger.start()
    await ledger.wait_ready()
    trace = unique("trace")
    try:
        async with grpc.aio.insecure_channel(ledger.target) as channel:
            stub = pb_grpc.LedgerServiceStub(channel)
            wallet = await make_wallet(stub, balance="100.00", currency="EUR")
            meta = (("trace", trace),)
            debit = adjust_request(wallet, "10.00", OPEN)
            await stub.Adjust(debit, metadata=meta)
            await stub.Adjust(debit, metadata=meta)  # a replay moves nothing
            await stub.Adjust(adjust_request(wallet, "2.50", CLOSE), metadata=meta)
            await stub.Adjust(adjust_request(wallet, "999.00", OPEN), metadata=meta)
            await stub.CancelAdjustment(cancel_request(wallet, debit.request_id, "10.00"))
            await stub.CancelAdjustment(cancel_request(wallet, unique("never"), "1.00"))
            await stub.CancelAdjustment(cancel_request(wallet, unique("never"), "1.00"))
            try:
                await stub.Adjust(adjust_request(wallet, "1.001", OPEN), metadata=meta)
            except grpc.aio.AioRpcError:
                pass
        samples = await asyncio.to_thread(scrape, ledger.metrics_url)
    finally:
        assert ledger.terminate() == 0

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("ledger_requests_total", method="Adjust", outcome="APPLIED") == 3
    assert value("ledger_requests_total", method="Adjust", outcome="INSUFFICIENT_BALANCE") == 1
    assert value("ledger_requests_total", method="Adjust", outcome="TOO_MANY_DIGITS") == 1
    assert value("ledger_request_seconds_count", method="Adjust") == 5
    assert value("ledger_requests_in_flight", method="Adjust") == 0
    assert value("ledger_money_moved_total", currency="EUR", operation="OPEN_POSITION") == 10.0
    assert value("ledger_money_moved_total", currency="EUR", operation="NORMAL_CLOSE") == 2.5
    assert value("ledger_money_moved_total", currency="EUR", operation="reversal") == 10.0
    assert value("ledger_money_moved_total", currency="EUR", operation="deposit") == 100.0
    assert value("ledger_cancels_total", outcome="REVERSED") == 1
    assert value("ledger_cancels_total", outcome="NEVER_RECEIVED") == 2
    assert value("ledger_tombstones_total") == 2
    assert value("ledger_db_pool_max_size") == 10
    assert value("ledger_db_pool_size") >= 1

    lines = [json.loads(line) for line in ledger.log().splitlines() if line.startswith("{")]
    calls = [line for line in lines if line.get("method") == "Adjust"]
    assert len(calls) == 5
    first = calls[0]
    assert first["trace"] == trace
    assert first["company_id"] == wallet.company_id
    assert first["reference"] == debit.request_id
    assert first["outcome"] == "APPLIED"
    assert isinstance(first["duration_ms"], float)
    assert not any("amount" in line for line in calls), "no request bodies in logs"
