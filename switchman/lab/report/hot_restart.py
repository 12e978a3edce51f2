"""What the hot-restart drill measured: the hand-overs, the load across them, the negative drills.

Every figure is in :class:`HotRestartReport`, a frozen dataclass whose
:meth:`~HotRestartReport.to_json` is plain JSON; times on the series are
seconds since the load started.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from switchman.lab.local.hot_restart import Handover
from switchman.lab.local.load import Sample
from switchman.lab.report.series import bin_samples

__all__ = [
    "BaseIdClash",
    "ConfigCheck",
    "EarlyRestart",
    "HotRestartReport",
    "LoadFigures",
    "RestartFigures",
    "SeriesPoint",
    "load_figures",
    "series",
]


@dataclass(frozen=True, slots=True)
class ConfigCheck:
    """Did the new epoch run the current config from Switchman when it took over?

    ``epoch_versions``: per xDS type, the versions in the new epoch's ``/config_dump`` when
    it went LIVE; ``served_versions``: per type, the version Switchman's status API shows
    ACKed by a stream that is *synced* (runs what is served now) for the drill's node.
    Envoy keeps no version for endpoints, so those are compared by content: per cluster,
    ``epoch_endpoints`` from the config_dump and ``served_endpoints`` from ``/v1/render``.
    ``current`` when Switchman served the drill's revision and everything matched.
    """

    applied_revision: int
    served_revision: int
    epoch_versions: dict[str, list[str]]
    served_versions: dict[str, str]
    epoch_endpoints: dict[str, list[str]]
    served_endpoints: dict[str, list[str]]
    current: bool


@dataclass(frozen=True, slots=True)
class RestartFigures:
    """One hot restart and the requests started while it ran (spawn to the old epoch's exit)."""

    handover: Handover
    config: ConfigCheck
    requests: int
    failures: int
    started_s: float  # when the new epoch was spawned, seconds since the load started


@dataclass(frozen=True, slots=True)
class LoadFigures:
    """The whole open-loop load: every request, and how the failed ones failed."""

    requests: int
    successes: int
    non_2xx: int  # answered with a status outside 2xx
    errors: int  # no answer: connection refused or reset, timeout, protocol error
    resent: int  # HTTP/2 requests the server had not taken (GOAWAY, REFUSED_STREAM), sent again and counted once
    error_kinds: dict[str, int]  # exception name (or "HTTP 503") -> count
    by_client: dict[str, dict[str, int]]  # client kind -> {"requests", "failures"}
    rate: float  # requested per second
    achieved_rate: float  # requests / the span of their start times
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """The requests started in ``[t_s, t_s + bin_s)``."""

    t_s: float
    requests: int
    successes: int
    failures: int
    p99_ms: float | None


@dataclass(frozen=True, slots=True)
class BaseIdClash:
    """Negative drill (a): an unrelated Envoy family started with a base id a running family holds.

    ``envoy_error`` is Envoy's own line; ``first_*`` say what became of the family that held
    the base id, and ``first_restart`` is a hot restart of it afterwards (it should still work).
    """

    base_id: int
    second_started: bool
    second_exit_code: int | None
    envoy_error: str
    failed_after_s: float
    first_state_after: str
    first_answered_after: int  # the HTTP status through its listener after the clash; 0: no answer
    first_restart: Handover | None
    first_restart_error: str


@dataclass(frozen=True, slots=True)
class EarlyRestart:
    """Negative drill (b): epoch 1 started while epoch 0 was still initializing (not LIVE).

    Epoch 0 reached Switchman through a relay that held its xDS connection, so that it was
    surely not LIVE. ``envoy_error`` is Envoy's own line for the refused epoch 1;
    ``retry`` is epoch 1 again, with the same epoch number, once epoch 0 was LIVE.
    """

    base_id: int
    parent_state_before: str  # epoch 0's /server_info state when epoch 1 was started
    child_started: bool
    child_exit_code: int | None
    envoy_error: str
    failed_after_s: float
    parent_alive_after: bool
    parent_state_after: str
    parent_live_after_s: float  # the relay opened -> epoch 0 LIVE
    retry: Handover | None
    retry_error: str


@dataclass(frozen=True, slots=True)
class HotRestartReport:
    """Everything the hot-restart drill found. ``passed`` when every hand-over kept every request:
    no non-2xx answer and no connection error, the generation rose by one each time, the new
    epoch ran the current config before it took over, and the old one exited 0. ``problems``
    says what failed. The negative drills are reported, not judged."""

    passed: bool
    problems: tuple[str, ...]
    settings: dict[str, Any]
    started_at: float  # wall clock of the series' origin (the load's first request)
    envoy_version: str
    hot_restart_version: str
    base_id: int
    node_id: str
    listener_port: int
    applied_revision: int
    restarts: tuple[RestartFigures, ...]
    load: LoadFigures
    failed_requests: tuple[dict[str, Any], ...]  # the first failed requests: t_s, client, status, error
    bin_s: float
    series: tuple[SeriesPoint, ...]
    base_id_clash: BaseIdClash | None = None
    early_restart: EarlyRestart | None = None
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON (``json.dumps`` takes it as it is)."""
        out = asdict(self)
        for restart, figures in zip(out["restarts"], self.restarts, strict=True):
            restart["handover"] = figures.handover.to_json()
        return out


def _failure_kind(s: Sample) -> str:
    return s.error or f"HTTP {s.status}"


def load_figures(samples: Sequence[Sample], rate: float, resent: int = 0) -> LoadFigures:
    """The load's figures from its samples."""
    latencies = sorted(s.latency_ms for s in samples)

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else 0.0

    by_client: dict[str, dict[str, int]] = {}
    for s in samples:
        entry = by_client.setdefault(s.client, {"requests": 0, "failures": 0})
        entry["requests"] += 1
        entry["failures"] += 0 if s.ok else 1
    span = samples[-1].started - samples[0].started if len(samples) > 1 else 0.0
    return LoadFigures(
        requests=len(samples),
        successes=sum(1 for s in samples if s.ok),
        non_2xx=sum(1 for s in samples if not s.error and not 200 <= s.status < 300),
        errors=sum(1 for s in samples if s.error),
        resent=resent,
        error_kinds=dict(Counter(_failure_kind(s) for s in samples if not s.ok)),
        by_client=dict(sorted(by_client.items())),
        rate=rate,
        achieved_rate=round((len(samples) - 1) / span, 1) if span > 0 else 0.0,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        max_ms=round(latencies[-1], 2) if latencies else 0.0,
    )


def series(samples: Sequence[Sample], origin: float, bin_s: float = 0.1) -> tuple[SeriesPoint, ...]:
    """Requests, successes, failures and p99 latency per ``bin_s`` seconds from ``origin``."""
    return tuple(
        SeriesPoint(
            t_s=round(b.start, 3), requests=b.requests, successes=b.answered, failures=b.requests - b.answered,
            p99_ms=None if b.p99_ms is None else round(b.p99_ms, 2),
        )
        for b in bin_samples(samples, [], origin, bin_s)
    )
