"""Make-before-break: what one stream may be sent for one type, given what it has ACKed.

Two rules, both about references (xDS protocol, "Eventual consistency
considerations"):

* **Make before break.** A listener or route configuration that names a
  cluster goes out only once the client has ACKed that cluster as it is in
  the snapshot and, for an EDS cluster, ACKed its endpoints. Otherwise the
  client would route to a cluster that is still warming and fail requests.
* **Break after make.** A resource that leaves the snapshot stays in what
  the client is sent (its ACKed form) for as long as something the client
  still holds names it. Once the client ACKs the listeners and routes that
  no longer name it, it goes.

Only references the stream subscribes to are waited for: a client that has
no CDS subscription on this stream (an Envoy on per-type streams, or a
proxyless gRPC client that subscribes to clusters only after reading the
routes) is not held back, since it will ask for what it needs itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from envoy.config.cluster.v3 import cluster_pb2

from switchman.xds import resources as rt
from switchman.xds.cache.resource import Resource
from switchman.xds.cache.snapshot import Snapshot, TypeSnapshot
from switchman.xds.server.state import TypeState
from switchman.xds.server.warming import owed

__all__ = ["Hold", "Plan", "plan"]

# Which types name resources of a type: their holders keep it alive.
_REFERRERS: Final[dict[str, tuple[str, ...]]] = {
    rt.CLUSTER: (rt.LISTENER, rt.ROUTE),
    rt.ENDPOINT: (rt.CLUSTER,),
    rt.ROUTE: (rt.LISTENER,),
}
_GATED: Final = frozenset({rt.LISTENER, rt.ROUTE})


@dataclass(frozen=True, slots=True)
class Plan:
    """What the client should hold for a type after the next response.

    ``resources`` is read-only and may be shared with other streams.
    ``basis`` is what the stream records (``TypeState.planned``) once the
    client's state reflects this plan; None when the plan holds back removed
    resources, since its contents are then not a selection of the snapshot.
    ``changed``, when not None, holds every name whose resource may differ
    from the stream's last such plan (the subscription is the same, and the
    snapshot remembers what changed since); None means: compare everything.
    ``resend`` names resources of ``resources`` that the response carries
    even if the client has them in this version (see :mod:`.warming`).
    """

    resources: Mapping[str, Resource]
    body: bytes
    version: str
    key: str
    basis: tuple[int, frozenset[str] | None] | None = None
    changed: frozenset[str] | None = None
    resend: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Hold:
    """Nothing may be sent for the type yet, and why."""

    reason: str


def plan(states: Mapping[str, TypeState], type_url: str, snapshot: Snapshot, last_key: object) -> Plan | Hold | None:
    """The next contents for ``type_url`` on this stream; None when they equal ``last_key``."""
    state = states[type_url]
    tsnap = snapshot.get(type_url)
    names = state.subscription.selection()
    selection = tsnap.select(names)
    kept = _kept(states, state, tsnap)
    if kept:
        digest = hashlib.blake2b(digest_size=6)
        for name in sorted(kept):
            digest.update(f"{name}\0{kept[name].version}\0".encode())
        key = f"{selection.key}+{digest.hexdigest()}"
    else:
        key = selection.key
    resend = owed(states, type_url, selection.mapping)
    if key == last_key and not resend:
        return None
    if type_url in _GATED:
        reason = _waiting_for(states, selection.resources, snapshot)
        if reason:
            return Hold(reason)
    if not kept:
        changed = None
        # Identity: a subscription keeps its selection object while its names
        # stay the same (and None is the wildcard).
        if state.planned is not None and state.planned[1] is names:
            changed = tsnap.changes_since(state.planned[0])
        return Plan(selection.mapping, selection.body, tsnap.version, key, (tsnap.serial, names), changed, resend)
    contents = dict(selection.mapping)
    contents.update(kept)
    ordered = [contents[n] for n in sorted(contents)]
    return Plan(contents, b"".join(r.sotw_field for r in ordered), f"{tsnap.version}+held", key, resend=resend)


def _kept(states: Mapping[str, TypeState], state: TypeState, tsnap: TypeSnapshot) -> dict[str, Resource]:
    """ACKed resources gone from the snapshot that something the client holds still names."""
    referrers = _REFERRERS.get(state.type_url)
    if not referrers or not state.acked:
        return {}
    # Only names matter here, so the cache survives snapshots that change
    # versions only, and ACKs that change versions only.
    cached = state.missing_cache
    if cached is not None and cached[0] == tsnap.names_serial and cached[1] == state.acked_names:
        missing = cached[2]
    else:
        missing = frozenset(state.acked.keys() - tsnap.resources.keys())
        state.missing_cache = (tsnap.names_serial, state.acked_names, missing)
    if not missing:
        return {}
    named: set[str] = set()
    for referrer in referrers:
        holder = states.get(referrer)
        if holder is None:
            continue
        for held in (*holder.acked.values(), *holder.sent.values()):
            named.update(n for t, n in held.references if t == state.type_url and n in missing)
    covers = state.subscription.covers
    # .get: a stale cache must never end the stream (it did, before every
    # change to the ACKed names counted).
    return {n: r for n in named if (r := state.acked.get(n)) is not None and covers(n)}


def _eds_over_ads(cluster: cluster_pb2.Cluster) -> bool:
    source = cluster.eds_cluster_config.eds_config
    return bool(source.WhichOneof("config_source_specifier") == "ads")


#: Per cluster type snapshot (by serial): each cluster's version, the endpoint assignment it names (if
#: any), and whether its endpoints come over ADS. Facts of the snapshot, worked out once for every stream.
_FACTS: dict[int, dict[str, tuple[str, str | None, bool]]] = {}
_FACTS_KEPT = 8


def _cluster_facts(clusters: TypeSnapshot) -> dict[str, tuple[str, str | None, bool]]:
    found = _FACTS.get(clusters.serial)
    if found is None:
        if len(_FACTS) >= _FACTS_KEPT:
            _FACTS.clear()
        found = _FACTS[clusters.serial] = {
            name: (r.version, next((n for t, n in r.references if t == rt.ENDPOINT), None), _eds_over_ads(r.message))
            for name, r in clusters.resources.items()
        }
    return found


def _waiting_for(states: Mapping[str, TypeState], chosen: tuple[Resource, ...], snapshot: Snapshot) -> str:
    """The first cluster (or its endpoints) that ``chosen`` names and the client has not ACKed."""
    cds = states.get(rt.CLUSTER)
    if cds is None or not cds.subscription.started:
        return ""
    eds = states.get(rt.ENDPOINT)
    cluster_snapshot = snapshot.get(rt.CLUSTER)
    facts = _cluster_facts(cluster_snapshot)
    assignments = snapshot.get(rt.ENDPOINT).resources
    # The usual case, a route change among clusters the client has: a wildcard CDS subscription ACKed at
    # this snapshot's version holds every cluster at its current version, so only endpoints are checked.
    clusters_acked = cds.subscription.selection() is None and cds.acked_version == cluster_snapshot.version
    eds_subscribed = eds is not None and eds.subscription.started
    eds_acked = eds.acked if eds is not None else {}
    covers = cds.subscription.covers
    checked: set[str] = set()
    for resource in chosen:
        for ref_type, name in resource.references:
            if ref_type != rt.CLUSTER or name in checked:
                continue
            checked.add(name)
            fact = facts.get(name)
            if fact is None or not covers(name):
                continue
            version, assignment, over_ads = fact
            if not clusters_acked:
                held = cds.acked.get(name)
                if held is None or held.version != version:
                    return f"waiting for the client to ACK cds/{name}"
            if assignment is None or assignment not in assignments:
                continue
            if not eds_subscribed and not over_ads:
                continue
            if assignment not in eds_acked:
                return f"waiting for the client to ACK eds/{assignment}"
    return ""
