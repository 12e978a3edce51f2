"""How a connection of the HTTP/2 transport lives and ends: its timers, its GOAWAYs, its closes.

* keepalive: a quiet connection is pinged, and dropped when the ping goes
  unanswered (``keepalive_seconds``, ``keepalive_timeout_seconds``);
* idle: a connection without calls for ``max_connection_idle_seconds`` gets
  GOAWAY and is closed;
* maximum age: GOAWAY, then the calls have ``max_connection_age_grace_seconds``
  (as gRPC's ``max_connection_age_grace``) before they end with UNAVAILABLE;
* write stall: a connection whose socket has taken nothing for
  ``max_write_stall_seconds`` is dropped;
* limits: a connection over a connection limit is turned away, one over a
  flood limit is ended, both with GOAWAY (ENHANCE_YOUR_CALM) saying why.

GOAWAY names the last stream processed and is written here rather than by
h2, whose state machine would refuse to send anything after it: a
draining connection still serves its calls. A closing connection sends
what it has, then its FIN, and reads (dropping it) what the client still
sends for a moment: closing with input unread would reset the connection,
and the client might never see the GOAWAY that says why it ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import h2.connection
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from switchman.xds.server.methods import Code

if TYPE_CHECKING:
    from switchman.xds.h2.server import H2Server, H2Settings

__all__ = ["Lifetime"]

log = logging.getLogger(__name__)

_LINGER: Final = 2.0  # seconds a closing connection reads and drops what the client still sends
# A connection turned away has said nothing yet but its preface: it lingers less, since a flood of them holds sockets.
_TURNED_AWAY_LINGER: Final = 0.5


class Lifetime:
    """The part of a :class:`~switchman.xds.h2.connection.Connection` that runs its life; a mixin."""

    __slots__ = ("_goaway_last", "_idle_since", "_ping_sent", "_shut", "_timers", "closing", "draining")

    # What it reads of the connection.
    transport: asyncio.Transport | None
    settings: H2Settings
    server: H2Server
    h2: h2.connection.H2Connection
    calls: dict[int, Any]
    _paused: bool
    _peer: str
    _last_read: float
    _last_stream: int

    def __init__(self) -> None:
        self.closing = False  # nothing more is read or served; the connection is going away
        self.draining = False  # GOAWAY sent: no new calls, the open ones go on
        self._shut = False  # our side is half-closed (or gone): nothing more is written
        self._timers: dict[str, asyncio.TimerHandle] = {}  # keepalive, age, grace, idle, stall, linger
        self._ping_sent: float | None = None
        self._idle_since = time.monotonic()
        self._goaway_last: int | None = None  # what the GOAWAY sent named, if one was

    def flush(self) -> None:
        raise NotImplementedError

    def _finish_now(self, call: Any, code: Code, message: str) -> None:
        raise NotImplementedError

    def _drop_calls(self) -> None:
        raise NotImplementedError

    def _start_timers(self) -> None:
        settings = self.settings
        if settings.keepalive_seconds > 0:
            self._later("keepalive", settings.keepalive_seconds, self._keepalive)
        age = settings.max_connection_age_seconds
        if age is not None:
            # +-10 % so that clients connected together do not all reconnect together
            jitter = 1 + (int.from_bytes(os.urandom(2), "big") / 65535 - 0.5) / 5
            self._later("age", age * jitter, self._aged)
        self._idle()

    def _later(self, name: str, delay: float, callback: Callable[[], object]) -> None:
        self._cancel(name)
        self._timers[name] = asyncio.get_running_loop().call_later(delay, callback)

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _abuse(self, reason: str | None) -> None:
        """A flood limit was crossed: GOAWAY with ENHANCE_YOUR_CALM, and close."""
        if reason is None or self.closing:
            return
        log.info("connection from %s: %s: GOAWAY ENHANCE_YOUR_CALM", self._peer, reason)
        self.server.refused(reason)
        self._goaway(ErrorCodes.ENHANCE_YOUR_CALM, reason)
        self._abort(graceful=True)

    def _turn_away(self, reason: str) -> None:
        """Over a connection limit: the server's SETTINGS, a GOAWAY saying why, and the end of the connection."""
        log.info("connection from %s refused: %s", self._peer, reason)
        self.server.refused(reason)
        self._goaway(ErrorCodes.ENHANCE_YOUR_CALM, reason)
        self._abort(graceful=True, linger=_TURNED_AWAY_LINGER)

    def _goaway(self, code: ErrorCodes, reason: str = "") -> None:
        """GOAWAY naming the last stream processed, written here: h2's would stop it sending anything after."""
        self.flush()  # what h2 has framed goes first
        last = self._last_stream if self._goaway_last is None else min(self._goaway_last, self._last_stream)
        self._goaway_last = last
        frame = GoAwayFrame(0, last_stream_id=last, error_code=code, additional_data=reason.encode()[:256])
        if self.transport is not None and not self._shut:
            self.transport.write(frame.serialize())

    def _aged(self) -> None:
        """Maximum age: GOAWAY, then the calls have their grace period (as grpc's max_connection_age_grace)."""
        self._timers.pop("age", None)
        if self.closing or self.draining:
            return
        grace = self.settings.max_connection_age_grace_seconds
        log.info("connection from %s reached its maximum age: GOAWAY, %g s for its %d calls", self._peer, grace,
                 len(self.calls))
        self.draining = True
        self._goaway(ErrorCodes.NO_ERROR, "max_age")
        if not self.calls:
            self._abort(graceful=True)
            return
        self._later("grace", grace, lambda: self.close(Code.UNAVAILABLE, "max connection age"))

    def _idle(self) -> None:
        """No calls from now: the connection goes when it stays so ``max_connection_idle_seconds``."""
        idle = self.settings.max_connection_idle_seconds
        self._idle_since = time.monotonic()
        if idle is not None and "idle" not in self._timers:
            self._later("idle", idle, self._idle_check)

    def _idle_check(self) -> None:
        self._timers.pop("idle", None)
        idle = self.settings.max_connection_idle_seconds
        if self.closing or self.draining or self.calls or idle is None:
            return  # a call ending arms it again
        left = idle - (time.monotonic() - self._idle_since)
        if left > 0:
            self._later("idle", left, self._idle_check)
            return
        log.info("connection from %s idle for %g s: closed", self._peer, idle)
        self.server.refused("idle")
        self._goaway(ErrorCodes.NO_ERROR, "max_idle")
        self._abort(graceful=True)

    def _stalled(self) -> None:
        self._timers.pop("stall", None)
        if self.transport is None or not self._paused:
            return
        log.info("connection from %s has taken nothing for %g s: closed", self._peer,
                 self.settings.max_write_stall_seconds)
        self.server.refused("write_stall")
        self._abort()

    def _keepalive(self) -> None:
        """Ping a connection that has been quiet; drop it when the ping goes unanswered."""
        self._timers.pop("keepalive", None)
        if self.transport is None or self.closing:
            return
        now = time.monotonic()
        interval = self.settings.keepalive_seconds
        if self._ping_sent is not None and now - self._ping_sent > self.settings.keepalive_timeout_seconds:
            log.info("connection from %s: keepalive ping unanswered, closing", self._peer)
            self._abort()
            return
        if self._ping_sent is None and now - self._last_read >= interval:
            self.h2.ping(os.urandom(8))
            self._ping_sent = now
            self.flush()
        wait = self.settings.keepalive_timeout_seconds if self._ping_sent is not None else interval
        self._later("keepalive", wait, self._keepalive)

    def close(self, code: Code = Code.UNAVAILABLE, message: str = "the server is stopping") -> None:
        """GOAWAY, end every call with ``code`` (clients reconnect), and close once that is written."""
        if self.transport is None or self.closing:
            return
        self.draining = True
        self._goaway(ErrorCodes.NO_ERROR)
        self.closing = True  # from here the calls' ends do not close the connection one by one
        for call in list(self.calls.values()):
            self._finish_now(call, code, message)
        self.flush()
        self._abort(graceful=True)

    def abort(self) -> None:
        """Drop the connection now."""
        self._abort()

    def _abort(self, graceful: bool = False, linger: float = _LINGER) -> None:
        """Close the connection: after what is written has gone out (``graceful``, then ``linger`` seconds at most),
        or at once."""
        self.closing = True
        self._drop_calls()
        transport = self.transport
        if transport is None:
            return
        if graceful:
            # What is written goes out, then our FIN; the client's bytes are read and dropped meanwhile
            # (data_received), so that the connection is not reset under the client's feet.
            try:
                if transport.can_write_eof() and not self._shut:
                    transport.write_eof()
                else:
                    transport.close()
            except OSError:  # the client is gone already
                transport.abort()
            self._shut = True
            self._later("linger", min(linger, self.settings.max_write_stall_seconds), transport.abort)
        else:
            self._shut = True
            transport.abort()
