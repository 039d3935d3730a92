"""ledger_client/runtime.py: the collector settings both servers start with."""

from __future__ import annotations

import subprocess
import sys


def test_tune_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    # In a process of its own: the test run's collector is left alone.
    script = (
        "import gc; from ledger_client import runtime; runtime.tune_gc(); "
        "print(gc.get_threshold()[0], gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["50000", "True"]
