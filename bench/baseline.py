"""The baseline: pgbench running the SQL of one ledger adjustment, straight
against the same PostgreSQL, at the best client count it finds."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from ledger_service import embedded_pg

from .stats import Scenario, summarize

# Exactly what the ledger sends for one OPEN_POSITION (adjustments.py): one
# call of ledger_adjust with the same arguments, one transaction, one round
# trip. This is the honest per-request ceiling: no design that spends one
# PostgreSQL transaction per request can beat it.
ADJUSTMENT_SQL = """
\\set aid random(1, :accounts)
\\set r random(1, 9000000000000000000)
SELECT * FROM ledger_adjust(
    p_company_id => 1, p_customer => 'b-' || :aid, p_request_unique_no => 'pgb-' || :r,
    p_currency => 'USD', p_user_name => 'u-' || :aid, p_operation_type => 'OPEN_POSITION',
    p_amount => 0.01, p_amount_as_sent => '0.01', p_amount_digits => 2, p_biz_type => 1,
    p_order_id => 1, p_request_time_ms => 0, p_client_ip => '127.0.0.1', p_metadata => '',
    p_header_timestamp_ms => NULL, p_input_notes => NULL, p_refusal => NULL,
    p_refused_field => NULL, p_delta => -0.01, p_may_overdraw => false,
    p_overtrading_policy => NULL, p_balance_limit => 10000000000000000000, p_trace_id => '');
"""

# The batched ceiling: ten adjustments in one statement, one transaction, on
# ten consecutive wallets locked in ascending order (so two batches never
# deadlock). What group commit could reach; ratios are not against it.
BATCH = 10
BATCHED_SQL = f"""
\\set base random(1, :accounts - {BATCH})
\\set r random(1, 9000000000000000000)
SELECT count((ledger_adjust(
    p_company_id => 1, p_customer => 'b-' || a, p_request_unique_no => 'pgb-' || :r || '-' || a,
    p_currency => 'USD', p_user_name => 'u-' || a, p_operation_type => 'OPEN_POSITION',
    p_amount => 0.01, p_amount_as_sent => '0.01', p_amount_digits => 2, p_biz_type => 1,
    p_order_id => 1, p_request_time_ms => 0, p_client_ip => '127.0.0.1', p_metadata => '',
    p_header_timestamp_ms => NULL, p_input_notes => NULL, p_refusal => NULL,
    p_refused_field => NULL, p_delta => -0.01, p_may_overdraw => false,
    p_overtrading_policy => NULL, p_balance_limit => 10000000000000000000, p_trace_id => ''
)).status)
FROM generate_series(:base, :base + {BATCH - 1}) AS a;
"""

_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")
_FAILED = re.compile(r"number of failed transactions: (\d+)")


def run_pgbench(
    database_url: str,
    accounts: int,
    clients: int,
    duration: float,
    sql: str = ADJUSTMENT_SQL,
    name: str = "baseline (pgbench)",
) -> tuple[Scenario, float]:
    """One pgbench run; the Scenario holds per-transaction latencies."""
    with tempfile.TemporaryDirectory(prefix="pgbench-") as folder:
        script = Path(folder) / "adjustment.sql"
        script.write_text(sql)
        done = subprocess.run(
            [
                str(embedded_pg.bin_dir() / "pgbench"),
                "--no-vacuum",
                "--protocol=prepared",
                f"--client={clients}",
                f"--jobs={min(clients, 2)}",
                f"--time={max(1, round(duration))}",
                f"--define=accounts={accounts}",
                f"--file={script}",
                "--log",
                f"--log-prefix={folder}/latency",
                database_url,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 120,
            cwd=folder,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed:\n{done.stdout}\n{done.stderr}")
        latencies = []
        for log in Path(folder).glob("latency.*"):
            for line in log.read_text().splitlines():
                latencies.append(int(line.split()[2]) / 1e6)
        failed = _FAILED.search(done.stdout)
        tps_match = _TPS.search(done.stdout)
        tps = float(tps_match.group(1)) if tps_match else 0.0
    scenario = summarize(
        name,
        latencies,
        errors=int(failed.group(1)) if failed else 0,
        wall_seconds=duration,
        clients=clients,
    )
    return scenario, tps


def best_baseline(
    database_url: str, accounts: int, duration: float, client_counts: list[int], probe: float
) -> Scenario:
    """Probe each client count briefly, then measure the best one for duration."""
    best_clients, best_tps = client_counts[0], -1.0
    for clients in client_counts:
        _, tps = run_pgbench(database_url, accounts, clients, probe)
        print(f"  pgbench probe: {clients:>3} clients -> {tps:,.0f} tps", flush=True)
        if tps > best_tps:
            best_clients, best_tps = clients, tps
    scenario, _ = run_pgbench(database_url, accounts, best_clients, duration)
    return scenario


def batched_ceiling(database_url: str, accounts: int, duration: float, clients: int) -> Scenario:
    """Adjustments per second when they travel ten to a statement."""
    scenario, tps = run_pgbench(
        database_url, accounts, clients, duration, BATCHED_SQL, "batched ceiling (pgbench x10)"
    )
    scenario.requests_per_second = round(tps * BATCH, 1)
    scenario.extra["statements_per_second"] = tps
    return scenario
