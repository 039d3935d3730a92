"""Compare two checkouts of the ledger and facade side by side:
`python -m bench.ab A_DIR B_DIR` (a checkout each, e.g. a `git worktree` of
the commit before a change and the working tree).

This machine's speed drifts by a fifth from one hour to the next, so two
versions measured one after the other differ by more than most changes do.
Here both run at once on one PostgreSQL, each as its own ledger and facade
with its own load generator, round after round: whatever the machine does
falls on both sides alike, and the ratios B/A of each tier's CPU per request
and of requests per second are what is left. Each side gets half the
machine, so its batches are smaller than in `make bench`: read the ratios,
not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from .__main__ import _open_accounts
from .loadgen import generator_settings
from .stack import Stack, free_port, wait_for_health, wait_for_http

_SIDES = ("A", "B")


def _start_side(stack: Stack, checkout: Path, pool_size: int) -> dict[str, Any]:
    """A ledger and a facade run from `checkout` (its packages come first on
    the path: python -m from that directory)."""
    listen = f"127.0.0.1:{free_port()}"
    ledger = stack.spawn_from(
        checkout,
        ["ledger_service", "serve"],
        {
            "LEDGER_DATABASE_URL": stack.database_url,
            "LEDGER_LISTEN": listen,
            "LEDGER_POOL_MIN_SIZE": str(pool_size),
            "LEDGER_POOL_MAX_SIZE": str(pool_size),
            "LEDGER_LOG_LEVEL": stack.log_level,
            "LEDGER_ADMIN_LISTEN": "",
        },
    )
    wait_for_health(listen)
    port, admin = free_port(), free_port()
    facade = stack.spawn_from(
        checkout,
        ["http_facade.cli"],
        {
            "FACADE_LISTEN": f"127.0.0.1:{port}",
            "FACADE_ADMIN_LISTEN": f"127.0.0.1:{admin}",
            "FACADE_LEDGER_TARGET": listen,
            "FACADE_LOG_LEVEL": stack.log_level,
        },
    )
    wait_for_http(f"http://127.0.0.1:{admin}/readyz")
    return {
        "target": listen,
        "url": f"http://127.0.0.1:{port}",
        "processes": {"ledger": psutil.Process(ledger.pid), "facade": psutil.Process(facade.pid)},
    }


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _round(sides: list[dict[str, Any]], flags: argparse.Namespace, number: int) -> list[dict]:
    """Both load generators at once; each side's req/s and CPU µs per request."""
    reports = [Path(flags.work) / f"ab-{number}-{name}.json" for name in _SIDES]
    generators = []
    for name, side, report in zip(_SIDES, sides, reports, strict=True):
        settings = generator_settings(
            "http",
            side["url"],
            accounts=flags.accounts,
            concurrency=flags.callers,
            duration=flags.seconds,
            prefix=f"ab-{number}-{name}",
            mix=[int(part) for part in flags.mix.split(",")],
            report=str(report),
        )
        generators.append(
            subprocess.Popen([sys.executable, "-m", "bench.loadgen", json.dumps(settings)])
        )
    # CPU over the middle of the round: after the generators' warm-up, before their end.
    time.sleep(2.0)
    before = [{tier: _cpu(p) for tier, p in side["processes"].items()} for side in sides]
    started = time.monotonic()
    time.sleep(max(1.0, flags.seconds - 3.0))
    after = [{tier: _cpu(p) for tier, p in side["processes"].items()} for side in sides]
    window = time.monotonic() - started
    for generator in generators:
        generator.wait()
    results = []
    for report, first, last in zip(reports, before, after, strict=True):
        output = json.loads(report.read_text())
        per_second = len(output["latencies"]) / output["wall_seconds"]
        results.append(
            {
                "per_second": per_second,
                "wrong": output["wrong"],
                "errors": output["errors"],
                **{
                    tier: (last[tier] - first[tier]) / (per_second * window) * 1e6 for tier in first
                },
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("a", type=Path, help="checkout A (the reference)")
    parser.add_argument("b", type=Path, help="checkout B (the change)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0, help="per round")
    parser.add_argument("--callers", type=int, default=32, help="per side")
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--mix", default="70,20,10", help="execute,balance,cancel percentages")
    flags = parser.parse_args(argv)
    stack = Stack()
    flags.work = str(stack.data_dir)
    rows: list[list[dict]] = []
    try:
        stack.start_postgres()
        sides = [_start_side(stack, checkout.resolve(), 16) for checkout in (flags.a, flags.b)]
        asyncio.run(_open_accounts(sides[0]["target"], flags.accounts))
        for number in range(flags.rounds):
            a, b = _round(sides, flags, number)
            rows.append([a, b])
            print(
                f"round {number + 1}: A {a['per_second']:6,.0f} req/s, facade {a['facade']:5.1f} "
                f"ledger {a['ledger']:5.1f} us/req | B {b['per_second']:6,.0f} req/s, facade "
                f"{b['facade']:5.1f} ledger {b['ledger']:5.1f} us/req"
                + (
                    "  WRONG OR FAILED ANSWERS"
                    if a["wrong"] + b["wrong"] + a["errors"] + b["errors"]
                    else ""
                ),
                flush=True,
            )
    finally:
        stack.stop()
    for label, key in (
        ("req/s", "per_second"),
        ("facade CPU/request", "facade"),
        ("ledger CPU/request", "ledger"),
    ):
        ratios = sorted(b[key] / a[key] for a, b in rows)
        print(
            f"B/A {label}: median {statistics.median(ratios):.3f} "
            f"(rounds {', '.join(f'{r:.3f}' for r in ratios)})"
        )
    clean = all(side["wrong"] + side["errors"] == 0 for row in rows for side in row)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
