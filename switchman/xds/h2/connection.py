"""One HTTP/2 connection speaking gRPC to xDS clients: callbacks only, no task per stream.

The ``h2`` library keeps the HTTP/2 state (frames, HPACK, flow control);
this class maps its events to calls of the :mod:`~switchman.xds.server.methods`
table. A stream call drives a :class:`~switchman.xds.server.stream.Stream`
directly: a request is parsed and handed to it, and what it answers is framed
and sent at once; the cache's wake-ups are gathered per connection and
answered in one pass, with one write to the socket. A response goes out only
within the peer's flow-control windows; the rest waits in the call's outbox
for a WINDOW_UPDATE.

gRPC over HTTP/2 as the clients expect it: ``:status 200`` and
``content-type: application/grpc`` headers before the first message, each
message behind a 5-byte prefix (compressed flag, length), and trailers with
``grpc-status`` (and a percent-encoded ``grpc-message``) at the end, or
trailers only when a call fails before its first message. Client messages
larger than the request limit end the call with RESOURCE_EXHAUSTED;
compressed ones with UNIMPLEMENTED (the server announces no compression).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from google.protobuf.message import DecodeError, Message

from switchman.errors import ProtocolError
from switchman.xds.server.methods import (
    AnyMethod,
    AsyncUnaryMethod,
    CallError,
    Code,
    Metadata,
    StreamHandler,
    StreamMethod,
)

if TYPE_CHECKING:
    from switchman.xds.h2.server import H2Server

__all__ = ["Connection"]

log = logging.getLogger(__name__)
# hpack logs every decoded header at DEBUG, bearer tokens included: tokens are never logged.
logging.getLogger("hpack").setLevel(logging.INFO)

_HEADERS: Final = ((b":status", b"200"), (b"content-type", b"application/grpc"))
_OK: Final = ((b"grpc-status", b"0"),)
_PREFIX: Final = 5
_RESERVED: Final = frozenset({b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding",
                              b"user-agent", b"grpc-message-type"})
_CONFIG: Final = h2.config.H2Configuration(
    client_side=False, header_encoding=None,
    validate_inbound_headers=True, normalize_inbound_headers=True,
    # what we send is a handful of constant headers
    validate_outbound_headers=False, normalize_outbound_headers=False,
)


def _trailers(code: Code, message: str, extra: Metadata = ()) -> list[tuple[bytes, bytes]]:
    trailers = [(b"grpc-status", str(int(code)).encode())]
    if message:
        trailers.append((b"grpc-message", urllib.parse.quote(message, safe=" ").encode()))
    trailers += [(k.lower().encode("ascii"), v.encode("ascii", "replace")) for k, v in extra]
    return trailers


def _metadata(headers: Mapping[bytes, bytes]) -> Metadata:
    """The call's custom metadata: headers that are not pseudo-headers or gRPC's own (binary ones left out)."""
    return tuple(
        (k.decode("ascii", "replace"), v.decode("ascii", "replace")) for k, v in headers.items()
        if not k.startswith(b":") and k not in _RESERVED and not k.endswith(b"-bin")
    )


class _Call:
    """One gRPC call on the connection."""

    __slots__ = (
        "buffer", "finishing", "id", "metadata", "method", "outbox", "request", "sent", "started", "stream", "task",
    )

    def __init__(self, stream_id: int, method: AnyMethod, metadata: Metadata = ()) -> None:
        self.id = stream_id
        self.method = method
        self.metadata = metadata
        self.task: asyncio.Task[None] | None = None  # an async unary call's handler
        self.stream: StreamHandler | None = None
        self.request: Message | None = None  # a fetch's request, answered at the client's end of stream
        self.buffer = bytearray()  # request bytes not yet a whole message
        self.outbox = b""  # response bytes waiting for flow-control window
        self.sent = 0  # how much of the outbox has gone out already
        self.started = False  # response headers sent
        self.finishing: list[tuple[bytes, bytes]] | None = None  # trailers to send once the outbox is out


class Connection(asyncio.Protocol):
    """One client connection of an :class:`~switchman.xds.h2.server.H2Server`."""

    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.settings = server.settings
        self.h2 = h2.connection.H2Connection(_CONFIG)
        self.transport: asyncio.Transport | None = None
        self.calls: dict[int, _Call] = {}
        self._blocked: dict[int, _Call] = {}
        self._woken: list[_Call] = []
        self._wake_scheduled = False
        self._last_read = time.monotonic()
        self._buffered = 0  # request bytes held by all calls, not yet whole messages
        self._ping_sent: float | None = None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._age_timer: asyncio.TimerHandle | None = None
        self.closing = False  # no new calls; the connection is going away

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)
        self.h2.initiate_connection()
        self.h2.update_settings({
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.settings.max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 16 * 1024,
        })
        self.flush()
        loop = asyncio.get_running_loop()
        if self.settings.keepalive_seconds > 0:
            self._keepalive_timer = loop.call_later(self.settings.keepalive_seconds, self._keepalive)
        age = self.settings.max_connection_age_seconds
        if age is not None:
            # +-10 % so that clients connected together do not all reconnect together
            jitter = 1 + (int.from_bytes(os.urandom(2), "big") / 65535 - 0.5) / 5
            self._age_timer = loop.call_later(age * jitter, self.close, Code.UNAVAILABLE, "max connection age")

    def connection_lost(self, exc: Exception | None) -> None:
        self._drop_calls()
        self.server.connection_gone(self)
        self.transport = None

    def _drop_calls(self) -> None:
        """Forget every call (their streams stop watching the cache) and stop the timers."""
        for timer in (self._keepalive_timer, self._age_timer):
            if timer is not None:
                timer.cancel()
        self._keepalive_timer = self._age_timer = None
        calls, self.calls = self.calls, {}
        for call in calls.values():
            self._forget(call)
        self._blocked.clear()
        self._woken.clear()

    def data_received(self, data: bytes) -> None:
        self._last_read = time.monotonic()
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:  # h2 has queued a GOAWAY naming the error
            log.info("HTTP/2 connection error from %s: %s", self._peer(), exc)
            self.flush()
            self._abort()
            return
        if self.closing:
            return
        event: Any
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._data(event)
            elif kind is h2.events.RequestReceived:
                self._request(event)
            elif kind is h2.events.WindowUpdated:
                self._window(event.stream_id)
            elif kind is h2.events.StreamEnded:
                self._half_closed(event.stream_id)
            elif kind is h2.events.StreamReset:
                self._reset(event.stream_id)
            elif kind is h2.events.RemoteSettingsChanged:
                self._window(0)  # SETTINGS_INITIAL_WINDOW_SIZE may have widened every window
            elif kind is h2.events.PingAckReceived:
                self._ping_sent = None
            elif kind is h2.events.ConnectionTerminated:
                self.flush()
                self._abort(graceful=True)
                return
            if self.closing:  # a call ended the connection
                return
        self.flush()

    # -- sending ---------------------------------------------------------------

    def flush(self) -> None:
        """Write whatever h2 has framed."""
        out = self.h2.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)

    def _send(self, call: _Call, message: bytes) -> None:
        try:
            self._frame(call, message)
        except h2.exceptions.ProtocolError:  # the client reset or dropped the stream meanwhile
            self._end(call)

    def _frame(self, call: _Call, message: bytes) -> None:
        if not call.started:
            self.h2.send_headers(call.id, _HEADERS)
            call.started = True
        framed = b"\0" + len(message).to_bytes(4, "big") + message
        call.outbox = call.outbox[call.sent:] + framed if call.outbox else framed
        call.sent = 0
        self._drain(call)

    def _drain(self, call: _Call) -> None:
        """As much of the outbox as the windows allow; the trailers once it is all out."""
        outbox, sent = call.outbox, call.sent
        h2c = self.h2
        # Large responses go out frame by frame: slices of a view, not copies of the rest each time.
        data = memoryview(outbox) if len(outbox) - sent > h2c.max_outbound_frame_size else outbox
        while sent < len(outbox):
            size = min(len(outbox) - sent, h2c.local_flow_control_window(call.id), h2c.max_outbound_frame_size)
            if size <= 0:
                call.sent = sent
                self._blocked[call.id] = call
                return
            h2c.send_data(call.id, data[sent:sent + size] if sent or size < len(outbox) else outbox)
            sent += size
        call.outbox, call.sent = b"", 0
        self._blocked.pop(call.id, None)
        if call.finishing is not None:
            h2c.send_headers(call.id, call.finishing, end_stream=True)
            self._end(call)

    def _finish(self, call: _Call, code: Code, message: str = "", extra: Metadata = ()) -> None:
        """End ``call`` with ``code``: trailers after whatever is still in its outbox."""
        if call.finishing is not None:
            return
        if code is not Code.OK:
            log.info("call %s on %s ended: %s %s", call.method.path, self._peer(), code.name, message)
        trailers = _trailers(code, message, extra)
        try:
            if not call.started:
                self.h2.send_headers(call.id, [*_HEADERS, *trailers], end_stream=True)
                self._end(call)
                return
            call.finishing = trailers
            self._forget(call)  # nothing more for it to say: stop watching while the outbox drains
            self._drain(call)
        except h2.exceptions.ProtocolError:
            self._end(call)

    def _end(self, call: _Call) -> None:
        self.calls.pop(call.id, None)
        self._blocked.pop(call.id, None)
        self._forget(call)

    def _forget(self, call: _Call) -> None:
        self._buffered -= len(call.buffer)
        call.buffer.clear()
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
            if call is not None:
                try:
                    self._drain(call)
                except h2.exceptions.ProtocolError:
                    self._end(call)

    # -- requests ----------------------------------------------------------------

    def _request(self, event: Any) -> None:
        stream_id = event.stream_id
        headers: Mapping[bytes, bytes] = dict(event.headers)
        path = headers.get(b":path", b"").decode("utf-8", "replace")
        method = self.server.methods.get(path)
        content_type = headers.get(b"content-type", b"")
        if self.closing:
            self._refuse(stream_id, [*_HEADERS, *_trailers(Code.UNAVAILABLE, "the server is stopping")])
            return
        if method is None:
            self._refuse(stream_id, [*_HEADERS, *_trailers(Code.UNIMPLEMENTED, f"unknown method {path}")])
            return
        if headers.get(b":method") != b"POST" or not (
            content_type == b"application/grpc" or content_type.startswith((b"application/grpc+", b"application/grpc;"))
        ):
            self._refuse(stream_id, [(b":status", b"415")])
            return
        call = self.calls[stream_id] = _Call(stream_id, method, _metadata(headers))
        if isinstance(method, StreamMethod):
            stream = call.stream = method.stream()
            stream.waker = lambda: self._wake(call)
            stream.opened()

    def _refuse(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Answer a request with ``headers`` alone, ending its stream."""
        with contextlib.suppress(h2.exceptions.ProtocolError):  # the client may have reset it already
            self.h2.send_headers(stream_id, headers, end_stream=True)

    def _data(self, event: Any) -> None:
        stream_id = event.stream_id
        # The window goes back at once: what a call holds unread is bounded by the message limit,
        # and what the connection holds by its own limit.
        self.h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
        call = self.calls.get(stream_id)
        if call is None or call.finishing is not None:
            return
        if self._buffered + len(event.data) > self.settings.max_connection_buffer_bytes:
            self._finish(call, Code.RESOURCE_EXHAUSTED, "this connection holds too many unfinished requests")
            return
        buffer = call.buffer
        buffer += event.data
        self._buffered += len(event.data)
        limit = self.settings.max_request_bytes
        got = False
        start = 0
        while len(buffer) - start >= _PREFIX:
            size = int.from_bytes(buffer[start + 1:start + 5], "big")
            if buffer[start]:
                self._finish(call, Code.UNIMPLEMENTED, "compressed requests are not supported")
                return
            if size > limit:
                self._finish(call, Code.RESOURCE_EXHAUSTED, f"request of {size} bytes exceeds the limit of {limit}")
                return
            if len(buffer) - start < _PREFIX + size:
                break
            message = bytes(buffer[start + _PREFIX:start + _PREFIX + size])
            start += _PREFIX + size
            if not self._message(call, message):
                return
            got = True
        del buffer[:start]
        self._buffered -= start
        if got and call.stream is not None:
            self._pull(call)

    def _message(self, call: _Call, data: bytes) -> bool:
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
            return True
        try:
            call.stream.receive(request)
        except ProtocolError as exc:
            self._finish(call, Code.INVALID_ARGUMENT, str(exc))
            return False
        except Exception as exc:
            self._bug(call, f"stream {call.stream.id} on a request", exc)
            return False
        return True

    def _bug(self, call: _Call, what: str, exc: Exception) -> None:
        """A handler raised what it should not: log it, end this call with INTERNAL, keep the connection."""
        log.error("%s failed", what, exc_info=exc)
        self._finish(call, Code.INTERNAL, f"internal error: {type(exc).__name__}")

    def _pull(self, call: _Call) -> None:
        """Send what the call's stream has to say now."""
        stream = call.stream
        if stream is None or call.finishing is not None:
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

    def _half_closed(self, stream_id: int) -> None:
        """The client sent its last message: a fetch or a client-streaming call is answered, a stream ends
        (as grpc.aio's would)."""
        call = self.calls.get(stream_id)
        if call is None or call.finishing is not None:
            return
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
        if isinstance(method, AsyncUnaryMethod):
            call.task = asyncio.get_running_loop().create_task(self._answer(call, method, call.request))
            return
        try:
            response = method.fetch(call.request)
        except CallError as exc:
            self._finish(call, exc.code, exc.message, exc.trailers)
        except Exception as exc:
            self._bug(call, method.path, exc)
        else:
            self._reply(call, response)

    async def _answer(self, call: _Call, method: AsyncUnaryMethod, request: Message) -> None:
        """Run an async unary call's handler and send what it answers, unless the call ended meanwhile."""
        try:
            response = await method.call(request, call.metadata)
        except CallError as exc:
            if self._still_open(call):
                self._finish(call, exc.code, exc.message, exc.trailers)
        except Exception as exc:
            if self._still_open(call):
                self._bug(call, method.path, exc)
        else:
            if self._still_open(call):
                self._reply(call, response)
        self.flush()

    def _still_open(self, call: _Call) -> bool:
        """Is ``call`` still to be answered (not reset, the connection not closing)? Its handler is done."""
        call.task = None
        return self.calls.get(call.id) is call and not self.closing

    def _reply(self, call: _Call, response: bytes) -> None:
        """A unary call's one response, then OK."""
        self._send(call, response)
        if self.calls.get(call.id) is call:
            self._finish(call, Code.OK)

    def _reset(self, stream_id: int) -> None:
        call = self.calls.get(stream_id)
        if call is not None:
            self._end(call)

    # -- wake-ups from the cache ------------------------------------------------------

    def _wake(self, call: _Call) -> None:
        self._woken.append(call)
        if not self._wake_scheduled:
            self._wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._answer_wakes)

    def _answer_wakes(self) -> None:
        self._wake_scheduled = False
        if self.closing:
            return
        woken, self._woken = self._woken, []
        for call in woken:
            if self.calls.get(call.id) is call:
                self._pull(call)
        self.flush()

    # -- the connection's life ----------------------------------------------------------

    def _keepalive(self) -> None:
        """Ping a connection that has been quiet; drop it when the ping goes unanswered."""
        self._keepalive_timer = None
        if self.transport is None or self.closing:
            return
        now = time.monotonic()
        interval = self.settings.keepalive_seconds
        if self._ping_sent is not None and now - self._ping_sent > self.settings.keepalive_timeout_seconds:
            log.info("connection from %s: keepalive ping unanswered, closing", self._peer())
            self._abort()
            return
        if self._ping_sent is None and now - self._last_read >= interval:
            self.h2.ping(os.urandom(8))
            self._ping_sent = now
            self.flush()
        wait = self.settings.keepalive_timeout_seconds if self._ping_sent is not None else interval
        self._keepalive_timer = asyncio.get_running_loop().call_later(wait, self._keepalive)

    def close(self, code: Code = Code.UNAVAILABLE, message: str = "the server is stopping") -> None:
        """End every call with ``code`` (clients reconnect), then GOAWAY and close once that is written."""
        if self.transport is None or self.closing:
            return
        for call in list(self.calls.values()):
            call.outbox, call.sent = b"", 0  # a half-sent response cannot be finished: the trailers end the call
            self._blocked.pop(call.id, None)
            call.finishing = None
            self._finish(call, code, message)
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection()
        self.flush()
        self._abort(graceful=True)

    def _abort(self, graceful: bool = False) -> None:
        """Close the connection: after what is written has gone out (``graceful``), or at once."""
        self.closing = True
        self._drop_calls()
        if self.transport is not None:
            if graceful:
                self.transport.close()
            else:
                self.transport.abort()

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"
