"""Children that die with their parent.

A ``preexec_fn`` in a process that runs gRPC crashed Envoy children, and
``PR_SET_PDEATHSIG`` did not stop Envoy; a watchdog process did. The parent
writes ``+PID`` / ``-PID`` lines to the watchdog's stdin; when that pipe
closes (the parent exited or was killed, even with SIGKILL) the watchdog
sends SIGTERM to every recorded PID, then SIGKILL to those still alive.

The child side is :mod:`switchman.lab.local.reaper`.
"""

from __future__ import annotations

import subprocess
import sys
import threading

__all__ = ["Watchdog"]


class Watchdog:
    """The parent's handle on one watchdog process (started lazily, shared)."""

    _instance: Watchdog | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "switchman.lab.local.reaper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
        )

    @classmethod
    def shared(cls) -> Watchdog:
        with cls._lock:
            if cls._instance is None or cls._instance._proc.poll() is not None:
                cls._instance = cls()
            return cls._instance

    def _send(self, line: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def guard(self, pid: int) -> None:
        """Kill ``pid`` when this process goes away."""
        self._send(f"+{pid}")

    def release(self, pid: int) -> None:
        """``pid`` ended on its own; forget it."""
        self._send(f"-{pid}")
