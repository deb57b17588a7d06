"""Live latency is reported apart for the warm-up and the steady state, by when each row's event was produced."""

from __future__ import annotations

import pandas as pd

from streaming.predictions import latency_windows


def test_rows_fall_in_the_window_of_their_produce_time_and_earlier_ones_in_none() -> None:
    since = pd.Timestamp("2026-01-01 00:00:00")
    rows = pd.DataFrame(
        {
            "kafka_timestamp": [since - pd.Timedelta(seconds=5), since, since + pd.Timedelta(seconds=9), since + pd.Timedelta(seconds=10)],
            "latency_ms": [30_000.0, 8_000.0, 6_000.0, 500.0],
        }
    )
    w = latency_windows(rows, since, first_seconds=10)
    assert w["warm_up"]["rows"] == 2 and w["warm_up"]["p50"] == 7.0
    assert w["steady"] == {"rows": 1, "p50": 0.5, "p95": 0.5, "p99": 0.5}
    assert w["all"]["rows"] == 3 and w["all"]["p99"] < 30, "the queue produced before `since` is in no window"


def test_an_empty_window_has_no_percentiles() -> None:
    since = pd.Timestamp("2026-01-01")
    rows = pd.DataFrame({"kafka_timestamp": [since], "latency_ms": [100.0]})
    assert latency_windows(rows, since, 60)["steady"] == {"rows": 0, "p50": None, "p95": None, "p99": None}
