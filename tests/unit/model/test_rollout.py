"""kind: Rollout: how a Service moves from its stable version to a canary, and how each step is judged."""

from __future__ import annotations

from typing import Any

import pytest

from switchman.control.groups import build_served
from switchman.errors import ConfigError
from switchman.model.config import check_rollouts
from switchman.model.kinds.rollout import (
    Analysis,
    MetricCheck,
    Pause,
    RolloutSpec,
    SetWeight,
    TrafficMatch,
    Webhook,
)
from switchman.xds import resources as rt
from tests.unit.model.docs import config, listener, parse, rejected, rollout, route, routes, service

Raw = dict[str, Any]
AB_MATCH = [{"headers": {"x-canary": {"exact": "1"}}}]


def _spec(doc: Raw) -> RolloutSpec:
    spec = parse(doc).spec
    assert isinstance(spec, RolloutSpec)
    return spec


def _rejected_together(*docs: Raw) -> ConfigError:
    """The ConfigError that check_rollouts raises for ``docs`` (each parses on its own)."""
    with pytest.raises(ConfigError) as info:
        check_rollouts(config(docs))
    return info.value


def _why(doc: Raw) -> tuple[str, str]:
    err = rejected(doc)
    return err.path, err.reason


# -- defaults and each strategy's minimal form ---------------------------------------------------------


def test_a_canary_needs_only_service_stable_and_canary() -> None:
    spec = _spec(rollout())
    assert (spec.service, spec.stable, spec.canary, spec.strategy) == ("s", "v1", "v2", "canary")
    assert spec.steps == tuple(SetWeight(w) for w in (10, 20, 30, 40, 50))
    assert spec.skip_analysis is False
    assert spec.analysis == Analysis(
        interval=60.0,
        threshold=5,
        min_requests=1,
        metrics=(MetricCheck("request-success-rate", 99.0, None),),
        webhooks=(),
        iterations=10,
        matches=(),
        mirror_weight=100,
        reporter=None,
    )


def test_an_empty_or_null_analysis_is_the_default_one() -> None:
    assert _spec(rollout(analysis={})).analysis == _spec(rollout()).analysis
    assert _spec(rollout(analysis=None)).analysis == _spec(rollout()).analysis


def test_blue_green_takes_no_steps() -> None:
    spec = _spec(rollout(strategy="blueGreen"))
    assert (spec.strategy, spec.steps, spec.analysis.iterations) == ("blueGreen", (), 10)


def test_ab_test_with_its_match() -> None:
    spec = _spec(rollout(strategy="abTest", analysis={"match": AB_MATCH}))
    assert (spec.strategy, spec.steps) == ("abTest", ())
    assert spec.analysis.matches == (TrafficMatch((("x-canary", "exact", "1"),)),)


def test_mirror_takes_no_steps_and_mirrors_everything_by_default() -> None:
    spec = _spec(rollout(strategy="mirror"))
    assert (spec.strategy, spec.steps, spec.analysis.mirror_weight) == ("mirror", (), 100)


def test_the_analysis_fields_as_given() -> None:
    analysis = {
        "interval": "30s", "threshold": 2, "minRequests": 0, "iterations": 4, "mirrorWeight": 25,
        "reporter": "front",
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99.5}},
            {"name": "request-duration", "thresholdRange": {"max": 500}},
            {"name": "request-duration-p50", "thresholdRange": {"min": 1, "max": 100}},
        ],
        "webhooks": [
            {"name": "gate", "type": "confirm-rollout", "url": "http://127.0.0.1:9/gate"},
            {"name": "load", "type": "pre-rollout", "url": "https://load.example/run", "timeout": "30s",
             "metadata": {"cmd": "hey -z 1m", "rps": 10}},
        ],
    }
    spec = _spec(rollout(strategy="mirror", skipAnalysis=True, analysis=analysis))
    assert spec.skip_analysis is True
    found = spec.analysis
    assert (found.interval, found.threshold, found.min_requests) == (30.0, 2, 0)
    assert (found.iterations, found.mirror_weight, found.reporter) == (4, 25, "front")
    assert found.metrics == (
        MetricCheck("request-success-rate", 99.5, None),
        MetricCheck("request-duration", None, 500.0),
        MetricCheck("request-duration-p50", 1.0, 100.0),
    )
    assert found.webhooks == (
        Webhook("gate", "confirm-rollout", "http://127.0.0.1:9/gate", 10.0, ()),
        Webhook("load", "pre-rollout", "https://load.example/run", 30.0, (("cmd", "hey -z 1m"), ("rps", "10"))),
    )


# -- steps: Flagger's stepWeight/maxWeight and stepWeights, Argo's steps ---------------------------------


def test_step_weight_rises_to_100_without_max_weight() -> None:
    assert _spec(rollout(analysis={"stepWeight": 25})).steps == tuple(SetWeight(w) for w in (25, 50, 75, 100))


def test_step_weight_rises_to_max_weight() -> None:
    steps = _spec(rollout(analysis={"stepWeight": 5, "maxWeight": 20})).steps
    assert steps == tuple(SetWeight(w) for w in (5, 10, 15, 20))


def test_max_weight_that_is_not_a_multiple_of_step_weight_is_the_last_step() -> None:
    # As Flagger does: the steps go up by stepWeight and the last one stops at maxWeight.
    assert _spec(rollout(analysis={"stepWeight": 30, "maxWeight": 50})).steps == (SetWeight(30), SetWeight(50))


def test_step_weights_as_listed() -> None:
    steps = _spec(rollout(analysis={"stepWeights": [1, 5, 20, 100]})).steps
    assert steps == tuple(SetWeight(w) for w in (1, 5, 20, 100))


def test_argo_steps_with_pauses() -> None:
    steps = [{"setWeight": 0}, {"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {"duration": "2m"}},
             {"setWeight": 100}, {"pause": {"duration": 5}}]
    assert _spec(rollout(steps=steps)).steps == (
        SetWeight(0), SetWeight(20), Pause(None), SetWeight(60), Pause(120.0), SetWeight(100), Pause(5.0),
    )


def test_a_mirror_rollout_may_take_steps() -> None:
    assert _spec(rollout(strategy="mirror", steps=[{"setWeight": 50}])).steps == (SetWeight(50),)
    assert _spec(rollout(strategy="mirror", analysis={"stepWeights": [10, 50]})).steps == (SetWeight(10), SetWeight(50))


# -- read_rollout: one test per rule --------------------------------------------------------------------


@pytest.mark.parametrize("field", ["service", "stable", "canary"])
def test_service_stable_and_canary_are_required(field: str) -> None:
    doc = rollout()
    del doc["spec"][field]
    assert _why(doc) == (f"rollout/r: spec.{field}", "is required")


def test_stable_and_canary_differ() -> None:
    assert _why(rollout(canary="v1")) == (
        "rollout/r: spec.canary", "is the stable version too ('v1'): a rollout moves between two versions"
    )


def test_strategy_is_one_of_four() -> None:
    assert _why(rollout(strategy="linear")) == (
        "rollout/r: spec.strategy", "'linear' is not one of canary, blueGreen, abTest, mirror"
    )


def test_unknown_fields_are_refused() -> None:
    path, reason = _why(rollout(targetRef="checkout"))
    assert path == "rollout/r: spec.targetRef"
    assert reason.startswith("unknown field (allowed here: ")
    path, reason = _why(rollout(analysis={"maxReplicas": 3}))
    assert path == "rollout/r: spec.analysis.maxReplicas"
    assert reason.startswith("unknown field (allowed here: ")


def test_a_rollout_takes_no_node_groups() -> None:
    doc = rollout()
    doc["metadata"]["groups"] = ["front"]
    assert _why(doc) == ("rollout/r: metadata.groups", "a Rollout is not served to Envoys: it takes no groups")


def test_steps_and_flagger_weights_do_not_mix() -> None:
    assert _why(rollout(steps=[{"setWeight": 10}], analysis={"stepWeight": 10})) == (
        "rollout/r: spec.steps",
        "goes without analysis.stepWeight, maxWeight and stepWeights (one way to give the steps)",
    )


@pytest.mark.parametrize("strategy", ["blueGreen", "abTest"])
def test_steps_apply_to_canary_and_mirror_rollouts(strategy: str) -> None:
    doc = rollout(strategy=strategy, steps=[{"setWeight": 10}], analysis={"match": AB_MATCH})
    assert _why(doc) == ("rollout/r: spec.steps", "applies to canary and mirror rollouts")


@pytest.mark.parametrize("weights", [{"stepWeight": 10}, {"stepWeight": 10, "maxWeight": 50}, {"stepWeights": [10]}])
def test_flagger_weights_apply_to_canary_and_mirror_rollouts(weights: Raw) -> None:
    assert _why(rollout(strategy="blueGreen", analysis=weights)) == (
        "rollout/r: spec", "stepWeight, maxWeight and stepWeights apply to canary and mirror rollouts, not blueGreen"
    )


def test_argo_steps_are_not_empty() -> None:
    assert _why(rollout(steps=[])) == ("rollout/r: spec.steps", "needs at least 1 item")


@pytest.mark.parametrize(
    ("step", "found"), [({}, "none"), ({"setWeight": 10, "pause": {}}, "setWeight, pause"), ({"pause": None}, "none")]
)
def test_an_argo_step_is_a_set_weight_or_a_pause(step: Raw, found: str) -> None:
    assert _why(rollout(steps=[{"setWeight": 10}, step])) == (
        "rollout/r: spec.steps[1]", f"needs exactly one of setWeight, pause (found {found})"
    )


def test_an_argo_step_takes_nothing_else() -> None:
    path, reason = _why(rollout(steps=[{"setWeight": 10, "analysis": {}}]))
    assert path == "rollout/r: spec.steps[0].analysis"
    assert reason.startswith("unknown field")
    path, reason = _why(rollout(steps=[{"pause": {"duration": "1m", "until": "promoted"}}]))
    assert path == "rollout/r: spec.steps[0].pause.until"
    assert reason.startswith("unknown field")


@pytest.mark.parametrize(("weight", "reason"), [(-1, "-1 is below 0"), (101, "101 is above 100")])
def test_set_weight_is_a_percentage(weight: int, reason: str) -> None:
    assert _why(rollout(steps=[{"setWeight": weight}])) == ("rollout/r: spec.steps[0].setWeight", reason)


def test_a_pause_lasts_at_least_a_millisecond() -> None:
    assert _why(rollout(steps=[{"pause": {"duration": 0}}])) == (
        "rollout/r: spec.steps[0].pause.duration", "must be at least 0.001s"
    )


# -- Flagger's weights ----------------------------------------------------------------------------------------


def test_step_weights_go_without_step_weight_and_max_weight() -> None:
    for other in ({"stepWeight": 10}, {"maxWeight": 50}):
        assert _why(rollout(analysis={"stepWeights": [10, 20], **other})) == (
            "rollout/r: spec.analysis.stepWeights", "goes without stepWeight and maxWeight"
        )


@pytest.mark.parametrize("weights", [[10, 10], [20, 10], [10, 50, 30]])
def test_step_weights_rise(weights: list[int]) -> None:
    assert _why(rollout(analysis={"stepWeights": weights})) == (
        "rollout/r: spec.analysis.stepWeights", "must rise step by step"
    )


def test_step_weights_are_not_empty_and_each_is_1_to_100() -> None:
    assert _why(rollout(analysis={"stepWeights": []})) == (
        "rollout/r: spec.analysis.stepWeights", "needs at least 1 item"
    )
    assert _why(rollout(analysis={"stepWeights": [0, 10]})) == (
        "rollout/r: spec.analysis.stepWeights[0]", "0 is below 1"
    )


def test_max_weight_needs_step_weight() -> None:
    assert _why(rollout(analysis={"maxWeight": 50})) == ("rollout/r: spec.analysis", "maxWeight needs stepWeight")


def test_max_weight_is_not_below_step_weight() -> None:
    assert _why(rollout(analysis={"stepWeight": 30, "maxWeight": 20})) == (
        "rollout/r: spec.analysis.maxWeight", "20 is below stepWeight (30)"
    )


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("stepWeight", 0, "0 is below 1"), ("stepWeight", 101, "101 is above 100"), ("maxWeight", 0, "0 is below 1"),
])
def test_step_weight_and_max_weight_are_1_to_100(field: str, value: int, reason: str) -> None:
    analysis = {"stepWeight": 10, field: value}
    assert _why(rollout(analysis=analysis)) == (f"rollout/r: spec.analysis.{field}", reason)


# -- the rest of the analysis ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("interval", "50ms", "must be at least 0.1s"),
    ("interval", "2h", "must be at most 3600s"),
    ("threshold", 0, "0 is below 1"),
    ("threshold", 1001, "1001 is above 1000"),
    ("minRequests", -1, "-1 is below 0"),
])
def test_analysis_ranges(field: str, value: Any, reason: str) -> None:
    assert _why(rollout(analysis={field: value})) == (f"rollout/r: spec.analysis.{field}", reason)


def test_iterations_range() -> None:
    assert _why(rollout(strategy="blueGreen", analysis={"iterations": 0})) == (
        "rollout/r: spec.analysis.iterations", "0 is below 1"
    )


def test_metrics_are_the_built_in_ones() -> None:
    doc = rollout(analysis={"metrics": [{"name": "error-rate", "thresholdRange": {"max": 1}}]})
    assert _why(doc) == (
        "rollout/r: spec.analysis.metrics[0].name",
        "'error-rate' is not one of request-success-rate, request-duration, request-duration-p50",
    )


def test_a_threshold_range_needs_min_or_max() -> None:
    doc = rollout(analysis={"metrics": [{"name": "request-duration", "thresholdRange": {}}]})
    assert _why(doc) == ("rollout/r: spec.analysis.metrics[0].thresholdRange", "needs min, max or both")


def test_a_threshold_range_min_is_not_above_its_max() -> None:
    doc = rollout(analysis={"metrics": [{"name": "request-duration", "thresholdRange": {"min": 500, "max": 100}}]})
    assert _why(doc) == ("rollout/r: spec.analysis.metrics[0].thresholdRange", "min (500) is above max (100)")


def test_a_success_rate_is_a_percentage() -> None:
    doc = rollout(analysis={"metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 101}}]})
    assert _why(doc) == ("rollout/r: spec.analysis.metrics[0].thresholdRange.min", "101 is above 100")
    # latencies have no top
    assert _spec(rollout(analysis={"metrics": [{"name": "request-duration", "thresholdRange": {"max": 60_000}}]}))


def test_a_metric_is_named_once() -> None:
    metric = {"name": "request-duration", "thresholdRange": {"max": 500}}
    assert _why(rollout(analysis={"metrics": [metric, metric]})) == (
        "rollout/r: spec.analysis.metrics", "names a metric twice"
    )


def test_webhook_types_are_flaggers() -> None:
    doc = rollout(analysis={"webhooks": [{"name": "w", "type": "pre-promotion", "url": "http://x/"}]})
    path, reason = _why(doc)
    assert path == "rollout/r: spec.analysis.webhooks[0].type"
    assert reason == ("'pre-promotion' is not one of confirm-rollout, pre-rollout, rollout, confirm-traffic-increase, "
                      "confirm-promotion, post-rollout, rollback, event")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http://", "example.com/hook", "http:///path"])
def test_a_webhook_url_is_http_or_https(url: str) -> None:
    doc = rollout(analysis={"webhooks": [{"name": "w", "type": "event", "url": url}]})
    assert _why(doc) == ("rollout/r: spec.analysis.webhooks[0].url", f"{url!r} is not an http:// or https:// URL")


def test_a_webhook_timeout_is_at_most_a_minute() -> None:
    doc = rollout(analysis={"webhooks": [{"name": "w", "type": "event", "url": "http://x/", "timeout": "2m"}]})
    assert _why(doc) == ("rollout/r: spec.analysis.webhooks[0].timeout", "must be at most 60s")


def test_a_webhook_is_named_once() -> None:
    hook = {"name": "w", "type": "event", "url": "http://x/"}
    assert _why(rollout(analysis={"webhooks": [hook, hook | {"type": "rollback"}]})) == (
        "rollout/r: spec.analysis.webhooks", "names a webhook twice"
    )


def test_an_ab_test_needs_match() -> None:
    assert _why(rollout(strategy="abTest")) == (
        "rollout/r: spec.analysis", "an abTest rollout needs match: the requests that go to the canary"
    )


def test_match_is_not_empty() -> None:
    assert _why(rollout(strategy="abTest", analysis={"match": []})) == (
        "rollout/r: spec.analysis.match", "needs at least 1 item"
    )


@pytest.mark.parametrize("strategy", ["canary", "mirror"])
def test_match_applies_to_ab_tests_and_blue_green(strategy: str) -> None:
    assert _why(rollout(strategy=strategy, analysis={"match": AB_MATCH})) == (
        "rollout/r: spec.analysis.match", "applies to abTest (the cohort) and blueGreen (the preview) rollouts"
    )


def test_blue_green_may_take_a_preview_match() -> None:
    spec = _spec(rollout(strategy="blueGreen", analysis={"match": AB_MATCH}))
    assert spec.analysis.matches == (TrafficMatch((("x-canary", "exact", "1"),)),)


def test_match_entries_all_of_their_headers() -> None:
    match = [{"headers": {"x-user": {"prefix": "beta-"}, "cookie": {"regex": "^(.*; )?canary=always(;.*)?$"}}},
             {"headers": {"x-canary": {"exact": 1}}}]
    spec = _spec(rollout(strategy="abTest", analysis={"match": match}))
    assert spec.analysis.matches == (
        TrafficMatch((("x-user", "prefix", "beta-"), ("cookie", "regex", "^(.*; )?canary=always(;.*)?$"))),
        TrafficMatch((("x-canary", "exact", "1"),)),
    )


def test_a_match_entry_needs_a_header() -> None:
    assert _why(rollout(strategy="abTest", analysis={"match": [{"headers": {}}]})) == (
        "rollout/r: spec.analysis.match[0]", "needs at least one header"
    )
    assert _why(rollout(strategy="abTest", analysis={"match": [{}]})) == (
        "rollout/r: spec.analysis.match[0].headers", "is required"
    )


def test_match_header_names_are_lowercase() -> None:
    doc = rollout(strategy="abTest", analysis={"match": [{"headers": {"X-Canary": {"exact": "1"}}}]})
    assert _why(doc) == (
        "rollout/r: spec.analysis.match[0].headers.X-Canary", "'X-Canary' is not a lowercase header name"
    )


def test_a_match_header_is_exact_prefix_or_regex() -> None:
    doc = rollout(strategy="abTest", analysis={"match": [{"headers": {"x-canary": {"present": True}}}]})
    assert _why(doc) == (
        "rollout/r: spec.analysis.match[0].headers.x-canary", "needs exactly one of exact, prefix, regex (found none)"
    )
    doc = rollout(strategy="abTest", analysis={"match": [{"headers": {"x-canary": {"regex": "(open"}}}]})
    path, reason = _why(doc)
    assert path == "rollout/r: spec.analysis.match[0].headers.x-canary.regex"
    assert reason.startswith("'(open' is not a valid regular expression")


def test_mirror_weight_applies_to_mirror_rollouts() -> None:
    assert _why(rollout(analysis={"mirrorWeight": 50})) == (
        "rollout/r: spec.analysis.mirrorWeight", "applies to mirror rollouts"
    )
    assert _why(rollout(strategy="mirror", analysis={"mirrorWeight": 0})) == (
        "rollout/r: spec.analysis.mirrorWeight", "0 is below 1"
    )


def test_iterations_do_not_apply_to_a_canary() -> None:
    assert _why(rollout(analysis={"iterations": 3})) == (
        "rollout/r: spec.analysis.iterations", "applies to blueGreen, abTest and mirror rollouts (a canary takes steps)"
    )


# -- check_rollouts: against the other documents ------------------------------------------------------------


def test_a_rollout_of_an_existing_service_and_its_versions_passes() -> None:
    check_rollouts(config([service("s"), rollout()]))


def test_the_service_exists() -> None:
    err = _rejected_together(service("other"), rollout())
    assert (err.path, err.reason) == ("rollout/r: spec.service", "names service 's', which does not exist")


@pytest.mark.parametrize("field", ["stable", "canary"])
def test_stable_and_canary_are_versions_of_the_service(field: str) -> None:
    err = _rejected_together(service("s"), rollout(**{field: "v3"}))
    assert (err.path, err.reason) == (f"rollout/r: spec.{field}", "service 's' has no version 'v3' (it has v1, v2)")


def test_one_rollout_a_service() -> None:
    err = _rejected_together(service("s"), rollout("b"), rollout("a", stable="v2", canary="v1"))
    assert (err.path, err.reason) == ("rollout/b: spec.service", "service 's' is already rolled out by rollout/a")


def test_two_services_may_each_have_a_rollout() -> None:
    check_rollouts(config([service("s"), service("t"), rollout("a"), rollout("b", service="t")]))


def test_served_config_checks_rollouts_against_every_group_and_serves_nothing_of_them() -> None:
    front = service("s")
    front["metadata"]["groups"] = ["front"]
    docs = [front, routes("r", route(service="s")), listener(), rollout()]
    for doc in docs[1:3]:
        doc["metadata"]["groups"] = ["front"]
    served = build_served([parse(d, f"request[{i}]") for i, d in enumerate(docs)])
    assert set(served.snapshots["front"].get(rt.CLUSTER).resources) == {"s-v1", "s-v2"}
    assert all(doc != "rollout/r" for doc in served.origin.values())
    with pytest.raises(ConfigError) as info:
        build_served([parse(d, f"request[{i}]") for i, d in enumerate([*docs[:3], rollout(stable="v3")])])
    assert info.value.path == "rollout/r: spec.stable"


def test_a_prometheus_provider_is_read_with_its_address() -> None:
    spec = _spec(rollout(analysis={"provider": {"prometheus": {"address": "http://127.0.0.1:9090"}}}))
    assert spec.analysis.prometheus == "http://127.0.0.1:9090"
    assert _why(rollout(analysis={"provider": {"prometheus": {"address": "prom:9090"}}})) == (
        "rollout/r: spec.analysis.provider.prometheus.address", "'prom:9090' is not an http:// or https:// URL"
    )
    assert _why(rollout(analysis={"provider": {"prometheus": {"address": "http://p", "query": "up"}}})) == (
        "rollout/r: spec.analysis.provider.prometheus.query", "unknown field (allowed here: address)"
    )
