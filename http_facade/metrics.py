"""The facade's Prometheus metrics, in prometheus_client's default registry."""

from __future__ import annotations

from decimal import Decimal
from functools import cache

from prometheus_client import Counter, Gauge, Histogram

from ledger_client.call_metrics import CallMetrics

REQUESTS = Counter(
    "facade_requests_total", "Webhook calls answered, by endpoint and code", ["endpoint", "code"]
)
LATENCY = Histogram(
    "facade_request_seconds",
    "Time to answer a webhook call, by endpoint",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0),
)
IN_FLIGHT = Gauge("facade_requests_in_flight", "Webhook calls being answered", ["endpoint"])
WEBHOOKS = CallMetrics(REQUESTS, LATENCY, IN_FLIGHT)
MONEY_MOVED = Counter(
    "facade_money_moved_total",
    "Absolute amount moved by answered webhooks, by currency and operation "
    "(OPEN_POSITION, NORMAL_CLOSE, ABNORMAL_OVERTRADING, reversal)",
    ["currency", "operation"],
)
REJECTIONS = Counter(
    "facade_rejections_total", "Calls refused before the ledger, by reason", ["reason"]
)
CONNECTIONS_REFUSED = Counter(
    "facade_connections_refused_total",
    "Connections closed by a limit (header_too_large, too_many_headers, header_timeout, "
    "idle, too_many_connections, out_of_file_descriptors)",
    ["reason"],
)
LEDGER_DEADLINE_EXPIRIES = Counter(
    "facade_ledger_deadline_expiries_total", "Ledger calls that ran out of time"
)


# Children looked up once: only a wallet's currency reaches it (an applied
# movement), so the set of labels stays as small as the currencies in use.
_money_moved = cache(MONEY_MOVED.labels)


def money_moved(currency: str, operation: str, amount: str) -> None:
    value = abs(Decimal(amount or "0"))
    if value:
        _money_moved(currency, operation).inc(float(value))
