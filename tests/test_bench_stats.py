"""The bench's per-second view of an open loop (pure function)."""

from bench.stats import p99_by_second


def test_p99_by_second_groups_by_planned_send_time_not_by_arrival():
    # Second 0: 100 answers of 10 ms and one of 900 ms sent at 0.99 s that
    # came back in second 1; second 1: 100 answers of 20 ms.
    sent = [i / 100 for i in range(100)] + [0.99] + [1 + i / 100 for i in range(100)]
    latencies = [0.010] * 100 + [0.900] + [0.020] * 100
    assert p99_by_second(sent, latencies) == [10.0, 20.0]
    # Two slow answers among 102 in a second reach its p99.
    assert p99_by_second([*sent[:101], 0.5], [*latencies[:101], 0.9]) == [900.0]
