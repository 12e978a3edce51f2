"""``switchman lab up|status|down`` as a user runs them: a front Envoy, pods of app + sidecar Envoy, nothing
left behind."""

from __future__ import annotations

import asyncio
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

import aiohttp
import pytest

from switchman.lab.local.launcher import pid_alive, recorded_pids

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
    assert lab["api_url"] in up.stdout and lab["front"]["listener_url"] in up.stdout
    for pod in lab["pods"]:
        assert pod["sidecar"]["url"] in up.stdout
    return lab


async def _requests_through(admin_url: str) -> int:
    """How many requests an Envoy's HTTP listeners have taken (from its own stats)."""
    async with aiohttp.ClientSession() as session, session.get(admin_url + "/stats?format=json") as resp:
        stats = (await resp.json())["stats"]
    return sum(
        int(s.get("value", 0)) for s in stats
        if s.get("name", "").startswith("http.") and s.get("name", "").endswith(".downstream_rq_total")
        and ".admin." not in s.get("name", "")
    )


def test_lab_up_sends_traffic_through_the_front_and_each_sidecar_status_shows_it_and_down_stops_all(
    run_dir: Path,
) -> None:
    lab = _up(run_dir, envoys=3)
    pids = recorded_pids(lab)
    assert {name for name, _ in pids} == {
        "supervisor", "serve", "front-envoy",
        "app-checkout-v1-0", "checkout-v1-0-sidecar", "app-checkout-v2-0", "checkout-v2-0-sidecar",
        "app-checkout-v1-1", "checkout-v1-1-sidecar",
    }
    assert all(pid_alive(pid) for _, pid in pids)
    assert [(p["name"], p["version"]) for p in lab["pods"]] == [
        ("checkout-v1-0", "v1"), ("checkout-v2-0", "v2"), ("checkout-v1-1", "v1"),
    ]
    assert len({p["sidecar"]["listener_port"] for p in lab["pods"]}) == 3  # port 0: each sidecar got its own
    front = lab["front"]["listener_url"]
    for _ in range(20):
        code, version, body = _get(front)
        assert (code, version) == (200, "v1"), body
        assert body.strip() == "checkout v1"
    # both v1 pods took a share, through their sidecars; the v2 pod none (weights 100/0)
    taken = {p["name"]: asyncio.run(_requests_through(p["sidecar"]["admin_url"])) for p in lab["pods"]}
    assert taken["checkout-v1-0"] > 0 and taken["checkout-v1-1"] > 0 and taken["checkout-v2-0"] == 0
    assert taken["checkout-v1-0"] + taken["checkout-v1-1"] == 20
    assert asyncio.run(_requests_through(lab["front"]["admin_url"])) == 20
    code, version, _ = _get(lab["pods"][1]["sidecar"]["url"])  # a sidecar answers for its own app
    assert (code, version) == (200, "v2")
    for name in ("serve.log", "supervisor.log", "front-envoy.log", "checkout-v1-0-sidecar.log",
                 "app-checkout-v2-0.log"):
        assert (run_dir / name).exists(), name

    again = _lab("up", "--run-dir", str(run_dir))
    assert again.returncode == 4 and "already running" in again.stderr

    status = _lab("status", "--run-dir", str(run_dir))
    assert status.returncode == 0, status.stdout + status.stderr
    assert "4 connected, 4 synced" in status.stdout
    assert lab["front"]["listener_url"] in status.stdout
    for pod in lab["pods"]:
        assert pod["sidecar"]["node_id"] in status.stdout and pod["sidecar"]["url"] in status.stdout
    assert lab["api_url"] in status.stdout and " NO " not in status.stdout

    down = _lab("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert "9 processes gone" in down.stdout
    assert _wait_gone(pids, 1.0) == []
    assert not (run_dir / "lab.json").exists()

    after = _lab("status", "--run-dir", str(run_dir))
    assert after.returncode == 4 and "no lab" in after.stderr
    assert _lab("down", "--run-dir", str(run_dir)).returncode == 0  # nothing to stop: still fine


def test_killing_the_supervisor_with_sigkill_stops_every_process(run_dir: Path) -> None:
    lab = _up(run_dir, envoys=2)
    pids = recorded_pids(lab)
    assert all(pid_alive(pid) for _, pid in pids)
    os.kill(lab["supervisor"]["pid"], signal.SIGKILL)
    # The watchdog sends SIGTERM at once, SIGKILL 3 s later to whatever is left.
    assert _wait_gone(pids, 10.0) == []

    status = _lab("status", "--run-dir", str(run_dir))  # lab.json is left behind: status says all is gone
    assert status.returncode == 1 and "NO" in status.stdout and "not answering" in status.stdout
    relaunched = _up(run_dir, envoys=2)  # a stale lab.json does not block the next lab
    down = _lab("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert _wait_gone(recorded_pids(relaunched), 1.0) == []


def _processes_naming(text: str) -> list[int]:
    """PIDs of the processes whose command line names ``text`` (a run dir: every lab process names it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and pid_alive(int(proc.name)):
                found.append(int(proc.name))
    return found


def test_ctrl_c_while_lab_up_waits_stops_the_half_started_lab(run_dir: Path) -> None:
    up = subprocess.Popen(
        [sys.executable, "-m", "switchman", "lab", "up", "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30.0
    while not (run_dir / "serve.log").exists() and time.monotonic() < deadline:  # the supervisor is starting
        time.sleep(0.02)
    assert (run_dir / "serve.log").exists()
    assert _processes_naming(str(run_dir))
    up.send_signal(signal.SIGINT)
    _, err = up.communicate(timeout=30)
    assert up.returncode == 130, err
    deadline = time.monotonic() + 10.0
    while _processes_naming(str(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_naming(str(run_dir)) == []
    assert not (run_dir / "lab.json").exists()
