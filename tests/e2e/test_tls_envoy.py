"""Real Envoys over mutual TLS to the xDS port, on both transports: the one whose certificate may claim the group
gets its config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from switchman.lab.local import EnvoyProcess, Upstream, XdsClientTls, bootstrap
from switchman.xds import SnapshotCache, XdsServer, XdsSettings
from switchman.xds.server.server import TRANSPORTS
from switchman.xds.tls import TlsSettings
from tests.certs import Authority
from tests.e2e.helpers import chain, until, wait_for_version

pytestmark = pytest.mark.envoy


MtlsEnvoys = tuple[XdsServer, Callable[..., Awaitable[EnvoyProcess]]]


@pytest.fixture(params=TRANSPORTS)
async def mtls_envoys(
    tmp_path: Path, cache: SnapshotCache, request: pytest.FixtureRequest,
) -> AsyncIterator[MtlsEnvoys]:
    ca = Authority(tmp_path)
    server_cert = ca.issue("xds-server", ips=("127.0.0.1",), server=True)
    tls = TlsSettings(str(server_cert.cert_file), str(server_cert.key_file), str(ca.file))
    xds = XdsServer(cache, XdsSettings(tls=tls, node_identities={"spiffe://lab/front": ("front",)},
                                       transport=str(request.param)))
    await xds.start("127.0.0.1:0")
    started: list[EnvoyProcess] = []

    async def envoy(node_id: str, spiffe_id: str, **kw: str) -> EnvoyProcess:
        client = ca.issue(node_id, uris=(spiffe_id,))
        config = bootstrap(node_id, xds.port, cluster="front",
                           tls=XdsClientTls(str(client.cert_file), str(client.key_file), str(ca.file)))
        proc = EnvoyProcess(config, **kw)
        started.append(proc)
        await proc.start()
        return proc

    yield xds, envoy
    for proc in started:
        await proc.stop()
    await xds.stop(0.5)


async def test_envoy_gets_its_config_over_mtls_and_another_identity_is_refused(
    cache: SnapshotCache, upstreams: Callable[[str, str], Awaitable[Upstream]],
    mtls_envoys: MtlsEnvoys,
) -> None:
    xds, envoy = mtls_envoys
    blue = await upstreams("front", "v1")
    cache.set_snapshot("front", chain({"front-v1": blue.port}, "front-v1"))

    front = await envoy("front-1", "spiffe://lab/front")
    await wait_for_version(await front.wait_listener("ingress", timeout=15), "v1")
    assert [s.node_id for s in xds.statuses()] == ["front-1"]

    intruder = await envoy("intruder-1", "spiffe://lab/pod-9")

    async def refused() -> bool:  # Envoy logs grpc-message as it came, percent-encoded
        log = intruder.log_tail(200)
        return "config stream to xds closed: 7, identity" in log and "pod-9" in log and "front" in log

    await until(refused, 15, "the intruder's stream ended with PERMISSION_DENIED")
    stats = await intruder.stats("control_plane.connected_state")
    assert stats.get("control_plane.connected_state") == 0, stats
    dump = await intruder.config_dump()
    dynamic = [c for c in dump["configs"] if c.get("dynamic_listeners") or c.get("dynamic_active_clusters")]
    assert dynamic == [], dynamic  # it has nothing from the xDS server
    assert [s.node_id for s in xds.statuses()] == ["front-1"]
