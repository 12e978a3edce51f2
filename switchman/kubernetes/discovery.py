"""Kubernetes endpoint discovery: the EndpointSlices of the Services that documents name -> the controller.

The served documents name their sources (``kubernetes: {namespace, service, port}`` on a Service version);
for each namespace among them one :class:`~switchman.kubernetes.watch.SliceWatch` keeps that namespace's
slices (namespaced list and watch: the RBAC a deployment needs is a Role per namespace, no ClusterRole).
When slices change, the endpoints of every source of the touched Services are computed again and handed to
:meth:`Controller.set_discovered <switchman.control.Controller.set_discovered>`, which re-sends only the
load assignments those feed. A namespace no document names any longer is no longer watched.

:meth:`KubernetesDiscovery.health` says whether every watch is current; while one is not, Envoys keep the
last endpoints it knew (discovery is stale, not empty).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from switchman.control import Controller
from switchman.kubernetes.api import KubernetesApi
from switchman.kubernetes.slices import endpoints_of
from switchman.kubernetes.watch import SliceWatch, WatchHealth
from switchman.model.kinds.service import KubernetesSource

__all__ = ["DiscoveryHealth", "KubernetesDiscovery"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DiscoveryHealth:
    """``current``: every watched namespace is listed and watching; else ``reason`` says which is not and
    since when (wall clock, ``stale_since``). ``endpoints``: how many each source has (ready or draining)."""

    current: bool
    reason: str | None
    stale_since: float | None
    server: str
    namespaces: tuple[WatchHealth, ...]
    endpoints: Mapping[str, int]
    updates: int  # load-assignment re-sends caused by discovery since start

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class KubernetesDiscovery:
    """Watches what ``controller``'s documents name, through ``api``; see the module's docstring."""

    def __init__(self, api: KubernetesApi, controller: Controller) -> None:
        self.api = api
        self.controller = controller
        self._watches: dict[str, SliceWatch] = {}
        self._updates = 0
        self._started = False
        self._stopping: set[asyncio.Task[None]] = set()  # watches of namespaces no longer named

    async def start(self) -> None:
        """Watch every namespace the served documents name, and follow what they name from now on."""
        self._started = True
        self.controller.add_sources_listener(self._sources_changed)
        self._sources_changed(self.controller.discovery_sources())

    async def stop(self) -> None:
        self._started = False
        watches, self._watches = list(self._watches.values()), {}
        await asyncio.gather(*(w.stop() for w in watches), *self._stopping)
        await self.api.close()

    async def synced(self, timeout: float) -> None:
        """Wait until every namespace watched now has been listed once (raises TimeoutError)."""
        async with asyncio.timeout(timeout):
            for watch in list(self._watches.values()):
                await watch.synced.wait()

    def _sources_changed(self, sources: frozenset[KubernetesSource]) -> None:
        if not self._started:
            return
        namespaces = {s.namespace for s in sources}
        for namespace in sorted(namespaces - self._watches.keys()):
            watch = self._watches[namespace] = SliceWatch(self.api, namespace, self._slices_changed)
            watch.start()
            log.info("watching EndpointSlices in namespace %s", namespace)
        for namespace in sorted(self._watches.keys() - namespaces):
            log.info("no document names namespace %s any longer: not watching it", namespace)
            task = asyncio.create_task(self._watches.pop(namespace).stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        # A source new to a namespace already watched has its endpoints at once.
        for source in sources:
            watch = self._watches[source.namespace]
            if watch.synced.is_set() and self.controller.discovered.endpoints(source) is None:
                self._hand_over(source, watch)

    def _slices_changed(self, namespace: str, services: frozenset[str]) -> None:
        watch = self._watches.get(namespace)
        if watch is None:
            return
        for source in self.controller.discovery_sources():
            if source.namespace != namespace:
                continue
            # A touched Service, or one never heard of (after the first list: it may have no slices at all).
            if source.service in services or self.controller.discovered.endpoints(source) is None:
                self._hand_over(source, watch)

    def _hand_over(self, source: KubernetesSource, watch: SliceWatch) -> None:
        if self.controller.set_discovered(source, endpoints_of(source, watch.slices.values())):
            self._updates += 1

    def health(self) -> DiscoveryHealth:
        namespaces = tuple(w.health() for w in sorted(self._watches.values(), key=lambda w: w.namespace))
        reason = None
        stale_since = None
        for h in namespaces:
            if h.stale_since is not None:
                stale_since = min(stale_since or h.stale_since, h.stale_since)
                reason = (f"EndpointSlices of namespace {h.namespace} not watched for "
                          f"{time.time() - h.stale_since:.0f}s: {h.last_error}; Envoys keep the last endpoints known")
                break
            if not h.synced:
                reason = f"EndpointSlices of namespace {h.namespace} not listed yet"
                break
        endpoints = {
            str(s): len(found)
            for s in sorted(self.controller.discovery_sources(), key=str)
            if (found := self.controller.discovered.endpoints(s)) is not None
        }
        return DiscoveryHealth(reason is None, reason, stale_since, self.api.server, namespaces, endpoints,
                               self._updates)
