"""A small HTTP/2 client (h2c, prior knowledge) that lets in-flight requests finish after a GOAWAY.

Why not httpx: a server that drains (Envoy's old epoch in a hot restart, a
listener removed over LDS) sends a graceful GOAWAY (last stream id 2^31-1)
and goes on answering the streams it has. RFC 9113 §6.8 lets those streams
complete. python-h2's connection state machine instead closes the whole
connection on GOAWAY, so the answer that follows it is refused ("Invalid
input ConnectionInputs.RECV_HEADERS in state ConnectionState.CLOSED",
python-hyper/h2#1181), and httpcore fails every stream still waiting once
it has seen the GOAWAY. A request that happened to be in flight when a hot
restart began failed in the client, although Envoy answered it.

Here each connection's state machine lets a closed connection go on
receiving (and acknowledging) frames for the streams it has, never opening
a new one; after a GOAWAY new requests go to a new connection, and a
request the server did not take (a stream above the GOAWAY's last stream id,
or refused with REFUSED_STREAM) is sent again on a new connection, as RFC
9113 §8.7 allows: the server never processed it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from h2.config import H2Configuration
from h2.connection import ConnectionInputs, ConnectionState, H2Connection, H2ConnectionStateMachine
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import H2Error

__all__ = ["H2Client", "H2ClientError", "H2ConnectionClosed", "H2StreamReset"]

# Inputs that would open a stream: never on a closed connection.
_OPENS_STREAM: Final = {
    ConnectionInputs.SEND_HEADERS, ConnectionInputs.SEND_PUSH_PROMISE, ConnectionInputs.RECV_PUSH_PROMISE,
}


_DRAINING_TRANSITIONS: Final = {
    **H2ConnectionStateMachine._transitions,
    **{(ConnectionState.CLOSED, i): (None, ConnectionState.CLOSED) for i in ConnectionInputs if i not in _OPENS_STREAM},
}


class _DrainingStateMachine(H2ConnectionStateMachine):
    """h2's machine, except that CLOSED (after a GOAWAY) still takes every frame of existing streams."""

    def __init__(self) -> None:
        super().__init__()
        self._transitions = _DRAINING_TRANSITIONS


class H2ClientError(Exception):
    """A request that got no answer."""


class H2ConnectionClosed(H2ClientError):
    """The connection ended (closed by the server, or broken) before the answer came."""


class H2StreamReset(H2ClientError):
    """The server reset the request's stream."""


class _NotProcessed(Exception):
    """The server did not take the request (GOAWAY before it, or REFUSED_STREAM): safe to send again."""


@dataclass(slots=True)
class _Stream:
    answer: asyncio.Future[tuple[int, dict[str, str]]]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)


class _Connection:
    """One TCP connection and its streams; a task reads frames until the server closes it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._h2 = H2Connection(config=H2Configuration(client_side=True, header_encoding="utf-8"))
        self._h2.state_machine = _DrainingStateMachine()
        self._h2.initiate_connection()
        self._streams: dict[int, _Stream] = {}
        self.goaway: int | None = None  # the last stream id of the server's GOAWAY
        self.closed = False
        self._flush()
        self._task = asyncio.create_task(self._read())

    @property
    def usable(self) -> bool:
        """Open, and the server has not said GOAWAY: it takes new streams."""
        return not self.closed and self.goaway is None

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def request(self, authority: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        if not self.usable:
            raise _NotProcessed()
        stream_id = self._h2.get_next_available_stream_id()
        stream = _Stream(asyncio.get_running_loop().create_future())
        self._streams[stream_id] = stream
        self._h2.send_headers(
            stream_id,
            [(":method", "GET"), (":scheme", "http"), (":authority", authority), (":path", path),
             *((k.lower(), v) for k, v in headers.items())],
            end_stream=True,
        )
        self._flush()
        try:
            await self._writer.drain()
            return await stream.answer
        finally:
            self._streams.pop(stream_id, None)
            if self.goaway is not None and not self._streams:
                self.close()

    def _handle(self, event: Event) -> None:
        if isinstance(event, ResponseReceived) and event.stream_id in self._streams:
            stream = self._streams[event.stream_id]
            stream.headers = {str(k): str(v) for k, v in event.headers or ()}
            stream.status = int(stream.headers.get(":status", "0"))
        elif isinstance(event, DataReceived):
            if event.flow_controlled_length and event.stream_id:
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, StreamEnded) and event.stream_id in self._streams:
            stream = self._streams[event.stream_id]
            if not stream.answer.done():
                stream.answer.set_result((stream.status, stream.headers))
        elif isinstance(event, StreamReset) and event.stream_id in self._streams:
            answer = self._streams[event.stream_id].answer
            if not answer.done():
                if event.error_code == ErrorCodes.REFUSED_STREAM:
                    answer.set_exception(_NotProcessed())
                else:
                    answer.set_exception(H2StreamReset(f"stream reset: {event.error_code!r}"))
        elif isinstance(event, ConnectionTerminated):
            last = event.last_stream_id if event.last_stream_id is not None else 0
            self.goaway = last
            for stream_id, stream in self._streams.items():
                if stream_id > last and not stream.answer.done():
                    stream.answer.set_exception(_NotProcessed())

    async def _read(self) -> None:
        why = "the server closed the connection"
        try:
            while data := await self._reader.read(65536):
                for event in self._h2.receive_data(data):
                    self._handle(event)
                self._flush()
        except (OSError, H2Error) as exc:
            why = f"{type(exc).__name__}: {exc}"
        finally:
            self.closed = True
            for stream in self._streams.values():
                if not stream.answer.done():
                    stream.answer.set_exception(H2ConnectionClosed(why))
            self._writer.close()

    def close(self) -> None:
        self.closed = True
        self._writer.close()

    async def wait_closed(self) -> None:
        self.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class H2Client:
    """GET over HTTP/2 with prior knowledge, many requests on one connection per ``host:port``.

    ``retried`` counts requests sent again because the server had not taken them.
    """

    def __init__(self, timeout: float = 5.0, attempts: int = 3) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.retried = 0
        self._current: dict[str, _Connection] = {}
        self._all: list[_Connection] = []
        self._lock = asyncio.Lock()

    async def _connection(self, authority: str, host: str, port: int) -> _Connection:
        async with self._lock:
            conn = self._current.get(authority)
            if conn is None or not conn.usable:
                reader, writer = await asyncio.open_connection(host, port)
                conn = self._current[authority] = _Connection(reader, writer)
                self._all = [c for c in self._all if not c.closed] + [conn]
            return conn

    async def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        """``(status, response headers)``; raises H2ClientError, OSError or TimeoutError."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        authority = parts.netloc
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        async with asyncio.timeout(self.timeout):
            for attempt in range(self.attempts):
                conn = await self._connection(authority, host, port)
                try:
                    return await conn.request(authority, path, headers or {})
                except _NotProcessed:
                    if attempt + 1 < self.attempts:
                        self.retried += 1
        raise H2ConnectionClosed(f"the server took the request on none of {self.attempts} connections")

    async def aclose(self) -> None:
        for conn in self._all:
            await conn.wait_closed()
        self._all.clear()
        self._current.clear()

    async def __aenter__(self) -> H2Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
