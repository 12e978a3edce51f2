"""What a drill run shows, and whether it passed: figures and checks from the client's record and the rollout's.

Every figure comes from two records kept apart on purpose: the load
generator's (every request, when it started, who answered, what failed) and
the rollout's own (its events and analyses, as the API shows them). The
checks compare them: the split the front served against the weight the
rollout set, the access-log counts the analysis used against the requests
the clients sent, the blast radius of a bad canary against when it was
rolled back.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from switchman.lab.drill.scenario import CounterBound, ResilienceScenario, Scenario
from switchman.lab.local.load import Sample
from switchman.lab.report.series import percentile

__all__ = ["Check", "Mark", "StageWindow", "Verdict", "judge", "judge_resilience", "stage_windows"]

SETTLE = 0.5  # seconds after a traffic change before its split is judged (Envoys apply it within ms)
#: Seconds before the next change that are not judged either: a stage's end is when the rollout recorded the
#: next stage, which is just after the Envoys may already have run it.
END_GUARD = 0.25


@dataclass(frozen=True, slots=True)
class Mark:
    """Something the drill did, and when (wall clock)."""

    at: float
    what: str


@dataclass(frozen=True, slots=True)
class StageWindow:
    """A stretch of time over which the canary's weight stayed the same."""

    name: str
    weight: int
    start: float
    end: float
    cohort: bool  # a cohort went to the canary meanwhile
    mirror: int  # percent mirrored to the canary meanwhile


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(slots=True)
class Verdict:
    passed: bool
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)


def stage_windows(timeline: Sequence[tuple[float, int, str, bool, int]], end: float) -> list[StageWindow]:
    """``(at, weight, stage name, cohort, mirror)`` changes -> the windows between them, up to ``end``."""
    windows = []
    for i, (at, weight, name, cohort, mirror) in enumerate(timeline):
        until = timeline[i + 1][0] if i + 1 < len(timeline) else end
        if until > at:
            windows.append(StageWindow(name, weight, at, until, cohort, mirror))
    return windows


def _band_3_sigma(n: int, p: float) -> tuple[float, float]:
    """The hits of ``n`` draws at ``p`` within binomial 3σ of ``n * p``."""
    spread = 3 * math.sqrt(n * p * (1 - p)) + 1e-9
    return n * p - spread, n * p + spread


def _within_3_sigma(hits: int, n: int, p: float) -> bool:
    low, high = _band_3_sigma(n, p)
    return low <= hits <= high


def _split_rows(samples: Sequence[Sample], windows: Sequence[StageWindow]) -> list[dict[str, Any]]:
    rows = []
    for w in windows:
        inside = [s for s in samples if w.start + SETTLE <= s.started < w.end - END_GUARD and not s.cohort and s.ok]
        if not inside:
            continue
        hits = sum(1 for s in inside if s.version == "v2")
        rows.append({
            "stage": w.name, "weight": w.weight, "requests": len(inside), "v2": hits,
            "share": round(hits / len(inside), 4), "within3Sigma": _within_3_sigma(hits, len(inside), w.weight / 100),
        })
    return rows


def _agreement(samples: Sequence[Sample], analyses: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each analysis's request count (from Envoy's access logs) against the clients' own count of requests the
    canary answered or failed in the same window."""
    rows = []
    for a in analyses:
        measurement = a.get("measurement") or {}
        if "start" not in a or measurement.get("requests") is None:
            continue
        start, end = float(a["start"]), float(a["end"])
        sent = sum(1 for s in samples if start <= s.started < end and s.version == "v2")
        reported = int(measurement["requests"])
        error = _error(reported, sent)
        row = {"at": a["at"], "clients": sent, "reported": reported, "source": measurement.get("source")}
        if a.get("stableRequests") is not None:  # the stable version's count, the other half of the split
            row["stableClients"] = sum(1 for s in samples if start <= s.started < end and s.version == "v1")
            row["stableReported"] = int(a["stableRequests"])
            error = max(error, _error(row["stableReported"], row["stableClients"]))
        rows.append({**row, "error": round(error, 4)})
    return rows


def _error(reported: int, sent: int) -> float:
    return abs(reported - sent) / sent if sent else (0.0 if reported == 0 else 1.0)


def _counter_checks(verdict: Verdict, bounds: Sequence[CounterBound], counters: Mapping[str, int] | None,
                    requests: int = 0) -> None:
    """``expect.envoy``: each stat's change over the run (a stat the front never showed changed by 0); a share
    of another stat's change (or of the clients' ``requests``) within binomial 3σ."""
    if not bounds:
        return
    stats = [b.stat for b in bounds] + [b.of for b in bounds if b.of is not None]
    changes = {stat: int((counters or {}).get(stat, 0)) for stat in stats}
    verdict.figures["envoy"] = changes
    for b in bounds:
        value = changes[b.stat]
        if b.share is None:
            held = b.holds(value)
            detail = f"{b.stat} rose by {value} over the run"
        else:
            total = requests if b.of is None else changes[b.of]
            low, high = _band_3_sigma(total, b.share)
            held = total > 0 and low <= value <= high
            detail = (f"{b.stat} rose by {value} of {total} {b.of or 'requests'} "
                      f"({value / total if total else 0:.2%}; {b.share:.2%} ± 3σ: {max(0, math.ceil(low))}"
                      f" to {math.floor(high)})")
        held = counters is not None and held
        verdict.checks.append(Check(f"front Envoy: {b.describe()}", held,
                                    detail if counters is not None else "the front's stats could not be read"))
        verdict.passed = verdict.passed and held


def _failure_checks(verdict: Verdict, scenario: ResilienceScenario, failed: Sequence[Sample],
                    faults: Sequence[Mark], counters: Mapping[str, int] | None) -> None:
    """What the failed requests must be (``expect.failedRequests`` as a mapping: their status, the stat that
    counts them) and when they must stop (``expect.recoveredWithin`` the last action, which lifted the faults)."""
    expect, figures = scenario.expect, verdict.figures

    def check(name: str, passed: bool, detail: str) -> None:
        verdict.checks.append(Check(name, passed, detail))
        verdict.passed = verdict.passed and passed

    if failed:
        figures["failedByStatus"] = dict(Counter(str(s.status) if s.status else s.error or "error" for s in failed))
        latencies = [s.latency_ms for s in failed]
        figures["failedLatency_ms"] = {"p50": round(percentile(latencies, 0.5), 1),
                                       "p99": round(percentile(latencies, 0.99), 1)}
    if expect.failed_status is not None:
        status = expect.failed_status
        others = sum(1 for s in failed if s.status != status)
        check(f"every failed request answered {status} by the front", others == 0,
              f"{len(failed) - others} of {len(failed)} failed requests were {status}s"
              + (f"; by status: {figures['failedByStatus']}" if others else ""))
    if expect.failed_counted_by is not None:
        stat = expect.failed_counted_by
        counted = counters.get(stat, 0) if counters is not None else None
        check(f"the failed requests are the ones {stat} counted", counted == len(failed),
              f"{len(failed)} failed; {stat} rose by {counted}" if counted is not None
              else "the front's stats could not be read")
    if expect.recovered_within is not None:
        within = expect.recovered_within
        if len(faults) < sum(1 for a in scenario.actions if a.faults is not None):  # the run ended first
            check(f"recovered within {within:g}s of the faults' end", False, "the faults were not lifted in the run")
            return
        end = faults[-1].at
        late = [s for s in failed if s.started > end + within]
        figures["lastFailureAfterLift_s"] = round(failed[-1].started - end, 3) if failed else None
        check(f"recovered within {within:g}s of the faults' end", not late,
              f"{len(late)} failed requests sent later than {within:g}s after the faults were lifted"
              + (f"; the last {figures['lastFailureAfterLift_s']} s after" if failed else ""))


def judge_resilience(
    scenario: ResilienceScenario,
    samples: Sequence[Sample],
    windows: Sequence[StageWindow],
    marks: Sequence[Mark],
    counters: Mapping[str, int] | None,
) -> Verdict:
    """A drill with no rollout: the front Envoy's counters (their change over the run) against ``expect.envoy``,
    and every failed request of the run against ``expect.failedRequests``."""
    verdict = Verdict(passed=True)
    figures = verdict.figures
    figures["requests"] = len(samples)
    failed = [s for s in samples if not s.ok]
    figures["failedRequests"] = len(failed)
    faults = [m for m in marks if m.what.startswith("fault")]
    if faults:
        after = [s for s in failed if s.started >= faults[0].at]
        figures["failedAfterFault"] = len(after)
        # how long the clients saw errors: from the first fault to the last failed request sent
        figures["lastFailureAfterFault_s"] = round(after[-1].started - faults[0].at, 3) if after else None
    verdict.stages = _split_rows(samples, windows)
    limit = scenario.expect.failed_requests
    if limit is not None:
        verdict.checks.append(Check("failed requests within the limit", len(failed) <= limit,
                                    f"{len(failed)} of {len(samples)} failed (allowed {limit})"))
        verdict.passed = len(failed) <= limit
    _failure_checks(verdict, scenario, failed, faults, counters)
    _counter_checks(verdict, scenario.expect.envoy, counters, len(samples))
    return verdict


def judge(
    scenario: Scenario,
    samples: Sequence[Sample],
    windows: Sequence[StageWindow],
    status: Mapping[str, Any],
    marks: Sequence[Mark],
    mirror_counts: Mapping[str, int] | None = None,
    counters: Mapping[str, int] | None = None,
    gaps: Sequence[tuple[float, float]] = (),
) -> Verdict:
    """Figures and checks of one run; ``mirror_counts``: requests the canary's apps received, and the share
    of the front's requests it should have been (``received``, ``front``); ``counters``: the front Envoy's
    stats, their change over the run (for ``expect.envoy``); ``gaps``: when the control plane could not see
    all traffic (it was restarted), the analyses over them left out of the count comparison."""
    state = status.get("state") or {}
    events: list[Mapping[str, Any]] = list(state.get("events") or [])
    interval = float(status.get("interval") or 1.0)
    verdict = Verdict(passed=True)
    figures = verdict.figures
    phase = state.get("phase")
    figures["phase"] = phase
    figures["requests"] = len(samples)
    figures["failedRequests"] = sum(1 for s in samples if not s.ok)
    expect = scenario.expect

    def check(name: str, passed: bool, detail: str) -> None:
        verdict.checks.append(Check(name, passed, detail))
        verdict.passed = verdict.passed and passed

    if expect.phase is not None:
        check("the run ends as expected", phase == expect.phase, f"ended {phase}, expected {expect.phase}")

    # the split the front served, per stage
    rows = _split_rows(samples, [w for w in windows if not w.cohort])
    verdict.stages = rows
    off = [r for r in rows if not r["within3Sigma"]]
    check("every stage's split within binomial 3σ of its weight", not off,
          f"{len(rows) - len(off)} of {len(rows)} stages within 3σ"
          + ("" if not off else f"; off: {', '.join(str(r['stage']) for r in off)}"))

    # failures, and what a bad canary cost
    faults = [m for m in marks if m.what.startswith("fault")]
    rolled_back = next((float(e["at"]) for e in events if e.get("kind") == "RolledBack"), None)
    if faults:
        bad_from = faults[0].at
        bad_until = (rolled_back + SETTLE) if rolled_back is not None else math.inf
        blast = [s for s in samples if bad_from <= s.started < bad_until and (s.version == "v2" or not s.ok)]
        figures["blastRadius"] = {
            "requestsToCanary": len(blast), "failed": sum(1 for s in blast if not s.ok),
            "window_s": round((bad_until if rolled_back is not None else samples[-1].started) - bad_from, 3)
            if samples else 0.0,
        }
        outside = [s for s in samples if not s.ok and not bad_from <= s.started < bad_until]
        halted = next((float(e["at"]) for e in events if e.get("kind") == "Halted" and float(e["at"]) >= bad_from),
                      None)
        figures["timeToDetect_s"] = round(halted - bad_from, 3) if halted is not None else None
        figures["timeToWeightZero_s"] = round(rolled_back - bad_from, 3) if rolled_back is not None else None
        if expect.rolled_back_within is not None:
            limit = expect.rolled_back_within * interval
            took = figures["timeToWeightZero_s"]
            check(f"rolled back within {expect.rolled_back_within:g} analysis intervals of turning bad",
                  took is not None and took <= limit,
                  f"traffic back on stable {took} s after the fault (limit {limit:g} s)")
    else:
        outside = [s for s in samples if not s.ok]
    allowed = expect.failed_requests or 0  # a rollout drill's is a number (scenario.py)
    check("no failed request outside a bad canary's blast radius", len(outside) <= allowed,
          f"{len(outside)} failed (allowed {allowed})")

    # cohorts: every cohort request to the canary, no other request to it
    cohort_windows = [w for w in windows if w.cohort]
    if cohort_windows and scenario.cohort is not None:
        inside = [s for s in samples
                  if s.ok and any(w.start + SETTLE <= s.started < w.end - END_GUARD for w in cohort_windows)]
        to_stable = sum(1 for s in inside if s.cohort and s.version != "v2")
        to_canary = sum(1 for s in inside if not s.cohort and s.version == "v2")
        figures["leakage"] = {"cohortToStable": to_stable, "othersToCanary": to_canary,
                              "cohortRequests": sum(1 for s in inside if s.cohort)}
        if expect.leakage is not None:
            check("no leakage: the cohort all to the canary, nobody else", to_stable + to_canary <= expect.leakage,
                  f"{to_stable} cohort requests answered by the stable version, {to_canary} others by the canary")

    # mirroring: the canary got its share of copies, and no client saw its answers
    if expect.mirror and mirror_counts is not None:
        received, front = mirror_counts.get("received", 0), mirror_counts.get("front", 0)
        share = max((w.mirror for w in windows), default=0) / 100
        mirrored_windows = [w for w in windows if w.mirror]
        answered_by_canary = sum(
            1 for s in samples
            if s.version == "v2" and any(w.start + SETTLE <= s.started < w.end - END_GUARD for w in mirrored_windows)
        )
        figures["mirror"] = {"frontRequests": front, "canaryReceived": received, "setting": share,
                             "clientsAnsweredByCanary": answered_by_canary}
        check("mirrored share within 3σ of the setting", front > 0 and _within_3_sigma(received, front, share),
              f"the canary received {received} of {front} requests ({received / front if front else 0:.1%}); "
              f"setting {share:.0%}")
        check("no client saw a shadow answer", answered_by_canary == 0,
              f"{answered_by_canary} answers came from the canary while it was only mirrored")

    # the analysis counted what the clients sent
    analyses = [a for a in state.get("analyses") or []
                if not any("start" in a and float(a["start"]) < until and float(a["end"]) > since
                           for since, until in gaps)]
    if gaps:
        figures["analysesAcrossRestarts"] = len(state.get("analyses") or []) - len(analyses)
    agreement = _agreement(samples, analyses)
    figures["analysisAgreement"] = agreement
    counted = [a for a in agreement if a["clients"] >= 20]
    worst = max((a["error"] for a in counted), default=0.0)
    figures["analysisAgreementWorst"] = worst
    check("the access-log counts behind each analysis agree with the clients' within 1 %",
          all(a["error"] <= 0.01 or abs(a["reported"] - a["clients"]) <= 1 for a in counted),
          f"{len(counted)} analyses of 20+ canary requests; worst difference {worst:.2%}"
          + (f"; {figures['analysesAcrossRestarts']} over a control-plane restart left out" if gaps else ""))
    _counter_checks(verdict, expect.envoy, counters)
    return verdict
