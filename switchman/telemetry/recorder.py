"""What Envoys report of their upstream traffic, kept per cluster in time buckets for a canary's verdict.

A *series* per reporter and Envoy cluster. The reporter is the node group
of the Envoy that reported (the xDS server's ``--group-by``: the node's
cluster by default), so the front's view of ``checkout-v2`` is told apart
from the view of the sidecar in front of it.

Access-log entries (ALS) go into the bucket of their own start time,
``bucket_seconds`` wide; each bucket counts its entries by response class
(2xx, 3xx, 4xx, 5xx, none) and by whether the upstream failed (reset,
refused, overflow), and keeps up to ``max_samples_per_bucket`` of them
(start time, class, latency), chosen uniformly (reservoir sampling) once
there are more. Load reports (LRS) are kept as they arrived, at most
``max_reports_per_series`` per series.

**Windows.** :meth:`TrafficRecorder.window` counts the entries that started
in ``[start, end)``: a bucket wholly inside counts from its totals; a bucket
the window cuts counts from the entries it kept, which is exact while it
kept them all and otherwise scaled from its sample. Latency percentiles
weigh each kept entry by its bucket's entries per sample. Load reports count
when they *arrived* in ``[start, end)``. The answer comes from the access
logs when they have entries in the window, else from the load reports.

**Memory bound.** Everything older than ``horizon`` seconds is dropped or
overwritten: a series holds at most ``horizon / bucket_seconds + 6`` buckets
(a ring: the few more take entries that start slightly ahead of our clock)
of at most ``max_samples_per_bucket`` entries at 13 bytes each, and at
most ``max_reports_per_series`` reports; at most ``max_series`` series
exist (one that saw nothing for ``horizon`` seconds makes room for a new
one). With the defaults (600 s, 1 s buckets, 128 entries, 1,200 reports,
256 series), a series that logs 128 requests a second or more and reports
twice a second for ten minutes holds about 1.6 MB (1.4 MB of it the
entries), whatever the rate beyond; the 256 series at most about 400 MB;
a quiet series holds a few kilobytes. ``tests/unit/telemetry`` measures it.
"""

from __future__ import annotations

import math
import random
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from typing import Final, Literal

from switchman.telemetry.stats import LoadReport, TrafficStats, percentiles

__all__ = ["Drop", "TrafficRecorder"]

Drop = Literal["horizon", "series"]  # why an entry or report was not recorded: too old (or ahead), no room

_SKEW_BUCKETS: Final = 5  # entries may start this many buckets ahead of our clock (another host's clock)
_CLASSES: Final = 5  # none (no response, 1xx), 2xx, 3xx, 4xx, 5xx
_KINDS: Final = 2 * _CLASSES  # the class, plus 5 when the upstream failed


def _kind(code: int, failed: bool) -> int:
    klass = code // 100 - 1 if 200 <= code < 600 else 0
    return klass + _CLASSES if failed else klass


class _Bucket:
    """One bucket of one series: counts by kind, and a uniform sample of its entries."""

    __slots__ = ("counts", "index", "kinds", "latencies", "requests", "starts")

    def __init__(self, index: int) -> None:
        self.index = index
        self.requests = 0
        self.counts = [0] * _KINDS
        self.starts = array("d")
        self.kinds = array("B")
        self.latencies = array("f")  # milliseconds; NaN: the entry has none

    def add(self, kind: int, start: float, latency_ms: float, cap: int, rng: random.Random) -> None:
        self.counts[kind] += 1
        self.requests += 1
        if len(self.starts) < cap:
            self.starts.append(start)
            self.kinds.append(kind)
            self.latencies.append(latency_ms)
            return
        slot = rng.randrange(self.requests)  # Algorithm R: every entry stays with probability cap / requests
        if slot < cap:
            self.starts[slot], self.kinds[slot], self.latencies[slot] = start, kind, latency_ms


class _Series:
    __slots__ = ("last", "reports", "ring")

    def __init__(self, max_reports: int) -> None:
        self.ring: list[_Bucket | None] | None = None  # made at the first access-log entry
        self.reports: deque[LoadReport] = deque(maxlen=max_reports)
        self.last = 0.0  # when it last recorded something (our clock)


class _Tally:
    """Counts by kind (fractional where a cut bucket was sampled) and weighted latencies."""

    __slots__ = ("counts", "latencies")

    def __init__(self) -> None:
        self.counts = [0.0] * _KINDS
        self.latencies: list[tuple[float, float]] = []

    def whole(self, bucket: _Bucket) -> None:
        for kind, count in enumerate(bucket.counts):
            self.counts[kind] += count
        weight = bucket.requests / len(bucket.starts)
        self.latencies += [(ms, weight) for ms in bucket.latencies if ms == ms]

    def cut(self, bucket: _Bucket, start: float, end: float) -> None:
        weight = bucket.requests / len(bucket.starts)
        for at, kind, ms in zip(bucket.starts, bucket.kinds, bucket.latencies, strict=True):
            if start <= at < end:
                self.counts[kind] += weight
                if ms == ms:
                    self.latencies.append((ms, weight))

    def stats(self) -> TrafficStats:
        counts = self.counts
        by_class = [round(counts[k] + counts[k + _CLASSES]) for k in range(_CLASSES)]
        requests = sum(by_class)
        successes = round(sum(counts[1:4]))  # 2xx, 3xx, 4xx, and the upstream did not fail
        p50, p99 = percentiles(self.latencies, 0.5, 0.99)
        return TrafficStats(
            requests=requests, successes=successes, errors_5xx=by_class[4],
            resets=round(sum(counts[_CLASSES:])),
            success_rate=successes / requests if requests else None,
            p50_ms=p50, p99_ms=p99, source="als",
            responses_2xx=by_class[1], responses_3xx=by_class[2], responses_4xx=by_class[3],
        )


def _from_reports(reports: list[LoadReport]) -> TrafficStats:
    successes = sum(r.successes for r in reports)
    errors = sum(r.errors for r in reports)
    requests = successes + errors
    return TrafficStats(
        requests=requests, successes=successes, errors_5xx=errors, resets=0,
        success_rate=successes / requests if requests else None, p50_ms=None, p99_ms=None, source="lrs",
    )


class TrafficRecorder:
    """Time-bucketed traffic per (reporter, Envoy cluster), bounded in time and memory (see the module)."""

    def __init__(
        self,
        *,
        horizon: float = 600.0,
        bucket_seconds: float = 1.0,
        max_samples_per_bucket: int = 128,
        max_reports_per_series: int = 1200,
        max_series: int = 256,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        if horizon <= 0 or bucket_seconds <= 0 or max_samples_per_bucket < 1 or max_series < 1:
            raise ValueError("horizon, bucket_seconds, max_samples_per_bucket and max_series must be positive")
        self.horizon = horizon
        self.bucket_seconds = bucket_seconds
        self.max_samples_per_bucket = max_samples_per_bucket
        self.max_reports_per_series = max_reports_per_series
        self.max_series = max_series
        self.clock = clock
        self._slots = math.ceil(horizon / bucket_seconds) + _SKEW_BUCKETS + 1
        self._rng = random.Random(seed)
        self._series: dict[str, dict[str, _Series]] = {}  # cluster -> reporter -> series
        self._count = 0

    # -- recording ----------------------------------------------------------------------

    def record_request(
        self, reporter: str, cluster: str, start: float, code: int, *, failed: bool = False,
        latency_ms: float | None = None,
    ) -> Drop | None:
        """One access-log entry: a request to ``cluster`` that started at ``start`` (Unix seconds), answered
        ``code`` (0: no response); ``failed`` when the upstream reset, refused or overflowed. Returns why it was
        not recorded, or None."""
        now = self.clock()
        index = math.floor(start / self.bucket_seconds)
        newest = math.floor(now / self.bucket_seconds) + _SKEW_BUCKETS
        if start < now - self.horizon or index > newest:
            return "horizon"
        series = self._series_for(reporter, cluster, now)
        if series is None:
            return "series"
        ring = series.ring
        if ring is None:
            ring = series.ring = [None] * self._slots
        slot = index % self._slots
        bucket = ring[slot]
        if bucket is None or bucket.index < index:
            bucket = ring[slot] = _Bucket(index)  # what was there is older than the horizon
        elif bucket.index > index:
            return "horizon"
        bucket.add(_kind(code, failed), start, math.nan if latency_ms is None else latency_ms,
                   self.max_samples_per_bucket, self._rng)
        series.last = now
        return None

    def record_load(
        self, reporter: str, cluster: str, *, successes: int, errors: int, issued: int = 0, in_progress: int = 0,
        dropped: int = 0, interval: float = 0.0,
    ) -> Drop | None:
        """One cluster's load report, arriving now. Returns why it was not recorded, or None."""
        now = self.clock()
        series = self._series_for(reporter, cluster, now)
        if series is None:
            return "series"
        series.reports.append(LoadReport(
            reporter=reporter, cluster=cluster, at=now, successes=successes, errors=errors, issued=issued,
            in_progress=in_progress, dropped=dropped, interval=interval,
        ))
        series.last = now
        return None

    def _series_for(self, reporter: str, cluster: str, now: float) -> _Series | None:
        by_reporter = self._series.get(cluster)
        found = by_reporter.get(reporter) if by_reporter is not None else None
        if found is not None:
            return found
        if self._count >= self.max_series:
            self._forget_idle(now)
            if self._count >= self.max_series:
                return None
        found = self._series.setdefault(cluster, {})[reporter] = _Series(self.max_reports_per_series)
        self._count += 1
        return found

    def _forget_idle(self, now: float) -> None:
        """Drop the series that recorded nothing for a horizon: all they hold is too old to ask for."""
        for cluster, by_reporter in list(self._series.items()):
            for reporter, series in list(by_reporter.items()):
                if series.last < now - self.horizon:
                    del by_reporter[reporter]
                    self._count -= 1
            if not by_reporter:
                del self._series[cluster]

    # -- questions ----------------------------------------------------------------------

    def window(self, cluster: str, start: float, end: float, *, reporter: str | None = None) -> TrafficStats:
        """The traffic to Envoy cluster ``cluster`` in ``[start, end)`` (Unix seconds), as reported by the node
        group ``reporter``, or by every reporter together (None: an Envoy behind another counts the same
        requests again). From the access logs when they have entries in the window, else the load reports."""
        tally = _Tally()
        for series in self._matching(cluster, reporter):
            self._tally(series, tally, start, end)
        als = tally.stats()
        if als.requests:
            return als
        return _from_reports(self.load_reports(cluster, start, end, reporter=reporter))

    def latencies(
        self, cluster: str, start: float, end: float, *, reporter: str | None = None
    ) -> list[tuple[float, float]]:
        """The latencies (ms) of the access-log entries to ``cluster`` that started in ``[start, end)``, as
        ``(ms, weight)``: the entries kept, each weighing the entries of its bucket it stands for. What
        :meth:`window`'s percentiles come from, for whoever merges them with another's."""
        tally = _Tally()
        for series in self._matching(cluster, reporter):
            self._tally(series, tally, start, end)
        return tally.latencies

    def load_reports(self, cluster: str, start: float, end: float, *, reporter: str | None = None) -> list[LoadReport]:
        """The load reports for ``cluster`` that arrived in ``[start, end)``, oldest first."""
        oldest = self.clock() - self.horizon
        found = [
            report for series in self._matching(cluster, reporter) for report in series.reports
            if start <= report.at < end and report.at >= oldest
        ]
        return sorted(found, key=lambda r: r.at)

    def series(self) -> list[tuple[str, str]]:
        """Every ``(reporter, cluster)`` with something recorded."""
        return sorted((reporter, cluster) for cluster, by in self._series.items() for reporter in by)

    def _matching(self, cluster: str, reporter: str | None) -> Iterator[_Series]:
        by_reporter = self._series.get(cluster, {})
        if reporter is None:
            yield from by_reporter.values()
        elif reporter in by_reporter:
            yield by_reporter[reporter]

    def _tally(self, series: _Series, tally: _Tally, start: float, end: float) -> None:
        ring = series.ring
        if ring is None or end <= start:
            return
        width = self.bucket_seconds
        now_index = math.floor(self.clock() / width)
        first = max(math.floor(start / width), now_index + _SKEW_BUCKETS + 1 - self._slots)
        last = min(math.ceil(end / width) - 1, now_index + _SKEW_BUCKETS)
        for index in range(first, last + 1):
            bucket = ring[index % self._slots]
            if bucket is None or bucket.index != index:
                continue
            if start <= index * width and (index + 1) * width <= end:
                tally.whole(bucket)
            else:
                tally.cut(bucket, start, end)
