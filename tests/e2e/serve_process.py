"""``switchman serve`` as a real process, for the tests that kill it."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["Serve"]

_SERVING = re.compile(r"serving: xDS on port (\d+), API on port (\d+)")


class Serve:
    """One ``switchman serve`` process."""

    def __init__(
        self, store: Path | str, xds_port: int = 0, transport: str = "grpc", extra: Sequence[str] = ()
    ) -> None:
        self.store, self.wanted_xds_port, self.transport, self.extra = store, xds_port, transport, tuple(extra)
        self.proc: asyncio.subprocess.Process | None = None
        self.xds_port = self.api_port = 0

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchman", "serve", "--store", str(self.store),
            "--xds-address", f"127.0.0.1:{self.wanted_xds_port}", "--api-address", "127.0.0.1:0",
            "--xds-transport", self.transport, *self.extra,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        for _ in range(100):
            line = (await asyncio.wait_for(self.proc.stderr.readline(), 15)).decode()
            if match := _SERVING.search(line):
                self.xds_port, self.api_port = int(match.group(1)), int(match.group(2))
                asyncio.get_running_loop().create_task(self._drain())
                return
        raise AssertionError("switchman serve did not say where it serves")

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while await self.proc.stderr.readline():
            pass

    async def apply(self, docs: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.api_port}/v1/apply"
        async with aiohttp.ClientSession() as s, s.post(url, json={"documents": docs}) as r:
            return r.status, await r.json()

    async def kill(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        await asyncio.wait_for(self.proc.wait(), 10)

    async def ensure_stopped(self) -> None:
        """Kill it if it still runs, and wait for it (for finally blocks)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 10)
