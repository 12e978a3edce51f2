"""A real SSH server on 127.0.0.1 that runs each command it is sent with bash in a directory standing in for a host.

asyncssh's own server: a host key made at start, public-key login for the
keys given, one bash per command (``bash -c <command>``) with the channel's
stdin, stdout, stderr and exit status wired through. The environment is the
caller's (a ``PATH`` with stand-in tools first, say), the working directory
``root``. Every command is kept in :attr:`ShellServer.commands`. Bound to
port 0 and to the loopback address only. SFTP works on the real file system
(absolute paths); TCP forwarding (``direct-tcpip``: a jump host, a tunnel)
is allowed to 127.0.0.1 only, and each such request is kept in
:attr:`ShellServer.forwards`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh

__all__ = ["ShellServer"]

_LOOPBACK = ("127.0.0.1", "localhost")


class _Forwards(asyncssh.SSHServer):
    """Lets a client open TCP connections to the loopback address only (``ssh -J``, ``open_connection``)."""

    def __init__(self, forwards: list[tuple[str, int]]) -> None:
        self.forwards = forwards

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        self.forwards.append((dest_host, dest_port))
        return dest_host in _LOOPBACK


class ShellServer:
    def __init__(self, root: Path, authorized_keys: str, env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.authorized_keys = authorized_keys
        self.env = dict(env if env is not None else os.environ)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.commands: list[str] = []
        self.forwards: list[tuple[str, int]] = []
        self.port = 0
        self._acceptor: asyncssh.SSHAcceptor | None = None

    @property
    def public_host_key(self) -> str:
        return self.host_key.export_public_key("openssh").decode().strip()

    async def start(self) -> int:
        """Listen on 127.0.0.1 and a free port; returns the port."""
        self._acceptor = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[self.host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(self.authorized_keys),
            process_factory=self._run, encoding=None, allow_scp=False, sftp_factory=True,
            server_factory=lambda: _Forwards(self.forwards),
        )
        self.port = self._acceptor.get_port()
        return self.port

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None

    async def __aenter__(self) -> ShellServer:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def _run(self, channel: asyncssh.SSHServerProcess[bytes]) -> None:
        command = channel.command or "bash"
        self.commands.append(command)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", command, cwd=self.root, env=self.env, start_new_session=True,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin and proc.stdout and proc.stderr

        async def feed(src: asyncssh.SSHReader[bytes], dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncssh.Error):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            dst.close()

        async def pump(src: asyncio.StreamReader, dst: asyncssh.SSHWriter[bytes]) -> None:
            while chunk := await src.read(65536):
                dst.write(chunk)

        stdin = asyncio.ensure_future(feed(channel.stdin, proc.stdin))
        output: asyncio.Future[Any] = asyncio.gather(pump(proc.stdout, channel.stdout),
                                                     pump(proc.stderr, channel.stderr))
        closed: asyncio.Future[Any] = asyncio.ensure_future(channel.wait_closed())
        try:
            await asyncio.wait({output, closed}, return_when=asyncio.FIRST_COMPLETED)
            if output.done() and not closed.done():
                output.result()
                channel.exit(await proc.wait())
        finally:
            for task in (stdin, output, closed):
                task.cancel()
            await asyncio.gather(stdin, output, closed, return_exceptions=True)
            if proc.returncode is None:
                # The client went away (or timed out): end the whole command, as sshd's hang-up would.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
