"""The console's fixtures: a Switchman with an admin and a read token, a real Envoy on it, and headless Chromium.

Without Chromium (Debian's ``chromium``; ``.ci/run`` installs it) the console's tests are skipped, saying so.
Screenshots go to the test's temporary folder; with ``SWITCHMAN_CONSOLE_SHOTS=DIR`` they are kept in DIR too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.api import Tokens
from switchman.app import ServeSettings, Switchman
from switchman.lab.local import EnvoyProcess, bootstrap
from tests.e2e.console.browser import Chromium, Page, chromium_binary

ADMIN = "admin-secret-4f1c"
READ = "read-secret-9a2e"
NODE = "console-envoy"


@pytest.fixture
async def switchman(tmp_path: Path) -> AsyncIterator[Switchman]:
    tokens = Tokens(admin={"ops": ADMIN}, read={"viewer": READ})
    app = Switchman(ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0",
                                  store=str(tmp_path / "s.db"), tokens=tokens))
    await app.start()
    yield app
    await app.stop(grace=0.5)


@pytest.fixture
async def envoy(switchman: Switchman) -> AsyncIterator[EnvoyProcess]:
    proc = EnvoyProcess(bootstrap(NODE, switchman.xds_port, cluster="demo"))
    await proc.start()
    yield proc
    await proc.stop()


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("the console's browser tests need Chromium: apt-get install chromium (or SWITCHMAN_TEST_CHROMIUM)")
    async with Chromium.running(binary) as browser:
        tab = await browser.page()
        yield tab
        await tab.close()


@pytest.fixture
def shots(tmp_path: Path) -> Any:
    """``shots(page, name, **size)``: a screenshot to look at, kept in SWITCHMAN_CONSOLE_SHOTS when it is set."""
    keep = os.environ.get("SWITCHMAN_CONSOLE_SHOTS")

    async def take(tab: Page, name: str, **size: Any) -> Path:
        path = await tab.screenshot(tmp_path / f"{name}.png", **size)
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(path, os.path.join(keep, path.name))
        return path

    return take


class Api:
    """The REST API as a script uses it, with one token."""

    def __init__(self, switchman: Switchman, token: str) -> None:
        self.base = f"http://127.0.0.1:{switchman.api_port}"
        self.token = token

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession() as session, session.request(
            method, self.base + path, json=body, headers=headers
        ) as resp:
            return resp.status, await resp.json()

    async def read(self, path: str) -> Any:
        """The JSON of a GET that must succeed."""
        status, body = await self.call("GET", path)
        assert status == 200, body
        return body


async def sign_in(tab: Page, switchman: Switchman, token: str, view: str = "envoys") -> None:
    """Open the console and sign in with ``token`` through its form, as a person does."""
    await tab.goto(f"http://127.0.0.1:{switchman.api_port}/#/{view}")
    await tab.wait_for("document.querySelector('form.login input[name=token]')", what="the sign-in form")
    await tab.evaluate(
        f"(() => {{ const f = document.querySelector('form.login'); f.token.value = {token!r}; f.requestSubmit(); }})()"
    )
    await tab.wait_for("document.getElementById('who').textContent", what="signed in")
    await tab.wait_for("document.getElementById('live').classList.contains('on')", what="live updates on")
