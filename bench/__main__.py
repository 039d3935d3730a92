"""`make bench`: the whole system against PostgreSQL's own ceiling, in one run.

Starts its own embedded PostgreSQL, ledger service and facade; opens and funds
the accounts; measures the pgbench baseline, gRPC straight to the ledger, and
TradeBoss-like HTTP traffic (uniform, at 80% of its peak, and hot accounts);
checks every answer and then the books; prints a table and writes
bench/results/<date>.json.

With --citus the same scenarios run a second time on a throwaway Citus
cluster (a coordinator and two workers on this machine, LEDGER_DISTRIBUTED),
with pgbench through the coordinator and straight to one worker as its
baselines; the table has both, and each cluster row says its ratio to the
same single-node row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from .baseline import batched_ceiling, best_baseline, run_pgbench
from .loadgen import generator_settings
from .stack import ROOT, Stack
from .stats import Scenario, p99_by_second, summarize

RESULTS = ROOT / "bench" / "results"


def _flags(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run in under a minute")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per scenario")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument(
        "--concurrency",
        default="64,128,256",
        help="callers per load process; with several, each scenario family runs at the one "
        "that answers most (probed briefly, as pgbench's clients are)",
    )
    parser.add_argument("--loaders", type=int, default=1, help="load generator processes")
    parser.add_argument("--ledgers", type=int, default=1, help="ledger service processes")
    parser.add_argument("--facades", type=int, default=1, help="facade processes")
    parser.add_argument("--pool-size", type=int, default=16, help="database pool per ledger")
    parser.add_argument("--mix", default="70,20,10", help="execute,balance,cancel percentages")
    parser.add_argument("--hot-accounts", type=int, default=10)
    parser.add_argument("--hot-share", type=float, default=0.5)
    parser.add_argument("--pgbench-clients", default="4,8,16,32,64")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each scenario (median and spread shown)"
    )
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/<date>.json)")
    parser.add_argument(
        "--citus", action="store_true", help="also run every scenario on a Citus cluster"
    )
    parser.add_argument(
        "--log-level",
        default=Stack.log_level,
        help="both services' log level (INFO, their default: a line per call; "
        "references up to 2026-12-07i ran at WARNING)",
    )
    flags = parser.parse_args(argv)
    if flags.quick:
        flags.duration = min(flags.duration, 4.0)
        flags.accounts = min(flags.accounts, 300)
        flags.pgbench_clients = "8"
        flags.concurrency = flags.concurrency.split(",")[0]
        flags.repeat = 1
    return flags


async def _open_accounts(target: str, count: int) -> None:
    import grpc

    from ledger_client import pb, pb_grpc

    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        queue = iter(range(1, count + 1))

        async def worker() -> None:
            for index in queue:
                key = pb.AccountKey(company_id=1, customer=f"b-{index}", currency="USD")
                await stub.OpenAccount(
                    pb.OpenAccountRequest(account=key, digits=2, user_name=f"u-{index}")
                )
                answer = await stub.Deposit(
                    pb.DepositRequest(
                        account=key, amount="1000000.00", request_id=f"fund-b-{index}"
                    )
                )
                assert answer.result == pb.DEPOSIT_RESULT_APPLIED

        await asyncio.gather(*(worker() for _ in range(32)))


class GeneratorFailed(RuntimeError):
    """A load generator died or reported nothing: which one, and why."""


def collect_report(name: str, process: subprocess.Popen[bytes], report: Path) -> dict[str, Any]:
    """Wait for one generator and read its report file; a clear error otherwise."""
    _, stderr = process.communicate()
    tail = stderr.decode(errors="replace").strip().splitlines()[-15:]
    if process.returncode != 0 or not report.exists():
        raise GeneratorFailed(
            f"{name} failed (exit code {process.returncode}, "
            f"{'no report' if not report.exists() else 'report written'}):\n" + "\n".join(tail)
        )
    try:
        return dict(json.loads(report.read_text()))
    except ValueError as error:
        raise GeneratorFailed(f"{name} wrote an unreadable report: {error}") from None


def _cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


class _TierSampler:
    """Each tier's peak resident memory (MB) and CPU seconds while a scenario
    runs, sampled ten times a second, so CPU can be read over the load
    generators' own measured window (not their start-up and warm-up)."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        import threading

        self.pids = pids
        self.peak = dict.fromkeys(pids, 0.0)
        self.cpu: list[tuple[float, dict[str, float]]] = []  # (time.time(), CPU s per tier)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.cpu.append((time.time(), {tier: _cpu_of(p) for tier, p in self.pids.items()}))
            for tier, pids in self.pids.items():
                for pid in pids:
                    try:
                        rss = psutil.Process(pid).memory_info().rss / 2**20
                    except psutil.NoSuchProcess:
                        continue
                    self.peak[tier] = max(self.peak[tier], round(rss, 1))
            if self._stop.wait(0.1):
                return

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return self.peak

    def cores_used(self, start: float, end: float) -> dict[str, float]:
        """Each tier's CPU cores over the samples inside [start, end]."""
        inside = [sample for sample in self.cpu if start <= sample[0] <= end] or self.cpu
        (t0, first), (t1, last) = inside[0], inside[-1]
        span = max(t1 - t0, 1e-9)
        return {tier: round((last[tier] - first[tier]) / span, 2) for tier in first}


def _postgres_pids(stack: Stack) -> list[int]:
    pids = []
    for data_dir in stack.postgres_data_dirs:
        postmaster = psutil.Process(int((data_dir / "postmaster.pid").read_text().split()[0]))
        pids += [postmaster.pid, *(child.pid for child in postmaster.children(recursive=True))]
    return pids


def _repeated(runs: list[Scenario]) -> Scenario:
    """The median run (by req/s) stands for the scenario; the spread is kept."""
    ordered = sorted(runs, key=lambda run: run.requests_per_second)
    median = ordered[len(ordered) // 2]
    median.extra["runs_per_second"] = [run.requests_per_second for run in runs]
    median.extra["spread_per_second"] = [
        ordered[0].requests_per_second,
        ordered[-1].requests_per_second,
    ]
    median.extra["p99_ms_of_runs"] = [run.p99_ms for run in runs]
    if "p99_ms_by_second" in median.extra:
        median.extra["p99_ms_by_second_of_runs"] = [run.extra["p99_ms_by_second"] for run in runs]
    return median


def _caller_counts(flags: argparse.Namespace) -> list[int]:
    return [int(count) for count in str(flags.concurrency).split(",")]


def _slug(name: str) -> str:
    """Request numbers of a scenario start with this (a run has each once)."""
    return name.replace(" ", "-").replace("%", "pct")


def _load(
    name: str,
    stack: Stack,
    flags: argparse.Namespace,
    mode: str,
    callers: int,
    seconds: float | None = None,
    **overrides: Any,
) -> Scenario:
    """Run the load generators for one scenario (for `seconds`, by default
    --duration); check answers; account CPU."""
    targets = stack.ledger_targets if mode == "grpc" else stack.facade_urls
    mix = [int(part) for part in flags.mix.split(",")]
    processes = []
    reports = stack.data_dir / "reports"
    reports.mkdir(exist_ok=True)
    component_pids = {
        "ledger": stack.pids_of("ledger_service"),
        "facade": stack.pids_of("http_facade.cli"),
        "postgres": _postgres_pids(stack),
    }
    sampler = _TierSampler(component_pids)
    for index in range(flags.loaders):
        prefix = f"{_slug(name)}-{index}"
        settings = generator_settings(
            mode,
            targets[index % len(targets)],
            accounts=flags.accounts,
            concurrency=callers,
            duration=seconds or flags.duration,
            prefix=prefix,
            mix=mix,
            report=str(reports / f"{prefix}.json"),
            **overrides,
        )
        if settings.get("rate"):
            settings["rate"] = settings["rate"] / flags.loaders
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.loadgen", json.dumps(settings)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    outputs = [
        collect_report(f"load generator {index} of {name}", process, reports / f"{prefix}.json")
        for index, (process, prefix) in enumerate(
            zip(processes, [f"{_slug(name)}-{i}" for i in range(flags.loaders)], strict=True)
        )
    ]
    rss = sampler.stop()
    latencies = [latency for output in outputs for latency in output["latencies"]]
    open_loop = {}
    if overrides.get("rate"):
        sent = [offset for output in outputs for offset in output["sent"]]
        open_loop = {
            "offered_rate": overrides["rate"],
            "p99_ms_by_second": p99_by_second(sent, latencies),
        }
    measured = max(output["wall_seconds"] for output in outputs)
    cpu = sampler.cores_used(
        min(o["measured_from"] for o in outputs), max(o["measured_until"] for o in outputs)
    )
    cpu["load generator"] = round(sum(o["cpu_seconds"] for o in outputs) / measured, 2)
    return summarize(
        name,
        latencies,
        errors=sum(o["errors"] for o in outputs),
        wall_seconds=measured,
        clients=callers * flags.loaders,
        wrong_answers=sum(o["wrong"] for o in outputs),
        wrong_examples=[e for o in outputs for e in o["wrong_examples"]][:5],
        executes_ok=sum(o["executes_ok"] for o in outputs),
        cancels_ok=sum(o["cancels_ok"] for o in outputs),
        balances_ok=sum(o["balances_ok"] for o in outputs),
        prefix=f"{_slug(name)}-",
        cpu_cores_used=cpu,
        peak_rss_mb=rss,
        loadgen_peak_rss_mb=round(max(o.get("peak_rss_mb", 0.0) for o in outputs), 1),
        **open_loop,
    )


async def _verify(stack: Stack, scenarios: list[Scenario]) -> dict[str, Any]:
    """The books balance, and the ledger applied exactly what it answered "0" to."""
    import asyncpg
    import grpc

    from ledger_client import pb, pb_grpc

    async with grpc.aio.insecure_channel(stack.ledger_targets[0]) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        summary = pb.ReconcileSummary()
        discrepancies = []
        async for item in stub.Reconcile(pb.ReconcileRequest()):
            if item.HasField("summary"):
                summary = item.summary
            else:
                discrepancies.append(str(item.discrepancy))
    connection = await asyncpg.connect(stack.database_url)
    checks = {}
    try:
        for scenario in scenarios:
            if "executes_ok" not in scenario.extra:
                continue
            prefix = scenario.extra["prefix"]
            applied = await connection.fetchval(
                "SELECT count(*) FROM requests WHERE kind = 'adjustment' AND outcome = 'APPLIED'"
                " AND request_unique_no LIKE $1 || '%'",
                prefix,
            )
            reversed_ = await connection.fetchval(
                "SELECT count(*) FROM requests WHERE kind = 'cancel'"
                " AND outcome IN ('REVERSED', 'ALREADY_REVERSED') AND request_unique_no LIKE $1 || '%'",
                prefix,
            )
            checks[scenario.name] = {
                "executes_answered_0": scenario.extra["executes_ok"],
                "adjustments_applied": applied,
                "cancels_answered_0": scenario.extra["cancels_ok"],
                "cancels_reversed": reversed_,
                "agree": applied == scenario.extra["executes_ok"]
                and reversed_ == scenario.extra["cancels_ok"],
            }
    finally:
        await connection.close()
    return {
        "accounts_checked": summary.accounts_checked,
        "entries_checked": summary.entries_checked,
        "discrepancies": summary.discrepancies,
        "discrepancy_examples": discrepancies[:5],
        "answers_match_books": checks,
        "ok": summary.discrepancies == 0 and all(c["agree"] for c in checks.values()),
    }


def _table(scenarios: list[Scenario], baseline: Scenario) -> str:
    rows = [
        (
            "scenario",
            "callers",
            "req/s (median)",
            "spread",
            "vs ceiling",
            "vs 1 node",
            "p50 ms",
            "p99 ms",
            "max ms",
            "CPU us/req load/facade/ledger/pg",
            "peak RSS MB facade/ledger",
            "wrong",
            "failed",
        )
    ]
    for s in scenarios:
        # Against its own stack's pgbench baseline (the cluster's for a cluster row).
        ratio = s.extra.get("ratio_to_baseline") or (
            s.requests_per_second / baseline.requests_per_second
            if baseline.requests_per_second
            else 0
        )
        to_single = s.extra.get("ratio_to_single_node")
        spread = s.extra.get("spread_per_second")
        cpu = s.extra.get("cpu_cores_used", {})
        per_request = s.extra.get("cpu_us_per_request", {})
        rss = s.extra.get("peak_rss_mb", {})
        rows.append(
            (
                s.name,
                str(s.clients or ""),
                f"{s.requests_per_second:,.0f}",
                f"{spread[0]:,.0f}-{spread[1]:,.0f}" if spread else "",
                f"{ratio:.2f}x",
                f"{to_single:.2f}x" if to_single else "",
                f"{s.p50_ms:.1f}",
                f"{s.p99_ms:.1f}",
                f"{s.max_ms:.1f}",
                "/".join(
                    f"{per_request.get(tier, 0):.0f}"
                    for tier in ("load generator", "facade", "ledger", "postgres")
                )
                if cpu
                else "",
                f"{rss.get('facade', 0):.0f}/{rss.get('ledger', 0):.0f}" if rss else "",
                str(s.extra.get("wrong_answers", 0)),
                str(s.errors),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        )
        for row in rows
    )


def _run_scenarios(
    stack: Stack, flags: argparse.Namespace, suffix: str = ""
) -> tuple[list[Scenario], Scenario, dict[str, Any]]:
    """Every scenario on one started stack: (scenarios, baseline, verification)."""
    scenarios: list[Scenario] = []
    facade_available = (ROOT / "http_facade" / "cli.py").exists()
    stack.start_ledgers(flags.ledgers, flags.pool_size)
    if facade_available:
        stack.start_facades(flags.facades)
    print(f"opening and funding {flags.accounts:,} accounts", flush=True)
    asyncio.run(_open_accounts(stack.ledger_targets[0], flags.accounts))

    print("baseline: pgbench, what the ledger sends for one adjustment", flush=True)
    clients = [int(c) for c in flags.pgbench_clients.split(",")]
    baseline = best_baseline(
        stack.database_url,
        flags.accounts,
        flags.duration,
        clients,
        probe=max(2.0, flags.duration / 4),
    )
    best_clients = baseline.clients
    runs = [baseline]
    for _ in range(flags.repeat - 1):
        runs.append(
            run_pgbench(stack.database_url, flags.accounts, best_clients, flags.duration)[0]
        )
    baseline = _repeated(runs)
    baseline.name += suffix
    scenarios.append(baseline)
    if stack.cluster is not None:
        # Half of these wallets live on the other worker: the worker reaches
        # them itself, as it would for a call sent to the wrong node.
        print("baseline straight to one worker (no coordinator hop)", flush=True)
        scenarios.append(
            run_pgbench(
                stack.worker_url(0),
                flags.accounts,
                best_clients,
                flags.duration,
                name="baseline (pgbench, one worker)" + suffix,
            )[0]
        )
    print("batched ceiling: pgbench, ten adjustments per statement", flush=True)
    batched = batched_ceiling(stack.database_url, flags.accounts, flags.duration, best_clients)
    batched.name += suffix
    scenarios.append(batched)

    probes: list[Scenario] = []

    def best_callers(name: str, mode: str, **overrides: Any) -> int:
        """The caller count that answers most, each probed briefly, as the
        pgbench baseline probes its client counts: a batching design answers
        more the more is in flight, a per-request one does not."""
        counts = _caller_counts(flags)
        if len(counts) == 1:
            return counts[0]
        seconds = max(2.0, flags.duration / 4)
        best, best_per_second = counts[0], -1.0
        for count in counts:
            probe = _load(
                # Named apart: no scenario's request numbers start like a probe's.
                f"probe {count} {name}{suffix}",
                stack,
                flags,
                mode,
                count,
                seconds,
                **overrides,
            )
            print(f"  probe: {count:>4} callers -> {probe.requests_per_second:,.0f} req/s")
            probes.append(probe)
            if probe.requests_per_second > best_per_second:
                best, best_per_second = count, probe.requests_per_second
        return best

    def repeated(name: str, mode: str, callers: int | None = None, **overrides: Any) -> Scenario:
        if callers is None:
            callers = best_callers(name, mode, **overrides)
        name += suffix
        return _repeated(
            [
                _load(
                    f"{name} #{run + 1}" if flags.repeat > 1 else name,
                    stack,
                    flags,
                    mode,
                    callers,
                    **overrides,
                )
                for run in range(flags.repeat)
            ]
        )

    print("gRPC straight to the ledger", flush=True)
    scenarios.append(repeated("grpc direct", "grpc"))
    print("gRPC straight to the ledger, batched by the client (ApplyMovements)", flush=True)
    scenarios.append(repeated("grpc batched", "grpc", batched=True))
    if facade_available:
        print("end to end over HTTP: uniform accounts", flush=True)
        peak = repeated("e2e uniform", "http")
        scenarios.append(peak)
        rate = round(0.8 * peak.requests_per_second, 1)
        print(f"end to end at 80% of the median peak ({rate:,.0f} req/s offered)", flush=True)
        callers = peak.clients // flags.loaders
        scenarios.append(repeated("e2e at-80%-of-peak", "http", callers, rate=rate))
        print(
            f"end to end, hot accounts ({flags.hot_share:.0%} of traffic on {flags.hot_accounts})",
            flush=True,
        )
        scenarios.append(
            repeated(
                "e2e hot-accounts",
                "http",
                callers,
                hot_accounts=flags.hot_accounts,
                hot_share=flags.hot_share,
            )
        )
    print("verifying the books", flush=True)
    verification = asyncio.run(_verify(stack, scenarios + probes))
    for probe in probes:
        if probe.extra.get("wrong_answers") or probe.errors:
            verification["ok"] = False
            verification.setdefault("failed_probes", []).append(probe.name)
    _per_request_figures(scenarios, baseline)
    return scenarios, baseline, verification


def _per_request_figures(scenarios: list[Scenario], baseline: Scenario) -> None:
    for scenario in scenarios:
        cores = scenario.extra.get("cpu_cores_used", {})
        if cores and scenario.requests_per_second:
            scenario.extra["cpu_us_per_request"] = {
                tier: round(used * 1e6 / scenario.requests_per_second, 1)
                for tier, used in cores.items()
            }
    for scenario in scenarios:
        if scenario is baseline:
            continue
        scenario.extra["ratio_to_baseline"] = (
            round(scenario.requests_per_second / baseline.requests_per_second, 3)
            if baseline.requests_per_second
            else None
        )


CITUS_SUFFIX = " on citus"


def main(argv: list[str] | None = None) -> int:
    flags = _flags(argv)
    stack = Stack(log_level=flags.log_level)
    try:
        print("starting PostgreSQL, ledger and facade", flush=True)
        stack.start_postgres(max_connections=100 + flags.ledgers * flags.pool_size + 64)
        scenarios, baseline, verification = _run_scenarios(stack, flags)
    finally:
        stack.stop()
    verifications = {"single node": verification}
    cluster_scenarios: list[Scenario] = []
    if flags.citus:
        cluster = Stack(log_level=flags.log_level)
        try:
            print("starting a Citus cluster (coordinator + 2 workers), ledger and facade")
            cluster.start_citus(workers=2)
            cluster_scenarios, _, verifications["citus"] = _run_scenarios(
                cluster, flags, CITUS_SUFFIX
            )
        finally:
            cluster.stop()
        single = {s.name: s for s in scenarios}
        for scenario in cluster_scenarios:
            same = single.get(scenario.name.removesuffix(CITUS_SUFFIX))
            if same is not None and same.requests_per_second:
                scenario.extra["ratio_to_single_node"] = round(
                    scenario.requests_per_second / same.requests_per_second, 3
                )
    verification = {
        "discrepancies": sum(v["discrepancies"] for v in verifications.values()),
        "accounts_checked": sum(v["accounts_checked"] for v in verifications.values()),
        "answers_match_books": {
            name: check
            for v in verifications.values()
            for name, check in v["answers_match_books"].items()
        },
        "ok": all(v["ok"] for v in verifications.values()),
        "by_stack": verifications,
    }
    everything = scenarios + cluster_scenarios
    valid = verification["ok"] and all(s.extra.get("wrong_answers", 0) == 0 for s in everything)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Which build ran the tiers: the Makefile picks one with PGO and LTO.
            "python_executable": sys.executable,
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(flags).items()},
        "scenarios": [s.as_dict() for s in everything],
        "verification": verification,
        "valid": valid,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = flags.output or RESULTS / f"{datetime.now(UTC):%Y-%m-%dT%H%M%S}.json"
    output.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(_table(everything, baseline))
    print()
    for scenario in everything[1:]:
        cpu = scenario.extra.get("cpu_cores_used", {})
        print(f"{scenario.name}: CPU cores used " + ", ".join(f"{k} {v}" for k, v in cpu.items()))
    for scenario in everything:
        for run, seconds in enumerate(scenario.extra.get("p99_ms_by_second_of_runs", []), 1):
            print(
                f"{scenario.name.split(' #')[0]} run {run}: p99 ms by second sent "
                + " ".join(f"{p99:.0f}" for p99 in seconds)
            )
    print(
        f"\nbooks: {verification['discrepancies']} discrepancies over "
        f"{verification['accounts_checked']:,} accounts; answers match the books: "
        f"{all(c['agree'] for c in verification['answers_match_books'].values())}"
    )
    print(f"result {'VALID' if valid else 'NOT VALID (wrong answers or books)'}: {output}")
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
