"""The ledger service's Prometheus metrics, all in one place.

They live in prometheus_client's default registry (the library's idiom), and
are served by `serve_metrics` on the ledger's own HTTP port.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import asyncpg
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ledger_client.call_metrics import CallMetrics

REQUESTS = Counter(
    "ledger_requests_total", "gRPC calls answered, by method and outcome", ["method", "outcome"]
)
LATENCY = Histogram(
    "ledger_request_seconds",
    "Time to answer a gRPC call, by method",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge("ledger_requests_in_flight", "gRPC calls being answered", ["method"])
CALLS = CallMetrics(REQUESTS, LATENCY, IN_FLIGHT)
MONEY_MOVED = Counter(
    "ledger_money_moved_total",
    "Absolute amount moved in balances, by currency and operation "
    "(OPEN_POSITION, NORMAL_CLOSE, ABNORMAL_OVERTRADING, reversal, deposit, withdrawal)",
    ["currency", "operation"],
)
TOMBSTONES = Counter(
    "ledger_tombstones_total", "Tombstones written by cancels of never-received requests"
)
CANCELS = Counter("ledger_cancels_total", "Cancels answered, by outcome", ["outcome"])
AMOUNT_DIGITS_MISMATCHES = Counter(
    "ledger_amount_digits_mismatches_total",
    "Executes whose amountDigits differs from the wallet's scale (a misconfigured currency?)",
    ["currency"],
)
REFUSALS_RECORDED = Counter(
    "ledger_refusals_recorded_total",
    "Executes recorded with a refusal, by outcome and field",
    ["outcome", "field"],
)
TRANSACTION_RETRIES = Counter(
    "ledger_transaction_retries_total",
    "Transactions run again, by reason (conflict: deadlock, serialization or "
    "unique-key race; unavailable: database connection lost)",
    ["reason"],
)
DEADLINE_EXPIRIES = Counter(
    "ledger_deadline_expiries_total", "Calls whose deadline ran out inside the ledger"
)

BATCH_SIZE = Histogram(
    "ledger_batch_size",
    "Executes and cancels committed together in one transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
READ_BATCH_SIZE = Histogram(
    "ledger_read_batch_size",
    "Wallets whose balances were read together in one statement",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)

JOURNAL_WATCHERS = Gauge("ledger_journal_watchers", "WatchJournal streams open on this ledger")
JOURNAL_ENTRIES_SENT = Counter(
    "ledger_journal_entries_sent_total", "Journal entries sent to WatchJournal streams"
)
JOURNAL_NOTIFIES = Counter(
    "ledger_journal_notifies_total",
    "NOTIFY ledger_journal sent after commits (at most one per 20 ms: commits fold together)",
)
JOURNAL_WAKEUPS = Counter(
    "ledger_journal_wakeups_total",
    "Notifications on ledger_journal received (from any replica), each waking every watcher",
)


def money_moved(currency: str, operation: str, amount: Decimal) -> None:
    if amount:
        MONEY_MOVED.labels(currency, operation).inc(float(abs(amount)))


class PoolCollector(Collector):
    """Reads the asyncpg pool's size at scrape time."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = self._pool.get_size()
        idle = self._pool.get_idle_size()
        yield GaugeMetricFamily("ledger_db_pool_size", "Open database connections", value=size)
        yield GaugeMetricFamily(
            "ledger_db_pool_in_use", "Database connections lent out", value=size - idle
        )
        yield GaugeMetricFamily(
            "ledger_db_pool_max_size",
            "Most database connections allowed",
            value=self._pool.get_max_size(),
        )


def watch_pool(pool: asyncpg.Pool) -> None:
    """The pool's size and use appear on /metrics from now on."""
    REGISTRY.register(PoolCollector(pool))
