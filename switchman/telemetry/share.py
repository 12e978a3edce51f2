"""Replicas share what their Envoys report, so that the one driving a rollout judges all of the canary's traffic.

Every ``period`` (1 s), while rollouts watch some clusters (the rollout
engine names them: the canary version cluster of each Rollout whose run
goes on), each replica

* **publishes** its recorder's last ``horizon`` seconds of those clusters as
  one :class:`~switchman.telemetry.record.TelemetryRecord` under
  ``telemetry/REPLICA``, written with the version it last wrote (a conflict
  means another process publishes under the same name, which would hide one
  of the two: it is logged, and the record taken over);
* **follows** the other replicas' records into :class:`PeerTraffic`, which
  keeps their seconds for ``retention`` (as long as the recorder keeps its
  own), so a window longer than a record's horizon is still answered whole;
* forgets records nobody has written for ``forget_after`` (replicas that
  died: with random names, each start of ``serve`` is a new one).

When no rollout watches anything it writes nothing and deletes its record:
an etcd keeps every write until it is compacted, so a record a second
forever would be a cost for nothing. On a clean stop it deletes its record.

A replica whose record is older than ``stale_after`` (three periods) is
ignored: it died or cannot reach the store, and waiting for it would stall
every analysis. The clocks of the replicas are compared (a record's ``at``
is its publisher's clock): they must agree to well within a period.

**Freshness.** Access logs reach a replica late (Envoy's flush interval),
which is why the engine judges a window that ends ``analysis_lag`` before
now. A peer's record answers for the seconds before its ``at`` minus the
same lag; :meth:`TelemetryShare.traffic` waits (a period and a half at
most) until every live peer has published at least ``settle`` seconds
after the window's end, so the peers' part is as complete as the local one.

**Memory.** What is kept of the others is bounded by the live replicas,
their ``max_series`` series, and ``retention`` seconds of each: some 1.3 MB
per busy series and replica (30 latency bins a second), 5.7 MB at the
worst (every bin).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Final

from switchman.store import ConflictError, StateRecord, StateStore, StoreError
from switchman.tasks import cancel
from switchman.telemetry.metrics import TelemetryMetrics
from switchman.telemetry.record import SeriesKey, TelemetryRecord, TrafficSummary, encode_record
from switchman.telemetry.recorder import TrafficRecorder

__all__ = ["KEY_PREFIX", "PeerTraffic", "ShareSettings", "TelemetryShare", "Watched"]

log = logging.getLogger(__name__)

KEY_PREFIX: Final = "telemetry/"
Watched = Callable[[], Awaitable[Collection[str]]]  # the Envoy clusters rollouts judge now


@dataclass(frozen=True, slots=True)
class ShareSettings:
    period: float = 1.0  # seconds between two records of a replica (and two reads of the others')
    horizon: int = 30  # whole seconds of history in a record: a reader that misses some reads misses nothing
    stale_after_periods: float = 3.0  # a replica whose record is older than this many periods is ignored
    retention: float = 600.0  # how long the others' seconds are kept (the recorder's horizon)
    forget_after: float = 60.0  # a record nobody wrote for this long is deleted
    max_series: int = 16
    max_bytes: int = 256 * 1024

    @property
    def stale_after(self) -> float:
        return self.stale_after_periods * self.period


@dataclass(slots=True)
class _Peer:
    version: int
    at: float
    seconds: dict[SeriesKey, dict[int, TrafficSummary]]


class PeerTraffic:
    """The other replicas' published seconds, as read from their records (no I/O: fed by :meth:`update`)."""

    def __init__(self, replica: str, settings: ShareSettings, clock: Callable[[], float] = time.time) -> None:
        self.replica = replica
        self.settings = settings
        self.clock = clock
        self._peers: dict[str, _Peer] = {}

    def update(self, records: Iterable[StateRecord]) -> None:
        """Take in the records read under ``telemetry/`` (every one: a replica not among them is gone)."""
        now = self.clock()
        seen: set[str] = set()
        for record in records:
            name = record.key.removeprefix(KEY_PREFIX)
            if name == self.replica:
                continue
            seen.add(name)
            peer = self._peers.get(name)
            if peer is not None and peer.version == record.version:
                continue
            if record.updated_at < now - self.settings.stale_after:
                continue  # not worth reading: it would be dropped below
            try:
                published = TelemetryRecord.from_json(record.value)
            except ValueError as e:
                log.warning("telemetry: ignoring the record of replica %r: %s", name, e)
                continue
            if peer is None:
                peer = self._peers[name] = _Peer(record.version, published.at, {})
            peer.version, peer.at = record.version, published.at
            for key, seconds in published.series.items():
                # a newer record's second holds all that the older one's held, and what came in since
                peer.seconds.setdefault(key, {}).update(seconds)
        oldest = now - self.settings.retention
        for name in list(self._peers):
            peer = self._peers[name]
            if name not in seen or peer.at < now - self.settings.stale_after:
                del self._peers[name]  # gone, or stale: ignored (see the module)
                continue
            for key in list(peer.seconds):
                kept = {s: b for s, b in peer.seconds[key].items() if s >= oldest}
                if kept:
                    peer.seconds[key] = kept
                else:
                    del peer.seconds[key]

    def peers(self) -> dict[str, float]:
        """The live replicas followed, with the time of their last record."""
        now = self.clock()
        return {n: p.at for n, p in sorted(self._peers.items()) if p.at >= now - self.settings.stale_after}

    def lagging(self, until: float) -> list[str]:
        """The live replicas whose last record was published before ``until``."""
        return [name for name, at in self.peers().items() if at < until]

    def window(self, cluster: str, first: int, last: int, reporter: str | None) -> TrafficSummary | None:
        """The live replicas' traffic to ``cluster`` in the seconds ``[first, last)`` by ``reporter`` (None:
        every one); None when they had none."""
        total: TrafficSummary | None = None
        live = self.peers()
        for name, peer in self._peers.items():
            if name not in live:
                continue
            for (by, of), seconds in peer.seconds.items():
                if of != cluster or (reporter is not None and by != reporter):
                    continue
                for second, summary in seconds.items():
                    if first <= second < last:
                        if total is None:
                            total = TrafficSummary()
                        total.add(summary)
        return total


class TelemetryShare:
    """Publishes this replica's record and follows the others' (see the module); ``start`` / ``stop``."""

    def __init__(
        self,
        recorder: TrafficRecorder,
        store: StateStore,
        replica: str,
        settings: ShareSettings | None = None,
        metrics: TelemetryMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.recorder = recorder
        self.store = store
        self.replica = replica
        self.settings = settings or ShareSettings()
        self.metrics = metrics or TelemetryMetrics()
        self.clock = clock
        self.peers = PeerTraffic(replica, self.settings, clock)
        self._key = f"{KEY_PREFIX}{replica}"
        self._version: int | None = None  # of our record as we last wrote it (None: not there)
        self._known = False  # whether _version was read or written (else the record may be there from before)
        self._task: asyncio.Task[None] | None = None
        self._watched: Watched | None = None
        self._read_at = -math.inf
        self._reading: asyncio.Task[None] | None = None  # the read of the others' records under way

    # -- life ---------------------------------------------------------------------

    async def start(self, watched: Watched) -> None:
        """Publish and follow every period, for the clusters ``watched()`` names at the time."""
        self._watched = watched
        self._task = asyncio.create_task(self._run(), name="telemetry share")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
        with contextlib.suppress(StoreError):
            await self._withdraw()

    async def _run(self) -> None:
        assert self._watched is not None
        period = self.settings.period
        while True:
            began = time.monotonic()
            try:
                clusters = await self._watched()
                if clusters:
                    await self.publish(clusters)
                    await self.follow()
                else:
                    await self._withdraw()
            except StoreError as exc:
                self.metrics.share_failures.inc()
                log.warning("telemetry: sharing with the other replicas failed, trying again: %s", exc)
            except Exception:  # a bug must not stop every later period
                self.metrics.share_failures.inc()
                log.exception("telemetry: sharing failed")
            await asyncio.sleep(max(0.0, period - (time.monotonic() - began)))

    # -- publishing ---------------------------------------------------------------

    async def publish(self, clusters: Collection[str]) -> int:
        """Write this replica's record for ``clusters`` now; returns its size in bytes."""
        settings = self.settings
        record = TelemetryRecord.collect(
            self.recorder, self.replica, clusters, self.clock(), settings.horizon, settings.max_series
        )
        value, size = encode_record(record, settings.horizon, settings.max_bytes)
        if not self._known:
            current = await self.store.get_state(self._key)
            self._version, self._known = (current.version if current else None), True
        try:
            written = await self.store.put_state(self._key, value, expected_version=self._version)
        except ConflictError:
            # Someone else wrote our key since we did: another process with our replica name (its
            # Envoys' traffic or ours would be lost to the reader), or a replica that took our record
            # for a dead one's. Read it again and write over it next period.
            self._known = False
            self.metrics.share_failures.inc()
            log.warning("telemetry: %s was written by another process: do two replicas share the name %r?",
                        self._key, self.replica)
            return 0
        self._version = written.version
        self.metrics.share_record_bytes.set(size)
        return size

    async def _withdraw(self) -> None:
        """Delete our record (when nothing is watched, and on stop); forget the others'."""
        self.peers.update([])
        if self._known and self._version is None:
            return
        with contextlib.suppress(ConflictError):
            await self.store.delete_state(self._key, expected_version=self._version)
        self._version, self._known = None, True

    # -- following ----------------------------------------------------------------

    async def follow(self) -> None:
        """Read the others' records, and delete those nobody has written for ``forget_after``. Callers at
        the same moment (many rollouts judged at once) share one read."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._follow(), name="telemetry share: follow")
            self._reading.add_done_callback(_retrieved)
        await asyncio.shield(self._reading)

    async def _follow(self) -> None:
        records = await self.store.list_state(KEY_PREFIX)
        self._read_at = time.monotonic()
        self.peers.update(records)
        self.metrics.share_peers.set(len(self.peers.peers()))
        oldest = self.clock() - self.settings.forget_after
        for record in records:
            if record.key != self._key and record.updated_at < oldest:
                with contextlib.suppress(ConflictError):  # written again meanwhile: it lives
                    await self.store.delete_state(record.key, expected_version=record.version)

    async def traffic(
        self, cluster: str, first: int, last: int, reporter: str | None, settle: float
    ) -> TrafficSummary | None:
        """The other replicas' traffic to ``cluster`` in the seconds ``[first, last)``, by ``reporter``, once
        each live one has published ``settle`` seconds after ``last``; None when none of them had any.

        A live replica publishes every period, so the wait is bounded: after a period and a half, one
        that has not is late (it is dying, or cannot reach the store) and its newest seconds go
        uncounted rather than hold the analysis (and the driver's lease renewals) up any longer.
        """
        period = self.settings.period
        deadline = time.monotonic() + 1.5 * period
        if time.monotonic() - self._read_at > 2 * period:  # the periodic read is late: read now
            await self.follow()
        while self.peers.lagging(last + settle) and time.monotonic() < deadline:
            await asyncio.sleep(min(0.1, period / 4))
            await self.follow()
        lagging = self.peers.lagging(last + settle)
        if lagging:
            log.info("telemetry: judging %s without the newest seconds of %s", cluster, ", ".join(lagging))
        return self.peers.window(cluster, first, last, reporter)


def _retrieved(task: asyncio.Task[None]) -> None:
    """Its callers may all have gone (cancelled): its failure is theirs, not an unretrieved exception."""
    if not task.cancelled():
        task.exception()
