"""One gRPC call on a connection of the HTTP/2 transport: what it holds, and how its requests are read."""

from __future__ import annotations

import asyncio

from google.protobuf.message import Message

from switchman.xds.h2.protocol import PREFIX
from switchman.xds.server.methods import AnyMethod, CallError, Code, Metadata, StreamHandler

__all__ = ["Call"]


class Call:
    """One gRPC call: its request bytes, its handler (a stream, or a unary call's task), its outbox."""

    __slots__ = (
        "answer_owed", "buffer", "deadline", "fed", "finishing", "half_closed", "held", "id", "metadata", "method",
        "outbox", "partial", "pull_owed", "request", "sent", "started", "stream", "task", "timer",
    )

    def __init__(self, stream_id: int, method: AnyMethod, metadata: Metadata = ()) -> None:
        self.id = stream_id
        self.method = method
        self.metadata = metadata
        self.task: asyncio.Task[None] | None = None  # an async unary call's handler
        self.stream: StreamHandler | None = None
        self.request: Message | None = None  # a unary call's request, answered at the client's end of stream
        self.held = 0  # its size, counted in the connection's request bytes until it is answered
        self.buffer = bytearray()  # request bytes not yet a whole message
        self.fed = False  # a stream has had its first request
        self.half_closed = False  # the client has sent all it will
        self.outbox = b""  # response bytes waiting for flow-control window (or for the socket)
        self.sent = 0  # how much of the outbox has gone out already
        self.partial = False  # some of the outbox has gone out: a message may be cut in the middle
        self.started = False  # response headers sent
        self.finishing: list[tuple[bytes, bytes]] | None = None  # trailers to send once the outbox is out
        self.pull_owed = False  # woken or fed while its outbox was still going out: pull once it is out
        self.answer_owed = False  # a unary call's answer, once there is room for it
        self.timer: asyncio.TimerHandle | None = None  # the request must arrive whole before it fires
        self.deadline: asyncio.TimerHandle | None = None  # grpc-timeout

    def take(self, data: bytes, limit: int) -> tuple[list[bytes], int]:
        """Add ``data`` to the request bytes: the whole messages now there (prefix off), and the bytes they took.

        Raises CallError for a compressed message (UNIMPLEMENTED: the server
        announces no compression) or one over ``limit`` bytes
        (RESOURCE_EXHAUSTED); the call then holds all it was given.
        """
        buffer = self.buffer
        buffer += data
        messages = []
        start = 0
        while len(buffer) - start >= PREFIX:
            size = int.from_bytes(buffer[start + 1:start + 5], "big")
            if buffer[start]:
                raise CallError(Code.UNIMPLEMENTED, "compressed requests are not supported")
            if size > limit:
                raise CallError(Code.RESOURCE_EXHAUSTED, f"request of {size} bytes exceeds the limit of {limit}")
            if len(buffer) - start < PREFIX + size:
                break
            messages.append(bytes(buffer[start + PREFIX:start + PREFIX + size]))
            start += PREFIX + size
        del buffer[:start]
        return messages, start

    @property
    def waiting(self) -> bool:
        """Does it wait for a request: a stream for its first, a unary call for its end, any for the rest of one?"""
        return bool(self.buffer) or (not self.half_closed if self.stream is None else not self.fed)
