"""The demo upstream's own process (``python -m switchman.lab.local.upstream_main``): the lab's way, a free
port written to a file, and the checkout image's way, a fixed port and host given as flags."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from switchman.testing.wait import until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def upstream(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "switchman.lab.local.upstream_main", *args,
                                                   stderr=asyncio.subprocess.DEVNULL)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0


async def answer(port: int) -> tuple[str, str] | None:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as resp:
            return await resp.text(), resp.headers["x-upstream-version"]
    except aiohttp.ClientConnectionError:
        return None


def port_in(path: Path) -> int | None:
    return int(path.read_text()) if path.exists() else None  # written atomically: whole or absent


async def test_a_fixed_port_and_host_without_a_port_file() -> None:
    port = free_port()
    async with upstream("checkout", "v2", "--host", "127.0.0.1", "--port", str(port)):
        assert await until(lambda: answer(port), 10, "the upstream answers") == ("checkout v2\n", "v2")


async def test_a_free_port_written_to_the_port_file(tmp_path: Path) -> None:
    port_file = tmp_path / "app.port"
    async with upstream("checkout", "v1", "--port-file", str(port_file)):
        port = await until(lambda: asyncio.to_thread(port_in, port_file), 10, "the port file")
        assert await until(lambda: answer(port), 10, "the upstream answers") == ("checkout v1\n", "v1")
