"""The three metrics both servers keep of every call they answer (the facade
per webhook, the ledger per gRPC call or batch item): how many are in flight,
how long each took, how many ended with each outcome.

Each label value's child is looked up once and kept: prometheus_client's
`labels()` builds a key and takes a lock on every call, and these run three
times per request on the hot path of both servers.
"""

from __future__ import annotations

from functools import cache

from prometheus_client import Counter, Gauge, Histogram


class CallMetrics:
    def __init__(self, answered: Counter, latency: Histogram, in_flight: Gauge) -> None:
        # answered is labelled (name, outcome); latency and in_flight (name,).
        self._answered = cache(answered.labels)
        self._latency = cache(latency.labels)
        self._in_flight = cache(in_flight.labels)

    def started(self, name: str) -> None:
        self._in_flight(name).inc()

    def ended(self, name: str, outcome: str, seconds: float) -> None:
        self._in_flight(name).dec()
        self._latency(name).observe(seconds)
        self._answered(name, outcome).inc()
