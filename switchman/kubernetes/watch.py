"""One namespace's EndpointSlices, kept current by list + watch, through API server failures.

The loop: list (all slices, and a resourceVersion), then watch from that resourceVersion; every event and
every bookmark moves the resourceVersion on, so a watch the server ends (its timeout) or a connection that
breaks is opened again from where it was, without a list. Only 410 Gone (the resourceVersion was compacted
away) makes it list again; the new list replaces the slices whole, and the services whose slices differ
are reported.

A failure never empties anything: the slices known stay until the API server says otherwise, and the
watch is marked stale (with the error and since when) while it retries, with a delay that doubles from
:data:`RETRY_FIRST` up to :data:`RETRY_MAX`. Each change is reported as the set of Service names it touched,
once the events that arrived together are all applied (a burst of slice updates is one report).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from switchman.errors import DiscoveryError
from switchman.kubernetes.api import Gone, KubernetesApi
from switchman.kubernetes.slices import Slice, read_slice
from switchman.tasks import cancel

__all__ = ["RETRY_FIRST", "RETRY_MAX", "SliceWatch", "WatchHealth"]

log = logging.getLogger(__name__)

RETRY_FIRST: Final = 0.2
RETRY_MAX: Final = 5.0


@dataclass(frozen=True, slots=True)
class WatchHealth:
    """How one namespace's watch stands: ``synced`` once listed; ``stale_since`` (wall clock) while it cannot
    watch; the slices and the resourceVersion it holds; how many times it listed (the first, and after 410)."""

    namespace: str
    synced: bool
    stale_since: float | None
    last_error: str | None
    slices: int
    resource_version: str
    lists: int


class SliceWatch:
    """Keeps the EndpointSlices of ``namespace``; calls ``changed(namespace, services)`` after each change."""

    def __init__(
        self, api: KubernetesApi, namespace: str, changed: Callable[[str, frozenset[str]], None]
    ) -> None:
        self.api = api
        self.namespace = namespace
        self._changed = changed
        self.slices: dict[str, Slice] = {}
        self.resource_version = ""
        self.synced = asyncio.Event()
        self._stale_since: float | None = None
        self._last_error: str | None = None
        self._lists = 0
        self._pending: set[str] = set()
        self._flush: asyncio.Handle | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"endpointslices/{self.namespace}")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        if self._flush is not None:
            self._flush.cancel()

    def health(self) -> WatchHealth:
        return WatchHealth(
            self.namespace, self.synced.is_set(), self._stale_since, self._last_error, len(self.slices),
            self.resource_version, self._lists,
        )

    # -- the loop --------------------------------------------------------------

    async def _run(self) -> None:
        delay = RETRY_FIRST
        gone = 0  # 410s in a row: a list whose resourceVersion is already gone again is retried with a delay
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                opened = time.monotonic()
                async for event in self.api.watch_slices(self.namespace, self.resource_version):
                    if event.get("type") == "WATCHING":
                        self._recovered()
                        continue
                    self._apply(event)
                    delay, gone = RETRY_FIRST, 0
                # The server ended the watch (its timeout): open it again from the same resourceVersion; one
                # that ends as soon as it opens is opened again after a delay, not in a tight loop.
                if time.monotonic() - opened < 1.0:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
            except Gone as exc:
                log.info("EndpointSlices of %s: %s; listing again", self.namespace, exc)
                self.resource_version = ""
                gone += 1
                if gone > 1:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
            except DiscoveryError as exc:
                self._failed(str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug, or an object we cannot read: never end the watch for it
                log.exception("EndpointSlices of %s", self.namespace)
                self._failed(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _list(self) -> None:
        listed = await self.api.list_slices(self.namespace)
        fresh = {}
        for obj in listed.items:
            found = read_slice(obj)
            fresh[found.name] = found
        touched = _services(s for name, s in self.slices.items() if fresh.get(name) != s)
        touched |= _services(s for name, s in fresh.items() if self.slices.get(name) != s)
        self.slices = fresh
        self.resource_version = listed.resource_version
        self._lists += 1
        self._recovered()
        self.synced.set()
        # After the first list there is always a report, even of nothing: sources learn what they have.
        self._report(touched, always=self._lists == 1)

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            found = read_slice(obj)
            before = self.slices.pop(found.name, None)
            if kind != "DELETED":
                self.slices[found.name] = found
            if before != self.slices.get(found.name):
                self._report(_services([found] + ([before] if before is not None else [])))
        if version:  # BOOKMARK too: the resourceVersion moves on without a change
            self.resource_version = str(version)

    # -- reporting -------------------------------------------------------------

    def _report(self, services: frozenset[str], always: bool = False) -> None:
        """Report ``services`` once the events read together are applied: the flush runs when the watch next
        waits for the network, so a burst of updates is one report and no report waits for a timer."""
        self._pending |= services
        if (self._pending or always) and self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._flushed)

    def _flushed(self) -> None:
        self._flush = None
        pending, self._pending = frozenset(self._pending), set()
        self._changed(self.namespace, pending)

    def _failed(self, error: str) -> None:
        if self._stale_since is None:
            self._stale_since = time.time()
            log.warning("EndpointSlices of %s: %s; keeping the %d slices known", self.namespace, error,
                        len(self.slices))
        else:
            log.debug("EndpointSlices of %s: %s", self.namespace, error)
        self._last_error = error

    def _recovered(self) -> None:
        if self._stale_since is not None:
            log.info("EndpointSlices of %s: watching again", self.namespace)
        self._stale_since = None


def _services(slices: Iterable[Slice]) -> frozenset[str]:
    return frozenset(s.service for s in slices if s.service)
