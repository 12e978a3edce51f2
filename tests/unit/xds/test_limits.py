"""The pieces that bound hostile clients, alone: budgets, the flood guard, grpc-timeout, address keys, request
reading, unknown types and nodes on a stream, CSDS matchers, metric labels, and the settings of both transports."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.type.matcher.v3 import node_pb2, regex_pb2, string_pb2

from switchman.errors import ConfigError, ProtocolError
from switchman.xds import SnapshotCache, XdsMetrics, XdsServer, XdsSettings
from switchman.xds import resources as rt
from switchman.xds.h2.calls import Call
from switchman.xds.h2.guard import SETTINGS_COST, Budget, FloodLimits, Guard
from switchman.xds.h2.protocol import MalformedTimeout, parse_timeout
from switchman.xds.h2.server import address_key
from switchman.xds.server.csds import node_selector
from switchman.xds.server.methods import CallError, Code, FetchMethod
from tests.unit.xds.conftest import DeltaFactory, SotwFactory
from tests.unit.xds.harness import GROUP, NODE, delta_request, request, world


def test_a_budget_spends_its_burst_then_its_rate() -> None:
    budget = Budget(rate=10, burst=3, now=0.0)
    assert [budget.spend(0.0) for _ in range(4)] == [True, True, True, False]
    assert not budget.spend(0.05)  # half a token came back
    assert budget.spend(0.1)
    assert budget.spend(100.0, cost=3) and not budget.spend(100.0)  # never more than the burst


def test_pings_follow_grpcs_policy() -> None:
    guard = Guard(FloodLimits(min_ping_interval_seconds=5, max_ping_strikes=2))
    assert [guard.ping(t) for t in (0.0, 10.0, 11.0, 12.0)] == [None, None, None, None]  # two strikes
    assert guard.ping(13.0) == "too_many_pings"
    guard.sent()  # a response: pings are welcome again
    assert [guard.ping(t) for t in (13.5, 14.0, 14.5)] == [None, None, None]


def test_resets_and_control_frames_spend_their_budgets() -> None:
    guard = Guard(FloodLimits(max_stream_resets_per_second=1, stream_reset_burst=5, max_control_frames_per_second=2))
    assert [guard.reset(0.0) for _ in range(6)] == [None] * 5 + ["too_many_resets"]
    assert guard.control(0.0, SETTINGS_COST) is None  # a burst of 20: one SETTINGS costs 10
    assert guard.control(0.0, SETTINGS_COST) is None
    assert guard.control(0.0) == "control_frame_flood"


def test_window_updates_are_free_as_far_as_the_data_sent_explains_them() -> None:
    guard = Guard(FloodLimits(max_control_frames_per_second=1))  # a burst of 10
    guard.sent(data_frames=50)
    assert all(guard.window_update(0.0) is None for _ in range(100 + 10))
    assert guard.window_update(0.0) == "control_frame_flood"


@pytest.mark.parametrize(("value", "seconds"), [
    (b"1H", 3600.0), (b"2M", 120.0), (b"30S", 30.0), (b"250m", 0.25), (b"99999999u", 99.999999), (b"5n", 5e-9),
])
def test_grpc_timeouts(value: bytes, seconds: float) -> None:
    assert parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [b"", b"S", b"123456789S", b"1s", b"-1S", b"1.5S", b" 1S"])
def test_malformed_grpc_timeouts(value: bytes) -> None:
    with pytest.raises(MalformedTimeout):
        parse_timeout(value)


def test_connections_are_counted_per_ipv4_address_and_per_ipv6_64() -> None:
    assert address_key("10.1.2.3") == "10.1.2.3"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:10.1.2.3") == "10.1.2.3"
    assert address_key("fe80::1%eth0") == "fe80::/64"


def _call() -> Call:
    return Call(1, FetchMethod("/x.Y/Z", bytes, lambda request, peer: b""))


def test_a_call_reads_whole_messages_and_keeps_the_rest() -> None:
    call = _call()
    assert call.take(b"\0\0\0\0\x02ab\0\0\0", 10) == ([b"ab"], 7)
    assert bytes(call.buffer) == b"\0\0\0" and call.waiting
    assert call.take(b"\0\x01c", 10) == ([b"c"], 6)
    assert not call.buffer


@pytest.mark.parametrize(("data", "code"), [
    (b"\x01\0\0\0\x01a", Code.UNIMPLEMENTED), (b"\0\0\0\0\x0b", Code.RESOURCE_EXHAUSTED),
])
def test_a_call_refuses_compressed_and_oversized_messages(data: bytes, code: Code) -> None:
    with pytest.raises(CallError) as refused:
        _call().take(data, 10)
    assert refused.value.code is code


async def test_an_ads_stream_ignores_types_it_does_not_serve(
    cache: SnapshotCache, sotw: SotwFactory, delta: DeltaFactory, metrics: XdsMetrics
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request("type.googleapis.com/junk.Thing"))  # the first request binds the node all the same
    client.send(request("type.googleapis.com/other.Thing", node=None))
    await client.expect_nothing()
    client.send(request(rt.CLUSTER, node=None))
    assert (await client.recv()).type_url == rt.CLUSTER
    assert set(client.stream.states) == {rt.CLUSTER}
    incremental = delta()
    incremental.send(delta_request("type.googleapis.com/junk.Thing"))
    await incremental.expect_nothing()
    assert metrics.refusals["unknown_type"] == 3
    labels = {sample.labels.get("type") for metric in metrics.registry.collect() for sample in metric.samples}
    assert labels == {None, "cds"}


async def test_a_per_type_stream_refuses_another_type(sotw: SotwFactory) -> None:
    client = sotw("cds", rt.CLUSTER)
    client.send(request(rt.LISTENER))
    with pytest.raises(ProtocolError, match="cds serves"):
        await client.task


async def test_a_stream_keeps_a_copy_of_its_node_without_extensions(cache: SnapshotCache, sotw: SotwFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    node = base_pb2.Node(id=NODE.id, cluster=NODE.cluster, user_agent_name="envoy", user_agent_version="1.40",
                         extensions=[base_pb2.Extension(name=f"e{i}") for i in range(100)],
                         client_features=["envoy.lb.does_not_support_overprovisioning"])
    node.locality.zone = "z1"
    node.metadata.update({"team": "payments"})
    client = sotw()
    client.send(request(rt.CLUSTER, node=node))
    await client.recv()
    kept = client.stream.node
    assert kept is not None and kept is not node
    assert (kept.id, kept.cluster, kept.user_agent_version, kept.locality.zone) == (NODE.id, "edge", "1.40", "z1")
    assert kept.metadata.fields["team"].string_value == "payments"
    assert not kept.extensions and not kept.client_features


def _id(kind: str, value: str, ignore_case: bool = False) -> node_pb2.NodeMatcher:
    matcher = string_pb2.StringMatcher(ignore_case=ignore_case)
    if kind == "safe_regex":
        matcher.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=value))
    else:
        setattr(matcher, kind, value)
    return node_pb2.NodeMatcher(node_id=matcher)


def test_csds_node_matchers() -> None:
    assert node_selector([])("anything")
    assert node_selector([_id("prefix", "GATE", ignore_case=True)])("gateway-7")
    assert not node_selector([_id("prefix", "GATE")])("gateway-7")
    assert node_selector([_id("suffix", "-7"), _id("exact", "x")])("gateway-7")
    assert node_selector([_id("contains", "Way", ignore_case=True)])("gateway-7")
    assert node_selector([_id("safe_regex", r"gate\w+-\d")])("gateway-7")
    assert not node_selector([_id("safe_regex", "gate")])("gateway-7")  # a full match, as Envoy's


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)", "(?<!a)b", "a{1001}", "(" * 10, "x" * 5000])
def test_csds_refuses_what_re2_refuses(pattern: str) -> None:
    with pytest.raises(ProtocolError, match="safe_regex"):
        node_selector([_id("safe_regex", pattern)])


def test_csds_refuses_too_many_matchers() -> None:
    with pytest.raises(ProtocolError, match="node_matchers"):
        node_selector([_id("exact", str(i)) for i in range(101)])


def test_types_outside_the_served_set_share_one_label() -> None:
    metrics = XdsMetrics()
    assert metrics.of("type.googleapis.com/a.B") is metrics.of("type.googleapis.com/c.D")
    assert metrics.of("type.googleapis.com/a.B").label == "other"
    assert metrics.of(rt.CLUSTER).label == "cds"


def test_both_transports_get_the_same_bounds() -> None:
    settings = XdsSettings(max_concurrent_streams=77, max_connections=88, max_header_list_bytes=9000,
                           max_connection_idle_seconds=60, max_connection_age_seconds=600,
                           max_connection_age_grace_seconds=5)
    options = dict(settings.grpc_options())
    assert options["grpc.max_concurrent_streams"] == 77
    assert options["grpc.max_allowed_incoming_connections"] == 88
    assert options["grpc.max_metadata_size"] == options["grpc.absolute_max_metadata_size"] == 9000
    assert options["grpc.max_connection_idle_ms"] == 60_000
    assert options["grpc.max_connection_age_grace_ms"] == 5000
    assert options["grpc.http2.max_ping_strikes"] == 2
    h2 = settings.h2_settings()
    assert (h2.max_concurrent_streams, h2.max_connections, h2.max_header_list_bytes) == (77, 88, 9000)
    assert h2.floods.stream_reset_burst == 77
    assert (h2.max_connection_idle_seconds, h2.max_connection_age_grace_seconds) == (60, 5)


@pytest.mark.parametrize("name", ["max_concurrent_streams", "max_send_buffer_bytes", "request_timeout_seconds"])
def test_limits_must_be_positive(cache: SnapshotCache, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        XdsServer(cache, XdsSettings(**{name: 0}))
