"""A proxyless gRPC client (grpcio's own xDS client) follows the config Switchman serves.

The client runs in a subprocess: grpc C-core reads its xDS bootstrap once
per process, and a process of its own is what a real proxyless client is.
It holds one channel to ``xds:///echo`` and calls the demo echo service in
a loop, printing one JSON line per call; the tests read the lines to see
which echo server answered, change the snapshot, and read on.

grpc subscribes by name over state-of-the-world ADS and asks for a cluster
only once a route names it: moving the route to a cluster it has not seen
changes its CDS subscription on a stream where CDS was already ACKed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google.protobuf.message import Message

from switchman.lab.local.grpc_echo import METHOD, GrpcEcho
from switchman.testing.builders import api_listener, eds_cluster, load_assignment, route_config
from switchman.xds import Snapshot, SnapshotCache, XdsServer
from switchman.xds.server.status import NodeStatus

NODE_ID = "grpc-client-1"
GROUP = "demo"
LISTENER = "echo"
ROUTES = "echo-routes"
# Set it (to anything) to run the client with grpc's xDS traces on its stderr,
# which the failure messages quote.
TRACE_ENV = "SWITCHMAN_TEST_GRPC_TRACE"

# The client: one channel, a call every 50 ms, one JSON line per call on
# stdout. It ends when its stdin closes (the test is done, or died) or after
# its lifetime (argv[3]), whichever comes first.
CLIENT = r"""
import json, sys, threading, time
import grpc

method, target, lifetime = sys.argv[1], sys.argv[2], float(sys.argv[3])
done = threading.Event()

def wait_for_eof():
    sys.stdin.read()
    done.set()

threading.Thread(target=wait_for_eof, daemon=True).start()
deadline = time.monotonic() + lifetime
with grpc.insecure_channel(target) as channel:
    say = channel.unary_unary(method)
    n = 0
    while not done.is_set() and time.monotonic() < deadline:
        n += 1
        try:
            line = {"ok": say(f"call-{n}".encode(), timeout=2.0).decode()}
        except grpc.RpcError as exc:
            line = {"error": f"{exc.code().name}: {exc.details()}"}
        print(json.dumps(line), flush=True)
        done.wait(0.05)
"""


def grpc_bootstrap(xds_port: int) -> str:
    """grpc's xDS bootstrap: Switchman as the xDS server, a node in group ``demo``."""
    return json.dumps(
        {
            "xds_servers": [
                {
                    "server_uri": f"127.0.0.1:{xds_port}",
                    "channel_creds": [{"type": "insecure"}],
                    "server_features": ["xds_v3"],
                }
            ],
            "node": {"id": NODE_ID, "cluster": GROUP},
        }
    )


def echo_config(route_to: str, ports: dict[str, int]) -> Snapshot:
    """API listener ``echo`` -> RDS ``echo-routes`` (domain ``echo``) -> EDS cluster ``route_to``.

    ``ports`` maps every cluster in the snapshot to the port of its one endpoint.
    """
    items: list[Message] = [
        api_listener(LISTENER, ROUTES),
        route_config(ROUTES, route_to, domains=[LISTENER]),
    ]
    for cluster, port in ports.items():
        items += [eds_cluster(cluster), load_assignment(cluster, [("127.0.0.1", port)])]
    return Snapshot.build(items)


@dataclass
class GrpcClient:
    """The client subprocess and what it has printed.

    ``server_view`` describes what Switchman believes the node holds, for
    failure messages.
    """

    proc: asyncio.subprocess.Process
    stderr_path: Path
    server_view: Callable[[], str]
    replies: list[str] = field(default_factory=list)
    last_error: str = ""

    def diagnostics(self) -> str:
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        hint = "" if os.environ.get(TRACE_ENV) else f" (set {TRACE_ENV}=1 for grpc xDS traces)"
        return (
            f"last replies {self.replies[-3:]!r}, last error {self.last_error!r};\n"
            f"Switchman's view: {self.server_view()}\n"
            f"client stderr{hint}:\n{text[-4000:] or '(empty)'}"
        )

    async def next_reply(self, deadline: float) -> str:
        """The next successful reply; failed calls are remembered in ``last_error``."""
        assert self.proc.stdout is not None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            line = await asyncio.wait_for(self.proc.stdout.readline(), remaining)
            if not line:
                raise AssertionError(
                    f"the gRPC client exited (rc {await self.proc.wait()}); {self.diagnostics()}"
                )
            result = json.loads(line)
            if "ok" in result:
                self.replies.append(result["ok"])
                return str(result["ok"])
            self.last_error = str(result["error"])

    async def wait_for_server(self, name: str, within: float) -> None:
        """Wait (``within`` seconds at most) until a call is answered by echo server ``name``."""
        deadline = time.monotonic() + within
        try:
            while not (await self.next_reply(deadline)).startswith(f"{name}:"):
                pass
        except TimeoutError:
            raise AssertionError(
                f"no call answered by {name!r} within {within:.0f} s; {self.diagnostics()}"
            ) from None

    async def expect_only(self, name: str, calls: int = 5, within: float = 5.0) -> None:
        """The next ``calls`` replies (due ``within`` seconds) all come from echo server ``name``."""
        deadline = time.monotonic() + within
        try:
            replies = [await self.next_reply(deadline) for _ in range(calls)]
        except TimeoutError:
            raise AssertionError(
                f"fewer than {calls} replies in {within:.0f} s; {self.diagnostics()}"
            ) from None
        assert all(r.startswith(f"{name}:") for r in replies), f"wanted only {name!r}: {replies}"

    async def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5.0)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def echo_servers() -> AsyncIterator[Callable[[str], Awaitable[GrpcEcho]]]:
    started: list[GrpcEcho] = []

    async def make(name: str) -> GrpcEcho:
        server = GrpcEcho(name)
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def grpc_client(xds: XdsServer, tmp_path: Path) -> AsyncIterator[GrpcClient]:
    """The client process, its channel on ``xds:///echo``; it starts calling at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    env["GRPC_XDS_BOOTSTRAP_CONFIG"] = grpc_bootstrap(xds.port)
    if os.environ.get(TRACE_ENV):
        env["GRPC_TRACE"] = "xds_client,xds_resolver,cds_lb,xds_cluster_impl_lb"
        env["GRPC_VERBOSITY"] = "debug"
    stderr_path = tmp_path / "grpc-client.stderr"
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, METHOD, f"xds:///{LISTENER}", "60",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
    client = GrpcClient(proc, stderr_path, lambda: repr(node_status(xds)))
    try:
        yield client
    finally:
        await client.close()


def node_status(xds: XdsServer) -> NodeStatus | None:
    return next((s for s in xds.statuses() if s.node_id == NODE_ID), None)


async def wait_for_acks(xds: XdsServer, within: float = 5.0) -> NodeStatus:
    """Wait until the gRPC node has ACKed lds, rds, cds and eds with nothing in flight."""
    wanted = {"lds", "rds", "cds", "eds"}
    deadline = time.monotonic() + within
    node: NodeStatus | None = None
    while time.monotonic() < deadline:
        node = node_status(xds)
        if node is not None:
            settled = {
                t.type for t in node.types
                if t.acked_version and t.pending_version is None and t.nack_message is None
            }
            if settled >= wanted:
                return node
        await asyncio.sleep(0.02)
    raise AssertionError(f"{NODE_ID} has not ACKed {sorted(wanted)} within {within:.0f} s: {node}")


def assert_clean(node: NodeStatus) -> None:
    """One ADS stream in group ``demo``, one resource per type, no NACK."""
    assert (node.cluster, node.group, node.streams) == (GROUP, GROUP, 1), node
    per_type = {t.type: t.resources for t in node.types}
    assert per_type == {"lds": 1, "rds": 1, "cds": 1, "eds": 1}, node
    assert all(t.nack_version is None and t.nack_message is None for t in node.types), node


EchoFactory = Callable[[str], Awaitable[GrpcEcho]]


async def test_proxyless_grpc_client_reaches_served_chain(
    cache: SnapshotCache, xds: XdsServer, echo_servers: EchoFactory, grpc_client: GrpcClient
) -> None:
    blue = await echo_servers("blue")
    cache.set_snapshot(GROUP, echo_config("echo-blue", {"echo-blue": blue.port}))
    await grpc_client.wait_for_server("blue", within=10.0)
    assert_clean(await wait_for_acks(xds))


async def test_proxyless_grpc_client_follows_endpoint_move(
    cache: SnapshotCache, xds: XdsServer, echo_servers: EchoFactory, grpc_client: GrpcClient
) -> None:
    """Same route and cluster; the cluster's endpoint moves: an EDS update of a subscribed name."""
    blue = await echo_servers("blue")
    green = await echo_servers("green")
    cache.set_snapshot(GROUP, echo_config("echo", {"echo": blue.port}))
    await grpc_client.wait_for_server("blue", within=10.0)

    cache.set_snapshot(GROUP, echo_config("echo", {"echo": green.port}))
    await grpc_client.wait_for_server("green", within=5.0)
    await grpc_client.expect_only("green")
    assert_clean(await wait_for_acks(xds))


async def test_proxyless_grpc_client_follows_route_to_new_cluster(
    cache: SnapshotCache, xds: XdsServer, echo_servers: EchoFactory, grpc_client: GrpcClient
) -> None:
    """The route moves to a second cluster, which the client then subscribes to by name."""
    blue = await echo_servers("blue")
    green = await echo_servers("green")
    ports = {"echo-blue": blue.port, "echo-green": green.port}
    cache.set_snapshot(GROUP, echo_config("echo-blue", ports))
    await grpc_client.wait_for_server("blue", within=10.0)
    assert_clean(await wait_for_acks(xds))

    cache.set_snapshot(GROUP, echo_config("echo-green", ports))
    await grpc_client.wait_for_server("green", within=5.0)
    await grpc_client.expect_only("green")
    assert blue.calls > 0 and green.calls >= 6
    node = await wait_for_acks(xds)
    # grpc has dropped echo-blue: it subscribes to what its routes name.
    assert_clean(node)
