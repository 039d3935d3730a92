"""What both servers (ledger, facade) do to the Python runtime before serving.

The garbage collector: every object alive at start-up (modules, settings, the
app) is moved out of its reach (gc.freeze), and the youngest generation is
collected every 50,000 allocations instead of every 700. A request allocates
a few hundred short-lived objects that reference counting frees by itself;
with the default threshold the collector ran every few requests, and each
older-generation pass walked the start-up objects again, in the middle of
someone's answer. Measured in the bench (docs/performance-history.md, the
round of 2026-12-04): more requests per core and a shorter tail at 80% of peak.
"""

from __future__ import annotations

import gc

_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_YOUNG_THRESHOLD, middle, old)
