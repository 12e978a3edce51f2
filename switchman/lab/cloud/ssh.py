"""The edge to ``asyncssh``: the lab's key, connections that wait for a host to boot, commands, their output, uploads.

A host's key is trusted the first time the lab reaches it and pinned after
that (the caller keeps it in the state file): a later connection to a host
that shows another key is refused, not silently accepted. asyncssh's errors
become :class:`~switchman.errors.LabError` naming the host and what was being
done.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh
from asyncssh.known_hosts import KnownHostsArg

from switchman.errors import LabError
from switchman.lab.cloud.pki import ssh_keypair

__all__ = ["Shell", "SshTarget", "lab_key", "open_shell"]

# Lines of a failed command's output kept for its error.
TAIL = 25


def lab_key(workdir: Path, name: str) -> tuple[Path, str]:
    """The lab's ed25519 key ``<workdir>/<name>.id_ed25519`` (made the first time, mode 0600) and its public line."""
    private = workdir / f"{name}.id_ed25519"
    public = private.with_name(private.name + ".pub")
    if not private.exists():
        text, line = ssh_keypair(name)
        private.parent.mkdir(parents=True, exist_ok=True)
        private.touch(0o600)
        private.write_text(text)
        public.write_text(line + "\n")
    return private, public.read_text().strip()


@dataclass(frozen=True)
class SshTarget:
    """Where to log in: ``host_key`` (OpenSSH form) is the pinned key, None the first time."""

    host: str
    port: int
    user: str
    key: Path
    host_key: str | None = None

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


class Shell:
    """One SSH connection: commands whose failure is a LabError, and commands whose output is streamed."""

    def __init__(self, conn: asyncssh.SSHClientConnection, target: SshTarget) -> None:
        self.conn = conn
        self.target = target

    @property
    def host_key(self) -> str:
        key = self.conn.get_server_host_key()
        assert key is not None
        return key.export_public_key("openssh").decode().strip()

    async def run(self, what: str, command: str, *, input: str | None = None) -> str:
        """``command``'s output; LabError naming ``what`` (with the output's last lines) when it fails."""
        try:
            result = await self.conn.run(command, input=input, check=False)
        except (asyncssh.Error, OSError) as exc:
            raise LabError(f"{what} on {self.target.host}: {exc}") from exc
        out = str(result.stdout or "")
        if result.exit_status != 0:
            lines = (out + str(result.stderr or "")).strip().splitlines()[-TAIL:]
            raise LabError(f"{what} on {self.target.host} failed (exit {result.exit_status})"
                           + "".join(f"\n  {line}" for line in lines))
        return out

    async def stream(self, what: str, command: str, line: Callable[[str], None], *,
                     timeout: float) -> tuple[int, list[str]]:
        """Run ``command``, handing each line of its output (stdout and stderr) to ``line`` as it comes.

        Returns the exit status and the last lines. LabError when the
        connection fails or ``timeout`` seconds pass (the command is then
        ended: closing its channel hangs it up).
        """
        tail: collections.deque[str] = collections.deque(maxlen=TAIL)
        try:
            async with asyncio.timeout(timeout), self.conn.create_process(command, stderr=asyncssh.STDOUT) as proc:
                async for chunk in proc.stdout:
                    if not chunk:
                        continue  # the end of the output
                    text = str(chunk).rstrip("\r\n")
                    tail.append(text)
                    line(text)
                result = await proc.wait()
        except TimeoutError:
            raise LabError(f"{what} on {self.target.host} still running after {timeout:g}s"
                           + "".join(f"\n  {t}" for t in tail)) from None
        except (asyncssh.Error, OSError) as exc:
            raise LabError(f"{what} on {self.target.host}: {exc}"
                           + "".join(f"\n  {t}" for t in tail)) from exc
        return (result.exit_status if result.exit_status is not None else -1), list(tail)

    async def upload(self, what: str, local: Path, remote: str, progress: Callable[[int, int], None]) -> None:
        """Copy ``local`` to ``remote`` over SFTP, handing (bytes copied, total) to ``progress`` as it goes."""
        try:
            async with self.conn.start_sftp_client() as sftp:
                await sftp.put(str(local), remote,
                               progress_handler=lambda _src, _dst, done, total: progress(done, total))
        except (asyncssh.Error, OSError) as exc:
            raise LabError(f"{what} to {self.target.host}:{remote}: {exc}") from exc


@contextlib.asynccontextmanager
async def open_shell(target: SshTarget, *, timeout: float, progress: Callable[[str], None],
                     tunnel: asyncssh.SSHClientConnection | None = None) -> AsyncIterator[Shell]:
    """A connection to ``target``, retried until ``timeout`` while the host boots (its sshd starts, Google's
    guest environment installs the key); a host key other than the pinned one is refused at once. With
    ``tunnel``, the connection goes through that one (a jump host: ``ssh -J``)."""
    known: KnownHostsArg = None
    if target.host_key is not None:
        known = asyncssh.import_known_hosts(f"* {target.host_key}\n")
    deadline = time.monotonic() + timeout
    delay, last = 1.0, ""
    while True:
        try:
            conn = await asyncssh.connect(
                target.host, target.port, username=target.user, client_keys=[str(target.key)], known_hosts=known,
                config=[], agent_path=None, preferred_auth="publickey", connect_timeout=min(30.0, timeout),
                keepalive_interval=30, login_timeout=min(60.0, timeout), tunnel=tunnel,
            )
            break
        except asyncssh.HostKeyNotVerifiable as exc:
            raise LabError(f"ssh {target}: the host shows another key than the one recorded ({exc}); if the host "
                           "was rebuilt, destroy the lab and apply again") from exc
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            why = str(exc) or type(exc).__name__
            if time.monotonic() + delay > deadline:
                raise LabError(f"ssh {target}: not reachable after {timeout:g}s: {why}") from exc
            if why != last:
                progress(f"waiting for ssh {target}: {why}")
                last = why
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    try:
        yield Shell(conn, target)
    finally:
        conn.close()
        await conn.wait_closed()
