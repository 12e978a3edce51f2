"""What one replica publishes of its Envoys' traffic: per-second summaries that add up across replicas.

Each Envoy reports to the replica it is connected to, so with replicas on
one store, the one that judges a canary holds only its own Envoys' part.
Every replica therefore publishes, in one runtime state record
(``telemetry/REPLICA``), per ``(reporter, cluster)`` that a rollout watches,
a :class:`TrafficSummary` per whole second of request start (access logs)
or report arrival (load reports): ``second`` covers ``[second, second+1)``
Unix seconds. Summaries are counts and a :class:`LatencyHistogram`, so
they add up; only seconds with traffic are written.

**Layout** (JSON, as the store keeps it)::

    {"format": 1, "replica": "a", "at": 1764650000.25,
     "series": [{"reporter": "front", "cluster": "checkout-v2",
                 "seconds": [[1764649999, requests, successes, 5xx, resets, 2xx, 3xx, 4xx,
                              lrs_successes, lrs_errors, [bin, count, bin, count, ...]], ...]}]}

``at`` is the publisher's clock when it read its recorder: the record
answers for every second before ``at`` minus however late access logs
arrive (the engine's ``analysis_lag``).

**Bounds.** A record holds at most ``max_series`` series (16 by default)
and the seconds in ``[floor(at) - horizon, floor(at)]`` (31 with the
default 30 s horizon). A second is 11 numbers and at most :data:`BINS`
(200) histogram pairs: about 3 KB at the very worst, 200 to 400 bytes for
a usual spread of latencies; so a series that has traffic every second
takes some 6 KB at 100 requests a second, 11 KB from about 128 a second up
(the recorder samples those, and the counts become weighted); collecting
it costs about 5 ms a period. :func:`encode_record` keeps an encoded
record within ``max_bytes`` (256 KiB, a quarter of the store's
:data:`~switchman.store.MAX_STATE_BYTES`): one that would be over keeps
fewer seconds, the newest, halving its horizon until it fits (two seconds
of 16 worst-case series are some 100 KB), and drops series only if even
the current second alone would not fit.

**Windows.** Whoever merges reads an analysis window ``[start, end)`` as
the seconds ``[floor(start), floor(end))``, its own recorder's part too
(:func:`summarize` over those edges), so that every request counts once:
see :class:`~switchman.rollout.sources.EnvoyReports`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from switchman.telemetry.histogram import LatencyHistogram
from switchman.telemetry.recorder import TrafficRecorder
from switchman.telemetry.stats import TrafficStats

__all__ = [
    "FORMAT",
    "SeriesKey",
    "TelemetryRecord",
    "TrafficSummary",
    "encode_record",
    "encoded_size",
    "summarize",
    "summarize_seconds",
]

FORMAT: Final = 1
SeriesKey = tuple[str, str]  # (reporter, cluster)
_COUNTS: Final = 9  # the numbers of a second after the second itself, before the histogram


@dataclass(slots=True)
class TrafficSummary:
    """Counts and latencies of some traffic; two summaries of disjoint traffic add up (:meth:`add`).

    The access-log counts mean what :class:`~switchman.telemetry.TrafficStats`'s
    do; ``lrs_successes`` and ``lrs_errors`` are the load reports' counts.
    """

    requests: int = 0
    successes: int = 0
    errors_5xx: int = 0
    resets: int = 0
    responses_2xx: int = 0
    responses_3xx: int = 0
    responses_4xx: int = 0
    lrs_successes: int = 0
    lrs_errors: int = 0
    latencies: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def empty(self) -> bool:
        return not (self.requests or self.lrs_successes or self.lrs_errors)

    def add(self, other: TrafficSummary) -> None:
        self.requests += other.requests
        self.successes += other.successes
        self.errors_5xx += other.errors_5xx
        self.resets += other.resets
        self.responses_2xx += other.responses_2xx
        self.responses_3xx += other.responses_3xx
        self.responses_4xx += other.responses_4xx
        self.lrs_successes += other.lrs_successes
        self.lrs_errors += other.lrs_errors
        self.latencies.merge(other.latencies)

    def stats(self) -> TrafficStats:
        """As the recorder answers: from the access logs when they counted requests, else the load reports;
        percentiles from the histogram."""
        if self.requests:
            p50, p99 = self.latencies.percentiles(0.5, 0.99)
            return TrafficStats(
                requests=self.requests, successes=self.successes, errors_5xx=self.errors_5xx, resets=self.resets,
                success_rate=self.successes / self.requests, p50_ms=p50, p99_ms=p99, source="als",
                responses_2xx=self.responses_2xx, responses_3xx=self.responses_3xx,
                responses_4xx=self.responses_4xx,
            )
        requests = self.lrs_successes + self.lrs_errors
        return TrafficStats(
            requests=requests, successes=self.lrs_successes, errors_5xx=self.lrs_errors, resets=0,
            success_rate=self.lrs_successes / requests if requests else None, p50_ms=None, p99_ms=None,
            source="lrs",
        )

    def to_json(self, second: int) -> list[Any]:
        return [
            second, self.requests, self.successes, self.errors_5xx, self.resets, self.responses_2xx,
            self.responses_3xx, self.responses_4xx, self.lrs_successes, self.lrs_errors, self.latencies.to_json(),
        ]

    @classmethod
    def from_json(cls, item: object) -> tuple[int, TrafficSummary]:
        """``(second, summary)`` from :meth:`to_json`'s list; ValueError when it is not one."""
        if not (isinstance(item, list) and len(item) == _COUNTS + 2 and isinstance(item[-1], list)):
            raise ValueError("a second is [second, 9 counts, histogram]")
        numbers = item[: _COUNTS + 1]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise ValueError("a second's numbers are counts")
        second, requests, successes, errors_5xx, resets, r2xx, r3xx, r4xx, lrs_successes, lrs_errors = numbers
        return second, cls(
            requests, successes, errors_5xx, resets, r2xx, r3xx, r4xx, lrs_successes, lrs_errors,
            LatencyHistogram.from_json(item[-1]),
        )


def summarize(
    recorder: TrafficRecorder, cluster: str, start: float, end: float, *, reporter: str | None = None
) -> TrafficSummary:
    """What ``recorder`` holds of ``cluster`` in ``[start, end)``, by ``reporter`` (None: every one)."""
    stats = recorder.window(cluster, start, end, reporter=reporter)
    summary = _lrs(recorder, cluster, start, end, reporter)
    if stats.source == "als":  # else the access logs counted nothing, and stats are the load reports
        _set_als(summary, stats, recorder.latencies(cluster, start, end, reporter=reporter))
    return summary


def summarize_seconds(
    recorder: TrafficRecorder, cluster: str, reporter: str, first: int, last: int
) -> dict[int, TrafficSummary]:
    """One summary per second in ``[first, last]`` that had traffic, by second."""
    found: dict[int, TrafficSummary] = {}
    for report in recorder.load_reports(cluster, first, last + 1, reporter=reporter):
        summary = found.setdefault(math.floor(report.at), TrafficSummary())
        summary.lrs_successes += report.successes
        summary.lrs_errors += report.errors
    for second in range(first, last + 1):
        stats = recorder.window(cluster, second, second + 1, reporter=reporter)
        if stats.source == "als" and stats.requests:
            samples = recorder.latencies(cluster, second, second + 1, reporter=reporter)
            _set_als(found.setdefault(second, TrafficSummary()), stats, samples)
    return dict(sorted(found.items()))


def _lrs(recorder: TrafficRecorder, cluster: str, start: float, end: float, reporter: str | None) -> TrafficSummary:
    summary = TrafficSummary()
    for report in recorder.load_reports(cluster, start, end, reporter=reporter):
        summary.lrs_successes += report.successes
        summary.lrs_errors += report.errors
    return summary


def _set_als(summary: TrafficSummary, stats: TrafficStats, samples: Iterable[tuple[float, float]]) -> None:
    summary.requests, summary.successes = stats.requests, stats.successes
    summary.errors_5xx, summary.resets = stats.errors_5xx, stats.resets
    summary.responses_2xx, summary.responses_3xx = stats.responses_2xx, stats.responses_3xx
    summary.responses_4xx = stats.responses_4xx
    summary.latencies = LatencyHistogram.of(samples)


@dataclass(frozen=True, slots=True)
class TelemetryRecord:
    """One replica's published traffic: per series, the summaries of the seconds that had some."""

    replica: str
    at: float  # the publisher's clock when it read its recorder
    series: Mapping[SeriesKey, Mapping[int, TrafficSummary]]

    @classmethod
    def collect(
        cls, recorder: TrafficRecorder, replica: str, clusters: Iterable[str], now: float, horizon: int,
        max_series: int,
    ) -> TelemetryRecord:
        """What ``recorder`` holds of ``clusters``, every reporter, the seconds ``[floor(now) - horizon,
        floor(now)]``; at most ``max_series`` series (by reporter, then cluster: the same ones each time)."""
        wanted = set(clusters)
        last = math.floor(now)
        series: dict[SeriesKey, Mapping[int, TrafficSummary]] = {}
        for reporter, cluster in recorder.series():
            if cluster not in wanted:
                continue
            seconds = summarize_seconds(recorder, cluster, reporter, last - horizon, last)
            if seconds:
                series[(reporter, cluster)] = seconds
            if len(series) == max_series:
                break
        return cls(replica, now, series)

    def newest(self, seconds: int) -> TelemetryRecord:
        """The same record with only the seconds ``[floor(at) - seconds, ...]``."""
        first = math.floor(self.at) - seconds
        kept = {key: {s: b for s, b in by.items() if s >= first} for key, by in self.series.items()}
        return TelemetryRecord(self.replica, self.at, {key: by for key, by in kept.items() if by})

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "replica": self.replica, "at": self.at,
            "series": [
                {"reporter": reporter, "cluster": cluster, "seconds": [b.to_json(s) for s, b in by.items()]}
                for (reporter, cluster), by in sorted(self.series.items())
            ],
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> TelemetryRecord:
        """The inverse of :meth:`to_json`; ValueError naming what is wrong (another version's record, junk)."""
        if value.get("format") != FORMAT:
            raise ValueError(f"format {value.get('format')!r}, not {FORMAT}")
        replica, at, items = value.get("replica"), value.get("at"), value.get("series")
        if not (isinstance(replica, str) and isinstance(at, int | float) and isinstance(items, list)):
            raise ValueError("a record has a replica, an at and a series list")
        series: dict[SeriesKey, Mapping[int, TrafficSummary]] = {}
        for item in items:
            if not isinstance(item, Mapping):
                raise ValueError("a series is an object")
            reporter, cluster, seconds = item.get("reporter"), item.get("cluster"), item.get("seconds")
            if not (isinstance(reporter, str) and isinstance(cluster, str) and isinstance(seconds, list)):
                raise ValueError("a series has a reporter, a cluster and a seconds list")
            series[(reporter, cluster)] = dict(TrafficSummary.from_json(s) for s in seconds)
        return cls(replica, float(at), series)


def encoded_size(value: Mapping[str, Any]) -> int:
    """Bytes of ``value`` as the store encodes it (compact JSON, UTF-8)."""
    return len(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())


def encode_record(record: TelemetryRecord, horizon: int, max_bytes: int) -> tuple[dict[str, Any], int]:
    """``record`` as JSON within ``max_bytes`` encoded, and its size: fewer seconds (the newest) when the
    whole would be over, and as a last resort fewer series (see the module)."""
    kept = horizon
    while True:
        value = record.newest(kept).to_json()
        size = encoded_size(value)
        if size <= max_bytes:
            return value, size
        if kept == 0:
            break
        kept //= 2
    series: list[Any] = value["series"]
    while series and size > max_bytes:
        series.pop()
        size = encoded_size(value)
    return value, size

