"""PostgreSQL restarted under load: the ledger answers UNAVAILABLE meanwhile,
never hangs, reconnects on its own, and the books stay right."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import grpc

from ledger_client import pb, pb_grpc

from .conftest import EmbeddedPostgres, LedgerProcess, assert_books_balance, make_wallet
from .ledger_calls import OPEN, adjust_request, cancel_request, error_detail, outcome_of

DEADLINE = 2.5  # what the facade gives each call


async def test_database_restart_under_load(ledger_factory, own_postgres: EmbeddedPostgres):
    ledger: LedgerProcess = ledger_factory(database_url=own_postgres.url)
    ledger.start()
    await ledger.wait_ready()
    answers: dict[str, int] = {}
    ledger_errors: list[int] = []
    sent: list[pb.AdjustRequest] = []
    stop_load = asyncio.Event()
    async with grpc.aio.insecure_channel(ledger.target) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        wallet = await make_wallet(stub, balance="10000.00")

        async def client() -> None:
            while not stop_load.is_set() and len(sent) < 5000:
                request = adjust_request(wallet, "1.00", OPEN)
                sent.append(request)
                try:
                    answer = await stub.Adjust(request, timeout=DEADLINE)
                    answers[request.request_id] = outcome_of(answer)
                except grpc.aio.AioRpcError as error:
                    # The ledger itself answered (rich details), rather than
                    # the client giving up on a hung call.
                    ledger_errors.append(error_detail(error).reason)

        async def until(condition, within: float = 30.0) -> None:
            loop = asyncio.get_running_loop()
            give_up_at = loop.time() + within
            while not condition():
                assert loop.time() < give_up_at, "condition not met in time"
                await asyncio.sleep(0.05)

        load = [asyncio.create_task(client()) for _ in range(8)]
        await until(lambda: len(answers) >= 50)
        await asyncio.to_thread(own_postgres.stop)
        await until(lambda: "UNAVAILABLE" in ledger_errors)
        answered_before_restart = len(answers)
        await asyncio.to_thread(own_postgres.start)
        await until(lambda: len(answers) >= answered_before_restart + 50)
        stop_load.set()
        await asyncio.gather(*load)

        assert set(ledger_errors) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
        # TradeBoss cancels every execute that got no answer.
        for request in sent:
            if request.request_id not in answers:
                cancel = cancel_request(wallet, request.request_id, "1.00")
                outcome = outcome_of(await stub.CancelAdjustment(cancel, timeout=10))
                assert outcome in ("REVERSED", "NEVER_RECEIVED")
        applied = sum(1 for outcome in answers.values() if outcome == "APPLIED")
        balance = await stub.GetBalance(pb.GetBalanceRequest(account=wallet.key))
        assert Decimal(balance.balance.amount) == Decimal("10000.00") - applied
    assert ledger.terminate() == 0
    pool = await asyncpg.create_pool(own_postgres.url, min_size=1, max_size=1)
    try:
        await assert_books_balance(pool)
    finally:
        await pool.close()
