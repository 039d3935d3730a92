"""The baseline: pgbench running the SQL of one ledger adjustment, straight
against the same PostgreSQL, at the best client count it finds."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from ledger_service import embedded_pg

from .stats import Scenario, summarize

# The statements the ledger runs for one OPEN_POSITION, in one transaction:
# lock the wallet, look up the request number, move the balance and append
# the journal entry (one statement), record the request.
ADJUSTMENT_SQL = """
\\set aid random(1, :accounts)
\\set r random(1, 9000000000000000000)
BEGIN;
SELECT digits, coalesce(user_name, '') AS user_name, balance FROM accounts
  WHERE company_id = 1 AND customer = 'b-' || :aid AND currency = 'USD' FOR UPDATE;
SELECT request_unique_no FROM requests
  WHERE company_id = 1 AND customer = 'b-' || :aid AND request_unique_no = 'pgb-' || :r;
WITH moved AS (
  UPDATE accounts SET balance = balance - 0.01, entry_count = entry_count + 1
  WHERE company_id = 1 AND customer = 'b-' || :aid AND currency = 'USD'
  RETURNING balance, entry_count)
INSERT INTO journal_entries (company_id, customer, currency, entry_no, amount, balance_after,
                             cause, request_unique_no, operation_type, trace_id)
SELECT 1, 'b-' || :aid, 'USD', entry_count, -0.01, balance, 'adjustment', 'pgb-' || :r,
       'OPEN_POSITION', '' FROM moved
RETURNING balance_after \\gset
INSERT INTO requests (company_id, customer, request_unique_no, kind, currency, outcome,
                      user_name, operation_type, amount, amount_digits, biz_type, order_id,
                      request_time_ms, client_ip, metadata, applied_amount, balance_after,
                      trace_id)
VALUES (1, 'b-' || :aid, 'pgb-' || :r, 'adjustment', 'USD', 'APPLIED', 'u-' || :aid,
        'OPEN_POSITION', 0.01, 2, 1, 1, 0, '127.0.0.1', '', -0.01, :balance_after, '');
END;
"""

_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")
_FAILED = re.compile(r"number of failed transactions: (\d+)")


def run_pgbench(
    database_url: str, accounts: int, clients: int, duration: float
) -> tuple[Scenario, float]:
    """One pgbench run; the Scenario holds per-transaction latencies."""
    with tempfile.TemporaryDirectory(prefix="pgbench-") as folder:
        script = Path(folder) / "adjustment.sql"
        script.write_text(ADJUSTMENT_SQL)
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
        "baseline (pgbench)",
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
