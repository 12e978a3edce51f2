"""The Envoy hot-restart drill: a real Envoy hot restarted under open-loop load, configured by a real Switchman.

The drill runs once for the module (about 15 s): 200 requests/s for 6 s across one hot
restart, then the two negative drills. The tests assert its figures, not its timings.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from switchman.lab.local.hot_restart_drill import HotRestartDrillSettings, run_hot_restart_drill
from switchman.lab.local.load import ClientKind
from switchman.lab.report.hot_restart import HotRestartReport

pytestmark = pytest.mark.envoy

RATE = 200.0
SECONDS = 6.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hot-restart")


@pytest.fixture(scope="module")
def drill(folder: Path) -> HotRestartReport:
    settings = HotRestartDrillSettings(rate=RATE, duration_s=SECONDS, restarts=1, run_dir=folder)
    return asyncio.run(run_hot_restart_drill(settings))


def test_a_hot_restart_under_load_fails_no_request(drill: HotRestartReport) -> None:
    assert drill.passed, drill.problems
    load = drill.load
    assert load.requests == int(RATE * SECONDS)
    assert (load.successes, load.non_2xx, load.errors) == (load.requests, 0, 0), drill.failed_requests
    assert {kind: figures["requests"] for kind, figures in load.by_client.items()} == {
        kind.value: load.requests // 3 for kind in ClientKind
    }
    [restart] = drill.restarts
    assert restart.requests > 0 and restart.failures == 0  # requests did cross the restart
    handover = restart.handover
    assert (handover.old_epoch, handover.new_epoch) == (0, 1)
    assert handover.generation_after == handover.generation_before + 1
    assert handover.old_exit_code == 0
    assert handover.listener_port_before == handover.listener_port_after == drill.listener_port
    assert handover.socket_inherited  # the old epoch's socket, handed over; not a second bind
    assert handover.probe_status == 200
    assert handover.drain and handover.drain[-1][1] == 0  # the old epoch's connections went before it exited
    assert handover.hot_restart_version == drill.hot_restart_version != ""


def test_the_new_epoch_ran_the_current_config_before_it_took_over(drill: HotRestartReport) -> None:
    [restart] = drill.restarts
    config = restart.config
    assert config.current
    assert config.served_revision == config.applied_revision == drill.applied_revision
    for kind in ("cds", "lds", "rds"):
        assert config.epoch_versions[kind] == [config.served_versions[kind]]
    assert set(config.epoch_endpoints) == {"checkout-v1", "checkout-v2"}
    assert config.epoch_endpoints == config.served_endpoints


def test_a_second_family_on_a_base_id_in_use_fails_with_envoys_words(drill: HotRestartReport) -> None:
    clash = drill.base_id_clash
    assert clash is not None
    assert not clash.second_started and clash.second_exit_code not in (None, 0)
    assert "unable to bind domain socket" in clash.envoy_error, clash
    assert f"base_id={clash.base_id * 10}" in clash.envoy_error and "errno=98" in clash.envoy_error
    # The family that held the base id serves on and still hot restarts.
    assert clash.first_state_after == "LIVE" and clash.first_answered_after == 200
    assert clash.first_restart is not None and clash.first_restart_error == ""
    assert clash.first_restart.generation_rose_by_one and clash.first_restart.old_exit_code == 0


def test_a_restart_while_the_parent_initializes_is_refused_then_works_once_it_is_live(
    drill: HotRestartReport,
) -> None:
    early = drill.early_restart
    assert early is not None
    assert early.parent_state_before in ("PRE_INITIALIZING", "INITIALIZING")
    assert not early.child_started and early.child_exit_code not in (None, 0)
    assert early.envoy_error == "previous envoy process is still initializing"
    assert early.parent_alive_after and early.parent_state_after != "LIVE"  # epoch 0 untouched, still waiting
    assert early.retry is not None and early.retry_error == ""
    assert (early.retry.old_epoch, early.retry.new_epoch) == (0, 1)  # the same epoch number, again
    assert early.retry.generation_rose_by_one and early.retry.old_exit_code == 0


def test_the_report_folder_holds_the_figures_a_plot_and_a_page(drill: HotRestartReport, folder: Path) -> None:
    written = json.loads((folder / "report.json").read_text())
    assert written == json.loads(json.dumps(drill.to_json()))
    assert written["restarts"][0]["handover"]["generation_rose_by_one"] is True
    assert written["base_id_clash"]["envoy_error"] == drill.base_id_clash.envoy_error  # type: ignore[union-attr]
    series = written["series"]
    assert sum(p["requests"] for p in series) == drill.load.requests
    assert sum(p["failures"] for p in series) == 0
    assert all(b["t_s"] - a["t_s"] == pytest.approx(0.1) for a, b in itertools.pairwise(series))
    assert (folder / "requests.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (folder / "report.html").read_text()
    assert "PASS" in html and "requests.png" in html
    assert "previous envoy process is still initializing" in html and "unable to bind domain socket" in html
