"""``switchman serve`` as a real process: config pushed over its API drives Envoy, survives kill -9."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from switchman.xds.server.server import TRANSPORTS
from tests.e2e.helpers import checkout_documents, wait_for_version

pytestmark = pytest.mark.envoy

_SERVING = re.compile(r"serving: xDS on port (\d+), API on port (\d+)")


class Serve:
    """One ``switchman serve`` process."""

    def __init__(self, store: Path, xds_port: int = 0, transport: str = "grpc") -> None:
        self.store, self.wanted_xds_port, self.transport = store, xds_port, transport
        self.proc: asyncio.subprocess.Process | None = None
        self.xds_port = self.api_port = 0

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchman", "serve", "--store", str(self.store),
            "--xds-address", f"127.0.0.1:{self.wanted_xds_port}", "--api-address", "127.0.0.1:0",
            "--xds-transport", self.transport,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        for _ in range(100):
            line = (await asyncio.wait_for(self.proc.stderr.readline(), 15)).decode()
            if match := _SERVING.search(line):
                self.xds_port, self.api_port = int(match.group(1)), int(match.group(2))
                asyncio.get_running_loop().create_task(self._drain())
                return
        raise AssertionError("switchman serve did not say where it serves")

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while await self.proc.stderr.readline():
            pass

    async def apply(self, docs: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.api_port}/v1/apply"
        async with aiohttp.ClientSession() as s, s.post(url, json={"documents": docs}) as r:
            return r.status, await r.json()

    async def kill(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        await asyncio.wait_for(self.proc.wait(), 10)


@pytest.fixture
async def upstream_pair() -> AsyncIterator[tuple[Upstream, Upstream]]:
    blue, green = Upstream("checkout", "v1"), Upstream("checkout", "v2")
    await blue.start()
    await green.start()
    yield blue, green
    await blue.stop()
    await green.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_served_config_drives_envoy_refuses_bad_input_and_survives_kill_9(
    tmp_path: Path, upstream_pair: tuple[Upstream, Upstream], transport: str
) -> None:
    blue, green = upstream_pair
    serve = Serve(tmp_path / "switchman.db", transport=transport)
    await serve.start()
    envoy = EnvoyProcess(bootstrap("serve-envoy", serve.xds_port))
    try:
        status, body = await serve.apply(checkout_documents(blue.port, green.port, {"v1": 100}))
        assert status == 200, body
        await envoy.start()
        port = await envoy.wait_listener("ingress")
        await wait_for_version(port, "v1")

        # A bad apply is refused with the document and field named; nothing changes.
        bad = checkout_documents(blue.port, green.port, {"v1": 0, "v2": 100})
        bad[0]["spec"]["lbPolicy"] = "FASTEST_PLEASE"
        status, body = await serve.apply(bad)
        assert status == 422 and body["error"]["path"] == "service/checkout: spec.lbPolicy", body
        await wait_for_version(port, "v1")

        # Acknowledged, then killed at once: the change is not lost.
        status, body = await serve.apply(checkout_documents(blue.port, green.port, {"v2": 100}))
        assert status == 200 and body["revision"] == 2, body
        await serve.kill(signal.SIGKILL)
        again = Serve(tmp_path / "switchman.db", xds_port=serve.xds_port, transport=transport)
        await again.start()
        await wait_for_version(port, "v2", timeout=20)  # Envoy reconnected and got revision 2
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{again.api_port}/v1/history") as r:
            history = await r.json()
        assert [h["number"] for h in history["revisions"]] == [2, 1]
        status, body = await again.apply(checkout_documents(blue.port, green.port, {"v1": 100}))
        assert status == 200 and body["revision"] == 3, body
        await wait_for_version(port, "v1")
        await again.kill(signal.SIGTERM)
    finally:
        await envoy.stop()
        if serve.proc is not None and serve.proc.returncode is None:
            serve.proc.kill()


@pytest.mark.parametrize(("flag", "value"), [
    ("--gc-freeze-seconds", "soon"), ("--gc-freeze-seconds", "-1"), ("--xds-transport", "quic"),
    ("--load-reporting-interval", "0"),
])
def test_a_bad_serve_flag_is_refused_naming_it(tmp_path: Path, flag: str, value: str) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "switchman", "serve", "--store", str(tmp_path / "s.db"), flag, value],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert flag in done.stderr and value in done.stderr
    assert not (tmp_path / "s.db").exists()  # refused before anything started
