"""`make bench` in miniature: it runs from scratch and writes a well-formed,
verified result. (No figure is asserted: speed is the benchmark's business.)"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from .conftest import ROOT

SCENARIOS = [
    "baseline (pgbench)",
    "batched ceiling (pgbench x10)",
    "grpc direct",
    "grpc batched",
    "e2e uniform",
    "e2e at-80%-of-peak",
    "e2e hot-accounts",
]


async def test_quick_bench_writes_a_verified_result(tmp_path):
    output = tmp_path / "result.json"
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--duration",
            "1",
            "--accounts",
            "40",
            "--concurrency",
            "8",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert [s["name"] for s in result["scenarios"]] == SCENARIOS
    for scenario in result["scenarios"]:
        assert scenario["requests"] > 0
        assert scenario["errors"] == 0
        assert scenario["p50_ms"] <= scenario["p95_ms"] <= scenario["p99_ms"] <= scenario["max_ms"]
    assert result["scenarios"][1]["extra"]["statements_per_second"] > 0
    for scenario in result["scenarios"][2:]:
        assert scenario["extra"]["wrong_answers"] == 0
        assert scenario["extra"]["ratio_to_baseline"] > 0
        assert "load generator" in scenario["extra"]["cpu_cores_used"]
        assert set(scenario["extra"]["cpu_us_per_request"]) >= {"ledger", "facade", "postgres"}
        assert scenario["extra"]["peak_rss_mb"]["ledger"] > 0
        assert len(scenario["extra"]["runs_per_second"]) == 1  # --quick runs each once
    verification = result["verification"]
    assert verification["discrepancies"] == 0
    assert all(check["agree"] for check in verification["answers_match_books"].values())
    assert result["valid"] is True
    assert "e2e uniform" in done.stdout and "VALID" in done.stdout


def test_a_generator_reports_through_its_file_and_a_failed_one_is_named(tmp_path):
    """Stray prints cannot corrupt a report (it goes through a file, written
    whole); a generator that dies is an error naming it, its exit code and
    the end of what it said."""
    from bench.__main__ import GeneratorFailed, collect_report

    report = tmp_path / "ok.json"
    noisy = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import json, pathlib, sys; print('junk {'); print('more junk', file=sys.stderr);"
            f"pathlib.Path({str(report)!r}).write_text(json.dumps({{'errors': 0}}))",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert collect_report("load generator 0 of test", noisy, report) == {"errors": 0}
    crashed = subprocess.Popen(
        [sys.executable, "-c", "raise SystemExit('cannot reach the facade')"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        collect_report("load generator 1 of e2e uniform", crashed, tmp_path / "missing.json")
    except GeneratorFailed as failure:
        message = str(failure)
    else:
        raise AssertionError("a failed generator went unnoticed")
    assert "load generator 1 of e2e uniform failed (exit code 1, no report)" in message
    assert "cannot reach the facade" in message
