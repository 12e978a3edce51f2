"""Drill files: read field by field, every error naming the file and the field; the examples are valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from switchman.errors import ConfigError
from switchman.lab.drill.scenario import Condition, HotRestartScenario, Scenario, read_scenario
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
    assert isinstance(scenario, HotRestartScenario) or scenario.expect.phase in ("Succeeded", "Failed")


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
    ({"surprise": 1}, "d.yaml: spec.surprise", "unknown field (allowed here: actions, cohort, expect, hotRestart, "
     "load, pods, rollout, timeout)"),
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
