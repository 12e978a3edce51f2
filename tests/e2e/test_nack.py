"""A config Envoy rejects is NACKed, recorded with Envoy's words, not resent, and traffic stays on the old config."""

from __future__ import annotations

import asyncio

import pytest
from envoy.config.route.v3 import route_components_pb2
from envoy.type.matcher.v3 import regex_pb2

from switchman.testing.builders import route_config
from switchman.xds import SnapshotCache, XdsServer
from switchman.xds.server.csds import client_configs
from tests.e2e.helpers import Traffic, chain, wait_for_version

pytestmark = pytest.mark.envoy


def bad_routes(cluster: str):  # type: ignore[no-untyped-def]
    """Routes Switchman accepts but Envoy rejects: a regex RE2 cannot compile."""
    config = route_config("ingress-routes", cluster)
    route = config.virtual_hosts[0].routes[0]
    route.match.ClearField("prefix")
    route.match.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex="(unclosed"))
    assert isinstance(route, route_components_pb2.Route)
    return config


def rds_sent(xds: XdsServer) -> float:
    value = xds.metrics.registry.get_sample_value("switchman_xds_responses_total", {"type": "rds"})
    return value or 0.0


async def test_rejected_routes_are_recorded_not_resent_and_old_config_keeps_serving(
    cache: SnapshotCache, xds: XdsServer, upstreams, envoys
) -> None:
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    ports = {"checkout-v1": blue.port, "checkout-v2": green.port}
    cache.set_snapshot("demo", chain(ports, "checkout-v1"))
    envoy = await envoys("envoy-nack")
    port = await envoy.wait_listener("ingress")
    await wait_for_version(port, "v1")

    good = cache.snapshot("demo")
    assert good is not None
    broken = good.with_changes(upsert=[bad_routes("checkout-v2")])
    cache.set_snapshot("demo", broken)

    async def nacked() -> str:
        while True:
            for node in xds.statuses():
                for t in node.types:
                    if t.type == "rds" and t.nack_message:
                        return t.nack_message
            await asyncio.sleep(0.02)

    message = await asyncio.wait_for(nacked(), 10)
    assert "unclosed" in message or "missing )" in message or "regex" in message.lower(), message
    sent_after_nack = rds_sent(xds)

    # No resend of the same contents, while traffic keeps flowing on the last good routes.
    traffic = Traffic(port)
    runner = asyncio.create_task(traffic.run(concurrency=2, limit=200, seconds=5))
    await asyncio.sleep(1.0)
    traffic.stop()
    await runner
    assert rds_sent(xds) == sent_after_nack
    assert traffic.failures == []
    assert set(traffic.versions) == {"v1"}
    nacks = xds.metrics.registry.get_sample_value("switchman_xds_nacks_total", {"type": "rds"})
    assert nacks == 1.0

    # CSDS says the same, per resource, with Envoy's message.
    response = client_configs(tuple(xds.context.streams), cache, _request())
    [config] = response.config
    rds = [c for c in config.generic_xds_configs if c.name == "ingress-routes"]
    assert rds and rds[0].client_status == 4  # NACKED
    assert rds[0].error_state.details == message

    # A later, different version goes out normally.
    cache.set_snapshot("demo", chain(ports, "checkout-v2"))
    await wait_for_version(port, "v2")
    assert all(t.nack_message is None for n in xds.statuses() for t in n.types)


def _request():  # type: ignore[no-untyped-def]
    from envoy.service.status.v3 import csds_pb2

    return csds_pb2.ClientStatusRequest()
