"""A raw HTTP/2 client for the attacks: the h2 library over an asyncio socket, gRPC's framing by hand.

Nothing here is polite unless asked: it sends what it is told, reads only
when told, and records what the server answered (GOAWAY, resets, headers,
trailers, data) so that a test can say which error the server used.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from google.protobuf.message import Message

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
FETCH_CLUSTERS = "/envoy.service.cluster.v3.ClusterDiscoveryService/FetchClusters"
CSDS_FETCH = "/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def grpc_message(message: Message | bytes) -> bytes:
    """One gRPC message: not compressed, 4-byte length, the bytes."""
    data = message if isinstance(message, bytes) else message.SerializeToString()
    return b"\0" + len(data).to_bytes(4, "big") + data


def request_headers(path: str, extra: Iterable[tuple[bytes, bytes]] = ()) -> list[tuple[bytes, bytes]]:
    return [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()), (b":authority", b"xds"),
            (b"content-type", b"application/grpc"), (b"te", b"trailers"), *extra]


@dataclass
class Seen:
    """What the server sent, by kind."""

    goaway: h2.events.ConnectionTerminated | None = None
    resets: dict[int, int] = field(default_factory=dict)  # stream -> error code
    headers: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    trailers: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    data: dict[int, bytearray] = field(default_factory=dict)
    settings: int = 0
    closed: bool = False  # the server closed the socket

    def __repr__(self) -> str:
        data = {k: len(v) for k, v in self.data.items()}
        return (f"Seen(goaway={self.goaway}, resets={self.resets}, headers={self.headers}, "
                f"trailers={self.trailers}, data bytes={data}, settings={self.settings}, closed={self.closed})")

    def status(self, stream_id: int) -> int | None:
        """The call's grpc-status, from its trailers (or its trailers-only headers)."""
        for source in (self.trailers, self.headers):
            value = source.get(stream_id, {}).get(b"grpc-status")
            if value is not None:
                return int(value)
        return None


class _Client(h2.connection.H2Connection):
    """h2's client, but it goes on reading after a GOAWAY.

    h2 closes its whole state machine at a GOAWAY, and then refuses the
    frames the server still sends on the streams the GOAWAY names as
    processed; gRPC's and Envoy's clients read them, as RFC 9113 (6.8) says.
    """

    def _receive_goaway_frame(self, frame: Any) -> tuple[list[Any], list[Any]]:
        event = h2.events.ConnectionTerminated()
        event.error_code = h2.errors._error_code_from_int(frame.error_code)
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]


class Raw:
    """One raw HTTP/2 connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: h2.connection.H2Connection) -> None:
        self.reader = reader
        self.writer = writer
        self.h2 = conn
        self.seen = Seen()

    @classmethod
    async def connect(cls, port: int, *, source: str = "127.0.0.1", window: int | None = None,
                      rcvbuf: int | None = None, preface: bool = True) -> Raw:
        """Connect from ``source``; ``window`` widens the flow-control windows, ``rcvbuf`` shrinks the socket's."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((source, 0))
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024 if rcvbuf is not None else 2**16)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False,
                                           normalize_outbound_headers=False)
        conn = _Client(config)
        # The client's own limit would stop it opening streams past what the server advertises: an attacker has none.
        conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2**31 - 1,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window or 65535,
        })
        raw = cls(reader, writer, conn)
        if preface:
            conn.initiate_connection()
            if window is not None:
                conn.increment_flow_control_window(window - 65535)
            raw.send()
        return raw

    def ignore_server_limits(self) -> None:
        """Open streams past the server's MAX_CONCURRENT_STREAMS (h2 would refuse to, as a polite client)."""
        self.h2.remote_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2**31 - 1,
        })

    def send(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.writer.is_closing() and not self.seen.closed:
            with contextlib.suppress(ConnectionError):  # the server has dropped us
                self.writer.write(data)

    def write(self, data: bytes) -> None:
        """Raw bytes, past h2 (frames h2 would not build)."""
        self.send()
        self.writer.write(data)

    def open(self, path: str = ADS, extra: Iterable[tuple[bytes, bytes]] = (), end: bool = False) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, request_headers(path, extra), end_stream=end)
        return stream_id

    def message(self, stream_id: int, message: Message | bytes, end: bool = False) -> None:
        self.h2.send_data(stream_id, grpc_message(message), end_stream=end)

    async def message_when_allowed(self, stream_id: int, message: Message | bytes) -> None:
        """Send one message once the server's windows allow it (reading its WINDOW_UPDATEs meanwhile)."""
        data = grpc_message(message)
        while self.h2.local_flow_control_window(stream_id) < len(data):
            self.send()
            await self.poll(0.05)
        self.h2.send_data(stream_id, data)

    def call(self, path: str, message: Message | bytes, extra: Iterable[tuple[bytes, bytes]] = ()) -> int:
        """A whole unary call (or a stream's first request and its end)."""
        stream_id = self.open(path, extra)
        self.message(stream_id, message, end=True)
        self.send()
        return stream_id

    async def drain(self) -> None:
        """Wait until the socket has taken what was written (a writer that would block does)."""
        await self.writer.drain()

    def _record(self, events: list[Any]) -> None:
        seen = self.seen
        for event in events:
            if isinstance(event, h2.events.ConnectionTerminated):
                seen.goaway = event
            elif isinstance(event, h2.events.StreamReset):
                seen.resets[event.stream_id] = int(event.error_code)
            elif isinstance(event, h2.events.ResponseReceived):
                seen.headers[event.stream_id] = dict(event.headers)
            elif isinstance(event, h2.events.TrailersReceived):
                seen.trailers[event.stream_id] = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                seen.data.setdefault(event.stream_id, bytearray()).extend(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                seen.settings += 1

    async def read(self, until: Callable[[Seen], bool], timeout: float = 5.0) -> Seen:
        """Read (and answer, as h2 does: SETTINGS and PING acks, windows) until ``until(seen)`` or the end."""
        deadline = time.monotonic() + timeout
        while not until(self.seen) and not self.seen.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"still waiting after {timeout} s; seen {self.seen}")
            await self.poll(left)
        return self.seen

    async def poll(self, timeout: float = 0.01) -> Seen:
        """Read what comes within ``timeout`` (one read at most)."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except TimeoutError:
            return self.seen
        except ConnectionError:  # reset, or a write found the socket closed
            data = b""
        if not data:
            self.seen.closed = True
            return self.seen
        with contextlib.suppress(h2.exceptions.ProtocolError):  # frames h2 will not take (after a reset, say)
            self._record(self.h2.receive_data(data))
        self.send()
        return self.seen

    async def closed(self, timeout: float = 5.0) -> Seen:
        """Read until the server closes the connection."""
        return await self.read(lambda s: False, timeout)

    def close(self) -> None:
        self.writer.close()


def responses(data: bytes | bytearray) -> list[bytes]:
    """The gRPC messages in a stream's DATA."""
    out, at = [], 0
    while len(data) - at >= 5:
        size = int.from_bytes(data[at + 1:at + 5], "big")
        if len(data) - at < 5 + size:
            break
        out.append(bytes(data[at + 5:at + 5 + size]))
        at += 5 + size
    return out
