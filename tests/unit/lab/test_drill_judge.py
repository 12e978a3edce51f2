"""The drill's judge: figures and checks from the clients' record and the rollout's."""

from __future__ import annotations

from typing import Any

from switchman.lab.drill.judge import Mark, judge, judge_resilience, stage_windows
from switchman.lab.drill.scenario import ResilienceScenario, read_scenario
from switchman.lab.local.load import Sample

T0 = 1000.0


def scenario(**expect: Any) -> Any:
    doc = {"kind": "Drill", "metadata": {"name": "d"}, "spec": {"rollout": {}, "expect": expect}}
    return read_scenario(doc, "d.yaml")


def status(events: list[dict[str, Any]], analyses: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"interval": 2.0, "state": {"phase": "Failed", "events": events, "analyses": analyses or []}}


def traffic(start: float, end: float, rate: int, share: float, fail_v2: float = 0.0) -> list[Sample]:
    """Requests at ``rate`` a second; every 1/share-th to v2; a share of v2's answers 503."""
    out = []
    n = int((end - start) * rate)
    every = round(1 / share) if share else 0
    failed = 0
    for i in range(n):
        to_v2 = bool(every) and i % every == 0
        t = start + i / rate
        if to_v2 and fail_v2 and (failed + 1) / max(1, i // every + 1) <= fail_v2:
            failed += 1
            out.append(Sample(t, 503, 2.0, "v2"))
        else:
            out.append(Sample(t, 200, 2.0, "v2" if to_v2 else "v1"))
    return out


def test_a_split_off_its_weight_fails_the_check() -> None:
    windows = stage_windows([(T0, 50, "weight 50%", False, 0)], T0 + 10)
    good = judge(scenario(), traffic(T0, T0 + 10, 100, 0.5), windows, status([]), [])
    assert good.passed and good.stages[0]["within3Sigma"]
    bad = judge(scenario(), traffic(T0, T0 + 10, 100, 0.25), windows, status([]), [])
    assert not bad.passed
    assert [c.name for c in bad.checks if not c.passed] == ["every stage's split within binomial 3σ of its weight"]


def test_blast_radius_and_times_from_the_fault_to_the_rollback() -> None:
    samples = traffic(T0, T0 + 4, 100, 0.5) + traffic(T0 + 4, T0 + 6, 100, 0.5, fail_v2=0.2) + traffic(
        T0 + 6.6, T0 + 8, 100, 0.0
    )
    windows = stage_windows([(T0, 50, "weight 50%", False, 0), (T0 + 6.1, 0, "rolled back", False, 0)], T0 + 8)
    events = [{"kind": "Halted", "at": T0 + 5.0}, {"kind": "RolledBack", "at": T0 + 6.1}]
    verdict = judge(scenario(phase="Failed", rolledBackWithin=2), samples, windows, status(events),
                    [Mark(T0 + 4, "fault: v2: 20% errors")])
    assert verdict.figures["timeToDetect_s"] == 1.0
    assert verdict.figures["timeToWeightZero_s"] == 2.1
    assert verdict.figures["blastRadius"]["failed"] == 20
    assert verdict.passed, [c for c in verdict.checks if not c.passed]
    late = judge(scenario(rolledBackWithin=1), samples, windows, status(events), [Mark(T0 + 4, "fault: x")])
    assert [c.detail for c in late.checks if not c.passed] == [
        "traffic back on stable 2.1 s after the fault (limit 2 s)"
    ]


def test_a_failure_before_any_fault_counts_against_the_drill() -> None:
    samples = [*traffic(T0, T0 + 2, 100, 0.5), Sample(T0 + 1.5, 0, 3.0, "", "ClientConnectorError")]
    verdict = judge(scenario(), sorted(samples, key=lambda s: s.started),
                    stage_windows([(T0, 50, "w", False, 0)], T0 + 2), status([]), [])
    assert [c.detail for c in verdict.checks if not c.passed] == ["1 failed (allowed 0)"]


def test_leakage_counts_cohort_requests_that_missed_the_canary_and_others_that_hit_it() -> None:
    samples = [Sample(T0 + 1 + i / 10, 200, 1.0, "v2" if i % 3 else "v1", cohort=i % 2 == 0) for i in range(30)]
    windows = stage_windows([(T0, 0, "cohort", True, 0)], T0 + 5)
    doc = {"kind": "Drill", "metadata": {"name": "d"}, "spec": {
        "rollout": {"strategy": "abTest", "analysis": {"match": [{"headers": {"x": {"exact": "1"}}}]}},
        "cohort": {"share": 0.5, "headers": {"x": "1"}}, "expect": {"leakage": 0}}}
    verdict = judge(read_scenario(doc, "d.yaml"), samples, windows, status([]), [])
    leakage = verdict.figures["leakage"]
    assert (leakage["cohortToStable"], leakage["othersToCanary"]) == (5, 10)
    assert not verdict.passed


def test_analysis_counts_are_compared_with_the_clients_in_the_same_window() -> None:
    samples = traffic(T0, T0 + 4, 100, 0.5)
    analyses = [{"at": T0 + 3, "start": T0, "end": T0 + 2, "measurement": {"requests": 100, "source": "als"}},
                {"at": T0 + 5, "start": T0 + 2, "end": T0 + 4, "measurement": {"requests": 90, "source": "als"}}]
    verdict = judge(scenario(), samples, stage_windows([(T0, 50, "w", False, 0)], T0 + 4), status([], analyses), [])
    assert [(a["clients"], a["reported"]) for a in verdict.figures["analysisAgreement"]] == [(100, 100), (100, 90)]
    assert verdict.figures["analysisAgreementWorst"] == 0.1
    assert not verdict.passed


def test_a_resilience_drill_is_judged_by_counter_changes_and_every_failed_request() -> None:
    doc = {"kind": "Drill", "metadata": {"name": "r"}, "spec": {
        "apply": [{"kind": "Service", "metadata": {"name": "checkout", "groups": ["front"]}, "spec": {}}],
        "expect": {"failedRequests": 2, "envoy": {"cluster.checkout-v2.upstream_rq_retry": {"min": 1},
                                                  "cluster.checkout-v1.upstream_rq_retry": {"max": 0}}},
    }}
    drill = read_scenario(doc, "r.yaml")
    assert isinstance(drill, ResilienceScenario)
    samples = traffic(T0, T0 + 10, 100, 0.5)
    samples[150] = Sample(T0 + 1.5, 503, 2.0, "v2")
    windows = stage_windows([(T0, 50, "under load", False, 0)], T0 + 10)
    marks = [Mark(T0 + 1.0, "fault: v2: 20% errors")]
    verdict = judge_resilience(drill, samples, windows, marks, {"cluster.checkout-v2.upstream_rq_retry": 40})
    assert verdict.passed, verdict.checks
    assert verdict.figures["envoy"] == {"cluster.checkout-v2.upstream_rq_retry": 40,
                                        "cluster.checkout-v1.upstream_rq_retry": 0}  # never shown: no change
    assert (verdict.figures["failedRequests"], verdict.figures["failedAfterFault"]) == (1, 1)
    assert verdict.figures["lastFailureAfterFault_s"] == 0.5
    assert verdict.stages[0]["weight"] == 50

    no_retries = judge_resilience(drill, samples, windows, marks, {})
    assert not no_retries.passed
    assert [c.name for c in no_retries.checks if not c.passed] == [
        "front Envoy: cluster.checkout-v2.upstream_rq_retry ≥ 1"
    ]
    unread = judge_resilience(drill, samples, windows, marks, None)
    assert not unread.passed and "could not be read" in unread.checks[-1].detail
    too_many = judge_resilience(drill, [Sample(T0 + i, 503, 2.0, "v1") for i in range(3)], windows, [], {})
    assert "3 of 3 failed (allowed 2)" in too_many.checks[0].detail and not too_many.passed


def resilience(expect: dict[str, Any], actions: list[dict[str, Any]] | None = None) -> ResilienceScenario:
    doc = {"kind": "Drill", "metadata": {"name": "r"}, "spec": {
        "apply": [{"kind": "Service", "metadata": {"name": "checkout", "groups": ["front"]}, "spec": {}}],
        "actions": actions or [], "expect": expect,
    }}
    drill = read_scenario(doc, "r.yaml")
    assert isinstance(drill, ResilienceScenario)
    return drill


def test_failures_are_judged_by_their_status_the_stat_that_counts_them_and_when_they_stop() -> None:
    overflow = "cluster.checkout-v1.upstream_rq_pending_overflow"
    drill = resilience(
        {"failedRequests": {"status": 503, "countedBy": overflow}, "recoveredWithin": "1s"},
        [{"when": {"after": "2s"}, "faults": {"version": "v1", "latencyMs": 1000}},
         {"when": {"after": "5s"}, "faults": {"version": "v1"}}],
    )
    samples = traffic(T0, T0 + 10, 100, 0.0)
    for i in range(200, 560, 2):  # every other request from 2 s to 5.6 s answered by the breaker
        samples[i] = Sample(T0 + i / 100, 503, 1.0, "")
    windows = stage_windows([(T0, 0, "under load", False, 0)], T0 + 10)
    marks = [Mark(T0 + 2.0, "fault: v1: +1000 ms"), Mark(T0 + 5.0, "fault: v1: no faults")]
    verdict = judge_resilience(drill, samples, windows, marks, {overflow: 180})
    assert verdict.passed, verdict.checks
    assert [c.name for c in verdict.checks] == [
        "every failed request answered 503 by the front", f"the failed requests are the ones {overflow} counted",
        "recovered within 1s of the faults' end",
    ]
    figures = verdict.figures
    assert figures["failedByStatus"] == {"503": 180} and figures["failedLatency_ms"] == {"p50": 1.0, "p99": 1.0}
    assert figures["lastFailureAfterLift_s"] == 0.58

    miscounted = judge_resilience(drill, samples, windows, marks, {overflow: 179})
    assert not miscounted.passed and miscounted.checks[1].detail == f"180 failed; {overflow} rose by 179"
    samples[900] = Sample(T0 + 9.0, 0, 5000.0, "", "TimeoutError")
    late = judge_resilience(drill, samples, windows, marks, {overflow: 181})
    assert [c.name for c in late.checks if not c.passed] == [
        "every failed request answered 503 by the front", "recovered within 1s of the faults' end"
    ]
    assert late.checks[0].detail == "180 of 181 failed requests were 503s; by status: {'503': 180, 'TimeoutError': 1}"
    assert late.checks[2].detail == ("1 failed requests sent later than 1s after the faults were lifted; "
                                     "the last 4.0 s after")
    never_lifted = judge_resilience(drill, samples, windows, marks[:1], {overflow: 181})
    assert never_lifted.checks[2].detail == "the faults were not lifted in the run" and not never_lifted.passed


def test_a_stat_is_judged_as_a_share_of_another_or_of_the_requests_within_3_sigma() -> None:
    drill = resilience({"failedRequests": 10_000, "envoy": {
        "http.ingress.fault.aborts_injected": {"share": 0.1, "of": "http.ingress.downstream_rq_total"},
        "http.ingress.fault.delays_injected": {"share": 0.2},
    }})
    samples = traffic(T0, T0 + 10, 200, 0.0)
    windows = stage_windows([(T0, 0, "under load", False, 0)], T0 + 10)
    counters = {"http.ingress.fault.aborts_injected": 204, "http.ingress.fault.delays_injected": 360,
                "http.ingress.downstream_rq_total": 2000}
    verdict = judge_resilience(drill, samples, windows, [], counters)
    assert verdict.passed, verdict.checks
    assert verdict.figures["envoy"] == counters
    assert verdict.checks[1].detail == ("http.ingress.fault.aborts_injected rose by 204 of 2000 "
                                        "http.ingress.downstream_rq_total (10.20%; 10.00% ± 3σ: 160 to 240)")
    assert verdict.checks[2].detail.endswith("of 2000 requests (18.00%; 20.00% ± 3σ: 347 to 453)")
    off = judge_resilience(drill, samples, windows, [], counters | {"http.ingress.fault.aborts_injected": 241})
    assert [c.name for c in off.checks if not c.passed] == [
        "front Envoy: http.ingress.fault.aborts_injected ≈ 0.1 of http.ingress.downstream_rq_total (binomial 3σ)"
    ]
    nothing_received = judge_resilience(drill, samples, windows, [], {})
    assert not nothing_received.passed
