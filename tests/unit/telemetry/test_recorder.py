"""The recorder: windows by start time, classes, percentiles, LRS as the fallback, and its bounds."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from switchman.telemetry import TrafficRecorder, TrafficStats


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def recorder(clock: Clock, **kw: float) -> TrafficRecorder:
    return TrafficRecorder(clock=clock, seed=1, **kw)  # type: ignore[arg-type]


def test_classes_successes_and_resets(clock: Clock) -> None:
    rec = recorder(clock)
    t = clock.now - 10
    for code, failed in [(200, False), (201, False), (302, False), (404, False), (503, False), (503, True),
                         (0, False), (200, True)]:
        assert rec.record_request("front", "checkout-v2", t, code, failed=failed, latency_ms=5.0) is None
    stats = rec.window("checkout-v2", t, clock.now)
    assert stats == TrafficStats(
        requests=8, successes=4, errors_5xx=2, resets=2, success_rate=0.5, p50_ms=5.0, p99_ms=5.0, source="als",
        responses_2xx=3, responses_3xx=1, responses_4xx=1,
    )


def test_a_window_counts_entries_by_their_own_start_time(clock: Clock) -> None:
    rec = recorder(clock)
    base = clock.now - 60
    for offset in (0.2, 0.7, 1.5, 2.0, 3.9):
        rec.record_request("front", "c", base + offset, 200)
    assert rec.window("c", base + 0.5, base + 2.0).requests == 2  # 0.7 and 1.5: end excluded, cut buckets exact
    assert rec.window("c", base + 0.5, base + 2.0000001).requests == 3
    assert rec.window("c", base, base + 10).requests == 5
    assert rec.window("c", base + 4, base + 10).requests == 0
    assert rec.window("c", base + 2, base + 2).requests == 0


def test_empty_windows_have_no_rate_and_no_percentiles(clock: Clock) -> None:
    rec = recorder(clock)
    stats = rec.window("nothing", clock.now - 60, clock.now)
    assert (stats.requests, stats.success_rate, stats.p50_ms, stats.p99_ms) == (0, None, None, None)
    rec.record_request("front", "c", clock.now - 1, 0)  # no response: no latency either
    stats = rec.window("c", clock.now - 60, clock.now)
    assert (stats.requests, stats.successes, stats.success_rate, stats.p50_ms) == (1, 0, 0.0, None)


def test_reporters_are_kept_apart(clock: Clock) -> None:
    rec = recorder(clock)
    t = clock.now - 5
    for _ in range(3):
        rec.record_request("front", "checkout-v2", t, 200)
    rec.record_request("checkout-v2-0", "checkout-v2", t, 503)
    assert rec.window("checkout-v2", t, clock.now, reporter="front").requests == 3
    assert rec.window("checkout-v2", t, clock.now, reporter="checkout-v2-0").errors_5xx == 1
    assert rec.window("checkout-v2", t, clock.now, reporter="nobody").requests == 0
    both = rec.window("checkout-v2", t, clock.now)
    assert (both.requests, both.errors_5xx) == (4, 1)
    assert rec.series() == [("checkout-v2-0", "checkout-v2"), ("front", "checkout-v2")]


def test_percentiles_are_nearest_rank(clock: Clock) -> None:
    rec = recorder(clock)
    t = clock.now - 30
    for ms in range(100, 0, -1):
        rec.record_request("front", "c", t + ms / 1000, 200, latency_ms=float(ms))
    stats = rec.window("c", t, clock.now)
    assert (stats.p50_ms, stats.p99_ms) == (50.0, 99.0)


def test_a_full_bucket_keeps_a_uniform_sample_and_exact_counts(clock: Clock) -> None:
    rec = recorder(clock, max_samples_per_bucket=50)
    t = float(int(clock.now) - 30)
    for i in range(5000):  # one bucket: latencies 0.01 .. 50 ms, a tenth of them 5xx
        rec.record_request("front", "c", t + i / 10_000, 503 if i % 10 == 0 else 200, latency_ms=(i + 1) / 100)
    whole = rec.window("c", t, t + 1)
    assert (whole.requests, whole.errors_5xx, whole.successes) == (5000, 500, 4500)  # from the totals
    assert whole.p50_ms is not None and 15 < whole.p50_ms < 35  # from 50 samples of a uniform 0-50 ms
    assert whole.p99_ms is not None and whole.p99_ms >= whole.p50_ms
    half = rec.window("c", t, t + 0.25)  # the window cuts the bucket: scaled from the sample
    assert 1500 < half.requests < 3500


def test_load_reports_count_by_arrival_and_stand_in_for_missing_access_logs(clock: Clock) -> None:
    rec = recorder(clock)
    start = clock.now
    for successes, errors in [(10, 0), (8, 2), (0, 0)]:
        clock.now += 1
        assert rec.record_load("front", "c", successes=successes, errors=errors, issued=successes + errors,
                               interval=1.0) is None
    stats = rec.window("c", start, clock.now + 0.001)
    assert stats == TrafficStats(requests=20, successes=18, errors_5xx=2, resets=0, success_rate=0.9,
                                 p50_ms=None, p99_ms=None, source="lrs")
    assert [r.successes for r in rec.load_reports("c", start, clock.now)] == [10, 8]  # the last arrived at the end
    rec.record_request("front", "c", clock.now - 0.5, 200)  # access logs win where they have entries
    assert rec.window("c", start, clock.now + 0.001).source == "als"
    assert rec.window("c", start, clock.now - 1).source == "lrs"


def test_entries_outside_the_horizon_are_dropped_and_old_ones_forgotten(clock: Clock) -> None:
    rec = recorder(clock, horizon=60)
    assert rec.record_request("front", "c", clock.now - 61, 200) == "horizon"
    assert rec.record_request("front", "c", clock.now + 60, 200) == "horizon"  # far ahead of our clock
    assert rec.record_request("front", "c", clock.now - 59, 200) is None
    assert rec.record_request("front", "c", clock.now + 2, 200) is None  # a little ahead: another host's clock
    rec.record_load("front", "c", successes=1, errors=0)
    clock.now += 120
    assert rec.window("c", 0, clock.now + 10).requests == 0
    assert rec.load_reports("c", 0, clock.now + 10) == []


def test_series_are_capped_and_idle_ones_make_room(clock: Clock) -> None:
    rec = recorder(clock, horizon=60, max_series=2)
    assert rec.record_request("a", "c", clock.now, 200) is None
    assert rec.record_load("b", "c", successes=1, errors=0) is None
    assert rec.record_request("c", "c", clock.now, 200) == "series"
    assert rec.record_load("a", "d", successes=1, errors=0) == "series"
    assert rec.record_request("a", "c", clock.now, 200) is None  # an existing series takes more
    clock.now += 61
    assert rec.record_request("c", "c", clock.now, 200) is None  # a and b were idle for the horizon
    assert rec.series() == [("c", "c")]


def test_load_reports_are_capped_per_series(clock: Clock) -> None:
    rec = recorder(clock, max_reports_per_series=3)
    for n in range(10):
        clock.now += 0.01
        rec.record_load("front", "c", successes=n, errors=0)
    assert [r.successes for r in rec.load_reports("c", 0, clock.now + 1)] == [7, 8, 9]


def _fill(rec: TrafficRecorder, clock: Clock, per_bucket: int, reports: int = 1) -> None:
    """Every bucket of one series over the whole horizon, ``per_bucket`` entries and ``reports`` reports each."""
    start = clock.now
    for second in range(int(rec.horizon) + 1):
        clock.now = start + second
        for i in range(per_bucket):
            rec.record_request("front", "c", clock.now - 1 + i / per_bucket, 200, latency_ms=1.0 + i)
        for _ in range(reports):
            rec.record_load("front", "c", successes=per_bucket * 1000, errors=0, issued=per_bucket * 1000)


def test_one_series_holds_what_the_module_says_at_most() -> None:
    """Defaults: 600 s of 1 s buckets of 128 entries and 1,200 reports: about 1.6 MB, whatever the rate."""
    clock = Clock()
    rec = TrafficRecorder(clock=clock, seed=1)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _fill(rec, clock, per_bucket=200, reports=3)  # more than a bucket keeps, more reports than are kept
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1.7e6, held
    stats = rec.window("c", clock.now - 30, clock.now)
    assert stats.requests == 30 * 200  # counts stay exact past the sample cap
    assert len(rec.load_reports("c", 0, clock.now + 1)) == 1200


def test_samples_per_bucket_are_capped() -> None:
    clock = Clock()
    small = TrafficRecorder(clock=clock, seed=1, horizon=20, max_samples_per_bucket=8)
    _fill(small, clock, per_bucket=100)
    ring = small._series["c"]["front"].ring
    assert ring is not None
    assert max(len(b.starts) for b in ring if b is not None) == 8
    assert sum(b is not None for b in ring) <= 20 + 6
