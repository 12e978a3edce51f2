"""Following the other replicas' records: their seconds add up, stale and vanished replicas are ignored."""

from __future__ import annotations

from typing import Any

from switchman.store import StateRecord
from switchman.telemetry import LatencyHistogram, PeerTraffic, ShareSettings, TelemetryRecord, TrafficSummary

T = 1_000_000


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def second(requests: int, errors: int = 0) -> TrafficSummary:
    return TrafficSummary(requests=requests, successes=requests - errors, errors_5xx=errors,
                          responses_2xx=requests - errors, latencies=LatencyHistogram({50: float(requests)}))


Series = dict[tuple[str, str], dict[int, TrafficSummary]]


def state(replica: str, at: float, version: int, series: Series) -> StateRecord:
    value: dict[str, Any] = TelemetryRecord(replica, at, series).to_json()
    return StateRecord(f"telemetry/{replica}", value, version, at)


def peers(clock: Clock) -> PeerTraffic:
    return PeerTraffic("a", ShareSettings(period=1.0, retention=60.0), clock)


def test_the_seconds_of_every_live_replica_add_up_and_our_own_record_is_not_counted() -> None:
    clock = Clock(T + 0.5)
    view = peers(clock)
    front = ("front", "checkout-v2")
    view.update([
        state("a", T, 1, {front: {T - 2: second(100)}}),  # ours: the recorder has it already
        state("b", T, 2, {front: {T - 2: second(10, 1), T - 1: second(10)},
                          ("side", "checkout-v2"): {T - 2: second(7)}}),
        state("c", T + 0.2, 3, {front: {T - 2: second(5, 5)}, ("front", "checkout-v1"): {T - 2: second(50)}}),
    ])
    assert view.peers() == {"b": T, "c": T + 0.2}
    only_front = view.window("checkout-v2", T - 2, T - 1, "front")
    assert only_front is not None and (only_front.requests, only_front.errors_5xx) == (15, 6)
    every = view.window("checkout-v2", T - 2, T, None)
    assert every is not None and every.requests == 32 and every.latencies.total == 32
    assert view.window("checkout-v2", T - 5, T - 2, None) is None  # nobody had any: the local answer stands
    assert view.window("checkout-v3", T - 5, T, None) is None
    assert view.lagging(T + 0.1) == ["b"]


def test_a_newer_record_updates_the_seconds_it_holds_and_older_ones_are_kept_for_the_retention() -> None:
    clock = Clock(T + 0.5)
    view = peers(clock)
    key = ("front", "checkout-v2")
    view.update([state("b", T, 1, {key: {T - 40: second(3), T - 1: second(4)}})])
    clock.now += 1
    # the next record: its horizon no longer holds T-40; T-1 got late access logs; T is new
    view.update([state("b", T + 1, 2, {key: {T - 1: second(6), T: second(9)}})])
    total = view.window("checkout-v2", T - 60, T + 1, None)
    assert total is not None and total.requests == 3 + 6 + 9
    clock.now = T + 25  # T-40 is now older than the retention (60 s)
    view.update([state("b", T + 25, 3, {})])
    total = view.window("checkout-v2", T - 60, T + 1, None)
    assert total is not None and total.requests == 6 + 9


def test_a_replica_whose_record_is_older_than_three_periods_is_ignored() -> None:
    clock = Clock(T + 0.5)
    view = peers(clock)
    record = state("b", T, 1, {("front", "checkout-v2"): {T - 1: second(10)}})
    view.update([record])
    clock.now = T + 2.9
    assert view.peers() == {"b": T} and view.window("checkout-v2", T - 1, T, None) is not None
    clock.now = T + 3.1  # b stopped publishing: ignored before anything reads the store again
    assert view.peers() == {} and view.window("checkout-v2", T - 1, T, None) is None
    assert view.lagging(T + 3) == []  # nobody waits for it
    view.update([record])  # still there, unchanged: still stale
    assert view.peers() == {}
    view.update([state("b", T + 3.2, 2, {})])  # b publishes again
    assert view.peers() == {"b": T + 3.2}


def test_a_record_that_is_gone_or_unreadable_counts_for_nothing() -> None:
    clock = Clock(T + 0.5)
    view = peers(clock)
    view.update([state("b", T, 1, {("front", "checkout-v2"): {T - 1: second(10)}})])
    view.update([])  # deleted: b stopped cleanly
    assert view.peers() == {} and view.window("checkout-v2", T - 1, T, None) is None
    junk = StateRecord("telemetry/c", {"format": 99}, 5, T)
    view.update([junk])
    assert view.peers() == {}
