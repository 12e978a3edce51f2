"""``switchman serve`` as a real process: config pushed over its API drives Envoy, survives kill -9."""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from switchman.xds.server.server import TRANSPORTS
from tests.e2e.helpers import checkout_documents, wait_for_version
from tests.e2e.serve_process import Serve

pytestmark = pytest.mark.envoy

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
        await serve.ensure_stopped()


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
