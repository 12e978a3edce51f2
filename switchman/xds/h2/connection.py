"""One HTTP/2 connection speaking gRPC to xDS clients: callbacks only, no task per stream.

The ``h2`` library keeps the HTTP/2 state (frames, HPACK, flow control);
this class maps its events to calls of the :mod:`~switchman.xds.server.methods`
table. A stream call drives a :class:`~switchman.xds.server.stream.Stream`
directly: a request is parsed and handed to it, and what it answers is framed
and sent at once; the cache's wake-ups are gathered per connection and
answered in one pass, with one write to the socket (gRPC's framing:
:mod:`~switchman.xds.h2.protocol`).

What a client can make a connection hold is bounded (the limits are
:class:`~switchman.xds.h2.server.H2Settings`):

* Responses. A call asks its stream for responses ("pulls") only when the
  connection holds less than ``max_send_buffer_bytes`` its client has not
  taken, the socket is not paused, and the call has nothing left to send: a
  stream waits, losing nothing (it answers with the state of the moment
  when it is pulled). So a connection holds at most that limit, one pull's
  responses and the socket's high-water mark. The socket pauses
  (``pause_writing``) past its high-water mark; the connection then stops
  reading too (the client can no longer make it answer PINGs or SETTINGS),
  and is dropped when it stays paused ``max_write_stall_seconds``.
* Requests. Unfinished requests of all its calls, and whole unary requests
  not yet answered, at most ``max_connection_buffer_bytes``; a call's first
  request, and any request once begun, must arrive within
  ``request_timeout_seconds`` (DEADLINE_EXCEEDED).
* Streams. At most ``max_concurrent_streams`` (as advertised): one more is
  refused with RST_STREAM(REFUSED_STREAM) (RFC 9113, 5.1.2), as is any
  stream after a GOAWAY. A call the server ended while the client still
  sends is reset with NO_ERROR (RFC 9113, 8.1), so that HTTP/2 forgets it.
* Frames that ask for nothing (PING, SETTINGS, PRIORITY, empty DATA,
  resets): :mod:`~switchman.xds.h2.guard`; over its limits, GOAWAY with
  ENHANCE_YOUR_CALM. Header blocks: ``max_header_list_bytes`` (HPACK), and
  h2's own limit of 64 CONTINUATION frames.

A ``grpc-timeout`` ends its call with DEADLINE_EXCEEDED when it passes, for
streams as for unary calls (as gRPC does). Timers, GOAWAY and closing:
:mod:`~switchman.xds.h2.lifetime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from google.protobuf.message import DecodeError, Message
from h2.errors import ErrorCodes

from switchman.errors import PermissionDenied, ProtocolError
from switchman.xds.h2.calls import Call
from switchman.xds.h2.guard import SETTINGS_COST, Guard
from switchman.xds.h2.lifetime import Lifetime
from switchman.xds.h2.protocol import HEADERS, MalformedTimeout, metadata, parse_timeout, trailers
from switchman.xds.server.methods import (
    AsyncUnaryMethod,
    CallError,
    Code,
    Metadata,
    StreamMethod,
)
from switchman.xds.server.peer import ANONYMOUS, Peer

if TYPE_CHECKING:
    from switchman.xds.h2.server import H2Server

__all__ = ["Connection"]

log = logging.getLogger(__name__)
# hpack logs every decoded header at DEBUG, bearer tokens included: tokens are never logged.
logging.getLogger("hpack").setLevel(logging.INFO)

_CONFIG: Final = h2.config.H2Configuration(
    client_side=False, header_encoding=None,
    validate_inbound_headers=True, normalize_inbound_headers=True,
    # what we send is a handful of constant headers
    validate_outbound_headers=False, normalize_outbound_headers=False,
)
_HIGH_WATER: Final = 256 * 1024  # the socket's write buffer: pause_writing above, resume_writing below a quarter
_MAX_FRAME: Final = 16 * 1024  # DATA frames no larger than the default, whatever the client allows
_UNLIMITED: Final = 2**31 - 1


class _H2Connection(h2.connection.H2Connection):
    # h2 remembers how each closed stream ended, for frames still in flight: 2**16 by default, some
    # megabytes for a connection that has seen that many streams. The last few thousand are enough.
    MAX_CLOSED_STREAMS = 4096


class Connection(Lifetime, asyncio.Protocol):
    """One client connection of an :class:`~switchman.xds.h2.server.H2Server` (its life: :class:`Lifetime`)."""

    __slots__ = (
        "_blocked", "_buffered", "_deferred", "_framed", "_fresh", "_last_read", "_last_stream", "_paused", "_peer",
        "_unsent",
        "_wake_scheduled", "_woken", "address_key", "calls", "guard", "h2", "peer", "server", "settings", "transport",
    )

    def __init__(self, server: H2Server) -> None:
        super().__init__()
        self.server = server
        self.settings = server.settings
        self.h2 = _H2Connection(_CONFIG)
        self.transport: asyncio.Transport | None = None
        self.guard = Guard(self.settings.floods)
        self.calls: dict[int, Call] = {}
        self._blocked: dict[int, Call] = {}  # calls whose outbox waits for a window or for the socket
        self._deferred: dict[int, Call] = {}  # calls to pull once the connection has room (first in, first out)
        self._woken: list[Call] = []
        self._fresh: list[Call] = []  # calls opened in this read
        self._wake_scheduled = False
        self._last_read = time.monotonic()
        self._buffered = 0  # request bytes held by all calls: unfinished messages, unanswered unary requests
        self._unsent = 0  # response bytes in all outboxes, not yet handed to h2
        self._framed = 0  # bytes framed since the last write to the socket
        self._paused = False  # the socket's buffer is past its high-water mark
        self._last_stream = 0  # the highest stream processed, as GOAWAY names it
        self._peer = "?"
        self.address_key = "?"  # what the server counts its connections by (set when it admits it)
        self.peer: Peer = ANONYMOUS  # the client's certificate identity, over mutual TLS

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) else "?"
        self._peer = f"{host}:{peer[1]}" if isinstance(peer, tuple) else "?"
        # asyncio calls connection_made after the TLS handshake: the certificate (verified against the
        # client CA, or absent) is known here. getpeercert() is empty when the server asks for none.
        ssl_object = transport.get_extra_info("ssl_object")
        cert = ssl_object.getpeercert() if ssl_object is not None else None
        if cert:
            self.peer = Peer.of_certificate(cert)
        settings = self.settings
        h2c = self.h2
        h2c.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_bytes,
        })
        h2c.decoder.max_header_list_size = settings.max_header_list_bytes
        h2c.initiate_connection()  # the SETTINGS frame says what was set above
        # h2 answers a stream over MAX_CONCURRENT_STREAMS with a connection error (GOAWAY, PROTOCOL_ERROR);
        # RFC 9113 (5.1.2) wants a stream error, which _request sends itself. So h2's own check never fires.
        h2c.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: _UNLIMITED,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_bytes,
        })
        refusal = self.server.admit(self, host)
        if refusal is not None:
            self._turn_away(refusal)
            return
        transport.set_write_buffer_limits(high=_HIGH_WATER, low=_HIGH_WATER // 4)
        self.flush()
        self._start_timers()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._drop_calls()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.server.connection_gone(self)
        self.transport = None

    def pause_writing(self) -> None:
        """The client does not take what is written: stop writing responses, and stop reading what it sends."""
        self._paused = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self._later("stall", self.settings.max_write_stall_seconds, self._stalled)

    def resume_writing(self) -> None:
        self._paused = False
        self._cancel("stall")
        if self.transport is None or self.closing:
            return
        self.transport.resume_reading()
        self._window(0)
        self._after()

    def data_received(self, data: bytes) -> None:
        if self.closing:  # turned away, or going: what the client still sends is dropped
            return
        now = self._last_read = time.monotonic()
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:  # h2 has queued a GOAWAY naming the error
            big = isinstance(exc, h2.exceptions.DenialOfServiceError)
            log.info("HTTP/2 connection error from %s: %s", self._peer, exc)
            self.server.refused("header_list_size" if big else "protocol_error")
            self.flush()
            self._abort(graceful=True)
            return
        guard = self.guard
        # Streams reset in this same read are not served at all: the "rapid reset" pattern (HEADERS then
        # RST_STREAM) costs the server nothing but the count against the client's budget.
        cancelled = {e.stream_id for e in events if type(e) is h2.events.StreamReset}
        event: Any
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._data(event, now)
            elif kind is h2.events.RequestReceived:
                if event.stream_id in cancelled:
                    self._abuse(guard.reset(now))
                else:
                    self._request(event, now)
            elif kind is h2.events.WindowUpdated:
                self._window(event.stream_id)
                self._abuse(guard.window_update(now))
            elif kind is h2.events.StreamEnded:
                self._half_closed(event.stream_id)
            elif kind is h2.events.StreamReset:
                self._reset(event.stream_id, now)
            elif kind is h2.events.RemoteSettingsChanged:
                if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                    self._window(0)  # it may have widened every window
                self._abuse(guard.control(now, SETTINGS_COST))
            elif kind is h2.events.PingReceived:
                self._abuse(guard.ping(now))
            elif kind is h2.events.PingAckReceived:
                self._ping_sent = None
            elif kind is h2.events.ConnectionTerminated:
                self.flush()
                self._abort(graceful=True)
                return
            elif kind in (h2.events.PriorityUpdated, h2.events.UnknownFrameReceived, h2.events.SettingsAcknowledged,
                          h2.events.AlternativeServiceAvailable):
                self._abuse(guard.control(now))
            if self.closing:  # a call or a limit ended the connection
                return
        if self._fresh:
            fresh, self._fresh = self._fresh, []
            for call in fresh:
                if self.calls.get(call.id) is call:
                    self._time_request(call)
        self._after()

    # -- sending ---------------------------------------------------------------

    def flush(self) -> None:
        """Write whatever h2 has framed."""
        self._framed = 0
        out = self.h2.data_to_send()
        transport = self.transport
        if out and transport is not None and not self._shut:
            transport.write(out)
            if transport.get_write_buffer_size() > self.settings.max_send_buffer_bytes + _HIGH_WATER:
                # Only frames the client makes us answer while it does not read get here (data waits).
                log.info("connection from %s: %d bytes it does not read: closed", self._peer,
                         transport.get_write_buffer_size())
                self.server.refused("send_buffer")
                self._abort()

    def _after(self) -> None:
        """After an event: pull what has room now, and write."""
        self._pump()
        self.flush()

    def _can_send(self) -> bool:
        return not self._paused and self._unsent < self.settings.max_send_buffer_bytes

    def _send(self, call: Call, message: bytes) -> None:
        try:
            self._frame(call, message)
        except h2.exceptions.ProtocolError:  # the client reset or dropped the stream meanwhile
            self._end(call)

    def _frame(self, call: Call, message: bytes) -> None:
        if not call.started:
            self.h2.send_headers(call.id, HEADERS)
            call.started = True
            self.guard.sent()
        framed = b"\0" + len(message).to_bytes(4, "big") + message
        call.outbox = call.outbox[call.sent:] + framed if call.outbox else framed
        call.sent = 0
        self._unsent += len(framed)
        self._drain(call)

    def _drain(self, call: Call) -> None:
        """As much of the outbox as the windows and the socket allow; the trailers once it is all out."""
        outbox, sent = call.outbox, call.sent
        h2c = self.h2
        # Large responses go out frame by frame: slices of a view, not copies of the rest each time.
        data = memoryview(outbox) if len(outbox) - sent > _MAX_FRAME else outbox
        frames = 0
        while sent < len(outbox) and not self._paused:
            size = min(len(outbox) - sent, h2c.local_flow_control_window(call.id), h2c.max_outbound_frame_size,
                       _MAX_FRAME)
            if size <= 0:
                break
            h2c.send_data(call.id, data[sent:sent + size] if sent or size < len(outbox) else outbox)
            sent += size
            frames += 1
            self._framed += size
            if self._framed >= _HIGH_WATER:
                self.flush()  # the socket may pause us
        self._unsent -= sent - call.sent
        if frames:
            self.guard.sent(frames)
        if sent < len(outbox):
            call.sent = sent
            call.partial = call.partial or sent > 0
            self._blocked[call.id] = call
            return
        call.outbox, call.sent, call.partial = b"", 0, False
        self._blocked.pop(call.id, None)
        if call.finishing is not None:
            h2c.send_headers(call.id, call.finishing, end_stream=True)
            self._end(call)
        elif call.pull_owed:
            call.pull_owed = False
            self._deferred[call.id] = call

    def _finish(self, call: Call, code: Code, message: str = "", extra: Metadata = ()) -> None:
        """End ``call`` with ``code``: trailers after whatever is still in its outbox."""
        if call.finishing is not None:
            return
        if code is not Code.OK:
            log.info("call %s on %s ended: %s %s", call.method.path, self._peer, code.name, message)
        ending = trailers(code, message, extra)
        try:
            if not call.started:
                self.h2.send_headers(call.id, [*HEADERS, *ending], end_stream=True)
                self._end(call)
                return
            call.finishing = ending
            self._forget(call)  # nothing more for it to say: stop watching while the outbox drains
            self._drain(call)
        except h2.exceptions.ProtocolError:
            self._end(call)

    def _finish_now(self, call: Call, code: Code, message: str) -> None:
        """End ``call`` at once: what it has not sent is dropped (a response cut in the middle is reset)."""
        if call.outbox and call.partial:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.reset_stream(call.id, ErrorCodes.CANCEL)
            log.info("call %s on %s reset: %s %s", call.method.path, self._peer, code.name, message)
            self._end(call)
            return
        self._drop_outbox(call)
        call.finishing = None
        self._finish(call, code, message)

    def _drop_outbox(self, call: Call) -> None:
        self._unsent -= len(call.outbox) - call.sent
        call.outbox, call.sent, call.partial = b"", 0, False
        self._blocked.pop(call.id, None)

    def _end(self, call: Call) -> None:
        """The call is over: forget it, and make sure HTTP/2 forgets its stream too."""
        if self.calls.get(call.id) is call:
            del self.calls[call.id]
        self._drop_outbox(call)
        self._forget(call)
        stream = self.h2.streams.get(call.id)
        if stream is not None and not stream.closed:  # the client still sends: RFC 9113 8.1, NO_ERROR
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.reset_stream(call.id, ErrorCodes.NO_ERROR)
        if not self.calls and not self.closing:
            if self.draining:
                self.flush()
                self._abort(graceful=True)
            else:
                self._idle()

    def _forget(self, call: Call) -> None:
        """Stop everything the call runs: its timers, its handler, its stream's watch; release its requests."""
        self._buffered -= len(call.buffer) + call.held
        call.buffer.clear()
        call.held = 0
        call.answer_owed = call.pull_owed = False
        self._deferred.pop(call.id, None)
        for timer in (call.timer, call.deadline):
            if timer is not None:
                timer.cancel()
        call.timer = call.deadline = None
        task, call.task = call.task, None
        if task is not None and not task.done():
            task.cancel()
        stream, call.stream = call.stream, None
        if stream is not None:
            stream.waker = None
            stream.closed()

    def _window(self, stream_id: int) -> None:
        calls = list(self._blocked.values()) if stream_id == 0 else [self._blocked.get(stream_id)]
        for call in calls:
            if call is not None and self.calls.get(call.id) is call:
                try:
                    self._drain(call)
                except h2.exceptions.ProtocolError:
                    self._end(call)

    # -- requests ----------------------------------------------------------------

    def _request(self, event: Any, now: float) -> None:
        stream_id = event.stream_id
        over = len(self.calls) >= self.settings.max_concurrent_streams
        if over or (self._goaway_last is not None and stream_id > self._goaway_last):
            # Not processed: the client may retry it elsewhere (RFC 9113, 5.1.2 and 6.8).
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            if over:
                self.server.refused("streams")
            self._abuse(self.guard.reset(now))
            return
        self._last_stream = stream_id
        headers: Mapping[bytes, bytes] = dict(event.headers)
        path = headers.get(b":path", b"").decode("utf-8", "replace")
        method = self.server.methods.get(path)
        content_type = headers.get(b"content-type", b"")
        if method is None:
            self._refuse(stream_id, [*HEADERS, *trailers(Code.UNIMPLEMENTED, f"unknown method {path}")])
            return
        if headers.get(b":method") != b"POST" or not (
            content_type == b"application/grpc" or content_type.startswith((b"application/grpc+", b"application/grpc;"))
        ):
            self._refuse(stream_id, [(b":status", b"415")])
            return
        timeout = headers.get(b"grpc-timeout")
        seconds = None
        if timeout is not None:
            try:
                seconds = parse_timeout(timeout)
            except MalformedTimeout as exc:  # as grpc-go answers it
                self._refuse(stream_id, [*HEADERS, *trailers(Code.INTERNAL, str(exc))])
                return
        call_metadata = metadata(headers)
        if method.guard is not None:
            try:
                method.guard(call_metadata, self.peer)
            except CallError as exc:
                self._refuse(stream_id, [*HEADERS, *trailers(exc.code, exc.message, exc.trailers)])
                return
        call = self.calls[stream_id] = Call(stream_id, method, call_metadata)
        self._fresh.append(call)  # its request timer, if this read did not bring its request whole
        if seconds is not None:
            call.deadline = asyncio.get_running_loop().call_later(seconds, self._deadline, call)
        if isinstance(method, StreamMethod):
            stream = call.stream = method.stream(self.peer)
            stream.waker = lambda: self._wake(call)
            stream.opened()

    def _refuse(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Answer a request with ``headers`` alone, ending its stream (and the client's side of it)."""
        with contextlib.suppress(h2.exceptions.ProtocolError):  # the client may have reset it already
            self.h2.send_headers(stream_id, headers, end_stream=True)
            stream = self.h2.streams.get(stream_id)
            if stream is not None and not stream.closed:
                self.h2.reset_stream(stream_id, ErrorCodes.NO_ERROR)

    def _data(self, event: Any, now: float) -> None:
        stream_id = event.stream_id
        # The window goes back at once: what a call holds unread is bounded by the message limit,
        # and what the connection holds by its own limit.
        self.h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
        if not event.data and event.stream_ended is None:  # an empty frame asks for nothing
            self._abuse(self.guard.control(now))
        call = self.calls.get(stream_id)
        if call is None or call.finishing is not None:
            return
        if self._buffered + len(event.data) > self.settings.max_connection_buffer_bytes:
            self._finish(call, Code.RESOURCE_EXHAUSTED, "this connection holds too many unfinished requests")
            return
        self._buffered += len(event.data)
        try:
            messages, taken = call.take(event.data, self.settings.max_request_bytes)
        except CallError as exc:
            self._finish(call, exc.code, exc.message)
            return
        self._buffered -= taken
        for message in messages:
            if not self._message(call, message):
                return
        self._time_request(call)
        if messages and call.stream is not None:
            self._pull(call)

    def _time_request(self, call: Call) -> None:
        """Run the request timer while the call waits for a request: its first one, or the rest of one begun."""
        if call.finishing is None and call.waiting:
            if call.timer is None:
                call.timer = asyncio.get_running_loop().call_later(
                    self.settings.request_timeout_seconds, self._request_timed_out, call)
        elif call.timer is not None:
            call.timer.cancel()
            call.timer = None

    def _message(self, call: Call, data: bytes) -> bool:
        """Hand one request to the call; False when that ended the call."""
        try:
            request = call.method.parse(data)
        except DecodeError as exc:
            self._finish(call, Code.INVALID_ARGUMENT, f"cannot parse the request: {exc}")
            return False
        if call.stream is None:
            if call.request is not None:
                self._finish(call, Code.INVALID_ARGUMENT, "a unary call takes one request")
                return False
            call.request = request
            call.held = len(data)
            self._buffered += call.held
            return True
        call.fed = True
        try:
            call.stream.receive(request)
        except PermissionDenied as exc:
            self._finish(call, Code.PERMISSION_DENIED, str(exc))
            return False
        except ProtocolError as exc:
            self._finish(call, Code.INVALID_ARGUMENT, str(exc))
            return False
        except CallError as exc:
            self._finish(call, exc.code, exc.message, exc.trailers)
            return False
        except Exception as exc:
            self._bug(call, f"stream {call.stream.id} on a request", exc)
            return False
        return True

    def _bug(self, call: Call, what: str, exc: Exception) -> None:
        """A handler raised what it should not: log it, end this call with INTERNAL, keep the connection."""
        log.error("%s failed", what, exc_info=exc)
        self._finish(call, Code.INTERNAL, f"internal error: {type(exc).__name__}")

    def _pull(self, call: Call) -> None:
        """Send what the call has to say now: its stream's responses, or a unary call's answer; or defer it."""
        if call.finishing is not None or self.calls.get(call.id) is not call:
            return
        if call.outbox:  # the last responses are still going out: the next ones wait for them
            call.pull_owed = True
            return
        if not self._can_send():
            self._deferred[call.id] = call
            return
        self._deferred.pop(call.id, None)
        stream = call.stream
        if stream is None:
            if call.answer_owed:
                call.answer_owed = False
                self._answer(call)
            return
        try:
            responses = stream.responses()
        except Exception as exc:
            self._bug(call, f"stream {stream.id}", exc)
            return
        for response in responses:
            if self.calls.get(call.id) is not call:  # the send ended it (the client reset it)
                return
            self._send(call, response)

    def _pump(self) -> None:
        """Pull deferred calls, first come first served, while the connection has room."""
        deferred = self._deferred
        while deferred and self._can_send():
            self._pull(deferred.pop(next(iter(deferred))))

    def _half_closed(self, stream_id: int) -> None:
        """The client sent its last message: a fetch or a client-streaming call is answered, a stream ends
        (as grpc.aio's would)."""
        call = self.calls.get(stream_id)
        if call is None or call.finishing is not None:
            return
        call.half_closed = True
        if call.buffer:
            self._finish(call, Code.INTERNAL, "the request stream ended inside a message")
            return
        method = call.method
        if isinstance(method, StreamMethod):
            if method.final is not None:  # a client-streaming call answers once, at the client's end
                self._reply(call, method.final)
            else:
                self._finish(call, Code.OK)
            return
        if call.request is None:
            self._finish(call, Code.INVALID_ARGUMENT, "a unary call takes one request")
            return
        self._time_request(call)
        call.answer_owed = True
        self._pull(call)

    def _answer(self, call: Call) -> None:
        """A unary call's answer: at once for a fetch, from a task for an async method."""
        method, request = call.method, call.request
        assert request is not None
        if isinstance(method, AsyncUnaryMethod):
            call.task = asyncio.get_running_loop().create_task(self._run(call, method, request))
            return
        assert not isinstance(method, StreamMethod)
        try:
            response = method.fetch(request, self.peer)
        except CallError as exc:
            self._finish(call, exc.code, exc.message, exc.trailers)
        except Exception as exc:
            self._bug(call, method.path, exc)
        else:
            self._reply(call, response)

    async def _run(self, call: Call, method: AsyncUnaryMethod, request: Message) -> None:
        """Run an async unary call's handler and send what it answers, unless the call ended meanwhile."""
        try:
            response = await method.call(request, call.metadata, self.peer)
        except CallError as exc:
            if self._still_open(call):
                self._finish(call, exc.code, exc.message, exc.trailers)
        except Exception as exc:
            if self._still_open(call):
                self._bug(call, method.path, exc)
        else:
            if self._still_open(call):
                self._reply(call, response)
        if not self.closing:
            self._after()

    def _still_open(self, call: Call) -> bool:
        """Is ``call`` still to be answered (not reset, the connection not closing)? Its handler is done."""
        call.task = None
        return self.calls.get(call.id) is call and not self.closing

    def _reply(self, call: Call, response: bytes) -> None:
        """A unary call's one response, then OK."""
        self._send(call, response)
        if self.calls.get(call.id) is call:
            self._finish(call, Code.OK)

    def _reset(self, stream_id: int, now: float) -> None:
        call = self.calls.get(stream_id)
        if call is not None:
            premature = call.finishing is None  # the server was not done with it: CVE-2023-44487's pattern
            self._end(call)
            if premature:
                self._abuse(self.guard.reset(now))

    def _request_timed_out(self, call: Call) -> None:
        call.timer = None
        if self.calls.get(call.id) is not call or call.finishing is not None:
            return
        limit = self.settings.request_timeout_seconds
        if call.buffer:
            why = f"a request did not arrive whole within {limit:g} s"
        elif call.stream is not None:
            why = f"no request within {limit:g} s"
        else:
            why = f"no whole request within {limit:g} s"
        self.server.refused("request_timeout")
        self._finish_now(call, Code.DEADLINE_EXCEEDED, why)
        self._after()

    def _deadline(self, call: Call) -> None:
        """The client's grpc-timeout has passed."""
        call.deadline = None
        if self.calls.get(call.id) is call and call.finishing is None:
            self._finish_now(call, Code.DEADLINE_EXCEEDED, "deadline exceeded")
            self._after()

    # -- wake-ups from the cache ------------------------------------------------------

    def _wake(self, call: Call) -> None:
        self._woken.append(call)
        if not self._wake_scheduled:
            self._wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._answer_wakes)

    def _answer_wakes(self) -> None:
        self._wake_scheduled = False
        if self.closing:
            return
        woken, self._woken = self._woken, []
        self._pump()
        for call in woken:
            if self.calls.get(call.id) is call:
                self._pull(call)
        self.flush()

    def _drop_calls(self) -> None:
        """Forget every call (their streams stop watching the cache) and stop the timers but the linger one."""
        for name in [n for n in self._timers if n != "linger"]:
            self._cancel(name)
        calls, self.calls = self.calls, {}
        for call in calls.values():
            self._forget(call)
        self._blocked.clear()
        self._deferred.clear()
        self._woken.clear()
        self._unsent = 0

    def buffered_bytes(self) -> int:
        """Responses not yet taken by the client (outboxes, socket buffer), and requests not yet whole or answered."""
        transport = self.transport
        socket_bytes = transport.get_write_buffer_size() if transport is not None else 0
        return self._unsent + self._buffered + socket_bytes
