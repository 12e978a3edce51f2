"""Drill files: read field by field, every error naming the file and the field; the examples are valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from switchman.errors import ConfigError
from switchman.lab.drill.scenario import (
    Condition,
    ControlPlaneSettings,
    CounterBound,
    DemoScenario,
    FaultSpec,
    HotRestartScenario,
    ResilienceScenario,
    RestartSpec,
    Scenario,
    read_scenario,
    resolve_documents,
)
from switchman.lab.local.load import ClientKind

EXAMPLES = sorted((Path(__file__).parents[3] / "examples" / "drills").glob("*.yaml"))


def drill(**spec: Any) -> dict[str, Any]:
    return {"kind": "Drill", "metadata": {"name": "d"}, "spec": {"rollout": {}} | spec}


def refused(doc: Any) -> tuple[str, str]:
    with pytest.raises(ConfigError) as info:
        read_scenario(doc, "d.yaml")
    return info.value.path, info.value.reason


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_reads(path: Path) -> None:
    scenario = read_scenario(yaml.safe_load(path.read_text()), str(path))
    assert scenario.name == path.stem
    assert scenario.rate >= 200
    if isinstance(scenario, ResilienceScenario):
        assert scenario.expect.envoy and scenario.seconds <= 15
    elif isinstance(scenario, Scenario):
        assert scenario.expect.phase in ("Succeeded", "Failed")
    else:
        assert isinstance(scenario, HotRestartScenario | DemoScenario)


def test_defaults_are_the_lab_and_all_three_clients() -> None:
    scenario = read_scenario(drill(), "d.yaml")
    assert isinstance(scenario, Scenario)
    assert (scenario.pods, scenario.rate, scenario.seconds) == (2, 200.0, 120.0)
    assert scenario.clients == tuple(ClientKind)
    assert (scenario.spec.service, scenario.spec.stable, scenario.spec.canary) == ("checkout", "v1", "v2")
    assert scenario.rollout["kind"] == "Rollout" and scenario.rollout["metadata"]["name"] == "d"


def test_the_rollout_is_checked_as_a_document() -> None:
    path, reason = refused(drill(rollout={"strategy": "linear"}))
    assert (path, reason) == ("rollout/d: spec.strategy", "'linear' is not one of canary, blueGreen, abTest, mirror")


def test_the_rollout_moves_the_lab_s_service() -> None:
    assert refused(drill(rollout={"canary": "v3"})) == (
        "d.yaml: spec.rollout", "the lab runs service 'checkout' with versions v1, v2"
    )


@pytest.mark.parametrize(("spec", "path", "reason"), [
    ({"actions": [{"when": {}, "command": "pause"}]}, "d.yaml: spec.actions[0].when",
     "needs after, weight, stage or phase"),
    ({"actions": [{"when": {"weight": 10}, "command": "jump"}]}, "d.yaml: spec.actions[0].command",
     "'jump' is not one of pause, resume, promote, abort"),
    ({"actions": [{"when": {"weight": 10}, "faults": {"version": "v3"}}]},
     "d.yaml: spec.actions[0].faults.version", "'v3' is not one of v1, v2"),
    ({"actions": [{"when": {"weight": 10}, "faults": {"version": "v2", "errorRate": 2}}]},
     "d.yaml: spec.actions[0].faults.errorRate", "2 is above 1"),
    ({"load": {"rate": 0}}, "d.yaml: spec.load.rate", "0 is below 1"),
    ({"load": {"clients": ["carrier-pigeon"]}}, "d.yaml: spec.load.clients[0]",
     "'carrier-pigeon' is not one of http1-new-connection, http1-keepalive, http2"),
    ({"cohort": {"share": 0.5, "headers": {}}}, "d.yaml: spec.cohort.headers", "needs at least one header"),
    ({"expect": {"phase": "Done"}}, "d.yaml: spec.expect.phase",
     "'Done' is not one of Progressing, Paused, Succeeded, Failed, Aborted"),
    ({"pods": 1}, "d.yaml: spec.pods", "1 is below 2"),
    ({"surprise": 1}, "d.yaml: spec.surprise", "unknown field (allowed here: actions, apply, cohort, controlPlane, "
     "demo, expect, hotRestart, load, pods, rollout, timeout)"),
    ({"actions": [{"when": {"weight": 10}, "faults": {"pod": "checkout-v1-1"}}]},
     "d.yaml: spec.actions[0].faults.pod", "'checkout-v1-1' is not one of checkout-v1-0, checkout-v2-0"),
    ({"actions": [{"when": {"weight": 10}, "faults": {"errorRate": 1}}]},
     "d.yaml: spec.actions[0].faults", "needs version, pod or both"),
    ({"pods": 3, "actions": [{"when": {"weight": 10}, "faults": {"version": "v2", "pod": "checkout-v1-1"}}]},
     "d.yaml: spec.actions[0].faults.pod", "runs v1, not v2"),
])
def test_errors_name_the_field(spec: dict[str, Any], path: str, reason: str) -> None:
    assert refused(drill(**spec)) == (path, reason)


def test_conditions_describe_themselves() -> None:
    assert Condition(after=5, weight=30).describe() == "5s after the rollout started and weight 30%"


def test_a_hot_restart_drill_takes_load_and_restarts_only() -> None:
    doc = {"kind": "Drill", "metadata": {"name": "h"}, "spec": {"load": {"rate": 300}, "hotRestart": {"restarts": 2}}}
    scenario = read_scenario(doc, "h.yaml")
    assert isinstance(scenario, HotRestartScenario)
    assert (scenario.rate, scenario.seconds, scenario.restarts, scenario.negative_drills) == (300.0, 6.0, 2, True)
    doc["spec"]["rollout"] = {}
    assert refused(doc) == ("d.yaml: spec", "a hotRestart drill takes load and hotRestart only, not rollout")


FRONT_SERVICE = {"kind": "Service", "metadata": {"name": "checkout", "groups": ["front"]},
                 "spec": {"weights": {"v1": 50, "v2": 50}}}


def resilience(**spec: Any) -> dict[str, Any]:
    return {"kind": "Drill", "metadata": {"name": "r"}, "spec": {"apply": [FRONT_SERVICE]} | spec}


def test_a_resilience_drill_applies_documents_and_expects_counters() -> None:
    scenario = read_scenario(resilience(
        pods=3, load={"seconds": 8},
        actions=[{"when": {"after": "1s"}, "faults": {"pod": "checkout-v1-1", "errorRate": 1}}],
        expect={"failedRequests": 5, "envoy": {"cluster.checkout-v1.upstream_rq_retry": {"min": 1, "max": 9},
                                               "cluster.checkout-v2.upstream_rq_retry": {"max": 0}}},
    ), "r.yaml")
    assert isinstance(scenario, ResilienceScenario)
    assert (scenario.pods, scenario.rate, scenario.seconds) == (3, 200.0, 8.0)
    assert scenario.documents == (FRONT_SERVICE,)
    [action] = scenario.actions
    assert action.faults == FaultSpec("v1", error_rate=1.0, pod="checkout-v1-1")
    assert action.describe() == "checkout-v1-1: 100% errors"
    assert scenario.expect.failed_requests == 5
    assert scenario.expect.envoy == (CounterBound("cluster.checkout-v1.upstream_rq_retry", 1, 9),
                                     CounterBound("cluster.checkout-v2.upstream_rq_retry", None, 0))
    low, high = scenario.expect.envoy
    assert low.holds(1) and low.holds(9) and not low.holds(0) and not low.holds(10)
    assert high.holds(0) and not high.holds(1)
    assert read_scenario(resilience(), "r.yaml").seconds == 10.0  # bounded by the load: a short default


def test_resilience_documents_keep_the_lab_s_fields_they_do_not_give() -> None:
    endpoints = {"v1": [("127.0.0.1", 7001), ("127.0.0.1", 7003)], "v2": [("127.0.0.1", 7002)]}
    [service] = resolve_documents([FRONT_SERVICE], endpoints)
    assert service["spec"]["weights"] == {"v1": 50, "v2": 50}
    assert service["spec"]["versions"]["v1"]["endpoints"] == [
        {"address": "127.0.0.1", "port": 7001}, {"address": "127.0.0.1", "port": 7003}
    ]
    assert service["spec"]["circuitBreakers"] == {"maxRetries": 1000}
    other = {"kind": "Cluster", "metadata": {"name": "payments", "groups": ["front"]}, "spec": {}}
    assert resolve_documents([other], endpoints) == [other]


@pytest.mark.parametrize(("spec", "path", "reason"), [
    ({"rollout": {}}, "d.yaml: spec.apply",
     "a drill applies either documents (spec.apply) or a Rollout (spec.rollout), not both"),
    ({"apply": []}, "d.yaml: spec.apply", "needs at least 1 item"),
    ({"apply": [{"kind": "Service", "metadata": {"name": "checkout"}, "spec": {}}]}, "d.yaml: spec.apply[0]",
     "needs metadata.groups: [front] (a drill's documents configure the front Envoy)"),
    ({"timeout": "30s"}, "d.yaml: spec.timeout",
     "a drill with spec.apply has no rollout: it ends when the load does (spec.load.seconds)"),
    ({"actions": [{"when": {"weight": 30}, "faults": {"version": "v2"}}]}, "d.yaml: spec.actions[0].when",
     "a drill with spec.apply has no rollout: its actions run on after only"),
    ({"actions": [{"when": {"after": 1}, "command": "pause"}]}, "d.yaml: spec.actions[0].command",
     "a drill with spec.apply has no rollout to command: its actions are faults"),
    ({"expect": {"phase": "Succeeded"}}, "d.yaml: spec.expect.phase",
     "a drill with spec.apply has no rollout to judge: expect envoy and failedRequests"),
    ({"expect": {"envoy": {}}}, "d.yaml: spec.expect.envoy", "needs at least one stat"),
    ({"expect": {"envoy": {"cluster.x.upstream_rq_retry": {}}}},
     "d.yaml: spec.expect.envoy.cluster.x.upstream_rq_retry",
     "needs min, max or both"),
    ({"expect": {"envoy": {"a": {"min": 3, "max": 2}}}}, "d.yaml: spec.expect.envoy.a", "min 3 is above max 2"),
    ({"expect": {"envoy": {"a": {"min": -1}}}}, "d.yaml: spec.expect.envoy.a.min", "-1 is below 0"),
    ({"expect": {"envoy": {"a b": {"min": 1}}}}, "d.yaml: spec.expect.envoy.a b",
     "is not an Envoy stat name (cluster.checkout-v2.upstream_rq_retry)"),
])
def test_resilience_errors_name_the_field(spec: dict[str, Any], path: str, reason: str) -> None:
    doc = {"kind": "Drill", "metadata": {"name": "d"}, "spec": {"apply": [FRONT_SERVICE]} | spec}
    assert refused(doc) == (path, reason)


def test_resilience_documents_are_checked_as_documents() -> None:
    bad = {"kind": "Service", "metadata": {"name": "checkout", "groups": ["front"]}, "spec": {"weights": {"v3": 1}}}
    assert refused(resilience(apply=[bad])) == (
        "d.yaml: spec.apply[0] (service/checkout: spec.weights.v3)", "there is no version 'v3' (versions: v1, v2)"
    )


def test_a_drill_needs_a_rollout_or_documents() -> None:
    assert refused({"kind": "Drill", "metadata": {"name": "d"}, "spec": {}}) == (
        "d.yaml: spec", "needs rollout (a Rollout to run) or apply (documents to apply)"
    )


def test_the_demo_as_a_drill_file() -> None:
    doc = {"kind": "Drill", "metadata": {"name": "demo"}, "spec": {"pods": 3, "load": {"rate": 300},
                                                                     "demo": {"steps": [0, 25, 100]}}}
    scenario = read_scenario(doc, "demo.yaml")
    assert scenario == DemoScenario("demo", 3, 300.0, 600, (0, 25, 100))
    doc["spec"]["rollout"] = {}
    assert refused(doc) == ("d.yaml: spec", "a demo drill takes pods, load and demo only, not rollout")


def test_control_plane_restarts_default_to_the_lab_s_one_serve_on_sqlite() -> None:
    scenario = read_scenario(drill(actions=[{"when": {"weight": 30}, "controlPlane": "kill"}]), "d.yaml")
    assert isinstance(scenario, Scenario)
    assert scenario.control_plane is None  # the lab as it always runs
    [action] = scenario.actions
    assert action.control_plane == RestartSpec("a")
    assert action.describe() == "kill -9 serve a, started again"


def test_replicas_on_etcd_and_a_rolling_restart() -> None:
    scenario = read_scenario(drill(
        controlPlane={"replicas": 2, "rolloutLease": "2s"},
        actions=[{"when": {"stage": 2}, "controlPlane": {"kill": "a", "restartAfter": "3s"}},
                 {"when": {"stage": 5}, "controlPlane": {"kill": "b"}}],
    ), "d.yaml")
    assert isinstance(scenario, Scenario)
    assert scenario.control_plane == ControlPlaneSettings(2, "etcd", None, 2.0)
    assert [a.control_plane for a in scenario.actions] == [RestartSpec("a", 3.0), RestartSpec("b")]
    given = read_scenario(drill(controlPlane={"etcd": "127.0.0.1:2379"}), "d.yaml")
    assert isinstance(given, Scenario) and given.control_plane == ControlPlaneSettings(1, "etcd", "127.0.0.1:2379")


@pytest.mark.parametrize(("spec", "path", "reason"), [
    ({"controlPlane": {"replicas": 2, "store": "sqlite"}}, "d.yaml: spec.controlPlane",
     "2 replicas share one store: store etcd (a SQLite file is one replica's)"),
    ({"controlPlane": {"replicas": 9}}, "d.yaml: spec.controlPlane.replicas", "9 is above 5"),
    ({"controlPlane": {"store": "postgres"}}, "d.yaml: spec.controlPlane.store",
     "'postgres' is not one of sqlite, etcd"),
    ({"controlPlane": {"store": "sqlite", "etcd": "127.0.0.1:2379"}}, "d.yaml: spec.controlPlane.etcd",
     "is the store of store etcd, not sqlite"),
    ({"controlPlane": {"etcd": "http://x"}}, "d.yaml: spec.controlPlane.etcd",
     "'http://x' is not host:port of an etcd"),
    ({"controlPlane": {"store": "etcd", "rolloutLease": "1s"}}, "d.yaml: spec.controlPlane.rolloutLease",
     "must be at least 2s"),
    ({"controlPlane": {"replicas": 2}, "actions": [{"when": {"stage": 2}, "controlPlane": "kill"}]},
     "d.yaml: spec.actions[0].controlPlane", "the lab runs replicas a, b (spec.controlPlane): name one, {kill: a}"),
    ({"actions": [{"when": {"stage": 2}, "controlPlane": {"kill": "b"}}]}, "d.yaml: spec.actions[0].controlPlane.kill",
     "'b' is not one of a"),
    ({"actions": [{"when": {"stage": 2}, "controlPlane": "restart"}]}, "d.yaml: spec.actions[0].controlPlane",
     "'restart' is not one of kill"),
    ({"actions": [{"when": {"stage": 2}, "controlPlane": {"kill": "a", "restartAfter": "2h"}}]},
     "d.yaml: spec.actions[0].controlPlane.restartAfter", "must be at most 60s"),
    ({"actions": [{"when": {"stage": 2}, "controlPlane": "kill", "command": "pause"}]}, "d.yaml: spec.actions[0]",
     "needs exactly one of faults, command, controlPlane"),
])
def test_control_plane_errors_name_the_field(spec: dict[str, Any], path: str, reason: str) -> None:
    assert refused(drill(**spec)) == (path, reason)


def test_a_resilience_drill_does_not_restart_the_control_plane() -> None:
    doc = {"kind": "Drill", "metadata": {"name": "d"}, "spec": {
        "apply": [{"kind": "Service", "metadata": {"name": "checkout", "groups": ["front"]}, "spec": {}}],
        "actions": [{"when": {"after": "1s"}, "controlPlane": "kill"}],
    }}
    assert refused(doc) == ("d.yaml: spec.actions[0].controlPlane", "a drill with spec.apply has no rollout: its "
                            "actions are faults")
