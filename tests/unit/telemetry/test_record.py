"""What a replica publishes: per-second summaries from its recorder, the record's JSON, and its size bound."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from switchman.store import MAX_STATE_BYTES
from switchman.telemetry import LatencyHistogram, TelemetryRecord, TrafficRecorder, TrafficSummary, summarize
from switchman.telemetry.histogram import BINS
from switchman.telemetry.record import encode_record, encoded_size, summarize_seconds

NOW = 1_000_000.25


def recorder() -> TrafficRecorder:
    return TrafficRecorder(clock=lambda: NOW, seed=1)


def busy(rec: TrafficRecorder, reporter: str, cluster: str, seconds: int, rate: int, *, seed: int = 3) -> None:
    """``rate`` requests a second for the last ``seconds`` seconds: 1 in 10 a 503, 1 in 50 a reset."""
    rng = random.Random(seed)
    for second in range(int(NOW) - seconds, int(NOW)):
        for i in range(rate):
            code = 503 if i % 10 == 0 else 200
            rec.record_request(reporter, cluster, second + i / rate, code, failed=i % 50 == 1,
                               latency_ms=rng.lognormvariate(1.5, 0.7))


def test_seconds_add_up_to_the_window_they_cover() -> None:
    rec = recorder()
    busy(rec, "front", "checkout-v2", 20, 37)
    rec.record_request("front", "checkout-v2", NOW - 0.1, 200, latency_ms=1.0)  # the current second
    seconds = summarize_seconds(rec, "checkout-v2", "front", int(NOW) - 30, int(NOW))
    assert list(seconds) == list(range(int(NOW) - 20, int(NOW) + 1))  # only the seconds with traffic
    first, last = int(NOW) - 12, int(NOW) - 2
    whole = summarize(rec, "checkout-v2", first, last, reporter="front")
    added = TrafficSummary()
    for second in range(first, last):
        added.add(seconds[second])
    assert added == whole
    stats = whole.stats()
    assert (stats.requests, stats.errors_5xx, stats.source) == (370, 40, "als")
    exact = rec.window("checkout-v2", first, last)  # the recorder's own answer: the same but for percentiles
    assert replace(stats, p50_ms=exact.p50_ms, p99_ms=exact.p99_ms) == exact
    for got, want in ((stats.p50_ms, exact.p50_ms), (stats.p99_ms, exact.p99_ms)):
        assert got is not None and want is not None and abs(got / want - 1) < 0.045


def test_load_reports_count_by_the_second_they_arrived_and_stand_in_without_access_logs() -> None:
    now = [NOW - 5.5]
    rec = TrafficRecorder(clock=lambda: now[0])
    rec.record_load("side", "checkout-v2", successes=40, errors=2)
    now[0] = NOW - 4.5
    rec.record_load("side", "checkout-v2", successes=38, errors=0)
    now[0] = NOW
    seconds = summarize_seconds(rec, "checkout-v2", "side", int(NOW) - 30, int(NOW))
    assert {s: (b.lrs_successes, b.lrs_errors, b.requests) for s, b in seconds.items()} == {
        int(NOW) - 6: (40, 2, 0), int(NOW) - 5: (38, 0, 0),
    }
    stats = summarize(rec, "checkout-v2", int(NOW) - 10, int(NOW)).stats()
    assert (stats.requests, stats.successes, stats.errors_5xx, stats.source, stats.p99_ms) == (80, 78, 2, "lrs", None)


def test_a_record_round_trips_through_json() -> None:
    rec = recorder()
    busy(rec, "front", "checkout-v2", 40, 25)
    busy(rec, "checkout-v2-0", "checkout-v2", 3, 5)
    busy(rec, "front", "checkout-v1", 40, 25)  # not watched
    record = TelemetryRecord.collect(rec, "a", {"checkout-v2"}, NOW, horizon=30, max_series=16)
    assert sorted(record.series) == [("checkout-v2-0", "checkout-v2"), ("front", "checkout-v2")]
    assert min(record.series[("front", "checkout-v2")]) == int(NOW) - 30  # the horizon, not the recorder's 40 s
    value = record.to_json()
    assert value["format"] == 1 and value["replica"] == "a" and value["at"] == NOW
    assert TelemetryRecord.from_json(value) == record
    assert encode_record(record, 30, 256 * 1024) == (value, encoded_size(value))


@pytest.mark.parametrize("junk", [
    {"format": 2, "replica": "a", "at": 1.0, "series": []},
    {"format": 1, "replica": "a", "series": []},
    {"format": 1, "replica": "a", "at": 1.0, "series": [{"reporter": "r", "cluster": "c", "seconds": [[1, 2]]}]},
    {"format": 1, "replica": "a", "at": 1.0, "series": [{"reporter": "r", "cluster": "c",
                                                         "seconds": [[1, 2, 3, 4, 5, 6, 7, 8, 9, -1, []]]}]},
    {"format": 1, "replica": "a", "at": 1.0, "series": ["x"]},
])
def test_records_that_are_not_ours_are_refused(junk: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TelemetryRecord.from_json(junk)


def test_a_usual_record_is_a_few_kilobytes() -> None:
    rec = recorder()
    busy(rec, "front", "checkout-v2", 40, 100)  # 100 requests a second, lognormal latencies
    record = TelemetryRecord.collect(rec, "a", {"checkout-v2"}, NOW, horizon=30, max_series=16)
    size = encoded_size(record.to_json())
    print(f"a series at 100 requests/s, 30 s: {size} bytes")
    assert 2_000 < size < 12_000


def _worst_second() -> TrafficSummary:
    """Every bin filled with a weighted count, every count large."""
    latencies = LatencyHistogram({b: 123_456.789 for b in range(BINS)})
    big = 9_999_999
    return TrafficSummary(big, big, big, big, big, big, big, big, big, latencies)


def test_a_record_stays_within_its_bound_keeping_the_newest_seconds() -> None:
    worst = {(f"reporter-{i:02}", f"cluster-{i:02}"): {int(NOW) - s: _worst_second() for s in range(31)}
             for i in range(16)}
    record = TelemetryRecord("a", NOW, worst)
    whole = encoded_size(record.to_json())
    value, size = encode_record(record, 30, 256 * 1024)
    print(f"worst case: {whole} bytes whole, {size} kept")
    assert whole > MAX_STATE_BYTES  # the bound is needed
    assert size == encoded_size(value) <= 256 * 1024
    kept = TelemetryRecord.from_json(value)
    assert len(kept.series) == 16  # every series, fewer seconds: the newest
    assert {tuple(sorted(s)) for s in kept.series.values()} == {tuple(range(int(NOW) - 3, int(NOW) + 1))}
    # even the current second alone of too many series: series are dropped, the bound holds
    value, size = encode_record(record, 30, 20_000)
    assert size <= 20_000 and 0 < len(value["series"]) < 16


def test_collect_keeps_at_most_max_series() -> None:
    rec = recorder()
    for i in range(5):
        busy(rec, f"r{i}", "checkout-v2", 2, 3)
    record = TelemetryRecord.collect(rec, "a", {"checkout-v2"}, NOW, horizon=30, max_series=3)
    assert sorted(record.series) == [("r0", "checkout-v2"), ("r1", "checkout-v2"), ("r2", "checkout-v2")]
