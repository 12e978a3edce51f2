"""What a peer may make one connection do without asking for anything: the transport's flood limits.

Most HTTP/2 frames carry calls, and the limits on calls pay for them. The
others cost the server work and ask for nothing, and each has had its
denial-of-service advisory: PING floods (CVE-2019-9512), SETTINGS floods
(CVE-2019-9515), empty frames (CVE-2019-9518), PRIORITY and WINDOW_UPDATE
churn, and streams opened and reset at once, the "rapid reset"
(CVE-2023-44487). A :class:`Guard` keeps one connection's account of them;
each of its methods records one frame and says why the connection must go
(the reason goes out in a GOAWAY with ENHANCE_YOUR_CALM), or None.

* PINGs follow gRPC's own policy (grpc-core's ``min_recv_ping_interval_without_data``
  and ``max_ping_strikes``): a PING sooner than the interval after the last
  one, with no HEADERS or DATA sent in between, is a strike; one strike too
  many ends the connection ("too_many_pings", as gRPC clients expect).
* Streams the client resets before the server is done with them, and
  streams refused for being over the concurrency limit, spend a token
  bucket: a client may cancel every stream it may have open at once, then a
  steady rate.
* SETTINGS, PRIORITY, empty DATA frames, unknown frame types and
  WINDOW_UPDATEs beyond what the data the server sent explains (two per
  DATA frame: one for the stream, one for the connection) spend a second
  bucket; a SETTINGS frame costs more, as it may touch every stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["Budget", "FloodLimits", "Guard"]

SETTINGS_COST: Final = 10.0  # a SETTINGS frame may change every stream's window
_WINDOW_UPDATES_PER_DATA: Final = 2
_MAX_WINDOW_CREDIT: Final = 100_000


class Budget:
    """Tokens that refill at ``rate`` a second up to ``burst``: what a peer may spend at once and over time."""

    __slots__ = ("_at", "_burst", "_rate", "_tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = now

    def spend(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens; False (taking none) when there are not enough."""
        tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if tokens < cost:
            self._tokens = tokens
            return False
        self._tokens = tokens - cost
        return True


@dataclass(frozen=True, slots=True)
class FloodLimits:
    """The limits of :class:`Guard` (see the module's docstring)."""

    min_ping_interval_seconds: float = 5.0
    max_ping_strikes: int = 2
    max_stream_resets_per_second: float = 100.0
    stream_reset_burst: int = 1000  # the concurrency limit: a client may cancel all it has open at once
    max_control_frames_per_second: float = 100.0

    @property
    def control_burst(self) -> float:
        return 10 * self.max_control_frames_per_second


class Guard:
    """One connection's account of the frames that cost the server without carrying calls."""

    __slots__ = ("_control", "_last_ping", "_limits", "_resets", "_strikes", "_window_credit")

    def __init__(self, limits: FloodLimits) -> None:
        self._limits = limits
        self._last_ping: float | None = None
        self._strikes = 0
        self._window_credit = 0
        self._resets: Budget | None = None  # made at first use: most connections never need them
        self._control: Budget | None = None

    def sent(self, data_frames: int = 0) -> None:
        """The server sent HEADERS or ``data_frames`` DATA frames: PINGs are welcome again, WINDOW_UPDATEs earned."""
        self._strikes = 0
        self._last_ping = None
        if data_frames:
            self._window_credit = min(_MAX_WINDOW_CREDIT, self._window_credit + _WINDOW_UPDATES_PER_DATA * data_frames)

    def ping(self, now: float) -> str | None:
        last, self._last_ping = self._last_ping, now
        if last is not None and now - last < self._limits.min_ping_interval_seconds:
            self._strikes += 1
            if self._strikes > self._limits.max_ping_strikes:
                return "too_many_pings"
        return None

    def reset(self, now: float) -> str | None:
        """A stream reset by the client before the server was done with it, or refused for going over the limit."""
        if self._resets is None:
            limits = self._limits
            self._resets = Budget(limits.max_stream_resets_per_second, limits.stream_reset_burst, now)
        return None if self._resets.spend(now) else "too_many_resets"

    def control(self, now: float, cost: float = 1.0) -> str | None:
        """A SETTINGS (``SETTINGS_COST``), PRIORITY, empty DATA or unknown frame."""
        if self._control is None:
            limits = self._limits
            self._control = Budget(limits.max_control_frames_per_second, limits.control_burst, now)
        return None if self._control.spend(now, cost) else "control_frame_flood"

    def window_update(self, now: float) -> str | None:
        if self._window_credit > 0:
            self._window_credit -= 1
            return None
        return self.control(now)
