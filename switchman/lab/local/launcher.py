"""A lab seen from outside: start a detached supervisor, read its ``lab.json``, stop it, clean up after it.

``switchman lab up|status|down`` use these; the supervisor process itself is
:mod:`switchman.lab.local.supervisor`. ``lab.json`` (written by the
supervisor once every Envoy runs the lab's config) records every process
with its PID and log: the supervisor, ``serve``, the front Envoy, and each
pod's app and sidecar Envoy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Final

from switchman.errors import LabError
from switchman.lab.local.netns import delete_pods, require_netns
from switchman.lab.local.reaper import pid_alive

__all__ = [
    "LAB_FILE",
    "LOCK_FILE",
    "NETNS_FILE",
    "SUPERVISOR_LOG",
    "cleanup_netns",
    "lab_processes",
    "lab_starting",
    "pid_alive",
    "read_lab",
    "recorded_netns",
    "recorded_pids",
    "start_lab",
    "stop_lab",
    "tail",
    "try_lock",
]

LAB_FILE: Final = "lab.json"
LOCK_FILE: Final = "lab.lock"  # held by the supervisor for its whole life
NETNS_FILE: Final = "netns.json"
SUPERVISOR_LOG: Final = "supervisor.log"


def try_lock(run_dir: Path) -> int | None:
    """Take ``run_dir``'s lock (one lab per run dir): the open file holding it, or None when another holds it.

    Closing the file releases the lock.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lab_starting(run_dir: Path) -> bool:
    """Does a supervisor hold ``run_dir``'s lock (a lab starting, or running)?"""
    if not (run_dir / LOCK_FILE).exists():
        return False
    fd = try_lock(run_dir)
    if fd is None:
        return True
    os.close(fd)
    return False


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log ("" when there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def read_lab(run_dir: Path) -> dict[str, Any]:
    """The run dir's ``lab.json``; LabError when there is none."""
    path = run_dir / LAB_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab in {run_dir} ({LAB_FILE} not found): switchman lab up --run-dir {run_dir}") from None
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise LabError(f"{path} is not a JSON object")
    return data


def lab_processes(lab: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every process entry of ``lab.json`` (each has ``name``, ``pid``, ``log``), in start order."""
    entries: list[Any] = [lab.get("supervisor"), lab.get("serve")]
    control_plane = lab.get("control_plane")
    if isinstance(control_plane, Mapping):  # replicas of serve beyond the first, and their etcd
        entries += [*list(control_plane.get("replicas") or ())[1:], control_plane.get("etcd")]
    for pod in lab.get("pods") or ():
        if isinstance(pod, Mapping):
            entries += [pod.get("app"), pod.get("sidecar")]
    entries.append(lab.get("front"))
    return [e for e in entries if isinstance(e, Mapping) and "pid" in e]


def recorded_pids(lab: Mapping[str, Any]) -> list[tuple[str, int]]:
    """``(name, pid)`` of every process in ``lab.json``."""
    return [(str(e["name"]), int(e["pid"])) for e in lab_processes(lab)]


def _owner_alive(pid: object) -> bool:
    """Is ``pid`` (as recorded) another process that is still running?"""
    return isinstance(pid, int) and pid > 0 and pid != os.getpid() and pid_alive(pid)


def recorded_netns(run_dir: Path) -> list[str]:
    """The lab namespaces recorded in the run dir's ``netns.json`` and ``lab.json`` by a supervisor that is gone."""
    names: list[str] = []
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((run_dir / NETNS_FILE).read_text())
        if isinstance(data, dict) and not _owner_alive(data.get("pid")):
            names.extend(str(n) for n in data.get("netns") or ())
    with contextlib.suppress(OSError, ValueError):
        lab = json.loads((run_dir / LAB_FILE).read_text())
        if isinstance(lab, dict) and not _owner_alive((lab.get("supervisor") or {}).get("pid")):
            names.extend(str(p["netns"]) for p in lab.get("netns") or () if isinstance(p, dict) and "netns" in p)
    return [n for n in dict.fromkeys(names) if n.startswith("swm-")]


def cleanup_netns(run_dir: Path) -> list[str]:
    """Delete the namespaces recorded in ``run_dir`` (left by a killed supervisor); the names recorded.

    LabError when some could not be deleted (not root, no ``ip``).
    """
    names = recorded_netns(run_dir)
    if not names:
        return []
    require_netns()
    left = delete_pods(names)
    if left:
        raise LabError(f"could not delete the network namespaces {', '.join(left)} recorded in {run_dir}")
    (run_dir / NETNS_FILE).unlink(missing_ok=True)
    return names


def start_lab(run_dir: Path, sidecars: int, timeout: float = 90.0, netns: bool = False) -> dict[str, Any]:
    """Start a detached supervisor for ``run_dir``; return ``lab.json`` once the lab is up.

    Refuses when a lab in ``run_dir`` is still running. On failure or timeout
    the supervisor is stopped and LabError carries the end of its log. With
    ``netns`` each pod runs in its own network namespace (root and ``ip`` needed).
    """
    if netns:
        require_netns()
    run_dir.mkdir(parents=True, exist_ok=True)
    lab_file = run_dir / LAB_FILE
    if lab_file.exists():
        try:
            pid = int(read_lab(run_dir).get("supervisor", {}).get("pid", 0))
        except (LabError, ValueError, TypeError):
            pid = 0
        if pid and pid_alive(pid):
            raise LabError(f"a lab is already running in {run_dir} (supervisor pid {pid}): switchman lab down")
        cleanup_netns(run_dir)  # namespaces a killed supervisor could not delete
        lab_file.unlink(missing_ok=True)  # left by a supervisor that was killed
    elif (run_dir / NETNS_FILE).exists():
        cleanup_netns(run_dir)  # killed before lab.json was written
    log_path = run_dir / SUPERVISOR_LOG
    out: IO[bytes]
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "switchman.lab.local.supervisor",
                "--run-dir", str(run_dir), "--sidecars", str(sidecars), *(["--netns"] if netns else []),
            ],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    try:
        while True:
            if lab_file.exists():
                with contextlib.suppress(LabError):
                    lab = read_lab(run_dir)
                    if lab.get("supervisor", {}).get("pid") == proc.pid:
                        return lab
            code = proc.poll()
            if code is not None:
                raise LabError(f"the lab supervisor exited with {code}; {log_path}:\n{tail(log_path)}")
            if time.monotonic() > deadline:
                raise LabError(f"the lab was not up within {timeout}s; {log_path}:\n{tail(log_path)}")
            time.sleep(0.1)
    except BaseException:  # failed, timed out, or Ctrl-C while waiting: no half-started lab stays behind
        _stop_supervisor(proc)
        raise


def _stop_supervisor(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a supervisor that is starting (it stops what it started), SIGKILL after 15 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_lab(run_dir: Path, timeout: float = 20.0) -> tuple[list[str], list[str]]:
    """SIGTERM the supervisor; wait until every recorded PID is gone, SIGKILL what is left after ``timeout``.

    Returns the names of the processes that stopped, and of those that had to be killed.
    """
    lab = read_lab(run_dir)
    pids = recorded_pids(lab)
    supervisor = int(lab.get("supervisor", {}).get("pid", 0))
    if supervisor and pid_alive(supervisor):
        os.kill(supervisor, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(pid) for _, pid in pids):
        time.sleep(0.05)
    killed = []
    for name, pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.append(name)
    end = time.monotonic() + 5.0
    while time.monotonic() < end and any(pid_alive(pid) for _, pid in pids):
        time.sleep(0.05)
    left = [name for name, pid in pids if pid_alive(pid)]
    if left:
        raise LabError(f"still running after SIGKILL: {', '.join(left)}")
    cleanup_netns(run_dir)  # the supervisor deletes its namespaces; not when it was killed
    (run_dir / LAB_FILE).unlink(missing_ok=True)
    return [name for name, _ in pids if name not in killed], killed
