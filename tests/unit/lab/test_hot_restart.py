"""The hot-restart pieces that need no Envoy: what a config_dump says, which base ids are taken, the figures."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from switchman.errors import LabError
from switchman.lab.local.hot_restart import (
    HotRestartFamily,
    config_endpoints,
    config_versions,
    endpoints_of,
    envoy_error_line,
    free_base_id,
    used_base_ids,
)
from switchman.lab.local.load import Sample
from switchman.lab.report.hot_restart import load_figures, series


def _assignment(cluster: str, *ports: int) -> dict[str, object]:
    return {
        "cluster_name": cluster,
        "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}} for p in ports
        ]}],
    }


DUMP = {
    "configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {}},
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "version_info": "c1",
            "static_clusters": [{"cluster": {"name": "xds"}}],
            "dynamic_active_clusters": [{"version_info": "c1"}, {"version_info": "c1"}],
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "dynamic_listeners": [{"name": "ingress", "active_state": {"version_info": "l1"}},
                                  {"name": "warming", "warming_state": {"version_info": "l2"}}],
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs": [{"version_info": "r1"}],
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
            "dynamic_endpoint_configs": [
                {"endpoint_config": _assignment("checkout-v2", 9002)},
                {"endpoint_config": _assignment("checkout-v1", 9011, 9001)},
            ],
        },
    ]
}


def test_a_config_dump_tells_versions_per_type_and_endpoints_per_cluster() -> None:
    # Envoy keeps no version for EDS: endpoints are told by content.
    assert config_versions(DUMP) == {"cds": ["c1"], "lds": ["l1"], "rds": ["r1"]}
    assert config_endpoints(DUMP) == {
        "checkout-v1": ["127.0.0.1:9001", "127.0.0.1:9011"], "checkout-v2": ["127.0.0.1:9002"],
    }
    assert config_versions({}) == {} and config_endpoints([]) == {}


def test_endpoints_read_the_same_from_protobuf_json() -> None:
    camel = {
        "clusterName": "checkout-v1",
        "endpoints": [{"lbEndpoints": [
            {"endpoint": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 9001}}}}
        ]}],
    }
    assert endpoints_of(camel) == endpoints_of(_assignment("checkout-v1", 9001)) == ["127.0.0.1:9001"]


def test_envoys_error_is_its_last_line_that_is_not_a_log_line() -> None:
    lines = [
        "[2026-12-02 03:32:28.089][20629][debug][init] [source/common/init/watcher_impl.cc:31] init manager destroyed",
        "unable to bind domain socket with base_id=7770010, id=0, errno=98 (see --base-id option)",
        "",
    ]
    assert envoy_error_line(lines) == lines[1]
    assert envoy_error_line(lines[:1]) == lines[0]
    assert envoy_error_line([]) == ""


def test_base_ids_in_use_come_from_domain_sockets_and_shared_memory(tmp_path: Path) -> None:
    unix = tmp_path / "unix"
    unix.write_text(
        "Num       RefCount Protocol Flags    Type St Inode Path\n"
        "0000: 00000002 00000000 00000000 0002 01 47055 @envoy_domain_socket_parent_7770010\n"
        "0000: 00000002 00000000 00000000 0002 01 47054 @envoy_domain_socket_udp_child_7770011\n"
        "0000: 00000002 00000000 00000000 0002 01 47509 @envoy_domain_socket_child_929596921\n"
        "0000: 00000002 00000000 00000000 0001 01 40000 /run/other.sock\n"
    )
    shm = tmp_path / "shm"
    shm.mkdir()
    (shm / "envoy_shared_memory_1234560").touch()
    (shm / "unrelated").touch()
    assert used_base_ids(unix, shm) == {777001, 92959692, 123456}
    assert used_base_ids(tmp_path / "none", tmp_path / "none") == set()


def test_a_free_base_id_is_not_one_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    first = random.Random(7).randrange(10_000, 214_748_364)
    monkeypatch.setattr("switchman.lab.local.hot_restart.used_base_ids", lambda: {first})
    chosen = free_base_id(rng)
    assert chosen != first and 10_000 <= chosen < 214_748_364  # 10 x base id + epoch fits in an int32


def test_the_old_epoch_must_drain_before_it_is_told_to_exit(tmp_path: Path) -> None:
    config = {"node": {"id": "n", "cluster": "c"}}
    with pytest.raises(LabError, match="longer than --drain-time-s"):
        HotRestartFamily(config, run_dir=tmp_path, drain_time_s=3, parent_shutdown_time_s=3)


def _sample(t: float, status: int = 200, error: str = "", client: str = "http2", latency: float = 2.0) -> Sample:
    return Sample(t, status, latency, "v1" if status == 200 else "", error, client=client)


def test_load_figures_count_answers_and_errors_apart() -> None:
    samples = [
        _sample(100.00), _sample(100.01, client="http1-keepalive"), _sample(100.02, 503),
        _sample(100.03, 0, "ServerDisconnectedError", client="http1-keepalive", latency=40.0),
        _sample(100.04),
    ]
    figures = load_figures(samples, rate=100.0)
    assert (figures.requests, figures.successes, figures.non_2xx, figures.errors) == (5, 3, 1, 1)
    assert figures.error_kinds == {"HTTP 503": 1, "ServerDisconnectedError": 1}
    assert figures.by_client == {
        "http1-keepalive": {"requests": 2, "failures": 1}, "http2": {"requests": 3, "failures": 1},
    }
    assert figures.achieved_rate == pytest.approx(100.0)
    assert figures.max_ms == 40.0


def test_the_series_has_a_point_every_100_ms() -> None:
    samples = [_sample(50.0), _sample(50.05), _sample(50.15, 503), _sample(50.42, latency=9.0)]
    points = series(samples, origin=50.0, bin_s=0.1)
    assert [(p.t_s, p.requests, p.successes, p.failures) for p in points] == [
        (0.0, 2, 2, 0), (0.1, 1, 0, 1), (0.2, 0, 0, 0), (0.3, 0, 0, 0), (0.4, 1, 1, 0),
    ]
    assert points[2].p99_ms is None and points[4].p99_ms == 9.0
