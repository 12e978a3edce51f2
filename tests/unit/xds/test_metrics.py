"""XdsMetrics move with what the streams do."""

from __future__ import annotations

from switchman.xds import SnapshotCache, XdsMetrics
from switchman.xds import resources as rt
from tests.unit.xds.conftest import DeltaFactory, SotwFactory
from tests.unit.xds.harness import GROUP, ack, delta_ack, delta_request, nack, request, world


def value(metrics: XdsMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_responses_acks_nacks_and_bytes_are_counted_per_type(
    cache: SnapshotCache, sotw: SotwFactory, metrics: XdsMetrics
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    client.send(request(rt.LISTENER))
    cds, lds = await client.recv(), await client.recv()
    assert value(metrics, "switchman_xds_responses_total", type="cds") == 1
    assert value(metrics, "switchman_xds_responses_total", type="lds") == 1
    assert value(metrics, "switchman_xds_response_bytes_total", type="cds") == len(client.frames[0])
    assert value(metrics, "switchman_xds_acks_total", type="cds") == 0

    client.send(ack(cds))
    client.send(ack(lds))
    await client.settle()
    assert value(metrics, "switchman_xds_acks_total", type="cds") == 1
    assert value(metrics, "switchman_xds_acks_total", type="lds") == 1
    assert value(metrics, "switchman_xds_push_to_ack_seconds_count", type="cds") == 1

    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    client.send(nack(await client.recv(), "no", previous=cds.version_info))
    await client.settle()
    assert value(metrics, "switchman_xds_responses_total", type="cds") == 2
    assert value(metrics, "switchman_xds_response_bytes_total", type="cds") == len(client.frames[0]) + len(
        client.frames[2]
    )
    assert value(metrics, "switchman_xds_nacks_total", type="cds") == 1
    assert value(metrics, "switchman_xds_acks_total", type="cds") == 1
    assert value(metrics, "switchman_xds_push_to_ack_seconds_count", type="cds") == 2


async def test_nothing_sent_counts_nothing(cache: SnapshotCache, sotw: SotwFactory, metrics: XdsMetrics) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    client.send(ack(await client.recv()))
    cache.set_snapshot(GROUP, world("a", ["a"]))
    await client.expect_nothing()
    assert value(metrics, "switchman_xds_responses_total", type="cds") == 1


async def test_stream_and_subscription_gauges_follow_the_stream(
    cache: SnapshotCache, sotw: SotwFactory, delta: DeltaFactory, metrics: XdsMetrics
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    one, two = sotw(), delta("cds", rt.CLUSTER)
    one.send(request(rt.CLUSTER))
    one.send(request(rt.ENDPOINT, ["a"]))
    two.send(delta_request(rt.CLUSTER))
    two.send(delta_ack(await two.recv()))
    await one.settle()
    assert value(metrics, "switchman_xds_streams", service="ads", mode="sotw") == 1
    assert value(metrics, "switchman_xds_streams", service="cds", mode="delta") == 1
    assert value(metrics, "switchman_xds_subscriptions", type="cds") == 2
    assert value(metrics, "switchman_xds_subscriptions", type="eds") == 1
    await one.close()
    assert value(metrics, "switchman_xds_streams", service="ads", mode="sotw") == 0
    assert value(metrics, "switchman_xds_subscriptions", type="cds") == 1
    assert value(metrics, "switchman_xds_subscriptions", type="eds") == 0
    await two.close()
    assert value(metrics, "switchman_xds_streams", service="cds", mode="delta") == 0
    assert value(metrics, "switchman_xds_subscriptions", type="cds") == 0


async def test_delta_acks_are_counted(cache: SnapshotCache, delta: DeltaFactory, metrics: XdsMetrics) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a"]))
    client.send(delta_ack(await client.recv()))
    await client.settle()
    assert value(metrics, "switchman_xds_responses_total", type="eds") == 1
    assert value(metrics, "switchman_xds_acks_total", type="eds") == 1
    assert value(metrics, "switchman_xds_response_bytes_total", type="eds") == len(client.frames[0])


def test_metrics_have_a_registry_of_their_own() -> None:
    one, two = XdsMetrics(), XdsMetrics()
    one.of(rt.CLUSTER).acks += 1
    assert one.registry is not two.registry
    assert value(one, "switchman_xds_acks_total", type="cds") == 1
    assert value(two, "switchman_xds_acks_total", type="cds") == 0
    assert one.label(rt.ENDPOINT) == "eds"


def test_push_to_ack_latency_lands_in_its_buckets() -> None:
    metrics = XdsMetrics()
    eds = metrics.of(rt.ENDPOINT)
    for seconds in (0.0005, 0.001, 0.003, 20.0):
        eds.push_to_ack(seconds)
    assert value(metrics, "switchman_xds_push_to_ack_seconds_bucket", type="eds", le="0.001") == 2  # le: at most
    assert value(metrics, "switchman_xds_push_to_ack_seconds_bucket", type="eds", le="0.005") == 3
    assert value(metrics, "switchman_xds_push_to_ack_seconds_bucket", type="eds", le="10.0") == 3
    assert value(metrics, "switchman_xds_push_to_ack_seconds_bucket", type="eds", le="+Inf") == 4
    assert value(metrics, "switchman_xds_push_to_ack_seconds_count", type="eds") == 4
    assert abs(value(metrics, "switchman_xds_push_to_ack_seconds_sum", type="eds") - 20.0045) < 1e-9
