"""The load generator's HTTP/2 client against a server that says GOAWAY while it still has streams to answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import RequestReceived
from hyperframe.frame import GoAwayFrame

from switchman.lab.local.h2client import H2Client, H2ConnectionClosed

MAX_STREAM_ID = 2**31 - 1


def _goaway(last_stream_id: int) -> bytes:
    """A GOAWAY frame, written past h2's own state machine (which would refuse to answer after it)."""
    frame = GoAwayFrame(0)
    frame.last_stream_id = last_stream_id
    frame.error_code = 0
    return bytes(frame.serialize())


@dataclass
class Server:
    """An h2c server. ``on_requests(conn, pending, writer)`` is asked each time requests wait: True
    answers those left in ``pending``, False keeps them waiting."""

    on_requests: Callable[[H2Connection, list[int], asyncio.StreamWriter], bool]
    connections: int = 0
    answered: list[tuple[int, int]] = field(default_factory=list)  # (connection, stream id)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        conn = H2Connection(config=H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        pending: list[int] = []
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, RequestReceived):
                        pending.append(event.stream_id)
                writer.write(conn.data_to_send())
                if pending and self.on_requests(conn, pending, writer):
                    for stream_id in pending:
                        if conn.streams.get(stream_id) is None:
                            continue
                        conn.send_headers(stream_id, [(":status", "200"), ("x-upstream-version", "v1")])
                        conn.send_data(stream_id, b"ok\n", end_stream=True)
                        self.answered.append((number, stream_id))
                    pending.clear()
                    writer.write(conn.data_to_send())
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


Serve = Callable[[Server], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(server: Server) -> str:
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append(listening)
        return f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/"

    yield start
    for listening in servers:
        listening.close()
        await listening.wait_closed()


async def test_a_request_in_flight_when_the_server_says_goaway_gets_its_answer(serve: Serve) -> None:
    # A draining server: GOAWAY with the highest stream id (take no new streams), then the answer.
    def graceful(conn: H2Connection, pending: list[int], writer: asyncio.StreamWriter) -> bool:
        writer.write(_goaway(MAX_STREAM_ID))
        return True

    server = Server(graceful)
    url = await serve(server)
    async with H2Client(timeout=5.0) as client:
        assert (await client.get(url))[0] == 200
        # The connection took no new stream after the GOAWAY: the next request opened another.
        status, headers = await client.get(url)
        assert (status, headers["x-upstream-version"]) == (200, "v1")
        assert client.retried == 0
    assert server.connections == 2 and server.answered == [(1, 1), (2, 1)]


async def test_a_request_the_server_did_not_take_is_sent_again_on_a_new_connection(serve: Serve) -> None:
    # The first connection answers its first stream only and says so (GOAWAY, last stream 1).
    def first_only(conn: H2Connection, pending: list[int], writer: asyncio.StreamWriter) -> bool:
        if len(pending) < 2 and pending[0] == 1 and not server.answered:
            return False  # wait for the second request to arrive
        if not server.answered:
            writer.write(_goaway(1))
            del pending[1:]
        return True

    server = Server(first_only)
    url = await serve(server)
    async with H2Client(timeout=5.0) as client:
        answers = await asyncio.gather(client.get(url), client.get(url))
        assert [status for status, _ in answers] == [200, 200]
        assert client.retried == 1
    assert server.answered == [(1, 1), (2, 1)]


async def test_a_connection_closed_under_a_request_is_an_error(serve: Serve) -> None:
    def hang_up(conn: H2Connection, pending: list[int], writer: asyncio.StreamWriter) -> bool:
        writer.transport.abort()
        return False

    url = await serve(Server(hang_up))
    async with H2Client(timeout=5.0) as client:
        with pytest.raises(H2ConnectionClosed):
            await client.get(url)
