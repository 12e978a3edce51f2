"""``switchman lab up|status|down`` as a user runs them: real processes, real Envoys, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switchman.lab.local.supervisor import pid_alive, recorded_pids

pytestmark = pytest.mark.envoy


def _lab(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchman", "lab", *args], capture_output=True, text=True, timeout=timeout
    )


def _wait_gone(pids: list[tuple[str, int]], timeout: float) -> list[str]:
    """Wait up to ``timeout`` for every PID to end; the names of those still alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(pid) for _, pid in pids):
        time.sleep(0.05)
    return [name for name, pid in pids if pid_alive(pid)]


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.headers.get("x-upstream-version", ""), resp.read().decode()


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """A run dir; whatever a failed test left running in it is killed afterwards."""
    folder = tmp_path / "lab"
    yield folder
    lab_file = folder / "lab.json"
    if lab_file.exists():
        for _, pid in recorded_pids(json.loads(lab_file.read_text())):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def _up(run_dir: Path, envoys: int) -> dict[str, Any]:
    up = _lab("up", "--envoys", str(envoys), "--run-dir", str(run_dir))
    assert up.returncode == 0, up.stdout + up.stderr
    lab: dict[str, Any] = json.loads((run_dir / "lab.json").read_text())
    assert lab["api_url"] in up.stdout
    for envoy in lab["envoys"]:
        assert envoy["listener_url"] in up.stdout
    return lab


def test_lab_up_routes_through_every_envoy_status_shows_it_and_down_stops_everything(run_dir: Path) -> None:
    lab = _up(run_dir, envoys=2)
    pids = recorded_pids(lab)
    assert {name for name, _ in pids} == {
        "supervisor", "serve", "upstream-checkout-v1", "upstream-checkout-v2", "lab-envoy-0", "lab-envoy-1",
    }
    assert all(pid_alive(pid) for _, pid in pids)
    assert len({e["listener_port"] for e in lab["envoys"]}) == 2  # port 0: each Envoy got its own
    for envoy in lab["envoys"]:
        code, version, body = _get(envoy["listener_url"])
        assert (code, version) == (200, "v1"), body
        assert body.strip() == "checkout v1"
    for name in ("serve.log", "supervisor.log", "lab-envoy-0.log", "upstream-checkout-v1.log"):
        assert (run_dir / name).exists(), name

    again = _lab("up", "--envoys", "1", "--run-dir", str(run_dir))
    assert again.returncode == 4 and "already running" in again.stderr

    status = _lab("status", "--run-dir", str(run_dir))
    assert status.returncode == 0, status.stdout + status.stderr
    assert "2 connected, 2 synced" in status.stdout
    for envoy in lab["envoys"]:
        assert envoy["node_id"] in status.stdout and envoy["listener_url"] in status.stdout
    assert lab["api_url"] in status.stdout and " NO " not in status.stdout

    down = _lab("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert "6 processes gone" in down.stdout
    assert _wait_gone(pids, 1.0) == []
    assert not (run_dir / "lab.json").exists()

    after = _lab("status", "--run-dir", str(run_dir))
    assert after.returncode == 4 and "no lab" in after.stderr
    assert _lab("down", "--run-dir", str(run_dir)).returncode == 0  # nothing to stop: still fine


def test_killing_the_supervisor_with_sigkill_stops_every_process(run_dir: Path) -> None:
    lab = _up(run_dir, envoys=1)
    pids = recorded_pids(lab)
    assert all(pid_alive(pid) for _, pid in pids)
    os.kill(lab["supervisor"]["pid"], signal.SIGKILL)
    # The watchdog sends SIGTERM at once, SIGKILL 3 s later to whatever is left.
    assert _wait_gone(pids, 10.0) == []

    status = _lab("status", "--run-dir", str(run_dir))  # lab.json is left behind: status says all is gone
    assert status.returncode == 1 and "NO" in status.stdout and "not answering" in status.stdout
    relaunched = _up(run_dir, envoys=1)  # a stale lab.json does not block the next lab
    down = _lab("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert _wait_gone(recorded_pids(relaunched), 1.0) == []
