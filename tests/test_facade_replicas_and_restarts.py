"""Faults across the whole deployment: two facades on two ledger replicas
given the same requests, and PostgreSQL restarted under TradeBoss's traffic."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import httpx

from ledger_client import pb_grpc

from .conftest import (
    EmbeddedPostgres,
    FacadeProcess,
    LedgerProcess,
    assert_books_balance,
    make_wallet,
)
from .ledger_calls import balance_of
from .test_simulator import _simulate, _trades_recorded, _until
from .tradeboss import CANCEL, EXECUTE, TradeBoss


async def test_two_facades_two_ledgers_same_requests_apply_once(
    facade, ledger_factory, facade_factory, ledger_stub, db
):
    second_ledger: LedgerProcess = ledger_factory()
    second_ledger.start()
    await second_ledger.wait_ready()
    second_facade: FacadeProcess = facade_factory(ledger_target=second_ledger.target)
    second_facade.start()
    await second_facade.wait_ready(path="/readyz")
    try:
        wallet = await make_wallet(ledger_stub, balance="30.00")
        async with httpx.AsyncClient() as client:
            sides = [TradeBoss(facade.url, client), TradeBoss(second_facade.url, client)]
            executes = [sides[0].execute_body(wallet, "1.00") for _ in range(40)]
            answers = await asyncio.gather(
                *(side.post(EXECUTE, body) for body in executes for side in sides)
            )
            for first, second in zip(answers[::2], answers[1::2], strict=True):
                assert first["code"] == second["code"]
            cancels = [
                sides[0].cancel_body(wallet, body["requestUniqueNo"], "1.00")
                for body in executes[::4]
            ]
            cancelled = await asyncio.gather(
                *(side.post(CANCEL, body) for body in cancels for side in sides)
            )
            for first, second in zip(cancelled[::2], cancelled[1::2], strict=True):
                assert first["code"] == second["code"]
        applied = sum(1 for a in answers[::2] if a["code"] == "0")
        reversed_ = sum(
            1
            for body, answer in zip(executes, answers[::2], strict=True)
            if answer["code"] == "0"
            and any(c["reverseRequestUniqueNo"] == body["requestUniqueNo"] for c in cancels)
        )
        # 30.00 funds 30 debits; refusals are the rest.
        assert applied == 30
        assert await balance_of(ledger_stub, wallet) == f"{30 - applied + reversed_}.00"
    finally:
        second_facade.terminate()
        second_ledger.terminate()
    await assert_books_balance(db)


async def test_postgres_restart_under_tradeboss_traffic(
    own_postgres: EmbeddedPostgres, ledger_factory, facade_factory
):
    ledger: LedgerProcess = ledger_factory(database_url=own_postgres.url)
    ledger.start()
    await ledger.wait_ready()
    facade: FacadeProcess = facade_factory(ledger_target=ledger.target)
    facade.start()
    await facade.wait_ready(path="/readyz")
    pool = await asyncpg.create_pool(own_postgres.url, min_size=1, max_size=2)
    try:
        async with grpc.aio.insecure_channel(ledger.target) as channel:
            stub = pb_grpc.LedgerServiceStub(channel)
            wallets = [await make_wallet(stub, balance="100.00") for _ in range(3)]
        simulation = asyncio.create_task(asyncio.to_thread(_simulate, facade.url, wallets, 6))
        await _until(lambda: _trades_recorded(pool, [w.customer for w in wallets]), 20)
        await pool.close()
        await asyncio.to_thread(own_postgres.stop)

        async def unavailable_answered() -> bool:
            async with httpx.AsyncClient() as client:
                answer = await TradeBoss(facade.url, client).query(wallets[0])
            return answer["code"] in ("LW_5001", "LW_5002")

        await _until(unavailable_answered, 20)
        await asyncio.to_thread(own_postgres.start)
        done = await simulation
    finally:
        facade.terminate()
        ledger.terminate()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the deployment agrees with TradeBoss" in done.stdout
    pool = await asyncpg.create_pool(own_postgres.url, min_size=1, max_size=1)
    try:
        await assert_books_balance(pool)
    finally:
        await pool.close()
