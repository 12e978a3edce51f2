"""examples/rollouts/: each applies on top of examples/checkout.yaml and plans the stages its comment promises;
each stage's traffic, written into the Service, is a configuration that checks and builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from switchman.control.groups import build_served
from switchman.model.config import parse_document
from switchman.model.kinds.rollout import RolloutSpec
from switchman.rollout.plan import plan
from switchman.rollout.traffic import write_traffic
from switchman.xds import DEFAULT_GROUP
from switchman.xds import resources as rt

EXAMPLES = Path(__file__).parents[3] / "examples"
STAGES = {
    "canary.yaml": ["weight 10%", "weight 20%", "weight 30%", "weight 40%", "weight 50%", "promoted"],
    "blue-green.yaml": ["preview", "promoted"],
    "ab-test.yaml": ["cohort", "promoted"],
    "mirror.yaml": ["mirror 100%", "weight 10%", "pause 300s", "weight 50%", "promoted"],
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_every_rollout_example_is_covered() -> None:
    assert {p.name for p in (EXAMPLES / "rollouts").glob("*.yaml")} == set(STAGES)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_example_plans_its_stages_and_every_stage_builds(name: str) -> None:
    base = _docs(EXAMPLES / "checkout.yaml")
    [rollout] = _docs(EXAMPLES / "rollouts" / name)
    doc = parse_document(rollout, name)
    assert isinstance(doc.spec, RolloutSpec)
    stages = plan(doc.spec)
    assert [s.name for s in stages] == STAGES[name]
    service = next(d for d in base if d["kind"] == "Service")
    for stage in stages:
        moved = write_traffic(service, doc.spec, stage.traffic)
        docs = [parse_document(d, name) for d in [moved, *(d for d in base if d is not service), rollout]]
        snapshot = build_served(docs).snapshots[DEFAULT_GROUP]
        routes = snapshot.get(rt.ROUTE).resources["ingress-routes"].message
        cohort_headers = {h for m in stage.traffic.cohort for h, _, _ in m.headers}
        to_canary = [r for vh in routes.virtual_hosts for r in vh.routes if r.route.cluster == "checkout-v2"
                     and {h.name for h in r.match.headers} & {"x-preview", "x-user-group", "cookie"}]
        assert {h.name for r in to_canary for h in r.match.headers} == cohort_headers
        mirrored = [p.cluster for vh in routes.virtual_hosts for r in vh.routes
                    for p in r.route.request_mirror_policies]
        assert ("checkout-v2" in mirrored) == bool(stage.traffic.mirror_percent)
