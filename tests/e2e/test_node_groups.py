"""Node groups end to end: two Envoys in two groups get different routes from one apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from tests.e2e.helpers import wait_for_version
from tests.unit.control.test_groups import SERVICE, listener, routes

pytestmark = pytest.mark.envoy


async def test_each_group_gets_its_routes(tmp_path: Path) -> None:
    app = Switchman(ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / "s.db")))
    blue, green = Upstream("checkout", "v1"), Upstream("checkout", "v2")
    xds_port, api_port = await app.start()
    ports = {"v1": await blue.start(), "v2": await green.start()}
    service = {**SERVICE, "spec": {"versions": {v: {"endpoints": [{"address": "127.0.0.1", "port": p}]}
                                               for v, p in ports.items()}}}
    docs = [
        service,
        routes("stable-routes", "v1", ["stable"]), listener("ingress", "stable-routes", 0, ["stable"]),
        routes("canary-routes", "v2", ["canary"]), listener("ingress-canary", "canary-routes", 0, ["canary"]),
    ]
    stable = EnvoyProcess(bootstrap("envoy-stable", xds_port, cluster="stable"))
    canary = EnvoyProcess(bootstrap("envoy-canary", xds_port, cluster="canary"))
    try:
        async with SwitchmanClient(f"http://127.0.0.1:{api_port}") as client:
            preview = await client.apply(docs, dry_run=True)
            assert preview.groups["canary"].added == (
                "cds/checkout-v1", "cds/checkout-v2", "eds/checkout-v1", "eds/checkout-v2",
                "lds/ingress-canary", "rds/canary-routes",
            )
            assert "lds/ingress" in preview.groups["stable"].added
            assert preview.envoy.added == ("cds/checkout-v1", "cds/checkout-v2", "eds/checkout-v1", "eds/checkout-v2")
            await client.apply(docs)
            await stable.start()
            await canary.start()
            await wait_for_version(await stable.wait_listener("ingress"), "v1")
            await wait_for_version(await canary.wait_listener("ingress-canary"), "v2")
            assert await canary.listener_port("ingress") is None
            rendered = await client.render(node="envoy-canary")
            assert rendered["group"] == "canary"
    finally:
        await stable.stop()
        await canary.stop()
        await app.stop(0)
        await blue.stop()
        await green.stop()
