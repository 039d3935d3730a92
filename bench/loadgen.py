"""A load generator process: TradeBoss-like traffic for a fixed time, every
answer checked. Run by the bench as `python -m bench.loadgen '<json settings>'`;
prints one JSON object with what it sent, saw and spent."""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPANY_ID = 1
CURRENCY = "USD"
DIGITS = 2


@dataclass
class Tally:
    latencies: array = field(default_factory=lambda: array("d"))
    # Open loop only: each latency's planned send time, seconds from the start.
    sent: array = field(default_factory=lambda: array("d"))
    errors: int = 0  # transport failures, timeouts
    wrong: int = 0  # answers that are not what the ledger owes us
    wrong_examples: list[str] = field(default_factory=list)
    executes_ok: int = 0
    cancels_ok: int = 0
    balances_ok: int = 0

    def failure(self, error: Exception) -> None:
        self.errors += 1
        if len(self.wrong_examples) < 5:
            self.wrong_examples.append(f"error: {error!r}"[:300])

    def mistake(self, text: str) -> None:
        self.wrong += 1
        if len(self.wrong_examples) < 5:
            self.wrong_examples.append(text[:300])


class Accounts:
    """Uniform over all accounts, or `hot_share` of picks among the first `hot`."""

    def __init__(self, count: int, hot: int, hot_share: float) -> None:
        self.count, self.hot, self.hot_share = count, hot, hot_share

    def pick(self) -> int:
        if self.hot and random.random() < self.hot_share:
            return random.randint(1, self.hot)
        return random.randint(1, self.count)


def generator_settings(
    mode: str,
    target: str,
    *,
    accounts: int,
    concurrency: int,
    duration: float,
    prefix: str,
    mix: list[int],
    report: str,
    **overrides: Any,
) -> dict[str, Any]:
    """What a generator is started with (`python -m bench.loadgen '<json>'`):
    uniform accounts and a 2.5 s deadline unless `overrides` say otherwise
    (hot_accounts and hot_share, rate for an open loop, batched for gRPC)."""
    return {
        "mode": mode,
        "target": target,
        "accounts": accounts,
        "hot_accounts": 0,
        "hot_share": 0.0,
        "concurrency": concurrency,
        "duration": duration,
        "deadline": 2.5,
        "prefix": prefix,
        "mix": mix,
        "report": report,
        **overrides,
    }


def _numbers(prefix: str) -> Callable[[], str]:
    counter = iter(range(1, 1 << 62))
    return lambda: f"{prefix}-{next(counter)}"


async def grpc_traffic(settings: dict[str, Any], tally: Tally) -> Callable[[], Awaitable[None]]:
    import grpc

    from ledger_client import pb, pb_grpc
    from ledger_client.movements import MovementSender

    channel = grpc.aio.insecure_channel(settings["target"])
    stub = pb_grpc.LedgerServiceStub(channel)
    # batched: what an internal service with many calls in flight would do,
    # ApplyMovements through the client package's sender.
    sender = MovementSender(stub) if settings.get("batched") else None
    accounts = Accounts(settings["accounts"], settings["hot_accounts"], settings["hot_share"])
    number = _numbers(settings["prefix"])
    operations = (pb.OPERATION_TYPE_OPEN_POSITION, pb.OPERATION_TYPE_NORMAL_CLOSE)

    async def one() -> None:
        index = accounts.pick()
        request = pb.AdjustRequest(
            account=pb.AccountKey(company_id=COMPANY_ID, customer=f"b-{index}", currency=CURRENCY),
            user_name=f"u-{index}",
            request_id=number(),
            operation_type=random.choice(operations),
            amount="0.01",
            amount_digits=DIGITS,
            tradeboss=pb.TradeBossFields(
                biz_type=1, order_id=1, request_time_ms=int(time.time() * 1000), ip="127.0.0.1"
            ),
        )
        if sender is not None:
            answer = await sender.adjust(request, "", settings["deadline"])
        else:
            answer = await stub.Adjust(request, timeout=settings["deadline"])
        if answer.result == pb.ADJUST_RESULT_APPLIED:
            tally.executes_ok += 1
        else:
            tally.mistake(f"Adjust {request.request_id}: {answer}")

    return one


async def http_traffic(settings: dict[str, Any], tally: Tally) -> Callable[[], Awaitable[None]]:
    from .http_client import HttpClient

    client = settings["_client"] = HttpClient(
        settings["target"].rstrip("/") + settings.get("prefix_path", ""), settings["deadline"] + 0.5
    )
    accounts = Accounts(settings["accounts"], settings["hot_accounts"], settings["hot_share"])
    number = _numbers(settings["prefix"])
    executed: list[tuple[int, str]] = []  # (account, number) answered "0", not yet cancelled
    mix = settings["mix"]  # execute, balance, cancel shares
    company = b"companyId: %d\r\n" % COMPANY_ID

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = b"trace: %032x\r\n%stimestamp: %d\r\n" % (
            random.getrandbits(128),
            company,
            int(time.time() * 1000),
        )
        status, answer = await client.post(path, json.dumps(body).encode(), headers)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        parsed: dict[str, Any] = json.loads(answer)
        return parsed

    async def execute() -> None:
        index = accounts.pick()
        request_no = number()
        body = {
            "thirdServerCode": f"b-{index}",
            "userName": f"u-{index}",
            "currency": CURRENCY,
            "bizType": 1,
            "operationType": random.choice(("OPEN_POSITION", "NORMAL_CLOSE")),
            "amount": "0.01",
            "amountDigits": DIGITS,
            "orderId": 1,
            "requestUniqueNo": request_no,
            "requestTime": int(time.time() * 1000),
            "ip": "127.0.0.1",
        }
        answer = await post("/external-system-credit-limit-adjustment", body)
        if answer.get("code") == "0" and answer.get("ok") is True:
            tally.executes_ok += 1
            executed.append((index, request_no))
        else:
            tally.mistake(f"execute {request_no}: {answer}")

    async def balance() -> None:
        index = accounts.pick()
        body = {"thirdServerCode": f"b-{index}", "userName": f"u-{index}", "currency": CURRENCY}
        answer = await post("/get-user-amount", body)
        data = answer.get("data") or {}
        amount = str(data.get("amount", ""))
        if answer.get("code") == "0" and len(amount.partition(".")[2]) == DIGITS:
            tally.balances_ok += 1
        else:
            tally.mistake(f"balance b-{index}: {answer}")

    async def cancel() -> None:
        if not executed:
            return await execute()
        index, target = executed.pop(random.randrange(len(executed)))
        body = {
            "thirdServerCode": f"b-{index}",
            "userName": f"u-{index}",
            "currency": CURRENCY,
            "bizType": 1,
            "amount": "0.01",
            "amountDigits": DIGITS,
            "requestUniqueNo": number(),
            "reverseRequestUniqueNo": target,
            "requestTime": int(time.time() * 1000),
            "ip": "127.0.0.1",
            "cancelRemark": "bench",
        }
        answer = await post("/cancel-external-system-credit-limit-adjustment", body)
        if answer.get("code") == "0":
            tally.cancels_ok += 1
        else:
            tally.mistake(f"cancel of {target}: {answer}")

    kinds = [execute, balance, cancel]

    async def one() -> None:
        await random.choices(kinds, weights=mix)[0]()

    return one


async def closed_loop(
    one: Callable[[], Awaitable[None]], settings: dict[str, Any], tally: Tally
) -> float:
    """`concurrency` callers, each sending its next request when the last is answered."""
    started = time.perf_counter()
    end = started + settings["duration"]

    async def caller() -> None:
        while time.perf_counter() < end:
            sent = time.perf_counter()
            try:
                await one()
            except Exception as error:
                tally.failure(error)
                continue
            tally.latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(caller() for _ in range(settings["concurrency"])))
    return time.perf_counter() - started


async def open_loop(
    one: Callable[[], Awaitable[None]], settings: dict[str, Any], tally: Tally
) -> float:
    """Requests at a fixed rate whatever the answers do; latency counts from the
    planned send time, so a stall is not hidden (no coordinated omission)."""
    interval = 1.0 / settings["rate"]
    started = time.perf_counter()
    end = started + settings["duration"]
    pending: set[asyncio.Task[None]] = set()

    async def timed(planned: float) -> None:
        try:
            await one()
        except Exception as error:
            tally.failure(error)
            return
        tally.latencies.append(time.perf_counter() - planned)
        tally.sent.append(planned - started)

    planned = started
    while planned < end:
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(timed(planned))
        pending.add(task)
        task.add_done_callback(pending.discard)
        planned += interval
    await asyncio.gather(*pending)
    return time.perf_counter() - started


async def main_async(settings: dict[str, Any]) -> dict[str, Any]:
    tally = Tally()
    make = grpc_traffic if settings["mode"] == "grpc" else http_traffic
    one = await make(settings, tally)
    # Warm up before the clock starts, as many requests at once as there are
    # callers, so that each has its connection open (one at a time opened a
    # single connection, and the measured run set up all the others).
    await asyncio.gather(*(one() for _ in range(settings["concurrency"])), return_exceptions=True)
    # Keep the warm-up's answers in the counts (they moved money), not in the latencies.
    tally.latencies = array("d")
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    measured_from = time.time()
    run = open_loop if settings.get("rate") else closed_loop
    wall = await run(one, settings, tally)
    measured_until = time.time()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    if "_client" in settings:
        await settings["_client"].close()
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "latencies": list(tally.latencies),
        "sent": list(tally.sent),
        "errors": tally.errors,
        "wrong": tally.wrong,
        "wrong_examples": tally.wrong_examples,
        "executes_ok": tally.executes_ok,
        "cancels_ok": tally.cancels_ok,
        "balances_ok": tally.balances_ok,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "measured_from": measured_from,
        "measured_until": measured_until,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    """Reports through the file named in settings["report"], written whole
    (a stray print on stdout can never corrupt it)."""
    settings = json.loads(sys.argv[1])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(main_async(settings))
    report = Path(settings["report"])
    partial = report.with_suffix(".partial")
    partial.write_text(json.dumps(result))
    partial.rename(report)


if __name__ == "__main__":
    main()
