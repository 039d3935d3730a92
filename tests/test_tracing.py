"""OpenTelemetry (the `otel` extra): one execute is one trace from the
facade's HTTP span through the gRPC client and server spans to the
PostgreSQL statement, with TradeBoss's `trace` as an attribute."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from .conftest import ROOT, unique


async def test_one_trace_from_http_to_postgres(database_url, ledger_server):
    pytest.importorskip("opentelemetry.sdk")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.scenarios.traced_webhook", database_url, unique("otel")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    spans = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    kinds = {(span["kind"], span["name"].split(" ")[0]) for span in spans}
    assert ("SERVER", "POST") in kinds  # the facade's HTTP request
    # The facade sends executes in ApplyMovements calls; a batch's span links
    # to every webhook it carries, and the ledger has a span per item.
    assert ("CLIENT", "/ledger.v2.LedgerService/ApplyMovements") in kinds  # the facade calling
    assert ("SERVER", "/ledger.v2.LedgerService/ApplyMovements") in kinds  # the ledger answering
    assert ("INTERNAL", "Adjust") in kinds  # the ledger's span of this item
    statements = [s for s in spans if "db.system" in s["attributes"]]
    assert statements, "no PostgreSQL span"
    trace_ids = {span["trace_id"] for span in spans if span["name"] != "connect"}
    assert len(trace_ids) == 1, "W3C context did not carry the trace across the hop"
    tagged = [s for s in spans if s["attributes"].get("tradeboss.trace") == "tb-trace-42"]
    assert {s["kind"] for s in tagged} >= {"SERVER"}
    assert len(tagged) >= 2  # the facade's span and the ledger's
