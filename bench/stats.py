"""Latency and throughput figures of one scenario."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Scenario:
    name: str
    requests: int
    requests_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    clients: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def summarize(
    name: str,
    latencies: list[float],
    errors: int,
    wall_seconds: float,
    clients: int = 0,
    **extra: Any,
) -> Scenario:
    ordered = sorted(latencies)
    return Scenario(
        name=name,
        requests=len(ordered),
        requests_per_second=round(len(ordered) / wall_seconds, 1) if wall_seconds else 0.0,
        p50_ms=round(percentile(ordered, 0.50) * 1000, 2),
        p95_ms=round(percentile(ordered, 0.95) * 1000, 2),
        p99_ms=round(percentile(ordered, 0.99) * 1000, 2),
        max_ms=round((ordered[-1] if ordered else 0.0) * 1000, 2),
        errors=errors,
        clients=clients,
        extra=dict(extra),
    )


def p99_by_second(sent: list[float], latencies: list[float]) -> list[float]:
    """An open loop's p99 (ms) for each whole second of planned send time:
    tells a queue that stays long from one slow moment."""
    seconds: dict[int, list[float]] = {}
    for offset, latency in zip(sent, latencies, strict=True):
        seconds.setdefault(int(offset), []).append(latency)
    return [
        round(percentile(sorted(seconds[second]), 0.99) * 1000, 1) for second in sorted(seconds)
    ]
