"""``GET /v1/events``: server-sent events that tell a client when to read the API again.

Each event is a hint, not the data: ``revision`` (a new revision is served,
from the controller's listeners; ``data`` is its number), ``status`` (what
the connected Envoys ACKed, NACKed or are waiting for changed), ``rollouts``
(a rollout's stored run changed: a stage, an analysis, a command) and
``tick`` (once every :data:`TICK_SECONDS`, so a client sees a dead connection).
The client then reads what it shows through the ordinary REST API, with
its own token, so the stream itself carries nothing a read token could not see.

The status and rollouts are looked at every :data:`POLL_SECONDS`, only
while a client listens. Every client has a bounded queue of pending hints
(:data:`QUEUE`): hints of one kind replace each other, so a slow client
gets the newest of each kind and never makes the server hold more. At most
:data:`MAX_CLIENTS` streams are open at a time; one more is 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from switchman.api.errors import ApiError
from switchman.api.keys import CONTROLLER, ROLLOUTS, XDS
from switchman.rollout.state import state_key

__all__ = [
    "EVENTS", "MAX_CLIENTS", "POLL_SECONDS", "QUEUE", "TICK_SECONDS", "EventHub", "end_event_streams", "event_routes",
    "events_ctx",
]

POLL_SECONDS: Final = 0.25
TICK_SECONDS: Final = 5.0
MAX_CLIENTS: Final = 64
#: The kinds of hint, hence the most a client's queue ever holds.
KINDS: Final = ("revision", "status", "rollouts", "tick")
QUEUE: Final = len(KINDS)

event_routes = web.RouteTableDef()


class _Client:
    """One listener's pending hints: at most one of each kind, the newest."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}
        self.wake = asyncio.Event()
        self.closed = False

    def push(self, kind: str, data: str) -> None:
        self.pending[kind] = data
        self.wake.set()

    async def next(self) -> dict[str, str]:
        await self.wake.wait()
        self.wake.clear()
        out, self.pending = self.pending, {}
        return out


class EventHub:
    """Fans the controller's revisions and the polled status and rollouts out to every listening client."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._clients: set[_Client] = set()
        self._poller: asyncio.Task[None] | None = None
        self._status: int | None = None
        self._rollouts: tuple[tuple[str, int], ...] | None = None

    def start(self) -> None:
        self._app[CONTROLLER].add_listener(self._revision)

    async def close(self) -> None:
        """End every stream (the server is going away) and stop looking."""
        self._app[CONTROLLER].remove_listener(self._revision)
        for client in self._clients:
            client.closed = True
            client.wake.set()
        await self._stop_poller()

    async def _stop_poller(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    def _revision(self, revision: int) -> None:
        self._send("revision", str(revision))

    def _send(self, kind: str, data: str) -> None:
        for client in self._clients:
            client.push(kind, data)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[_Client]:
        if len(self._clients) >= MAX_CLIENTS:
            raise ApiError(503, "unavailable", f"{MAX_CLIENTS} event streams are open already; try again later")
        client = _Client()
        self._clients.add(client)
        if self._poller is None:
            self._status = self._rollouts = None
            self._poller = asyncio.create_task(self._poll(), name="api-events-poll")
        try:
            yield client
        finally:
            self._clients.discard(client)
            if not self._clients:
                await self._stop_poller()

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + TICK_SECONDS
        while True:
            status = hash(tuple(self._app[XDS].statuses()))
            if status != self._status:
                if self._status is not None:
                    self._send("status", "")
                self._status = status
            rollouts = await self._rollout_versions()
            if rollouts != self._rollouts:
                if self._rollouts is not None:
                    self._send("rollouts", "")
                self._rollouts = rollouts
            if loop.time() >= next_tick:
                self._send("tick", "")
                next_tick = loop.time() + TICK_SECONDS
            await asyncio.sleep(POLL_SECONDS)

    async def _rollout_versions(self) -> tuple[tuple[str, int], ...]:
        if ROLLOUTS not in self._app:
            return ()
        try:
            records = await self._app[CONTROLLER].store.list_state(state_key(""))
        except Exception:  # a store outage shows in /readyz; the next poll tries again
            return self._rollouts or ()
        return tuple((r.key, r.version) for r in records)


EVENTS = web.AppKey("events", EventHub)


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hub for the application's lifetime (``cleanup_ctx``)."""
    hub = EventHub(app)
    app[EVENTS] = hub
    hub.start()
    yield
    await hub.close()


async def end_event_streams(app: web.Application) -> None:
    """``on_shutdown``: end the open streams, which would otherwise hold the server's shutdown up."""
    if EVENTS in app:
        await app[EVENTS].close()


@event_routes.get("/v1/events")
async def events(request: web.Request) -> web.StreamResponse:
    """A ``text/event-stream`` of hints; the first is ``hello`` with the revision served now."""
    hub = request.app[EVENTS]
    async with hub.listen() as client:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        hello = json.dumps({"revision": request.app[CONTROLLER].served_revision})
        await response.write(f"event: hello\ndata: {hello}\n\n".encode())
        while not client.closed:
            hints = await client.next()
            if client.closed:
                break
            chunk = "".join(f"event: {kind}\ndata: {data}\n\n" for kind, data in hints.items())
            try:
                await response.write(chunk.encode())
            except (ConnectionResetError, RuntimeError):  # the client went away
                break
        return response
