"""The latency histogram: bins, merging, and percentiles within the stated error of the exact ones."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchman.telemetry import LatencyHistogram
from switchman.telemetry.histogram import BINS, LOWEST_MS, bin_of, value_of
from switchman.telemetry.stats import percentiles

#: The stated accuracy: a percentile is within a factor 2**(1/16) (4.4 %) of the exact nearest-rank one.
FACTOR = 2 ** (1 / 16) * (1 + 1e-9)
TOP_MS = LOWEST_MS * 2 ** (BINS / 8)

latency = st.floats(min_value=LOWEST_MS, max_value=TOP_MS / 1.1, allow_nan=False)
weight = st.floats(min_value=0.01, max_value=100.0, allow_nan=False)
QS = (0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)


def test_bins_are_eight_per_doubling_from_a_hundredth_of_a_millisecond() -> None:
    assert bin_of(0.0) == bin_of(0.005) == bin_of(LOWEST_MS) == 0
    assert bin_of(LOWEST_MS * 2) == 8 and bin_of(LOWEST_MS * 2 * 1.0001) == 8
    assert bin_of(1.0) == 53  # log2(100) * 8 = 53.15
    assert bin_of(1e9) == bin_of(math.inf) == BINS - 1
    assert bin_of(math.nan) == 0
    assert round(TOP_MS) == 335_544
    for index in range(BINS):
        middle = value_of(index)
        assert bin_of(middle) == index
        assert LOWEST_MS * 2 ** (index / 8) < middle < LOWEST_MS * 2 ** ((index + 1) / 8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(latency, weight), min_size=1, max_size=300))
def test_weighted_percentiles_are_within_the_stated_factor_of_the_exact_ones(
    samples: list[tuple[float, float]],
) -> None:
    exact = percentiles(samples, *QS)
    binned = LatencyHistogram.of(samples).percentiles(*QS)
    for q, want, got in zip(QS, exact, binned, strict=True):
        assert want is not None and got is not None
        assert want / FACTOR <= got <= want * FACTOR, (q, want, got)


@settings(max_examples=200, deadline=None)
@given(st.lists(latency, min_size=1, max_size=200), st.lists(latency, min_size=0, max_size=200))
def test_merged_histograms_are_the_histogram_of_the_union(left: list[float], right: list[float]) -> None:
    a = LatencyHistogram.of((ms, 1.0) for ms in left)
    b = LatencyHistogram.of((ms, 1.0) for ms in right)
    a.merge(b)
    assert a == LatencyHistogram.of((ms, 1.0) for ms in left + right)
    assert a.total == len(left) + len(right)
    exact = percentiles([(ms, 1.0) for ms in left + right], *QS)
    for want, got in zip(exact, a.percentiles(*QS), strict=True):
        assert want is not None and got is not None and want / FACTOR <= got <= want * FACTOR


def test_p50_and_p99_of_a_long_tail_on_two_replicas() -> None:
    rng = random.Random(7)
    one = [rng.lognormvariate(1.5, 0.8) for _ in range(5000)]  # a few ms, a tail to some tens
    two = [rng.lognormvariate(2.5, 0.5) for _ in range(3000)]  # a slower replica's Envoys
    merged = LatencyHistogram.of((ms, 1.0) for ms in one)
    merged.merge(LatencyHistogram.of((ms, 1.0) for ms in two))
    p50, p99 = merged.percentiles(0.5, 0.99)
    want50, want99 = percentiles([(ms, 1.0) for ms in one + two], 0.5, 0.99)
    assert want50 is not None and want99 is not None and p50 is not None and p99 is not None
    assert abs(p50 / want50 - 1) < 0.044 and abs(p99 / want99 - 1) < 0.044


def test_extremes_and_empty() -> None:
    assert LatencyHistogram().percentiles(0.5, 0.99) == (None, None)
    tiny = LatencyHistogram.of([(0.0, 1.0), (0.001, 1.0)])
    (p50,) = tiny.percentiles(0.5)
    assert p50 is not None and p50 < 0.0105  # below the lowest bin: off by at most 0.0105 ms
    huge = LatencyHistogram.of([(3_600_000.0, 1.0)])
    assert huge.percentiles(1.0) == (value_of(BINS - 1),)  # an hour is reported as the top bin
    nothing = LatencyHistogram.of([(5.0, 0.0), (6.0, -1.0)])
    assert nothing.counts == {}


def test_json_round_trip_keeps_weighted_counts_to_a_thousandth() -> None:
    histogram = LatencyHistogram.of([(1.0, 1.0), (1.0, 1.0), (2.5, 0.3333333), (900.0, 7.0)])
    flat = histogram.to_json()
    assert flat == [53, 2, 63, 0.333, 131, 7]
    assert all(isinstance(x, int) for x in flat[::2]) and isinstance(flat[1], int)
    assert LatencyHistogram.from_json(flat).counts == {53: 2.0, 63: 0.333, 131: 7.0}
    for junk in ([1], [BINS, 1], [-1, 1], [1, -1], ["1", 1], [1, "x"], [True, 1]):
        with pytest.raises(ValueError):
            LatencyHistogram.from_json(junk)
