"""`ledger-simulate` (TradeBoss's behaviour) against a deployment: calm, and
with the ledger SIGKILLed and restarted under it."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import grpc
import httpx

from ledger_client import pb_grpc

from .conftest import ROOT, FacadeProcess, LedgerProcess, assert_books_balance, make_wallet


def _simulate(facade_url: str, wallets, seconds: float) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable,
        "-m",
        "http_facade.simulator",
        "--facade",
        facade_url,
        "--company-id",
        "1",
        "--duration",
        str(seconds),
        "--concurrency",
        "6",
        "--seed",
        "7",
    ]
    for wallet in wallets:
        args += ["--wallet", f"{wallet.customer}:{wallet.user_name}:{wallet.currency}:2"]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)


async def _until(condition, within: float) -> None:
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + within
    while not await condition():
        assert loop.time() < give_up_at, "condition not met in time"
        await asyncio.sleep(0.05)


async def _trades_recorded(db, customers: list[str]) -> bool:
    async with db.acquire() as connection:
        count = await connection.fetchval(
            "SELECT count(*) FROM requests WHERE customer = ANY($1) AND kind = 'adjustment'",
            customers,
        )
    return bool(count >= 20)


async def _facade_not_ready(url: str) -> bool:
    async with httpx.AsyncClient() as client:
        return (await client.get(url + "/readyz")).status_code == 503


async def test_simulated_tradeboss_agrees_with_a_calm_deployment(facade, ledger_stub, db):
    wallets = [await make_wallet(ledger_stub, balance="50.00") for _ in range(3)]
    done = await asyncio.to_thread(_simulate, facade.url, wallets, 3)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the deployment agrees with TradeBoss" in done.stdout
    assert "external-system-credit-limit-adjustment 0:" in done.stdout
    await assert_books_balance(db)


async def test_ledger_killed_and_restarted_under_tradeboss(ledger_factory, facade_factory, db):
    """Invariants 1, 2 and 6 at once: whatever was in flight when the ledger
    died is either applied and answered, or cancelled by TradeBoss's retries."""
    ledger: LedgerProcess = ledger_factory()
    ledger.start()
    await ledger.wait_ready()
    facade: FacadeProcess = facade_factory(ledger_target=ledger.target)
    facade.start()
    await facade.wait_ready(path="/readyz")
    try:
        async with grpc.aio.insecure_channel(ledger.target) as channel:
            stub = pb_grpc.LedgerServiceStub(channel)
            wallets = [await make_wallet(stub, balance="100.00") for _ in range(3)]
        simulation = asyncio.create_task(asyncio.to_thread(_simulate, facade.url, wallets, 6))
        customers = [wallet.customer for wallet in wallets]
        await _until(lambda: _trades_recorded(db, customers), 20)
        ledger.kill()
        await _until(lambda: _facade_not_ready(facade.admin_url), 20)
        ledger.start()
        await ledger.wait_ready()
        done = await simulation
    finally:
        facade.terminate()
        ledger.terminate()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the deployment agrees with TradeBoss" in done.stdout
    # The kill was felt: some calls got the ledger-unavailable or timeout code.
    assert "LW_5001" in done.stdout or "LW_5002" in done.stdout, done.stdout
    await assert_books_balance(db)
