"""How an analysis window maps to the whole seconds replicas publish."""

from __future__ import annotations

import itertools

import pytest

from switchman.rollout.sources import whole_seconds


@pytest.mark.parametrize(("start", "end", "seconds"), [
    (100.0, 101.0, (100, 101)),
    (100.3, 101.3, (100, 101)),  # moved back, never forward: the newest logs are still on their way
    (100.9, 110.2, (100, 110)),
    (100.2, 100.7, (100, 101)),  # within one second: that second
    (99.999, 100.0, (99, 100)),
])
def test_a_window_becomes_the_seconds_from_floor_start_to_floor_end(
    start: float, end: float, seconds: tuple[int, int],
) -> None:
    assert whole_seconds(start, end) == seconds


def test_consecutive_windows_map_to_consecutive_seconds() -> None:
    edges = [1000.37 + 1.0 * i for i in range(10)]
    mapped = [whole_seconds(a, b) for a, b in itertools.pairwise(edges)]
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(mapped))  # no gap, no overlap
