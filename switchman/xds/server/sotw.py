"""State-of-the-world streams (xDS protocol, "Basic Protocol Overview")."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message

from switchman.xds import wire
from switchman.xds.cache import Resource
from switchman.xds.server.plan import Plan
from switchman.xds.server.state import Pending, TypeState
from switchman.xds.server.stream import Outgoing, Stream

__all__ = ["SotwStream"]


def _same(sent: Mapping[str, Resource], decision: Plan) -> bool:
    """Whether ``decision`` holds the names and versions last sent."""
    wanted = decision.resources
    names: Iterable[str]
    if decision.changed is not None:
        # ``sent`` holds the contents of the plan ``changed`` is counted from.
        names = decision.changed
    elif len(sent) != len(wanted):
        return False
    else:
        names = wanted
    for name in names:
        had, want = sent.get(name), wanted.get(name)
        if had is not want and (had is None or want is None or had.version != want.version):
            return False
    return True


class SotwStream(Stream):
    """Every response carries the whole set the client subscribed to."""

    mode = "sotw"

    def _on_request(self, request: Message) -> None:
        assert isinstance(request, discovery_pb2.DiscoveryRequest)
        self._bind_node(request.node, request.HasField("node"))
        state = self._state(request.type_url)
        pending = state.pending
        if request.response_nonce and pending is not None:
            if request.response_nonce != pending.nonce:
                # A stale nonce: the client has not seen our latest response
                # yet and will send its subscription again when it has
                # ("ignore requests with stale nonces").
                return
            if request.HasField("error_detail"):
                self._nack(state, request.error_detail.message)
            else:
                self._ack(state)
        # With nothing in flight, the nonce is that of a response already
        # answered: the request changes the subscription (a gRPC client
        # asks for a new cluster this way once a route names it).
        state.subscription.set_names(request.resource_names)

    def _encode(self, state: TypeState, decision: Plan) -> Outgoing | None:
        if state.sent_key is not None and _same(state.sent, decision):
            return None  # e.g. only a removal is waiting: nothing the client lacks
        nonce = self.next_nonce()
        data = wire.sotw_response(decision.version, decision.body, state.type_url, nonce)
        pending = Pending(nonce, decision.version, decision.resources, (), time.monotonic(), len(data))
        return Outgoing(data, pending)

    def _apply_ack(self, state: TypeState, upserts: Mapping[str, Resource], removed: tuple[str, ...]) -> None:
        # Every response holds all the client subscribed to: it replaces.
        state.replace_acked(upserts)
