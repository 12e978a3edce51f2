"""A child process of the lab whose output goes to a log file, and waiting on it for something it writes.

Every child is registered with the :class:`~switchman.lab.local.watchdog.Watchdog`:
it dies with the process that started it, also on SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from switchman.errors import LabError
from switchman.lab.local.launcher import tail
from switchman.lab.local.watchdog import Watchdog

__all__ = ["Child", "terminate", "wait_for"]

log = logging.getLogger("switchman.lab")

T = TypeVar("T")


@dataclass(slots=True)
class Child:
    """A child process (serve, a pod's app, etcd) whose output goes to a log file in the run dir."""

    name: str
    args: list[str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> None:
        """Start the process, register it with the watchdog."""
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.args, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
            )
        Watchdog.shared().guard(self.proc.pid)
        log.info("started %s (pid %d): %s", self.name, self.proc.pid, " ".join(self.args))

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise LabError(f"{self.name} is not running")
        return self.proc.pid

    def exited(self) -> int | None:
        """The exit code if the process ended, else None."""
        return None if self.proc is None else self.proc.returncode

    async def kill(self) -> None:
        """SIGKILL, as a crash would end it: it closes nothing and says nothing; wait until it is gone."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        Watchdog.shared().release(proc.pid)
        log.info("killed %s (pid %d) with SIGKILL", self.name, proc.pid)

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        if self.proc is not None:
            await terminate(self.proc, self.name, timeout)
            log.info("stopped %s (pid %d, exit %s)", self.name, self.proc.pid, self.proc.returncode)


async def terminate(proc: asyncio.subprocess.Process, name: str, timeout: float = 5.0) -> None:
    """Stop a process the watchdog guards: SIGTERM, then SIGKILL after ``timeout``; the watchdog forgets it."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.warning("%s did not stop in %.0fs: SIGKILL", name, timeout)
            proc.kill()
            await proc.wait()
    Watchdog.shared().release(proc.pid)


async def wait_for(what: str, child: Child, timeout: float, probe: Callable[[], T | None]) -> T:
    """Poll ``probe()`` until it returns something; fail if ``child`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if child.exited() is not None:
            raise LabError(f"{child.name} exited with {child.exited()} before {what}: {tail(child.log_path)}")
        if time.monotonic() > deadline:
            raise LabError(f"{child.name}: no {what} within {timeout}s: {tail(child.log_path)}")
        await asyncio.sleep(0.05)
