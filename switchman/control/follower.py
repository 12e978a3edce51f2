"""Following the store's head, and saying how well that goes.

A replica serves what the store holds only as long as it follows the
store's head, so the follower must not end on an error: whatever its watch
raises (the store unreachable, a revision it cannot read, a bug), it logs
the error, waits, and watches again from the last revision it saw, with a
delay that doubles from :data:`RETRY_FIRST` up to :data:`RETRY_MAX` (1 s). Each
kind of failure is logged once (as an error, with its message) until the
store answers again; the repeats go to the debug log.

The watch alone cannot tell a quiet store from an unreachable one (the etcd
backend reconnects its watch by itself), so a probe reads the store's head
number every ``probe_interval`` seconds (every :data:`PROBE_INTERVAL_DOWN`
while it fails, so that readiness comes back promptly with the store).
Together they give the replica's
:class:`StoreHealth`: the revision it serves, the head it last saw, when the
store last answered and the last error, and whether it is ready: following,
the store answering, and the served revision the store's head.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

from switchman.store.base import Revision, Store

__all__ = ["RETRY_FIRST", "RETRY_MAX", "Follower", "StoreHealth"]

log = logging.getLogger(__name__)

#: The first and the largest delay before the watch is opened again after a failure: low, so that a
#: replica follows the store again within a second of its return, however long it was away.
RETRY_FIRST: Final = 0.1
RETRY_MAX: Final = 1.0
#: How often the probe asks the store for its head, and how long it waits for the answer.
PROBE_INTERVAL: Final = 1.0
PROBE_TIMEOUT: Final = 3.0
#: How often the probe asks while the store does not answer: /readyz is back this soon after the store.
PROBE_INTERVAL_DOWN: Final = 0.2


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """How this replica follows the store, as ``/readyz`` and the status show it.

    ``last_contact`` and ``last_error_at`` are wall-clock times (seconds since
    the epoch); ``reason`` says why the replica is not ready (None when it is).
    """

    ready: bool
    reason: str | None
    served_revision: int | None
    store_head: int | None
    last_contact: float | None
    last_error: str | None
    last_error_at: float | None
    store: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _describe(exc: BaseException) -> str:
    """The error as one line; the class name too when it is not one of ours (a bug, or a library's error)."""
    from switchman.errors import SwitchmanError

    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, SwitchmanError) else f"{type(exc).__name__}: {text}"


class Follower:
    """Watches ``store`` from a revision on and hands every new head to ``serve``; see the module's docstring.

    ``serve`` must not raise (the controller keeps serving what it has when a
    revision cannot be served); ``served`` says which revision is served now.
    """

    def __init__(
        self,
        store: Store,
        serve: Callable[[Revision], None],
        served: Callable[[], int | None],
        *,
        probe_interval: float = PROBE_INTERVAL,
        probe_timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self._store = store
        self._serve = serve
        self._served = served
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._task: asyncio.Task[None] | None = None
        self._position = 0  # the last revision the watch gave (or the head at start)
        self._head: int | None = None
        self._last_contact: float | None = None  # time.time()
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._watch_down = False  # between a watch failure and the next attempt
        self._probe_down = False  # the last probe failed
        self._logged: set[tuple[str, str]] = set()  # (where, kind) logged since the store last answered

    # -- running -------------------------------------------------------------

    def start(self, head: int | None) -> None:
        """Follow from ``head`` (the head just read and served; None: an empty store)."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("the follower is running already")
        self._position = head or 0
        self._heard(head)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="store follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._watch(), name="store follower: watch")
            tasks.create_task(self._probe(), name="store follower: probe")

    async def _watch(self) -> None:
        delay = RETRY_FIRST
        while True:
            started = time.monotonic()
            try:
                self._watch_down = False
                revisions = self._store.watch(after=self._position)
                try:
                    async for revision in revisions:
                        self._heard(revision.number, where="watch")
                        self._position = revision.number
                        self._serve(revision)
                finally:
                    aclose = getattr(revisions, "aclose", None)  # end the store's generator now, not when collected
                    if aclose is not None:
                        await aclose()
                raise _WatchEnded(f"the watch on {self._store!r} ended (the store was closed?)")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever it is, the follower goes on: that is its whole point
                self._watch_down = True
                if time.monotonic() - started > RETRY_MAX:  # it had been running well: start the delays over
                    delay = RETRY_FIRST
                self._failed("watch", exc, f"watching again in {delay:g} s, from revision {self._position}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _probe(self) -> None:
        while True:
            await asyncio.sleep(min(self._probe_interval, PROBE_INTERVAL_DOWN) if self._probe_down
                                else self._probe_interval)
            try:
                async with asyncio.timeout(self._probe_timeout):
                    head = await self._store.head_number()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._probe_down = True
                if isinstance(exc, TimeoutError):
                    exc = TimeoutError(f"{self._store!r} did not answer within {self._probe_timeout:g} s")
                self._failed("probe", exc, f"asking again every {min(self._probe_interval, PROBE_INTERVAL_DOWN):g} s")
                continue
            self._probe_down = False
            self._heard(head, where="probe")

    # -- bookkeeping ---------------------------------------------------------

    def committed(self, number: int) -> None:
        """This replica has just committed revision ``number``: the store's head is at least that."""
        self._heard(number)

    def _heard(self, head: int | None, *, where: str = "") -> None:
        """The store answered, and its head is at least ``head``. Heads only move forward: an answer
        that was on its way while a newer revision arrived does not take the head back."""
        self._last_contact = time.time()
        if head is not None and (self._head is None or head > self._head):
            self._head = head
        recovered = {kind for kind in self._logged if kind[0] == where}
        if recovered:
            self._logged -= recovered
            log.info("store follower: %s: %r answers again", where, self._store)

    def _failed(self, where: str, exc: BaseException, then: str) -> None:
        text = _describe(exc)
        self._last_error, self._last_error_at = f"{where}: {text}", time.time()
        kind = (where, type(exc).__name__)
        if kind in self._logged:
            log.debug("store follower: %s failed again: %s; %s", where, text, then)
            return
        self._logged.add(kind)
        log.error("store follower: %s of %r failed: %s; %s", where, self._store, text, then)

    # -- health --------------------------------------------------------------

    def health(self) -> StoreHealth:
        served = self._served()
        head = self._head
        stale_after = self._probe_interval + self._probe_timeout + 1.0
        quiet = None if self._last_contact is None else time.time() - self._last_contact
        reason: str | None = None
        if not self.running:
            reason = "the store follower is not running"
        elif self._probe_down:
            reason = f"the store ({self._store!r}) is unreachable: {self._last_error}"
        elif quiet is None or quiet > stale_after:
            reason = f"no answer from the store ({self._store!r}) for {quiet or 0:.0f} s"
        elif self._watch_down:
            reason = f"the watch on the store ({self._store!r}) failed and is being opened again: {self._last_error}"
        elif served != head:
            reason = f"serving revision {_number(served)} while the store's head is {_number(head)}"
        return StoreHealth(
            ready=reason is None,
            reason=reason,
            served_revision=served,
            store_head=head,
            last_contact=self._last_contact,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            store=repr(self._store),
        )


def _number(revision: int | None) -> str:
    return "none (an empty store)" if revision is None else str(revision)


class _WatchEnded(Exception):
    """The store's watch ended while the follower still runs (only closing the store ends it)."""
