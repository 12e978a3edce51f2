"""The images scripts/images built, run through buildah as it builds them: its storage, vfs, chroot isolation
and the host's network (so a server in a container listens on this machine's loopback)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import switchman

ROOT = Path(__file__).resolve().parents[2]
# scripts/images' storage (SWITCHMAN_IMAGES_STORAGE there too)
STORAGE = Path(os.environ.get("SWITCHMAN_IMAGES_STORAGE", "/var/lib/switchman-images"))
BUILDAH = ["buildah", "--root", str(STORAGE / "storage"), "--runroot", str(STORAGE / "run"), "--storage-driver", "vfs"]


def _envoy_version() -> str:
    found = re.search(r"^ARG ENVOY_VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert found, "the Dockerfile has no ARG ENVOY_VERSION="
    return found[1]


ENVOY_VERSION = _envoy_version()
SWITCHMAN_IMAGE = f"localhost/switchman/switchman:{switchman.__version__}"
CHECKOUT_IMAGE = f"localhost/switchman/checkout:{switchman.__version__}"
ENVOY_IMAGE = f"localhost/switchman/envoy:{ENVOY_VERSION}"


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [*BUILDAH, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Ask ``check()`` until it answers something true (an exception is a no); AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def get(url: str) -> tuple[int, dict[str, str], str]:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status, dict(response.headers), response.read().decode()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (of any of its threads: Go starts them from any)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it, by PID: buildah's chroot runtime starts the command in a
    session of its own, so killing buildah's group would leave it running."""
    below = [pid]
    for parent in below:
        with contextlib.suppress(FileNotFoundError):
            below += children(parent)
    for each in reversed(below):
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)


def process_uid(pid: int) -> int:
    """The real uid of a process, from ``/proc``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for process {pid}")


@dataclass
class Running:
    """A container's command started by ``buildah run``: the buildah process and the command's own PID."""

    buildah: subprocess.Popen[str]
    pid: int

    def stop(self, timeout: float = 15) -> tuple[int, str]:
        """SIGTERM to the command's PID; returns buildah's exit status and the output (kills its group if it hangs)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            output, _ = self.buildah.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(self.buildah.pid)
            self.buildah.communicate()
            raise AssertionError(f"{self.buildah.args}: still running {timeout}s after SIGTERM") from None
        return self.buildah.returncode, output


@dataclass
class Container:
    """A working container of one image (``buildah from``), removed by :func:`container`."""

    name: str
    image: str

    def config(self) -> dict[str, Any]:
        """The image's OCI config (``Entrypoint``, ``Cmd``, ``User``, ``Env``, ...)."""
        inspected = json.loads(buildah("inspect", "--type", "container", self.name).stdout)
        return dict(inspected["OCIv1"]["config"])

    def _run_argv(self, argv: Sequence[str], env: dict[str, str] | None) -> list[str]:
        options = [f"--env={key}={value}" for key, value in (env or {}).items()]
        return [*BUILDAH, "run", "--isolation", "chroot", "--network", "host", *options, self.name, "--", *argv]

    def run(self, *argv: str) -> str:
        """Run ``argv`` as the image's user; its stdout, stripped. AssertionError when it fails."""
        done = subprocess.run(self._run_argv(argv, None), capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{argv}: exit {done.returncode}: {done.stderr.strip()}"
        return done.stdout.strip()

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None) -> Running:
        """Start ``argv`` in the background; returns once its own process (under buildah's) exists."""
        process = subprocess.Popen(self._run_argv(argv, env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)

        def command() -> int | None:
            # buildah -> buildah-chroot-runtime -> buildah-chroot-exec -> the command
            pids = [process.pid]
            for _ in range(3):
                pids = [child for pid in pids for child in children(pid)]
            return pids[0] if len(pids) == 1 else None

        try:
            return Running(process, wait_for(command, 30, f"{argv[0]} started in {self.name}"))
        except BaseException:
            kill_tree(process.pid)
            process.communicate()
            raise


@contextlib.contextmanager
def container(image: str) -> Iterator[Container]:
    """A working container of ``image``, removed at the end."""
    name = f"switchman-test-{image.rsplit('/', 1)[-1].replace(':', '-')}-{os.getpid()}"
    buildah("rm", name, check=False)  # one an interrupted run left
    made = buildah("from", "--name", name, "--pull=never", image, check=False)
    if made.returncode != 0:
        raise AssertionError(f"no image {image} in {STORAGE} (run scripts/images): {made.stderr.strip()}")
    try:
        yield Container(name, image)
    finally:
        buildah("rm", name, check=False)
