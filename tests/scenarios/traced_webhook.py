"""One execute through an in-process facade and ledger, both traced to an
in-memory exporter; prints the finished spans as JSON lines. Run by
tests/test_tracing.py in a process of its own: instrumentation is global."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from http_facade.app import create_app, ledger_client_for
from http_facade.settings import FacadeSettings
from ledger_client import open_channel, pb, pb_grpc, tracing
from ledger_service import server
from ledger_service.settings import Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def main(database_url: str, customer: str) -> None:
    exporter = InMemorySpanExporter()
    assert tracing.setup("tracing-test", exporter=exporter)
    listen = f"127.0.0.1:{_free_port()}"
    settings = Settings(
        listen=listen, database_url=database_url, admin_listen="", migrate_on_start=False
    )
    ready = asyncio.Event()
    ledger = asyncio.create_task(server.serve(settings, ready=ready))
    await ready.wait()
    async with open_channel(listen) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        key = pb.AccountKey(company_id=1, customer=customer, currency="USD")
        await stub.OpenAccount(pb.OpenAccountRequest(account=key, digits=2, user_name="u"))
        await stub.Deposit(pb.DepositRequest(account=key, amount="5.00", request_id="d"))
    exporter.clear()
    facade_settings = FacadeSettings(ledger_target=listen, admin_listen="")
    app = create_app(facade_settings, ledger_client_for(facade_settings))
    body = {
        "thirdServerCode": customer,
        "userName": "u",
        "currency": "USD",
        "bizType": 1,
        "operationType": "OPEN_POSITION",
        "amount": "1.00",
        "amountDigits": 2,
        "orderId": 1,
        "requestUniqueNo": "traced-1",
        "requestTime": int(time.time() * 1000),
        "ip": "",
    }
    headers = {"trace": "tb-trace-42", "companyId": "1", "content-type": "application/json"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=tracing.asgi(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://facade") as client:
            answer = await client.post(
                "/external-system-credit-limit-adjustment", json=body, headers=headers
            )
    assert answer.json()["code"] == "0", answer.text
    os.kill(os.getpid(), signal.SIGTERM)  # the ledger's own way out
    await ledger
    for span in exporter.get_finished_spans():
        print(
            json.dumps(
                {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": format(span.context.trace_id, "032x"),
                    "service": span.resource.attributes.get("service.name"),
                    "attributes": {k: str(v) for k, v in (span.attributes or {}).items()},
                }
            )
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
