"""The ALS and LRS stream handlers, as a transport drives them: what they record, answer, refuse and drop."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2
from envoy.service.load_stats.v3 import lrs_pb2
from google.protobuf import duration_pb2, timestamp_pb2, wrappers_pb2

from switchman.errors import ProtocolError
from switchman.telemetry import AccessLogStream, LoadStatsStream, TelemetryMetrics, TrafficRecorder
from switchman.xds.cache import grouper

NOW = 1_800_000_000.0
NODE = base_pb2.Node(id="front-0", cluster="front")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def metrics() -> TelemetryMetrics:
    return TelemetryMetrics()


@pytest.fixture
def recorder() -> TrafficRecorder:
    return TrafficRecorder(clock=lambda: NOW)


def value(metrics: TelemetryMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def entry(cluster: str, code: int, at: float = NOW - 1, ms: float | None = 2.5, **flags: bool) -> Any:
    out = accesslog_pb2.HTTPAccessLogEntry()
    common = out.common_properties
    common.upstream_cluster = cluster
    common.start_time.CopyFrom(timestamp_pb2.Timestamp(seconds=int(at), nanos=int((at % 1) * 1e9)))
    if ms is not None:
        common.time_to_last_downstream_tx_byte.CopyFrom(duration_pb2.Duration(nanos=int(ms * 1e6)))
    for name, on in flags.items():
        setattr(common.response_flags, name, on)
    if code:
        out.response.response_code.CopyFrom(wrappers_pb2.UInt32Value(value=code))
    return out


def logs(*entries: accesslog_pb2.HTTPAccessLogEntry, first: bool = False) -> als_pb2.StreamAccessLogsMessage:
    message = als_pb2.StreamAccessLogsMessage()
    if first:
        message.identifier.node.CopyFrom(NODE)
        message.identifier.log_name = "switchman"
    message.http_logs.log_entry.extend(entries)
    return message


def test_access_logs_are_recorded_under_the_reporters_group(recorder: TrafficRecorder,
                                                           metrics: TelemetryMetrics) -> None:
    stream = AccessLogStream(recorder, grouper("cluster"), metrics)
    stream.opened()
    assert value(metrics, "switchman_telemetry_streams", service="als") == 1
    stream.receive(logs(entry("checkout-v1", 200), entry("checkout-v2", 503), first=True))
    stream.receive(logs(entry("checkout-v2", 503, ms=None, upstream_connection_failure=True),
                        entry("checkout-v2", 200, ms=7.5), entry("", 200)))
    assert stream.responses() == []
    assert (stream.reporter, stream.node) == ("front", NODE)
    v2 = recorder.window("checkout-v2", NOW - 10, NOW, reporter="front")
    assert (v2.requests, v2.errors_5xx, v2.resets, v2.successes) == (3, 2, 1, 1)
    assert (v2.p50_ms, v2.p99_ms) == (2.5, 7.5)
    assert recorder.window("checkout-v1", NOW - 10, NOW).requests == 1
    assert value(metrics, "switchman_telemetry_access_log_entries_total") == 5
    assert value(metrics, "switchman_telemetry_access_log_entries_dropped_total", reason="unattributed") == 1
    stream.closed()
    assert value(metrics, "switchman_telemetry_streams", service="als") == 0


def test_the_first_access_log_message_must_say_who_sends(recorder: TrafficRecorder,
                                                        metrics: TelemetryMetrics) -> None:
    stream = AccessLogStream(recorder, grouper("cluster"), metrics)
    with pytest.raises(ProtocolError, match="identifier"):
        stream.receive(logs(entry("c", 200)))
    assert recorder.series() == []


def test_entries_beyond_the_rate_are_dropped_and_counted(recorder: TrafficRecorder,
                                                         metrics: TelemetryMetrics) -> None:
    clock = Clock()
    stream = AccessLogStream(recorder, grouper("cluster"), metrics, max_entries_per_second=100, clock=clock)
    stream.receive(logs(*[entry("c", 200)] * 150, first=True))  # a second's worth at once, then nothing
    assert recorder.window("c", NOW - 10, NOW).requests == 100
    clock.now += 0.5  # half a second: 50 more
    stream.receive(logs(*[entry("c", 200)] * 80))
    assert recorder.window("c", NOW - 10, NOW).requests == 150
    assert value(metrics, "switchman_telemetry_access_log_entries_total") == 230
    assert value(metrics, "switchman_telemetry_access_log_entries_dropped_total", reason="rate") == 80
    clock.now += 10  # the bucket holds one second's worth, no more
    stream.receive(logs(*[entry("c", 200)] * 150))
    assert recorder.window("c", NOW - 10, NOW).requests == 250


def test_entries_too_old_are_dropped_and_counted(metrics: TelemetryMetrics) -> None:
    recorder = TrafficRecorder(clock=lambda: NOW, horizon=60)
    stream = AccessLogStream(recorder, grouper("cluster"), metrics)
    stream.receive(logs(entry("c", 200, at=NOW - 120), entry("c", 200), first=True))
    assert recorder.window("c", 0, NOW).requests == 1
    assert value(metrics, "switchman_telemetry_access_log_entries_dropped_total", reason="horizon") == 1


def report(cluster: str, *localities: tuple[int, int, int, int], dropped: int = 0) -> Any:
    stats = lrs_pb2.LoadStatsRequest().cluster_stats.add()
    stats.cluster_name = cluster
    stats.total_dropped_requests = dropped
    stats.load_report_interval.FromMilliseconds(1000)
    for successes, errors, issued, in_progress in localities:
        stats.upstream_locality_stats.add(
            total_successful_requests=successes, total_error_requests=errors, total_issued_requests=issued,
            total_requests_in_progress=in_progress,
        )
    return stats


def test_load_stats_are_answered_once_and_recorded_per_cluster(recorder: TrafficRecorder,
                                                               metrics: TelemetryMetrics) -> None:
    stream = LoadStatsStream(recorder, grouper("cluster"), metrics, interval=0.25)
    stream.opened()
    stream.receive(lrs_pb2.LoadStatsRequest(node=NODE))
    [answer] = stream.responses()
    response = lrs_pb2.LoadStatsResponse.FromString(answer)
    assert response.send_all_clusters and not response.clusters
    assert response.load_reporting_interval.ToMilliseconds() == 250
    stream.receive(lrs_pb2.LoadStatsRequest(node=NODE, cluster_stats=[
        report("checkout-v2", (8, 1, 9, 2), (2, 1, 3, 0), dropped=4), report("xds", (0, 0, 0, 1)), report("idle"),
    ]))
    assert stream.responses() == []
    [v2] = recorder.load_reports("checkout-v2", NOW - 1, NOW + 1)
    assert (v2.reporter, v2.successes, v2.errors, v2.issued, v2.in_progress, v2.dropped, v2.interval) == (
        "front", 10, 2, 12, 2, 4, 1.0)
    assert recorder.load_reports("idle", NOW - 1, NOW + 1) == []  # nothing happened: nothing recorded
    assert ("front", "idle") not in recorder.series()  # and no series taken for it
    assert [r.in_progress for r in recorder.load_reports("xds", NOW - 1, NOW + 1)] == [1]
    stats = recorder.window("checkout-v2", NOW - 1, NOW + 1)
    assert (stats.source, stats.requests, stats.errors_5xx) == ("lrs", 12, 2)
    assert value(metrics, "switchman_telemetry_load_reports_total") == 3
    stream.closed()
    assert value(metrics, "switchman_telemetry_streams", service="lrs") == 0


def test_the_first_load_stats_request_must_carry_the_node(recorder: TrafficRecorder,
                                                          metrics: TelemetryMetrics) -> None:
    stream = LoadStatsStream(recorder, grouper("cluster"), metrics)
    with pytest.raises(ProtocolError, match="node"):
        stream.receive(lrs_pb2.LoadStatsRequest(cluster_stats=[report("c", (1, 0, 1, 0))]))
