"""A local HTTP proxy whose upstream connections go through an SSH connection: devstack's APIs and the
floating IPs, which exist only on the GCE host, reached from anywhere.

:class:`HttpProxy` listens on 127.0.0.1 and takes the two forms a proxy gets
(RFC 9110 9.3.6, RFC 9112 3.2.2): ``CONNECT host:port`` (https: the client's
TLS then runs inside, end to end) and absolute-form requests for plain http
(``GET http://10.128.0.9/identity/v3 HTTP/1.1``), sent on as origin-form with
``Connection: close``: one request per connection, so nothing has to find
where a response ends. Each upstream connection is an SSH ``direct-tcpip``
channel (``open_connection``) opened by the host: the host's sshd connects,
as ``ssh -W`` would. A target the host cannot reach is a 502 whose body says
why. openstacksdk takes the proxy as its session's proxies, the Kubernetes
client (and kubectl) as the kubeconfig's ``proxy-url``.

:class:`Tunnel` opens the SSH connection to the GCE host the first time a
step asks for the proxy, and closes both at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import asyncssh

from switchman.errors import LabError

__all__ = ["HttpProxy", "Opener", "Tunnel", "ssh_opener"]

_HEAD_LIMIT = 64 * 1024
#: How long a client may take to send its request head.
_HEAD_SECONDS = 30.0
_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}


class Opener(Protocol):
    """Opens an upstream connection to ``host:port``; any exception is the reason it could not."""

    def __call__(self, host: str, port: int) -> Awaitable[tuple[Any, Any]]: ...


def ssh_opener(conn: asyncssh.SSHClientConnection) -> Opener:
    async def open_upstream(host: str, port: int) -> tuple[Any, Any]:
        return await conn.open_connection(host, port)

    return open_upstream


class HttpProxy:
    """The proxy; ``via`` names what upstream connections go through (for the 502's text)."""

    def __init__(self, opener: Opener, via: str) -> None:
        self.opener = opener
        self.via = via
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._writers: set[Any] = set()  # the clients' and the upstreams' writers
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (``port`` 0: a free one); returns the proxy's URL."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port, limit=_HEAD_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Closing both ends of every connection ends its pumps (cancelling a start_server handler would
            # be logged by asyncio as an error).
            for writer in list(self._writers):
                writer.close()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> HttpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tasks.add(done)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncssh.Error, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the client or the upstream went away, or the client sent no request head in time
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            done.set_result(None)
            self._tasks.discard(done)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # a client that never finishes its request head does not hold the connection for ever
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_SECONDS)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return await _answer(writer, 400, f"not an HTTP request line: {lines[0][:100]!r}")
        method, target, version = parts
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            forward = b""
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                return await _answer(writer, 400, f"a proxy takes CONNECT or absolute http:// URLs, not {target!r}")
            host, port = url.hostname, str(url.port or 80)
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            headers = [h for h in lines[1:] if h and h.split(":", 1)[0].strip().lower() not in _HOP]
            forward = "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close", "", ""]).encode(
                "latin-1")
        host = host.strip("[]")
        if not host or not port.isdigit():
            return await _answer(writer, 400, f"no host:port in {target!r}")
        try:
            up_reader, up_writer = await self.opener(host, int(port))
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            return await _answer(writer, 502, f"switchman lab tunnel: cannot reach {host}:{port} through "
                                              f"{self.via}: {str(exc) or type(exc).__name__}")
        self._writers.add(up_writer)
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(forward)
            await _splice(reader, writer, up_reader, up_writer)
        finally:
            self._writers.discard(up_writer)
            up_writer.close()


async def _pump(src: Any, dst: Any, eof: bool) -> None:
    while chunk := await src.read(65536):
        dst.write(chunk)
        await dst.drain()
    if eof:
        with contextlib.suppress(OSError, asyncssh.Error):
            dst.write_eof()


async def _splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up_reader: Any, up_writer: Any) -> None:
    """Both ways until the upstream is done: the client's end of input is passed on (a half-close), the
    upstream's ends the connection."""
    sending = asyncio.create_task(_pump(reader, up_writer, eof=True))
    try:
        await _pump(up_reader, writer, eof=False)
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError, asyncssh.Error):
            await sending


async def _answer(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    reason = {400: "Bad Request", 502: "Bad Gateway"}[status]
    body = (text + "\n").encode()
    writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    await writer.drain()


class Tunnel:
    """The proxy through the GCE host, opened by the first :meth:`url` (after the GCE step made the host) and
    closed by :meth:`aclose`. ``connect`` opens the SSH connection (an ``open_shell`` of the host)."""

    def __init__(self, connect: Callable[[], contextlib.AbstractAsyncContextManager[asyncssh.SSHClientConnection]],
                 via: Callable[[], str], port: int = 0, say: Callable[[str], None] = lambda m: None) -> None:
        self._connect = connect
        self._via = via
        self._port = port
        self._say = say
        self._stack = contextlib.AsyncExitStack()
        self._proxy: HttpProxy | None = None
        self._lock = asyncio.Lock()

    async def url(self) -> str:
        async with self._lock:
            if self._proxy is None:
                conn = await self._stack.enter_async_context(self._connect())
                proxy = HttpProxy(ssh_opener(conn), self._via())
                try:
                    await proxy.start(self._port)
                except OSError as exc:
                    raise LabError(f"tunnel: cannot listen on 127.0.0.1:{self._port}: {exc}") from exc
                self._stack.push_async_callback(proxy.stop)
                self._proxy = proxy
                self._say(f"proxy {proxy.url}: devstack's APIs and the floating IPs through {proxy.via}")
            return self._proxy.url

    async def aclose(self) -> None:
        self._proxy = None
        await self._stack.aclose()
