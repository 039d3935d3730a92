"""Invariant 6: a ledger killed mid-load leaves whole changes or none."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import grpc

from ledger_client import pb, pb_grpc

from .conftest import LedgerProcess, assert_books_balance, ledger_batches, make_wallet
from .ledger_calls import OPEN, adjust_request, cancel_request, outcome_of


async def test_sigkill_under_load_then_restart_keeps_the_books(ledger_factory, db):
    # One batch in flight at a time: the kill lands on full batches.
    ledger: LedgerProcess = ledger_factory(batch_max_in_flight="1")
    ledger.start()
    await ledger.wait_ready()
    async with grpc.aio.insecure_channel(ledger.target) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        wallets = [await make_wallet(stub, balance="1000.00") for _ in range(8)]
        requests = [adjust_request(random.choice(wallets), "1.00", OPEN) for _ in range(600)]
        answers: dict[str, int] = {}
        first_answers = asyncio.Event()

        async def send(request: pb.AdjustRequest) -> None:
            try:
                answer = await stub.Adjust(request, timeout=10)
            except grpc.aio.AioRpcError:
                return  # unknown: TradeBoss will cancel it
            answers[request.request_id] = outcome_of(answer)
            if len(answers) >= 150:
                first_answers.set()

        async with db.acquire() as blocker, blocker.transaction():
            # The first batch to reach this wallet waits on its row while the
            # rest queue behind it (one batch in flight), so the batches that
            # follow are full however fast this machine commits (seen once:
            # 156 movements in 79 batches when the calls came one by one).
            locked = wallets[0]
            await blocker.execute(
                "SELECT 1 FROM accounts WHERE company_id = $1 AND customer = $2"
                " AND currency = $3 FOR UPDATE",
                locked.company_id,
                locked.customer,
                locked.currency,
            )
            load = [asyncio.create_task(send(r)) for r in requests]
            await asyncio.sleep(0.5)
        await asyncio.wait_for(first_answers.wait(), timeout=60)
        batches, movements = await ledger_batches(ledger)
        ledger.kill()
        await asyncio.gather(*load)
    assert 150 <= len(answers) < len(requests), "the kill should land mid-load"
    assert movements / batches > 2, "the batches in flight should hold many movements"

    ledger.start()
    await ledger.wait_ready()
    await assert_books_balance(db)

    async with grpc.aio.insecure_channel(ledger.target) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        # What got an answer is in the ledger, exactly as answered.
        for request in requests:
            number = request.request_id
            if number in answers:
                record = await stub.GetRequest(
                    pb.GetRequestRequest(account=request.account, request_id=number)
                )
                assert outcome_of(record.request) == answers[number]
        # TradeBoss cancels every execute that got no answer.
        unanswered = [r for r in requests if r.request_id not in answers]
        outcomes = []
        for request in unanswered:
            wallet = next(w for w in wallets if w.customer == request.account.customer)
            cancel = cancel_request(wallet, request.request_id, request.amount)
            outcomes.append(outcome_of(await stub.CancelAdjustment(cancel)))
        assert set(outcomes) <= {"REVERSED", "NEVER_RECEIVED"}
        # Each wallet lost exactly 1.00 per execute answered APPLIED.
        for wallet in wallets:
            applied = sum(
                1
                for r in requests
                if r.account.customer == wallet.customer and answers.get(r.request_id) == "APPLIED"
            )
            answer = await stub.GetBalance(pb.GetBalanceRequest(account=wallet.key))
            assert Decimal(answer.balance.amount) == Decimal("1000.00") - applied
    assert ledger.terminate() == 0
    await assert_books_balance(db)
