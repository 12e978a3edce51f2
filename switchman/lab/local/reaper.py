"""The watchdog's child side: kills the recorded PIDs when its parent goes away.

Run as ``python -m switchman.lab.local.reaper`` by :class:`switchman.lab.local.watchdog.Watchdog`.
It reads ``+PID`` / ``-PID`` lines from stdin; at EOF (the parent exited or
was killed, even with SIGKILL) it sends SIGTERM to every recorded PID, then
SIGKILL to those still alive after 3 s.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

__all__ = ["main", "pid_alive"]


def pid_alive(pid: int) -> bool:
    """Is ``pid`` a running process? A zombie (dead, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    # The state follows the command name, which is in parentheses and may hold anything.
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"] and state != ["X"]


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent; we wait for EOF
    pids: set[int] = set()
    for line in sys.stdin:
        line = line.strip()
        if line.startswith("+"):
            pids.add(int(line[1:]))
        elif line.startswith("-"):
            pids.discard(int(line[1:]))
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
