"""``switchman lab up --netns``: each pod (app and sidecar Envoy) in its own network namespace, reached by the
front Envoy over veth links; the sidecars reach Switchman through their default route."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switchman.client import SwitchmanClient
from switchman.lab.local.launcher import pid_alive, recorded_pids
from switchman.lab.local.netns import delete_pods

pytestmark = [
    pytest.mark.envoy,
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("ip") is None,
        reason="lab up --netns needs root and the ip command (iproute2) to create network namespaces",
    ),
]


def _lab(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchman", "lab", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _links() -> str:
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout


def _wait_gone(pids: list[tuple[str, int]], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(pid) for _, pid in pids):
        time.sleep(0.05)
    return [name for name, pid in pids if pid_alive(pid)]


def _version(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        return resp.headers.get("x-upstream-version", "")


def _wait_version(url: str, version: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = _version(url)
        if seen == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} still answers {seen!r}, not {version!r}")


async def _set_weights(api_url: str, weights: dict[str, int]) -> None:
    async with SwitchmanClient(api_url, author="test") as client:
        await client.set_weights("checkout", weights)


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """A run dir; whatever a failed test left in it (processes, namespaces) is removed afterwards."""
    folder = tmp_path / "lab"
    yield folder
    names: list[str] = []
    for file in ("lab.json", "netns.json"):
        path = folder / file
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        if file == "lab.json":
            for _, pid in recorded_pids(data):
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
            names.extend(p["netns"] for p in data.get("netns") or ())
        else:
            names.extend(data.get("netns") or ())
    delete_pods(names)


def _up(run_dir: Path) -> dict[str, Any]:
    up = _lab("up", "--netns", "--envoys", "2", "--run-dir", str(run_dir))
    assert up.returncode == 0, up.stdout + up.stderr
    lab: dict[str, Any] = json.loads((run_dir / "lab.json").read_text())
    assert len(lab["netns"]) == 2
    for pod in lab["netns"]:
        assert pod["netns"].startswith("swm-") and pod["netns"] in up.stdout
        assert pod["address"].startswith("10.213.") and pod["address"].endswith(".2")
    return lab


def test_lab_up_netns_routes_to_both_versions_in_their_namespaces_and_down_deletes_them(run_dir: Path) -> None:
    lab = _up(run_dir)
    names = {p["netns"] for p in lab["netns"]}
    assert names <= _netns()
    links = _links()
    assert all(p["host_if"] in links for p in lab["netns"])
    assert lab["xds_address"].startswith(lab["netns"][0]["host_address"] + ":")
    for pod in lab["pods"]:
        link = next(p for p in lab["netns"] if p["netns"] == pod["netns"])
        assert pod["sidecar"]["url"] == f"http://{link['address']}:{pod['sidecar']['listener_port']}/"
        for process in (pod["app"], pod["sidecar"]):  # app and sidecar themselves run in the pod's namespace
            ns = subprocess.run(["ip", "netns", "identify", str(process["pid"])], capture_output=True, text=True)
            assert ns.stdout.strip() == pod["netns"], process["name"]
        # the app listens on the pod's loopback: from the host only the sidecar reaches it
        for host in ("127.0.0.1", pod["address"]):
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://{host}:{pod['app']['port']}/", timeout=2)
        assert _version(pod["sidecar"]["url"]) == pod["version"]

    url = lab["front"]["listener_url"]
    assert _version(url) == "v1"
    asyncio.run(_set_weights(lab["api_url"], {"v1": 0, "v2": 100}))
    _wait_version(url, "v2")
    asyncio.run(_set_weights(lab["api_url"], {"v1": 50, "v2": 50}))
    seen = set()
    deadline = time.monotonic() + 15.0
    while seen != {"v1", "v2"} and time.monotonic() < deadline:
        seen.add(_version(url))
    assert seen == {"v1", "v2"}

    pids = recorded_pids(lab)
    down = _lab("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert _wait_gone(pids, 1.0) == []
    assert not names & _netns()
    links = _links()
    assert not any(p["host_if"] in links for p in lab["netns"])
    assert not (run_dir / "lab.json").exists() and not (run_dir / "netns.json").exists()


def test_namespaces_a_sigkilled_supervisor_left_are_deleted_by_the_next_up_and_by_down(run_dir: Path) -> None:
    first = _up(run_dir)
    stale = {p["netns"] for p in first["netns"]}
    os.kill(first["supervisor"]["pid"], signal.SIGKILL)
    assert _wait_gone(recorded_pids(first), 10.0) == []
    assert stale <= _netns()  # nobody could delete them

    second = _up(run_dir)  # the stale lab.json names them: this up deletes them
    assert not stale & _netns()
    fresh = {p["netns"] for p in second["netns"]}
    assert fresh <= _netns() and not fresh & stale
    assert _version(second["front"]["listener_url"]) == "v1"

    os.kill(second["supervisor"]["pid"], signal.SIGKILL)
    assert _wait_gone(recorded_pids(second), 10.0) == []
    down = _lab("down", "--run-dir", str(run_dir))  # the supervisor is gone: down deletes them
    assert down.returncode == 0, down.stdout + down.stderr
    assert not fresh & _netns()


def test_lab_up_netns_without_ip_fails_at_once(run_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    started = time.monotonic()
    up = _lab("up", "--run-dir", str(run_dir), env={**env, "SWITCHMAN_LAB_NETNS": "1"})
    assert up.returncode == 4, up.stdout + up.stderr
    assert "needs the ip command" in up.stderr
    assert time.monotonic() - started < 10.0
    assert not (run_dir / "lab.json").exists()


def test_demo_netns_passes_with_every_pod_in_its_own_namespace(tmp_path: Path) -> None:
    before = _netns()
    demo = subprocess.run(
        [
            sys.executable, "-m", "switchman", "demo", "--netns", "--rate", "300", "--requests", "300",
            "--run-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=240,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "PASS" in demo.stdout and "xDS on 10.213." in demo.stdout
    assert "behind http://10.213." in demo.stdout  # the front reaches each pod's sidecar over its veth link
    assert _netns() == before  # the demo deleted its namespaces


def test_a_demo_stopped_with_sigterm_stops_its_lab_and_deletes_its_namespaces(tmp_path: Path) -> None:
    before = _netns()
    demo = subprocess.Popen(
        [sys.executable, "-m", "switchman", "demo", "--netns", "--rate", "100", "--requests", "2000",
         "--run-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:  # the lab is up once the demo prints where everything listens
        lines.append(line)
        if line.startswith("Switchman: xDS on"):
            break
    assert _netns() - before, "".join(lines)  # its namespaces exist
    time.sleep(1.0)  # into the ramp
    demo.send_signal(signal.SIGTERM)
    demo.communicate(timeout=60)
    assert demo.returncode == 128 + signal.SIGTERM
    assert _netns() == before
    [lab_dir] = tmp_path.glob("demo-*/lab")
    assert not (lab_dir / "lab.json").exists()
