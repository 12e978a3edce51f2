"""An etcd of the lab's own: one member on loopback, its data in the run dir, stopped by PID.

The binary is Debian's ``etcd`` (package ``etcd-server``), found on PATH.
Replicas of ``switchman serve`` share it as their store
(``etcd://127.0.0.1:PORT/PREFIX``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from pathlib import Path

import aiohttp

from switchman.errors import LabError
from switchman.lab.local.child import Child
from switchman.lab.local.launcher import tail

__all__ = ["EtcdProcess", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the caller binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EtcdProcess:
    """``etcd`` on two free loopback ports (clients, peers), its data and log in ``run_dir``."""

    def __init__(self, run_dir: Path, name: str = "lab") -> None:
        self.run_dir = run_dir
        self.name = name
        self.child: Child | None = None
        self.client_port = 0

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, where clients reach it."""
        return f"127.0.0.1:{self.client_port}"

    async def start(self, timeout: float = 30.0) -> str:
        """Start etcd and wait until it says it is healthy; its client address."""
        binary = shutil.which("etcd")
        if binary is None:
            raise LabError("etcd not found on PATH: install it (Debian: apt-get install etcd-server)")
        self.client_port, peer_port = free_port(), free_port()
        client, peer = f"http://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{peer_port}"
        data = self.run_dir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)  # a member of its own, new each time
        self.child = Child("etcd", [
            binary, "--name", self.name, "--data-dir", str(data),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{self.name}={peer}",
        ], self.run_dir / "etcd.log")
        await self.child.start()
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
            while True:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                    async with session.get(f"{client}/health") as resp:
                        if (await resp.json(content_type=None)).get("health") == "true":
                            return self.address
                if self.child.exited() is not None:
                    raise LabError(f"etcd exited with {self.child.exited()}: {tail(self.child.log_path)}")
                if time.monotonic() > deadline:
                    raise LabError(f"etcd was not healthy within {timeout:g}s: {tail(self.child.log_path)}")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s; its data folder is removed."""
        if self.child is not None:
            await self.child.stop()
        shutil.rmtree(self.run_dir / "etcd-data", ignore_errors=True)
