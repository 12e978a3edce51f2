"""Endpoints again after a cluster change: what lets an updated EDS cluster finish warming.

Envoy replaces a Cluster that a CDS response changes (its TLS, protocol,
timeouts, circuit breakers...) by a new one, which warms until it receives
its ClusterLoadAssignment; the old cluster serves meanwhile (xDS protocol,
"Resource warming": a cluster's warming completes only when a new
ClusterLoadAssignment response arrives, even if its endpoints did not
change). With unchanged endpoints there is nothing new to send, and the new
cluster would wait for ``initial_fetch_timeout`` (15 s by default) before
running on the endpoints Envoy cached (envoy#31535, go-control-plane#1035).
So a CDS response that adds or changes EDS clusters is followed, on the same
stream, by their assignments, whether or not they changed.

**When: right behind the CDS response, not after its ACK.** On ADS, Envoy
withholds the CDS ACK for as long as any cluster warms (its cluster manager
keeps CDS paused, ``ClusterManagerImpl::updateClusterCounts``, so that a
control plane can hold routes back until the clusters are warm): waiting for
the ACK would wait for the warming, which waits for the assignment. Nor does Envoy ask: it applies a CDS response with
its EDS requests paused, and the request the new clusters' watches queue
goes out when the pause lifts; on a state-of-the-world stream it repeats the
subscription and the nonce of the last EDS response, so it cannot be told
from an ACK (envoy#13009), and on a delta stream there is none at all, the
name being subscribed already. What does hold is order: Envoy applies one
stream's responses one after the other, so an EDS response sent after the
CDS response finds the new clusters and their watches in place. The
assignments are therefore due as soon as the CDS response is sent: in the
same pass (endpoints come after clusters in ADS order), or, when an EDS
response is in flight, in the one that follows its answer, or in the first
one when the client has not asked for endpoints yet on this stream (a delta
client that reconnects says which assignments it has, and would otherwise
not get them).

If Envoy then rejects the CDS response, the assignments it got again change
nothing (it keeps the clusters it ran), and it applies every valid cluster
of a response it rejects anyway.

Only what needs it: the assignments of clusters the response carries in a
version this stream had not sent (changed, or added again while their
endpoints may still be subscribed; not unchanged ones, not removed ones),
that its EDS subscription names; in a delta response at the version the
client has, which Envoy applies all the same. A client on per-type streams
needs none of this, and gets none (the streams of one node are not tied to
each other): Envoy opens a new EDS stream for each new cluster, and a new
stream's first request is answered in full.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from switchman.xds import resources as rt
from switchman.xds.cache.resource import Resource
from switchman.xds.server.state import TypeState

__all__ = ["assignments_planned", "clusters_sent", "owed"]

_NONE: frozenset[str] = frozenset()


def clusters_sent(
    clusters: TypeState,
    before: Mapping[str, Resource],
    carried: Mapping[str, Resource],
    changed: Collection[str] | None,
) -> None:
    """A CDS response carrying ``carried`` is leaving on an ADS stream that had last sent ``before``.

    The assignments of the EDS clusters it adds or changes become owed
    (``clusters.resend``). ``changed``, when not None, holds every name that
    may differ from ``before`` (see :class:`~switchman.xds.server.plan.Plan`):
    only those are looked at. On the stream's first clusters, only those the
    client said it has, in another version, count (``client_versions``, a
    delta client's on reconnect): the others are new to it, and it asks for
    their endpoints anew.
    """
    updated: list[Resource]
    if not before:
        reported = clusters.client_versions
        if not reported:
            return
        updated = [c for n, c in carried.items() if (had := reported.get(n)) is not None and had != c.version]
    else:
        # A name absent from ``before`` is a cluster added again: its endpoints may still be subscribed.
        updated = [
            c for n in (carried if changed is None else changed)
            if (c := carried.get(n)) is not None and ((was := before.get(n)) is None or was.version != c.version)
        ]
    due = {name for c in updated for t, name in c.references if t == rt.ENDPOINT}
    if due:
        clusters.resend = clusters.resend | due


def owed(states: Mapping[str, TypeState], type_url: str, selected: Mapping[str, Resource]) -> frozenset[str]:
    """The names among ``selected`` that the next response for ``type_url`` carries even if the client has them.

    Owed assignments the stream does not subscribe to are not: once the
    client asks for them (a new cluster's), they go out as any other.
    """
    if type_url != rt.ENDPOINT:
        return _NONE
    clusters = states.get(rt.CLUSTER)
    if clusters is None or not clusters.resend:
        return _NONE
    return frozenset(n for n in clusters.resend if n in selected)


def assignments_planned(states: Mapping[str, TypeState]) -> None:
    """An EDS response was planned: it carries what was owed (:func:`owed`); nothing is owed any more."""
    clusters = states.get(rt.CLUSTER)
    if clusters is not None and clusters.resend:
        clusters.resend = _NONE
