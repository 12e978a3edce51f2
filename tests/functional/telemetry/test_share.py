"""Replicas share their Envoys' traffic through a real store: one SQLite file, or one etcd prefix.

Two "replicas" in one process: each a recorder, a store object of its own
on the same file (or prefix) and a :class:`TelemetryShare`; the requests are
recorded as the ALS stream records them. Replica a judges with
:class:`EnvoyReports`, as its rollout engine does.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Collection

import pytest

from switchman.rollout.sources import EnvoyReports
from switchman.telemetry import ShareSettings, TelemetryShare, TrafficRecorder
from tests.functional.conftest import StoreFactory

CLUSTER = "checkout-v2"


async def watching() -> Collection[str]:
    return {CLUSTER}


def traffic(recorders: list[TrafficRecorder], first: int, last: int, rate: int, *, seed: int = 5) -> None:
    """``rate`` requests a second in ``[first, last)``, dealt to the recorders in turn (each Envoy reports
    to one replica); one in ten a 503, latencies lognormal around 5 ms."""
    rng = random.Random(seed)
    for second in range(first, last):
        for i in range(rate):
            recorder = recorders[(second + i) % len(recorders)]
            recorder.record_request("front", CLUSTER, second + i / rate, 503 if i % 10 == 0 else 200,
                                    latency_ms=rng.lognormvariate(1.6, 0.6))


async def test_the_judging_replica_counts_every_replicas_requests_once(stores: StoreFactory) -> None:
    settings = ShareSettings(period=0.25)
    a, b, c = TrafficRecorder(), TrafficRecorder(), TrafficRecorder()
    now = math.floor(time.time())
    traffic([a, b, c], now - 6, now, 60)  # in, as the Envoys' access logs came: before now
    everyone = TrafficRecorder()  # what one replica would hold if every Envoy reported to it
    traffic([everyone], now - 6, now, 60)
    shares = [TelemetryShare(r, stores(), name, settings) for r, name in ((a, "a"), (b, "b"), (c, "c"))]
    for share in shares:
        await share.start(watching)
    try:
        await asyncio.sleep(0.5)  # every replica has published once (one that never has cannot be waited for)
        reports = EnvoyReports(a, shares[0], settle=0.3)
        start, end = now - 5.5, now - 0.5  # a window the engine could ask for: not on whole seconds
        measured = await reports.measure(CLUSTER, start, end, None)
        exact = everyone.window(CLUSTER, now - 6, now - 1)  # the seconds [floor(start), floor(end))
        assert (measured.requests, measured.errors) == (exact.requests, exact.requests - exact.successes) == (300, 30)
        assert a.window(CLUSTER, now - 6, now - 1).requests == 100  # a's own Envoys: a third
        for got, want in ((measured.p50_ms, exact.p50_ms), (measured.p99_ms, exact.p99_ms)):
            assert got is not None and want is not None and abs(got / want - 1) <= 0.0443
        assert measured.source == "als"
        assert (await reports.measure(CLUSTER, start, end, "front")).requests == 300
        assert (await reports.measure(CLUSTER, start, end, "sidecar")).requests == 0
        # without the others' traffic in the window, the answer is the local recorder's, exactly
        alone = await reports.measure(CLUSTER, now - 30.5, now - 20.5, None)
        assert alone.requests == 0
    finally:
        for share in shares:
            await share.stop()


async def test_the_judge_waits_for_records_newer_than_the_window(stores: StoreFactory) -> None:
    a, b = TrafficRecorder(), TrafficRecorder()
    settings = ShareSettings(period=0.5)
    judge, other = TelemetryShare(a, stores(), "a", settings), TelemetryShare(b, stores(), "b", settings)
    await judge.start(watching)
    await other.start(watching)
    try:
        await asyncio.sleep(0.7)  # both have published, and read each other
        # b's Envoys report the last second's requests just now: what judge read of b has none of them
        now = time.time()
        second = math.floor(now) - 1
        traffic([b], second, second + 1, 40)
        assert judge.peers.window(CLUSTER, second, second + 1, None) is None
        began = time.monotonic()
        found = await judge.traffic(CLUSTER, second, second + 1, None, settle=now - (second + 1))
        waited = time.monotonic() - began
        assert found is not None and found.requests == 40  # it waited for b's next record
        assert waited < 1.5 * settings.period + 0.2, waited
    finally:
        await judge.stop()
        await other.stop()


async def test_a_replica_that_stops_publishing_is_ignored_then_forgotten(stores: StoreFactory) -> None:
    settings = ShareSettings(period=0.2, forget_after=2.0)
    a, b = TrafficRecorder(), TrafficRecorder()
    now = math.floor(time.time())
    traffic([b], now - 3, now, 10)
    dead = TelemetryShare(b, stores(), "b", settings)
    await dead.publish({CLUSTER})  # and then no more: b died
    judge = TelemetryShare(a, stores(), "a", settings)
    await judge.start(watching)
    try:
        found = await judge.traffic(CLUSTER, now - 3, now, None, settle=0.0)
        assert found is not None and found.requests == 30
        await asyncio.sleep(settings.stale_after + 0.1)
        began = time.monotonic()
        assert await judge.traffic(CLUSTER, now - 3, now, None, settle=5.0) is None  # stale: not counted ...
        assert time.monotonic() - began < 0.3  # ... nor waited for
        await asyncio.sleep(2.0)
        keys = [r.key for r in await judge.store.list_state("telemetry/")]
        assert keys == ["telemetry/a"]  # b's record forgotten; ours is there
    finally:
        await judge.stop()
    assert await judge.store.list_state("telemetry/") == []  # a clean stop takes the record away


async def test_nothing_is_written_while_no_rollout_watches(stores: StoreFactory) -> None:
    watched: set[str] = {CLUSTER}

    async def current() -> Collection[str]:
        return set(watched)

    share = TelemetryShare(TrafficRecorder(), stores(), "a", ShareSettings(period=0.1))
    await share.start(current)
    try:
        await asyncio.sleep(0.3)
        first = await share.store.get_state("telemetry/a")
        assert first is not None and first.value["series"] == []  # published, with nothing in it yet
        watched.clear()
        await asyncio.sleep(0.3)
        assert await share.store.get_state("telemetry/a") is None
    finally:
        await share.stop()


async def test_two_processes_with_one_name_are_told(
    stores: StoreFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "switchman.telemetry.share")
    one = TelemetryShare(TrafficRecorder(), stores(), "a")
    two = TelemetryShare(TrafficRecorder(), stores(), "a")
    assert await one.publish({CLUSTER}) > 0
    assert await two.publish({CLUSTER}) > 0  # it read the record first: it takes it over
    assert await one.publish({CLUSTER}) == 0  # which the first one finds out
    assert "do two replicas share the name 'a'?" in caplog.text
    assert await one.publish({CLUSTER}) > 0  # and writes over, next period
    await one.stop()
    await two.stop()
