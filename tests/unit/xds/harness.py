"""Drive xDS streams in-process, without gRPC: requests in through a queue, parsed responses out.

A :class:`Client` wraps one :class:`~switchman.xds.server.stream.Stream`: it
feeds ``stream.run`` an async iterator backed by an ``asyncio.Queue`` and
parses every yielded frame with the real protobuf classes, so each test reads
what an Envoy would read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Final, Generic, TypeVar

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2

from switchman.testing.builders import eds_cluster, http_listener, load_assignment, route_config
from switchman.xds import Snapshot
from switchman.xds import resources as rt
from switchman.xds.server.stream import Stream

Response = TypeVar("Response", discovery_pb2.DiscoveryResponse, discovery_pb2.DeltaDiscoveryResponse)

NODE: Final = base_pb2.Node(id="envoy-1", cluster="edge")
GROUP: Final = "edge"  # what grouper("cluster") makes of NODE

LISTENER_NAME: Final = "ingress"
ROUTE_NAME: Final = "ingress-routes"

QUIET: Final = 0.2  # how long "nothing more arrives" waits


class Client(Generic[Response]):
    """One in-process xDS client on one stream."""

    def __init__(self, stream: Stream, parse: Callable[[bytes], Response]) -> None:
        self.stream = stream
        self._parse = parse
        self._requests: asyncio.Queue[Message | None] = asyncio.Queue()
        self._responses: asyncio.Queue[Response] = asyncio.Queue()
        self.frames: list[bytes] = []
        self.task: asyncio.Task[None] = asyncio.create_task(self._pump())

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            request = await self._requests.get()
            if request is None:
                return
            yield request

    async def _pump(self) -> None:
        async for frame in self.stream.run(self._iterate()):
            self.frames.append(frame)
            self._responses.put_nowait(self._parse(frame))

    def send(self, request: Message) -> None:
        self._requests.put_nowait(request)

    async def recv(self, timeout: float = 5.0) -> Response:
        """The next response; fails the test when none comes within ``timeout``."""
        getter = asyncio.ensure_future(self._responses.get())
        done, _ = await asyncio.wait({getter, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        if self.task.done():
            raise AssertionError(f"the stream ended instead of responding: {self.task!r}")
        raise AssertionError(f"no response within {timeout} s")

    def ready(self) -> list[Response]:
        """The responses already received, without waiting."""
        out: list[Response] = []
        while not self._responses.empty():
            out.append(self._responses.get_nowait())
        return out

    async def expect_nothing(self, timeout: float = QUIET) -> None:
        """Wait ``timeout``; fail if a response arrives meanwhile."""
        with contextlib.suppress(TimeoutError):
            response = await asyncio.wait_for(self._responses.get(), timeout)
            raise AssertionError(f"unexpected response: {response}")

    async def drain(self, quiet: float = 0.05) -> list[Response]:
        """Every response until none arrives for ``quiet`` seconds."""
        out: list[Response] = []
        while True:
            try:
                out.append(await asyncio.wait_for(self._responses.get(), quiet))
            except TimeoutError:
                return out

    async def settle(self) -> None:
        """Let the stream process everything already queued (a few loop turns)."""
        for _ in range(5):
            await asyncio.sleep(0)

    async def close(self) -> None:
        """End the request stream, as a client half-closing, and wait for the stream to finish."""
        self._requests.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 1.0)


SotwClient = Client[discovery_pb2.DiscoveryResponse]
DeltaClient = Client[discovery_pb2.DeltaDiscoveryResponse]


# -- requests ----------------------------------------------------------------


def _error(message: str) -> status_pb2.Status:
    return status_pb2.Status(code=3, message=message)


def request(
    type_url: str,
    names: Iterable[str] = (),
    *,
    nonce: str = "",
    version: str = "",
    error: str | None = None,
    node: base_pb2.Node | None = NODE,
) -> discovery_pb2.DiscoveryRequest:
    req = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=list(names), response_nonce=nonce, version_info=version
    )
    if node is not None:
        req.node.CopyFrom(node)
    if error is not None:
        req.error_detail.CopyFrom(_error(error))
    return req


def ack(response: discovery_pb2.DiscoveryResponse, names: Iterable[str] = ()) -> discovery_pb2.DiscoveryRequest:
    """What Envoy sends after applying ``response``: its version and nonce, and its subscription."""
    return request(response.type_url, names, nonce=response.nonce, version=response.version_info)


def nack(
    response: discovery_pb2.DiscoveryResponse, message: str, names: Iterable[str] = (), previous: str = ""
) -> discovery_pb2.DiscoveryRequest:
    """What Envoy sends after rejecting ``response``: the previous version, the nonce, and why."""
    return request(response.type_url, names, nonce=response.nonce, version=previous, error=message)


def delta_request(
    type_url: str,
    subscribe: Iterable[str] = (),
    unsubscribe: Iterable[str] = (),
    *,
    nonce: str = "",
    initial: Mapping[str, str] | None = None,
    error: str | None = None,
    node: base_pb2.Node | None = NODE,
) -> discovery_pb2.DeltaDiscoveryRequest:
    req = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=list(subscribe),
        resource_names_unsubscribe=list(unsubscribe),
        response_nonce=nonce,
        initial_resource_versions=dict(initial or {}),
    )
    if node is not None:
        req.node.CopyFrom(node)
    if error is not None:
        req.error_detail.CopyFrom(_error(error))
    return req


def delta_ack(response: discovery_pb2.DeltaDiscoveryResponse) -> discovery_pb2.DeltaDiscoveryRequest:
    return delta_request(response.type_url, nonce=response.nonce)


def delta_nack(response: discovery_pb2.DeltaDiscoveryResponse, message: str) -> discovery_pb2.DeltaDiscoveryRequest:
    return delta_request(response.type_url, nonce=response.nonce, error=message)


# -- responses ---------------------------------------------------------------


def unpack(packed: any_pb2.Any) -> Message:
    message = rt.message_class(packed.type_url)()
    message.ParseFromString(packed.value)
    return message


def contents(response: discovery_pb2.DiscoveryResponse) -> dict[str, Message]:
    """The resources of a state-of-the-world response, by name."""
    found = [unpack(r) for r in response.resources]
    out = {rt.resource_name(m): m for m in found}
    assert len(out) == len(found), "a name appears twice in one response"
    return out


def names(response: discovery_pb2.DiscoveryResponse) -> set[str]:
    return set(contents(response))


def delta_contents(response: discovery_pb2.DeltaDiscoveryResponse) -> dict[str, Message]:
    """The resources added or changed by a delta response, by name (checked against the inner name)."""
    out: dict[str, Message] = {}
    for resource in response.resources:
        message = unpack(resource.resource)
        assert rt.resource_name(message) == resource.name
        out[resource.name] = message
    return out


def delta_names(response: discovery_pb2.DeltaDiscoveryResponse) -> set[str]:
    return {r.name for r in response.resources}


# -- snapshots ---------------------------------------------------------------


def world(
    route_to: str | Sequence[tuple[str, int]],
    clusters: Iterable[str],
    ports: Mapping[str, int] | None = None,
    extra: Iterable[Message] = (),
) -> Snapshot:
    """Listener ``ingress`` -> routes ``ingress-routes`` -> ``route_to``; each cluster EDS with one endpoint."""
    items: list[Message] = [http_listener(LISTENER_NAME, ROUTE_NAME), route_config(ROUTE_NAME, route_to)]
    for i, name in enumerate(clusters):
        port = (ports or {}).get(name, 9000 + i)
        items += [eds_cluster(name), load_assignment(name, [("127.0.0.1", port)])]
    return Snapshot.build([*items, *extra])
