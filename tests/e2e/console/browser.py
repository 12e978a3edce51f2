"""Headless Chromium driven over the Chrome DevTools Protocol (its websocket, with aiohttp): no Selenium.

:class:`Chromium` starts Debian's ``chromium`` on loopback with a profile in a
temporary folder and stops it by its PID; :class:`Page` is its one tab: go
to a URL, evaluate JavaScript, wait for the page to show something, click,
take screenshots, and keep every console error and uncaught exception the
page had, as a person with the developer tools open would see them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["Chromium", "Page", "chromium_binary"]

#: Where Chromium is looked for; SWITCHMAN_TEST_CHROMIUM names another.
_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")


def chromium_binary() -> str | None:
    """The Chromium to run (the real binary behind Debian's wrapper script when there is one), or None."""
    named = os.environ.get("SWITCHMAN_TEST_CHROMIUM")
    for candidate in ((named,) if named else _CANDIDATES):
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Page:
    """One tab, over its own DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loaded = asyncio.Event()
        self.errors: list[str] = []  # console errors and uncaught exceptions, in order
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self._event(data["method"], data.get("params", {}))
        for future in self._waiting.values():
            future.cancel()

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            shown = (str(a.get("value", a.get("description"))) for a in params["args"])
            self.errors.append("console: " + " ".join(shown))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append("exception: " + details.get("exception", {}).get("description", details["text"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry['text']} {entry.get('url', '')}".strip())

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        await self._ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    async def goto(self, url: str) -> None:
        self._loaded.clear()
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(self._loaded.wait(), 15)

    async def show(self, fragment: str) -> None:
        """Go to ``fragment`` (``#/history``) of the page that is open, as a click on a link does: no reload."""
        await self.evaluate(f"location.hash = {json.dumps(fragment)}")

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (awaited when it is a promise); AssertionError when it throws."""
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression!r} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10.0, what: str = "") -> Any:
        """Poll ``expression`` every 20 ms until it is truthy (an element counts as true), and return it;
        AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(f"((found) => found instanceof Node || found)({expression})")
            if value:
                return value
            if time.monotonic() > deadline:
                text = await self.evaluate("document.querySelector('main')?.innerText ?? ''")
                raise AssertionError(f"not within {timeout} s: {what or expression}; the page shows:\n{text[:2000]}")
            await asyncio.sleep(0.02)

    async def text(self, selector: str = "main") -> str:
        return str(await self.evaluate(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''"))

    async def click(self, selector: str) -> None:
        found = await self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)}); el?.click(); return !!el; }})()"
        )
        assert found, f"nothing on the page matches {selector}"

    async def screenshot(self, path: Path, *, width: int = 1280, height: int = 900, mobile: bool = False) -> Path:
        """The page as a PNG at ``path``, at that window size (a phone's, scaled twice, with ``mobile``)."""
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=2 if mobile else 1, mobile=mobile)
        await asyncio.sleep(0.3)  # let the layout settle at the new size
        shot = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        await self.send("Emulation.clearDeviceMetricsOverride")
        return path

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class Chromium:
    """A headless Chromium on loopback; :meth:`page` is its tab. Started by :meth:`running`, stopped by PID."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.binary = binary
        self.profile = profile
        self.process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, binary: str) -> AsyncIterator[Chromium]:
        with tempfile.TemporaryDirectory(prefix="switchman-chromium-", ignore_cleanup_errors=True) as profile:
            browser = cls(binary, Path(profile))
            try:
                await browser._start()
                yield browser
            finally:
                await browser._stop()

    async def _start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--mute-audio",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}", "--window-size=1280,900", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"Chromium did not open its DevTools port (exit {self.process.returncode})")
            await asyncio.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession()

    async def page(self) -> Page:
        """The browser's tab, with the console, runtime and page events on."""
        assert self._session is not None
        async with self._session.get(f"http://127.0.0.1:{self.port}/json/list") as resp:
            targets = await resp.json()
        target = next(t for t in targets if t["type"] == "page")
        ws = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
        page = Page(ws)
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        return page

    async def _stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
        # Its helpers (renderer, GPU, crash handler) are in the session it leads: they follow it out, else go.
        deadline = time.monotonic() + 5
        while _group_alive(process.pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                break
            await asyncio.sleep(0.05)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
