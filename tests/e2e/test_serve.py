"""``switchman serve --resources FILE``: a real process that Envoy follows as the file changes."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from tests.e2e.helpers import wait_for_version

pytestmark = pytest.mark.envoy

EXAMPLE = Path(__file__).parents[2] / "examples" / "raw" / "checkout.yaml"
_SERVING = re.compile(r"serving: xDS on port (\d+), API on port (\d+)")


def resources(upstream_port: int, listener_port: int = 0) -> list[dict[str, object]]:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    docs[0]["address"]["socket_address"]["port_value"] = listener_port
    docs[3]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = upstream_port
    return docs


def write(path: Path, docs: list[dict[str, object]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump_all(docs))
    os.replace(tmp, path)  # an atomic swap, as editors and config management do


class Serve:
    def __init__(self, proc: asyncio.subprocess.Process, xds_port: int, api_port: int) -> None:
        self.proc, self.xds_port, self.api_port = proc, xds_port, api_port
        self.lines: list[str] = []

    async def api(self, path: str) -> str:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.api_port}{path}") as r:
            return await r.text()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[tuple[Serve, Path, Upstream, Upstream]]:
    blue, green = Upstream("checkout", "v1"), Upstream("checkout", "v2")
    await blue.start()
    await green.start()
    config = tmp_path / "resources.yaml"
    write(config, resources(blue.port))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchman", "serve",
        "--xds-address", "127.0.0.1:0", "--api-address", "127.0.0.1:0", "--resources", str(config),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SWITCHMAN_GROUP_BY": "id"},
    )
    assert proc.stderr is not None
    match = None
    for _ in range(50):
        line = (await asyncio.wait_for(proc.stderr.readline(), 10)).decode()
        if match := _SERVING.search(line):
            break
    assert match, "switchman serve did not say where it serves"
    server = Serve(proc, int(match.group(1)), int(match.group(2)))

    async def drain() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            server.lines.append(raw.decode())

    drainer = asyncio.create_task(drain())
    yield server, config, blue, green
    proc.terminate()
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    await drainer
    await blue.stop()
    await green.stop()


async def test_serve_follows_file_refuses_bad_edits_and_reports(serve) -> None:  # type: ignore[no-untyped-def]
    server, config, _blue, green = serve
    envoy = EnvoyProcess(bootstrap("serve-envoy", server.xds_port))
    await envoy.start()
    try:
        port = await envoy.wait_listener("ingress")
        await wait_for_version(port, "v1")

        # A bad edit is refused with an error naming the document and field; traffic is untouched.
        bad = resources(green.port)
        bad[2]["lbPolicy"] = "FASTEST_PLEASE"
        write(config, bad)
        for _ in range(100):
            if any("not applied" in line for line in server.lines):
                break
            await asyncio.sleep(0.05)
        refused = next(line for line in server.lines if "not applied" in line)
        assert "resources.yaml[2] (checkout)" in refused and "Cluster.lbPolicy" in refused, refused
        assert "FASTEST_PLEASE" in refused
        await wait_for_version(port, "v1")

        # A good edit moves the endpoints.
        write(config, resources(green.port))
        await wait_for_version(port, "v2")

        status = await server.api("/v1/status")
        assert '"node_id": "serve-envoy"' in status
        metrics = await server.api("/metrics")
        assert 'switchman_xds_acks_total{type="eds"}' in metrics
        assert "switchman_xds_push_to_ack_seconds_bucket" in metrics
    finally:
        await envoy.stop()
