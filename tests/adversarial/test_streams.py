"""Streams as RFC 9113 has them: the concurrency limit, half-closed streams, GOAWAY, maximum age and its grace."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2
from h2.errors import ErrorCodes

from switchman.xds import SnapshotCache
from switchman.xds import resources as rt
from tests.adversarial.conftest import GROUP, SLEEP, Connect, MakeHonest, Serve, node, snapshot
from tests.adversarial.raw import ADS, FETCH_CLUSTERS, Raw, responses


def _ads(raw: Raw, node_id: str) -> int:
    stream_id = raw.open(ADS)
    raw.message(stream_id, discovery_pb2.DiscoveryRequest(node=node(node_id), type_url=rt.CLUSTER))
    return stream_id


async def test_a_stream_past_the_limit_is_refused_and_the_connection_goes_on(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve(max_concurrent_streams=10)
    good = await honest(xds)
    raw = await connect(xds.port)
    await raw.read(lambda s: s.settings >= 1)
    raw.ignore_server_limits()
    ids = [_ads(raw, f"many-{i}") for i in range(12)]
    raw.send()
    seen = await raw.read(lambda s: all(i in s.resets for i in ids[10:]) and all(i in s.data for i in ids[:10]))
    assert {seen.resets[i] for i in ids[10:]} == {ErrorCodes.REFUSED_STREAM}  # a stream error, not GOAWAY
    assert seen.goaway is None
    raw.h2.end_stream(ids[0])  # one ends (OK): there is room for another
    raw.send()
    fetch = raw.call(FETCH_CLUSTERS, discovery_pb2.DiscoveryRequest(node=node("fetch")))
    seen = await raw.read(lambda s: s.status(ids[0]) is not None and s.status(fetch) is not None)
    assert (seen.status(ids[0]), seen.status(fetch)) == (0, 0)
    assert xds.metrics.refusals["streams"] == 2
    await good.push(cache)


async def test_half_closed_streams_take_window_updates_and_priority(
    cache: SnapshotCache, serve: Serve, connect: Connect
) -> None:
    xds = await serve()
    cache.set_snapshot(GROUP, snapshot(clusters=2000))  # ~160 KB of clusters: more than a 64 KiB window
    raw = await connect(xds.port)
    raw.h2.acknowledge_received_data = lambda *args, **kwargs: None  # type: ignore[method-assign]
    fetch = raw.call(FETCH_CLUSTERS, discovery_pb2.DiscoveryRequest(node=node("half")))  # half-closed at once
    ads = _ads(raw, "half-ads")
    raw.h2.end_stream(ads)  # the client is done: the server finishes (OK) once the response is out
    raw.send()
    seen = await raw.read(lambda s: sum(len(d) for d in s.data.values()) >= 65535)  # the connection's window
    assert seen.status(fetch) is None and seen.status(ads) is None  # blocked on flow control
    for stream_id in (fetch, ads):
        raw.h2.prioritize(stream_id, weight=200)  # PRIORITY on a half-closed stream: allowed (RFC 9113, 5.1)
        raw.h2.increment_flow_control_window(1 << 20, stream_id=stream_id)
    raw.h2.increment_flow_control_window(1 << 21)
    raw.send()
    seen = await raw.read(lambda s: s.status(fetch) is not None and s.status(ads) is not None)
    assert (seen.status(fetch), seen.status(ads)) == (0, 0)
    for stream_id in (fetch, ads):
        (body,) = responses(seen.data[stream_id])
        assert len(discovery_pb2.DiscoveryResponse.FromString(body).resources) == 2001
    assert seen.goaway is None


async def test_goaway_on_stop_names_the_last_stream_processed(serve: Serve, connect: Connect) -> None:
    xds = await serve()
    raw = await connect(xds.port)
    ids = [_ads(raw, f"stop-{i}") for i in range(3)]
    raw.send()
    await raw.read(lambda s: all(i in s.data for i in ids))
    await xds.stop(1.0)
    seen = await raw.closed()
    assert seen.goaway is not None
    assert (seen.goaway.error_code, seen.goaway.last_stream_id) == (ErrorCodes.NO_ERROR, ids[-1])
    assert [seen.status(i) for i in ids] == [14, 14, 14]  # UNAVAILABLE: clients reconnect


async def test_maximum_age_sends_goaway_and_gives_calls_their_grace(
    cache: SnapshotCache, serve: Serve, connect: Connect
) -> None:
    xds = await serve(max_connection_age_seconds=0.3, max_connection_age_grace_seconds=1.0)
    raw = await connect(xds.port)
    ads = _ads(raw, "aged")
    slow = raw.call(SLEEP, discovery_pb2.DiscoveryRequest(version_info="0.6"))  # in flight across the GOAWAY
    seen = await raw.read(lambda s: s.goaway is not None, 2.0)
    assert seen.goaway is not None
    assert (seen.goaway.error_code, seen.goaway.last_stream_id) == (ErrorCodes.NO_ERROR, slow)
    assert seen.goaway.additional_data == b"max_age"
    (first,) = responses(seen.data[ads])
    response = discovery_pb2.DiscoveryResponse.FromString(first)
    raw.message(ads, discovery_pb2.DiscoveryRequest(
        type_url=rt.CLUSTER, version_info=response.version_info, response_nonce=response.nonce))
    raw.send()
    # In the grace period: the stream still gets pushes, the slow call its answer; a new stream is refused.
    cache.set_snapshot(GROUP, snapshot())
    late = raw.call(FETCH_CLUSTERS, discovery_pb2.DiscoveryRequest(node=node("late")))
    seen = await raw.read(lambda s: late in s.resets and s.status(slow) is not None
                          and len(responses(s.data[ads])) == 2, 2.0)
    assert seen.resets[late] == ErrorCodes.REFUSED_STREAM
    assert seen.status(slow) == 0
    assert seen.status(ads) is None
    seen = await raw.closed(3.0)  # the grace is over: the stream ends so that its client reconnects
    assert seen.status(ads) == 14
