"""The three webhooks end to end: real HTTP -> real gRPC -> the embedded
PostgreSQL, for every row of spec/webhooks.md."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from ledger_client import pb

from .conftest import assert_books_balance, unique
from .ledger_calls import balance_of
from .tradeboss import CANCEL, EXECUTE, TradeBoss


@pytest.fixture
async def tradeboss(facade):
    async with httpx.AsyncClient() as client:
        yield TradeBoss(facade.url, client)


async def test_balance_query_has_exact_digits_and_snake_case_twins(tradeboss, open_wallet):
    wallet = await open_wallet(balance="12.5", digits=4, currency="USDT")
    answer = await tradeboss.query(wallet)
    assert answer["code"] == "0"
    assert answer["data"] == {
        "userName": wallet.user_name,
        "currency": "USDT",
        "amount": "12.5000",
        "amountDigits": 4,
        "user_name": wallet.user_name,
        "amount_digits": 4,
    }


@pytest.mark.parametrize(
    ("operation", "amount", "expected"),
    [
        ("OPEN_POSITION", "30.25", "69.75"),
        ("NORMAL_CLOSE", "30.25", "130.25"),
        ("ABNORMAL_OVERTRADING", "-130.25", "-30.25"),
    ],
)
async def test_each_operation_moves_money_its_way(
    tradeboss, open_wallet, ledger_stub, db, operation, amount, expected
):
    wallet = await open_wallet(balance="100.00")
    answer = await tradeboss.post(EXECUTE, tradeboss.execute_body(wallet, amount, operation))
    assert (answer["code"], answer["msg"], answer["data"]) == ("0", "Success", {})
    assert await balance_of(ledger_stub, wallet) == expected
    await assert_books_balance(db)


async def test_repeat_is_applied_once_and_conflict_is_named(tradeboss, open_wallet, ledger_stub):
    wallet = await open_wallet(balance="100.00")
    body = tradeboss.execute_body(wallet, "10.00")
    first = await tradeboss.post(EXECUTE, body)
    repeat = await tradeboss.post(EXECUTE, {**body, "requestTime": body["requestTime"] + 1})
    assert first["code"] == repeat["code"] == "0"
    conflict = await tradeboss.post(EXECUTE, {**body, "amount": "11.00"})
    assert (conflict["code"], conflict["msgParams"]) == ("LW_4002", "amount")
    assert "amount" in conflict["msg"]
    other = await tradeboss.post(EXECUTE, {**body, "orderId": 1})
    assert (other["code"], other["msgParams"]) == ("LW_4002", "orderId")
    assert await balance_of(ledger_stub, wallet) == "90.00"


async def test_insufficient_balance_and_its_cancel(tradeboss, open_wallet, ledger_stub):
    wallet = await open_wallet(balance="5.00")
    body = tradeboss.execute_body(wallet, "5.01")
    refused = await tradeboss.post(EXECUTE, body)
    assert refused["code"] == "LW_4001"
    cancel = await tradeboss.post(
        CANCEL, tradeboss.cancel_body(wallet, body["requestUniqueNo"], "5.01")
    )
    assert cancel["code"] == "US_0000001"
    assert await balance_of(ledger_stub, wallet) == "5.00"


async def test_cancel_of_applied_reverses_once_then_answers_zero_again(
    tradeboss, open_wallet, ledger_stub, db
):
    wallet = await open_wallet(balance="100.00")
    body = tradeboss.execute_body(wallet, "40.00")
    await tradeboss.post(EXECUTE, body)
    cancel = tradeboss.cancel_body(wallet, body["requestUniqueNo"], "40.00")
    answers = await asyncio.gather(*(tradeboss.post(CANCEL, cancel) for _ in range(5)))
    assert {a["code"] for a in answers} == {"0"}
    other_cancel = tradeboss.cancel_body(wallet, body["requestUniqueNo"], "40.00")
    assert (await tradeboss.post(CANCEL, other_cancel))["code"] == "0"  # already reversed
    assert await balance_of(ledger_stub, wallet) == "100.00"
    await assert_books_balance(db)


async def test_cancel_without_timestamp_header_is_accepted(tradeboss, open_wallet):
    wallet = await open_wallet(balance="1.00")
    cancel = tradeboss.cancel_body(wallet, unique("never"), "1.00")
    answer = await tradeboss.post(CANCEL, cancel, headers=tradeboss.headers(with_timestamp=False))
    assert answer["code"] == "US_0000002"


async def test_never_received_leaves_a_tombstone_and_the_late_execute_is_refused(
    tradeboss, open_wallet, ledger_stub, db
):
    wallet = await open_wallet(balance="100.00")
    late = tradeboss.execute_body(wallet, "10.00")
    cancel = tradeboss.cancel_body(wallet, late["requestUniqueNo"], "10.00")
    assert (await tradeboss.post(CANCEL, cancel))["code"] == "US_0000002"
    assert (await tradeboss.post(CANCEL, cancel))["code"] == "US_0000002"
    refused = await tradeboss.post(EXECUTE, late)
    assert refused["code"] == "LW_4003"
    assert await balance_of(ledger_stub, wallet) == "100.00"
    await assert_books_balance(db)


async def test_wallet_mismatches(tradeboss, open_wallet):
    wallet = await open_wallet(balance="100.00")
    unknown = await tradeboss.query(wallet, thirdServerCode=unique("nobody"))
    assert unknown["code"] == "LW_3001"
    unknown_currency = await tradeboss.query(wallet, currency="XYZ")
    assert unknown_currency["code"] == "LW_3001"
    await tradeboss.query(wallet)  # binds the userName
    other_user = await tradeboss.query(wallet, userName="someone-else")
    assert other_user["code"] == "LW_3002"
    # Scale by value: 1.000 is 1.00 on this 2-digit wallet; 1.005 is not.
    execute = tradeboss.execute_body(wallet, "1.000", amountDigits=3)
    assert (await tradeboss.post(EXECUTE, execute))["code"] == "0"
    execute = tradeboss.execute_body(wallet, "1.005", amountDigits=3)
    assert (await tradeboss.post(EXECUTE, execute))["code"] == "LW_3003"


async def test_cancel_naming_another_currency_is_refused(tradeboss, open_wallet, ledger_stub):
    usd = await open_wallet(balance="100.00", currency="USD")
    eur = await open_wallet(balance="0", currency="EUR", customer=usd.customer)
    body = tradeboss.execute_body(usd, "10.00")
    await tradeboss.post(EXECUTE, body)
    wrong = tradeboss.cancel_body(eur, body["requestUniqueNo"], "10.00", userName=usd.user_name)
    answer = await tradeboss.post(CANCEL, wrong)
    assert (answer["code"], answer["msgParams"]) == ("LW_3004", "currency")
    assert await balance_of(ledger_stub, usd) == "90.00"


async def test_trace_reaches_the_journal(tradeboss, open_wallet, ledger_stub):
    wallet = await open_wallet(balance="10.00")
    trace = unique("trace")
    body = tradeboss.execute_body(wallet, "1.00")
    answer = await tradeboss.post(EXECUTE, body, headers=tradeboss.headers(trace=trace))
    assert answer["trace"] == trace
    record = await ledger_stub.GetRequest(
        pb.GetRequestRequest(account=wallet.key, request_id=body["requestUniqueNo"])
    )
    assert record.request.trace_id == trace


async def test_unknown_fields_are_ignored(tradeboss, open_wallet):
    wallet = await open_wallet(balance="10.00")
    body = tradeboss.execute_body(wallet, "1.00", somethingNew={"x": 1}, tradeType=81)
    assert (await tradeboss.post(EXECUTE, body))["code"] == "0"


async def test_own_openapi_document_lists_paths_and_codes(facade):
    async with httpx.AsyncClient() as client:
        document = (await client.get(facade.admin_url + "/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/get-user-amount",
        "/external-system-credit-limit-adjustment",
        "/cancel-external-system-credit-limit-adjustment",
    }
    answer = document["paths"][EXECUTE]["post"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]["$ref"]
    envelope = document["components"]["schemas"][answer.rsplit("/", 1)[1]]
    assert {"0", "US_0000001", "US_0000002", "LW_4001", "LW_5002"} <= set(
        envelope["properties"]["code"]["enum"]
    )
    # Derived from the one declaration of each body: the lawful variants show.
    execute = document["components"]["schemas"]["ExecuteBody"]
    assert {"type": "string", "pattern": "^[0-9]{1,19}$"} in execute["properties"]["orderId"][
        "anyOf"
    ]
    assert set(document["components"]["schemas"]["CancelBody"]["required"]) == {
        "thirdServerCode",
        "reverseRequestUniqueNo",
    }


async def test_health_and_readiness(facade):
    async with httpx.AsyncClient() as client:
        assert (await client.get(facade.admin_url + "/healthz")).json() == {"status": "up"}
        ready = await client.get(facade.admin_url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_path_prefix(facade_factory, open_wallet):
    wallet = await open_wallet(balance="3.00")
    prefixed = facade_factory(path_prefix="/api/cats-gateway")
    prefixed.start()
    await prefixed.wait_ready(path="/readyz")
    try:
        async with httpx.AsyncClient() as client:
            tradeboss = TradeBoss(prefixed.url, client, prefix="/api/cats-gateway")
            answers = [await tradeboss.query(wallet) for _ in range(4)]
            bare = await client.post(prefixed.url + "/get-user-amount", json={})
    finally:
        assert prefixed.terminate() == 0
    assert {a["data"]["amount"] for a in answers} == {"3.00"}
    assert bare.status_code == 404


async def test_the_public_port_serves_the_webhooks_and_nothing_else(facade):
    """Health, readiness, metrics and the API document name addresses and money
    flows: they are on the admin listener (loopback by default) only."""
    async with httpx.AsyncClient() as client:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            public = await client.get(facade.url + path)
            assert public.status_code == 404 and public.json()["code"] == "LW_1009", path
            assert (await client.get(facade.admin_url + path)).status_code == 200, path
        metrics = (await client.get(facade.admin_url + "/metrics")).text
    assert "facade_requests_total" in metrics


async def test_sigterm_turns_readiness_off_before_draining(facade_factory, open_wallet):
    """The pre-stop delay: /readyz answers 503 at once, webhooks are still
    answered during the delay, then the process drains and exits 0."""
    wallet = await open_wallet(balance="3.00")
    facade = facade_factory(prestop_delay="2", shutdown_grace="5")
    facade.start()
    await facade.wait_ready(path="/readyz")
    assert facade.process is not None
    facade.process.send_signal(signal.SIGTERM)
    async with httpx.AsyncClient() as client:
        await asyncio.sleep(0.3)
        assert (await client.get(facade.admin_url + "/readyz")).status_code == 503
        answer = await TradeBoss(facade.url, client).query(wallet)
        assert answer["code"] == "0"
    assert await asyncio.to_thread(facade.process.wait, 20) == 0


async def _ledger_calls(ledger_server, method: str) -> float:
    """ledger_requests_total for one method, summed over outcomes, from /metrics."""
    text = await asyncio.to_thread(lambda: httpx.get(ledger_server.metrics_url).text)
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("ledger_requests_total{") and f'method="{method}"' in line
    )


async def test_webhooks_in_flight_together_reach_the_ledger_in_fewer_calls(
    tradeboss, open_wallet, ledger_server, ledger_stub, db
):
    """200 executes at once, then their cancels: the facade sends them in
    ApplyMovements calls (fewer than webhooks), and each gets its own answer."""
    wallets = [await open_wallet(balance="100.00") for _ in range(10)]
    bodies = [tradeboss.execute_body(wallets[i % 10], "1.00") for i in range(200)]
    before = await _ledger_calls(ledger_server, "ApplyMovements")
    answers = await asyncio.gather(*(tradeboss.post(EXECUTE, body) for body in bodies))
    assert {answer["code"] for answer in answers} == {"0"}
    cancels = [
        tradeboss.cancel_body(wallets[i % 10], body["requestUniqueNo"], "1.00")
        for i, body in enumerate(bodies[:50])
    ]
    answers = await asyncio.gather(*(tradeboss.post(CANCEL, body) for body in cancels))
    assert {answer["code"] for answer in answers} == {"0"}
    calls = await _ledger_calls(ledger_server, "ApplyMovements") - before
    assert 0 < calls < 250
    # Balance queries travel in the same calls (reads are quick: with a slot
    # free, each may go at once on its own).
    lone_reads = await _ledger_calls(ledger_server, "GetBalance")
    batches = await _ledger_calls(ledger_server, "ApplyMovements")
    answers = await asyncio.gather(*(tradeboss.query(wallets[i % 10]) for i in range(100)))
    assert {(answer["code"], answer["data"]["amount"]) for answer in answers} == {("0", "85.00")}
    assert 0 < await _ledger_calls(ledger_server, "ApplyMovements") - batches <= 100
    # Each item is counted as a GetBalance of its own in the ledger's metrics.
    assert await _ledger_calls(ledger_server, "GetBalance") - lone_reads == 100
    for wallet in wallets:
        assert await balance_of(ledger_stub, wallet) == "85.00"  # 20 debits, 5 reversed
    await assert_books_balance(db)


async def test_with_batching_off_each_webhook_is_its_own_call(
    facade_factory, open_wallet, ledger_server, ledger_stub, db
):
    facade = facade_factory(ledger_batch_in_flight="0")
    facade.start()
    try:
        await facade.wait_ready(path="/readyz")
        async with httpx.AsyncClient() as client:
            tradeboss = TradeBoss(facade.url, client)
            wallet = await open_wallet(balance="100.00")
            before = await _ledger_calls(ledger_server, "Adjust")
            batches = await _ledger_calls(ledger_server, "ApplyMovements")
            bodies = [tradeboss.execute_body(wallet, "1.00") for _ in range(10)]
            answers = await asyncio.gather(*(tradeboss.post(EXECUTE, body) for body in bodies))
            assert {answer["code"] for answer in answers} == {"0"}
            cancel = tradeboss.cancel_body(wallet, bodies[0]["requestUniqueNo"], "1.00")
            assert (await tradeboss.post(CANCEL, cancel))["code"] == "0"
            reads = await _ledger_calls(ledger_server, "GetBalance")
            assert (await tradeboss.query(wallet))["data"]["amount"] == "91.00"
            assert await _ledger_calls(ledger_server, "Adjust") - before == 10
            assert await _ledger_calls(ledger_server, "GetBalance") - reads == 1
            assert await _ledger_calls(ledger_server, "ApplyMovements") == batches
    finally:
        assert facade.terminate() == 0
    assert await balance_of(ledger_stub, wallet) == "91.00"
    await assert_books_balance(db)
