"""The ledger behind the facade fails: TradeBoss still gets an answer in time,
and its cancels leave the books right."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from ledger_client import pb

from .conftest import (
    FacadeProcess,
    LedgerProcess,
    assert_books_balance,
    free_port,
    ledger_statements_ended,
)
from .ledger_calls import balance_of, outcome_of
from .slow_proxy import SlowProxy
from .tradeboss import CANCEL, EXECUTE, TradeBoss

SETTLED = {"0", "US_0000001", "US_0000002"}


async def execute_then_cancel_like_tradeboss(
    execute_via: TradeBoss,
    cancel_via: TradeBoss,
    body: dict[str, Any],
    cancel: dict[str, Any],
    before_retry: Callable[[], None] = lambda: None,
) -> tuple[str, list[str]]:
    """TradeBoss's sequence: an execute with a 3 s budget; if it did not answer
    "0" (an error, a timeout), the cancel, retried until it is settled."""
    try:
        code = (await execute_via.post(EXECUTE, body, wait=3.0))["code"]
    except httpx.TimeoutException:
        code = "timeout"
    cancel_codes: list[str] = []
    if code != "0":
        for attempt in range(20):  # bounded, as TradeBoss's retries are
            try:
                cancel_codes.append((await cancel_via.post(CANCEL, cancel, wait=3.0))["code"])
            except httpx.TimeoutException:
                cancel_codes.append("timeout")
            if cancel_codes[-1] in SETTLED:
                break
            before_retry()
            await asyncio.sleep(0.05 * (attempt + 1))
    return code, cancel_codes


async def test_ledger_down_answers_unavailable_fast_then_recovers(
    facade_factory, ledger_factory, open_wallet
):
    wallet = await open_wallet(balance="10.00")
    port = free_port()
    facade: FacadeProcess = facade_factory(ledger_target=f"127.0.0.1:{port}", ledger_deadline="0.5")
    facade.start()
    await facade.wait_ready()
    ledger: LedgerProcess = ledger_factory()
    ledger.target = f"127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            tradeboss = TradeBoss(facade.url, client)
            down = await tradeboss.post(EXECUTE, tradeboss.execute_body(wallet, "1.00"), wait=3.0)
            assert down["code"] in ("LW_5001", "LW_5002")
            assert (await client.get(facade.admin_url + "/readyz")).status_code == 503
            ledger.start()
            await ledger.wait_ready()
            loop = asyncio.get_running_loop()
            give_up_at = loop.time() + 20
            while (answer := await tradeboss.query(wallet))["code"] != "0":
                assert answer["code"] in ("LW_5001", "LW_5002")
                assert loop.time() < give_up_at, "the facade never used the ledger again"
                await asyncio.sleep(0.1)
            assert (await client.get(facade.admin_url + "/readyz")).status_code == 200
    finally:
        facade.terminate()
        if ledger.process is not None:
            ledger.terminate()


async def test_slow_ledger_that_committed_is_reversed_by_the_retried_cancel(
    facade_factory, ledger_server, ledger_stub, open_wallet, db
):
    wallet = await open_wallet(balance="100.00")
    async with SlowProxy(ledger_server.target, delay=1.0) as proxy:
        slow: FacadeProcess = facade_factory(ledger_target=proxy.target, ledger_deadline="0.5")
        slow.start()
        await slow.wait_ready()
        try:
            async with httpx.AsyncClient() as client:
                tradeboss = TradeBoss(slow.url, client)
                body = tradeboss.execute_body(wallet, "25.00")
                cancel = tradeboss.cancel_body(wallet, body["requestUniqueNo"], "25.00")
                # The slowness passes after the first cancel (a network blip).
                code, cancel_codes = await execute_then_cancel_like_tradeboss(
                    tradeboss, tradeboss, body, cancel, lambda: setattr(proxy, "delay", 0)
                )
        finally:
            slow.terminate()
    # The execute committed but its answer came too late: TradeBoss saw a timeout
    # code in time, and its first cancel timed out the same way; a retry settled it.
    assert code == "LW_5002"
    assert cancel_codes[0] == "LW_5002" and cancel_codes[-1] == "0"
    record = await ledger_stub.GetRequest(
        pb.GetRequestRequest(account=wallet.key, request_id=body["requestUniqueNo"])
    )
    assert outcome_of(record.request) == "APPLIED"
    assert record.request.reversed_by == cancel["requestUniqueNo"]
    assert await balance_of(ledger_stub, wallet) == "100.00"
    await assert_books_balance(db)


async def test_slow_ledger_that_did_not_commit_gets_a_tombstone(
    facade_factory, facade, ledger_stub, open_wallet, db
):
    wallet = await open_wallet(balance="100.00")
    hurried: FacadeProcess = facade_factory(ledger_deadline="0.5")
    hurried.start()
    await hurried.wait_ready()
    try:
        async with httpx.AsyncClient() as client:
            fast = TradeBoss(hurried.url, client)
            normal = TradeBoss(facade.url, client)
            body = fast.execute_body(wallet, "25.00")
            async with db.acquire() as blocker:
                # The wallet is locked: the execute cannot finish inside its deadline.
                transaction = blocker.transaction()
                await transaction.start()
                await blocker.execute(
                    "SELECT 1 FROM accounts WHERE company_id = $1 AND customer = $2 FOR UPDATE",
                    wallet.company_id,
                    wallet.customer,
                )
                answer = await fast.post(EXECUTE, body, wait=3.0)
                await ledger_statements_ended(blocker)
                await transaction.rollback()
            assert answer["code"] == "LW_5002"
            cancel = normal.cancel_body(wallet, body["requestUniqueNo"], "25.00")
            assert (await normal.post(CANCEL, cancel))["code"] == "US_0000002"
            # The same execute, delivered late, is refused.
            assert (await normal.post(EXECUTE, body))["code"] == "LW_4003"
    finally:
        hurried.terminate()
    assert await balance_of(ledger_stub, wallet) == "100.00"
    await assert_books_balance(db)


async def test_one_budget_per_webhook_from_its_arrival(
    facade_factory, ledger_server, ledger_stub, open_wallet, db
):
    """Rule 7: TradeBoss's 3 s run from the request's arrival. A body that took
    2 s to arrive leaves the ledger call about 0.8 s, not the 2.5 s that
    FACADE_LEDGER_DEADLINE allows one call: a ledger answering after 1.5 s is
    answered LW_5002 in time, where one call's own deadline would have waited."""
    wallet = await open_wallet(balance="100.00")
    async with SlowProxy(ledger_server.target, delay=1.5) as proxy:
        slow: FacadeProcess = facade_factory(ledger_target=proxy.target, ledger_deadline="2.5")
        slow.start()
        await slow.wait_ready()
        try:
            async with httpx.AsyncClient() as client:
                tradeboss = TradeBoss(slow.url, client)
                body = tradeboss.execute_body(wallet, "5.00")
                encoded = json.dumps(body).encode()

                async def trickle() -> AsyncIterator[bytes]:
                    yield encoded[:10]
                    await asyncio.sleep(2.0)
                    yield encoded[10:]

                answer = await client.post(
                    slow.url + EXECUTE,
                    content=trickle(),
                    headers={**tradeboss.headers(), "content-length": str(len(encoded))},
                    timeout=10,
                )
                assert answer.json()["code"] == "LW_5002"
                # The same call with its body at once has the whole budget and succeeds.
                quick = tradeboss.execute_body(wallet, "5.00")
                assert (await tradeboss.post(EXECUTE, quick))["code"] == "0"
        finally:
            slow.terminate()
    await assert_books_balance(db)
