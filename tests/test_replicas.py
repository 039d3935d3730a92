"""Two ledger replicas on one database: the same requests through both apply once."""

from __future__ import annotations

import asyncio
import random
import urllib.request

import grpc

from ledger_client import open_channel, pb, pb_grpc

from .conftest import LedgerProcess, assert_books_balance, make_wallet
from .ledger_calls import CLOSE, OPEN, adjust_request, cancel_request, outcome_of


async def test_same_requests_through_two_replicas_apply_once(ledger_server, ledger_factory, db):
    second: LedgerProcess = ledger_factory()
    second.start()
    await second.wait_ready()
    try:
        async with (
            grpc.aio.insecure_channel(ledger_server.target) as one,
            grpc.aio.insecure_channel(second.target) as two,
        ):
            stubs = [pb_grpc.LedgerServiceStub(one), pb_grpc.LedgerServiceStub(two)]
            wallets = [await make_wallet(stubs[0], balance="50.00") for _ in range(4)]
            executes = [
                adjust_request(random.choice(wallets), "1.00", random.choice([OPEN, CLOSE]))
                for _ in range(150)
            ]
            by_customer = {w.customer: w for w in wallets}
            cancels = [
                cancel_request(by_customer[e.account.customer], e.request_id, "1.00")
                for e in executes[::3]
            ]
            # Every execute and every cancel is delivered to both replicas at once.
            execute_answers = await asyncio.gather(
                *(stub.Adjust(e) for e in executes for stub in stubs)
            )
            cancel_answers = await asyncio.gather(
                *(stub.CancelAdjustment(c) for c in cancels for stub in stubs)
            )
            for first, repeat in zip(execute_answers[::2], execute_answers[1::2], strict=True):
                assert outcome_of(first) == outcome_of(repeat)
                assert first.applied_amount == repeat.applied_amount
                assert first.replayed != repeat.replayed  # one applied, one replayed
            for first, repeat in zip(cancel_answers[::2], cancel_answers[1::2], strict=True):
                assert outcome_of(first) == outcome_of(repeat)
            # Each wallet: 50 minus opens plus closes, less what the cancels reversed.
            cancelled = {c.target_request_id for c in cancels}
            for wallet in wallets:
                expected = 50
                for execute, answer in zip(executes, execute_answers[::2], strict=True):
                    if execute.account.customer != wallet.customer:
                        continue
                    if outcome_of(answer) == "APPLIED" and execute.request_id not in cancelled:
                        expected += -1 if execute.operation_type == OPEN else 1
                balance = await stubs[1].GetBalance(pb.GetBalanceRequest(account=wallet.key))
                assert balance.balance.amount == f"{expected}.00"
    finally:
        assert second.terminate() == 0
    await assert_books_balance(db)


def _calls_answered(metrics_url: str) -> float:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('ledger_requests_total{method="GetBalance"')
    )


async def test_the_client_package_spreads_calls_over_every_replica(ledger_server, ledger_factory):
    """round_robin over every address a target names (here two replicas in an
    ipv4: list; behind a DNS name with several records, the same): both
    receive calls, where pick_first sent everything to one."""
    second: LedgerProcess = ledger_factory()
    second.start()
    await second.wait_ready()
    try:
        before = [_calls_answered(p.metrics_url) for p in (ledger_server, second)]
        ports = [p.target.rsplit(":", 1)[1] for p in (ledger_server, second)]
        target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)
        channel = open_channel(target)
        try:
            stub = pb_grpc.LedgerServiceStub(channel)
            wallet = await make_wallet(stub, balance="1.00")
            for _ in range(20):
                await stub.GetBalance(pb.GetBalanceRequest(account=wallet.key), timeout=5)
        finally:
            await channel.close()
        after = [_calls_answered(p.metrics_url) for p in (ledger_server, second)]
        spread = [now - then for now, then in zip(after, before, strict=True)]
        assert sum(spread) == 20 and min(spread) >= 5, spread
    finally:
        second.terminate()
