"""State-of-the-world streams (xDS protocol, "Basic Protocol Overview").

Every response for Listeners and Clusters carries the whole set the client
subscribed to. RouteConfigurations and ClusterLoadAssignments are grouped
into responses as in the incremental protocol ("Grouping Resources into
Responses"): a resource left out is not removed (it goes with the listener
or cluster that names it), so once the client has ACKed a full set, a change
sends only the resources that changed. With 10,000 endpoints assignments,
one endpoint change is then a response of a few hundred bytes, not megabytes.
After a NACK, a subscription change, or when the history cannot tell what
changed, the response is full again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message

from switchman.xds import resources as rt
from switchman.xds import wire
from switchman.xds.cache import Resource
from switchman.xds.server.plan import Plan
from switchman.xds.server.state import Pending, TypeState
from switchman.xds.server.stream import Outgoing, Stream

__all__ = ["SotwStream"]

# Types whose resources the client keeps when a response leaves them out.
_PARTIAL: frozenset[str] = frozenset({rt.ROUTE, rt.ENDPOINT})


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
        if state is None:
            return
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
        wanted, resend = decision.resources, decision.resend
        if state.sent_key is not None and not resend and _same(state.sent, decision):
            return None  # e.g. only a removal is waiting: nothing the client lacks
        nonce = self.next_nonce()
        body = decision.body
        if state.type_url in _PARTIAL and decision.changed is not None and state.nack is None:
            # The client ACKed the last response (so holds what was sent): only what changed since.
            sent = state.sent
            carried = {
                n for n in decision.changed
                if (r := wanted.get(n)) is not None and ((had := sent.get(n)) is None or had.version != r.version)
            }
            carried |= resend  # see warming: sent even if the client has them
            body = b"".join(wanted[n].sotw_field for n in sorted(carried))
        data = wire.sotw_response(decision.version, body, state.type_url, nonce)
        pending = Pending(nonce, decision.version, wanted, (), time.monotonic(), len(data))
        return Outgoing(data, pending)

    def _apply_ack(self, state: TypeState, upserts: Mapping[str, Resource], removed: tuple[str, ...]) -> None:
        # Every response holds all the client subscribed to: it replaces.
        state.replace_acked(upserts)
