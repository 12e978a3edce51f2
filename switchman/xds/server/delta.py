"""Incremental (delta) streams (xDS protocol, "Incremental xDS").

The client says which names it adds and removes, and which versions it
already has; responses carry only what changed and the names removed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message

from switchman.xds import wire
from switchman.xds.cache import Resource
from switchman.xds.server.plan import Plan
from switchman.xds.server.state import Pending, TypeState
from switchman.xds.server.stream import Outgoing, Stream

__all__ = ["DeltaStream"]


class DeltaStream(Stream):
    """``state.client_versions`` is what the client has (or will have once it applies our last response)."""

    mode = "delta"

    def _on_request(self, request: Message) -> None:
        assert isinstance(request, discovery_pb2.DeltaDiscoveryRequest)
        self._bind_node(request.node, request.HasField("node"))
        state = self._state(request.type_url)
        if state is None:
            return
        if not state.subscription.started:
            # After a reconnect the client tells what it already has, so
            # that nothing it has is sent again.
            state.client_versions = dict(request.initial_resource_versions)
        pending = state.pending
        if request.response_nonce and pending is not None and request.response_nonce == pending.nonce:
            if request.HasField("error_detail"):
                self._nack(state, request.error_detail.message)
            else:
                self._ack(state)
        # Unlike state of the world, subscription changes in a delta request
        # are never repeated, so they apply even under a stale nonce.
        state.subscription.change(request.resource_names_subscribe, request.resource_names_unsubscribe)
        unsubscribed = request.resource_names_unsubscribe
        if unsubscribed:
            for name in unsubscribed:
                state.client_versions.pop(name, None)
            state.drop_acked(unsubscribed)
            # The client's versions changed outside a plan (a wildcard keeps
            # its selection): the next plan must compare everything.
            state.planned = None

    def _encode(self, state: TypeState, decision: Plan) -> Outgoing | None:
        known = state.client_versions
        current = decision.resources
        upserts: dict[str, Resource]
        if decision.changed is not None:
            # ``known`` is what the plan ``changed`` counts from left the
            # client with: only these names can differ. O(changes), not O(names).
            changed = decision.changed
            upserts = {n: r for n in changed if (r := current.get(n)) is not None and known.get(n) != r.version}
            removed = tuple(sorted(n for n in changed if n in known and n not in current))
        else:
            covers = state.subscription.covers
            uncovered = [n for n in known if not covers(n)]
            if uncovered:
                # No longer subscribed (e.g. the client left the legacy
                # wildcard): the client drops them itself; a removal would
                # only repeat that. Its versions change outside a plan, as on
                # an unsubscribe.
                for name in uncovered:
                    del known[name]
                state.drop_acked(uncovered)
                state.planned = None
            upserts = {n: r for n, r in current.items() if known.get(n) != r.version}
            removed = tuple(sorted(n for n in known if n not in current))
        for name in decision.resend:  # see warming: sent even if the client has them
            upserts[name] = current[name]
        first = state.sent_key is None
        if first:
            # What the client already has (it said so on reconnect) it runs:
            # count it as ACKed, or routes would wait for it for ever.
            state.add_acked(r for n, r in current.items() if known.get(n) == r.version)
        if not upserts and not removed and not first:
            return None
        nonce = self.next_nonce()
        fields = b"".join(upserts[n].delta_field for n in sorted(upserts))
        data = wire.delta_response(decision.version, fields, state.type_url, removed, nonce)
        return Outgoing(data, Pending(nonce, decision.version, upserts, removed, time.monotonic(), len(data)))

    def _committed(self, state: TypeState, outgoing: Outgoing) -> None:
        for name, resource in outgoing.pending.upserts.items():
            state.client_versions[name] = resource.version
        for name in outgoing.pending.removed:
            state.client_versions.pop(name, None)

    def _apply_ack(self, state: TypeState, upserts: Mapping[str, Resource], removed: tuple[str, ...]) -> None:
        # A name unsubscribed while the response was in flight is gone on the client.
        covers = state.subscription.covers
        state.add_acked(r for n, r in upserts.items() if covers(n))
        state.drop_acked(removed)
