"""A real Switchman in the test's event loop, the real ``switchman`` command against it, and a real ADS client.

The command runs as a subprocess (``python -m switchman``), so that what is
tested is what a user runs: argument parsing, the environment, the config
file, stdout, stderr and the exit status. Its environment holds no
``SWITCHMAN_*`` variable of the machine running the tests, and its home is
a fresh folder, so no config file of the user is read.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from switchman.api import Tokens
from switchman.app import Switchman
from tests.functional.ads import AdsClient, ads_clients
from tests.functional.conftest import Switchmen

ROOT = Path(__file__).parents[3]
EXAMPLES = ROOT / "examples"
CHECKOUT_FILE = str(EXAMPLES / "checkout.yaml")
ADMIN, READER = "s3cret", "r3ad"
TOKENS = Tokens(admin={"ci": ADMIN}, read={"viewer": READER})


@dataclass(frozen=True, repr=False)
class Result:
    """What one run of the command did."""

    code: int
    out: str
    err: str

    def __repr__(self) -> str:  # what pytest shows when an assertion on a result fails
        return f"exit {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"


class Cli(Protocol):
    """Runs ``switchman ARGS`` against the test's server (``SWITCHMAN_API`` set unless ``api=False``)."""

    def __call__(
        self, *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None, api: bool = True
    ) -> Awaitable[Result]: ...


ServerFactory = Callable[..., Awaitable[Switchman]]


@pytest.fixture
def start_server(switchmen: Switchmen) -> ServerFactory:
    """Start Switchman in-process (both ports picked by the OS); stopped after the test."""

    async def start(tokens: Tokens | None = None) -> Switchman:
        return await switchmen(tokens=tokens or Tokens())

    return start


@pytest.fixture
async def server(start_server: ServerFactory) -> Switchman:
    """A Switchman with an open API (no tokens)."""
    return await start_server()


@pytest.fixture
async def secured(start_server: ServerFactory) -> Switchman:
    """A Switchman whose API wants tokens: ``ci`` (admin) and ``viewer`` (read)."""
    return await start_server(TOKENS)


def api_url(app: Switchman) -> str:
    return f"http://127.0.0.1:{app.api_port}"


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The command's HOME (so ``~/.config/switchman/config.yaml`` is ``home/.config/switchman/config.yaml``)."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def clean_environ(home: Path) -> dict[str, str]:
    """The test process's environment without SWITCHMAN_* and XDG_CONFIG_HOME, with HOME set to ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHMAN_") and k != "XDG_CONFIG_HOME"}
    env["HOME"] = str(home)
    return env


async def run_switchman(
    args: tuple[str, ...], env: Mapping[str, str], stdin: str | None = None, cwd: Path = ROOT, timeout: float = 60
) -> Result:
    """``python -m switchman ARGS`` in a subprocess (the server keeps running in this loop meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchman", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(env), cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else b""), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def cli(server: Switchman, home: Path) -> Cli:
    """The command against the open ``server``."""
    return _cli(server, home)


@pytest.fixture
def secured_cli(secured: Switchman, home: Path) -> Cli:
    """The command against the ``secured`` server (no token unless the test gives one)."""
    return _cli(secured, home)


def _cli(app: Switchman, home: Path) -> Cli:
    async def run(
        *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None, api: bool = True
    ) -> Result:
        environ = clean_environ(home)
        if api:
            environ["SWITCHMAN_API"] = api_url(app)
        environ.update(env or {})
        return await run_switchman(args, environ, stdin)

    return run


@pytest.fixture
async def ads(server: Switchman) -> AsyncIterator[Callable[[str], AdsClient]]:
    async with ads_clients(server.xds_port) as make:
        yield make
