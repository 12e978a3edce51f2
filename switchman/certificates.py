"""A port's certificate, key and client CA, re-read when they change on disk: rotation without a restart.

Operators rotate short-lived certificates (cert-manager, SPIFFE agents)
by writing new files. :class:`ServerCertificates` loads a port's files
(:class:`~switchman.tls.TlsSettings`) and then looks at them again every
``poll_seconds`` (their size, modification time and inode; a change is
confirmed by the SHA-256 of their contents) and whenever :meth:`reload` is
called (``serve`` calls it on SIGHUP). A change is loaded into a new
``ssl.SSLContext``, checked whole (the key is the certificate's, the CA
file holds a certificate), and only then put in use:

* **new connections** get the new certificate and trust the new client CA:
  the context servers are given (:attr:`context`) hands every handshake the
  newest one from its SNI callback, which OpenSSL calls for every
  ClientHello, with or without a server name; the grpc transport asks
  :attr:`current` through grpc's certificate-configuration fetcher
  (:func:`switchman.xds.tls.grpc_credentials`);
* **connections already open** keep the certificate they were made with;
* **a new file that does not do** (unreadable, a key that is not the
  certificate's, a CA file without a certificate, or a file still being
  written) is logged as an error naming its flag, once per content, and the
  certificate in use stays.

The files are read in a thread (:func:`asyncio.to_thread`), never on the
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

from switchman.errors import ConfigError
from switchman.tasks import cancel
from switchman.tls import TlsSettings, read_pem, server_context

__all__ = ["Loaded", "ServerCertificates"]

log = logging.getLogger(__name__)

_Stat = tuple[int, int, int, int] | None  # inode, device, size, mtime in ns; None: not there


@dataclass(frozen=True, slots=True)
class Loaded:
    """One loading of a port's files: the context made of them, their PEM bytes, and what names them in logs."""

    context: ssl.SSLContext
    cert: bytes
    key: bytes = field(repr=False)
    client_ca: bytes | None
    generation: int  # 1 for the files read at start, one more for each rotation
    digest: str  # SHA-256 of the three files' contents together
    fingerprint: str  # of the (first) certificate, as logs name it


_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


def _fingerprint(pem: bytes) -> str:
    """``sha256:ab12...``: the SHA-256 of the first certificate's DER, as ``openssl x509 -fingerprint -sha256``
    prints it (a chain's leaf; text around the PEM blocks ignored)."""
    text = pem.decode("ascii", "replace")
    start = text.find(_BEGIN)
    end = text.find(_END, start)
    if start < 0 or end < 0:
        return "sha256:(no certificate)"
    try:
        der = ssl.PEM_cert_to_DER_cert(text[start:end + len(_END)])
    except ValueError:
        return "sha256:(not base64)"
    return "sha256:" + hashlib.sha256(der).hexdigest()


@dataclass(frozen=True, slots=True)
class _Unusable:
    """New contents that do not do: why, and their digest (None: a file could not be read)."""

    error: ConfigError
    digest: str | None


def _stat(path: str) -> _Stat:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns


def _digest(*parts: bytes | None) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(b"-" if part is None else len(part).to_bytes(8, "big") + part)
    return h.hexdigest()


class ServerCertificates:
    """A port's TLS, loaded now (a ConfigError naming the flag of a file that does not do) and re-read when its
    files change. ``port`` names it in logs (``xDS port``); ``options`` are OR'ed into each context's."""

    def __init__(self, tls: TlsSettings, alpn: Sequence[str], port: str, *, options: int = 0) -> None:
        self.tls = tls
        self.port = port
        self._alpn = list(alpn)
        self._options = options
        self._paths = [p for p in (tls.cert_file, tls.key_file, tls.client_ca_file) if p]
        self._stats = self._stat_all()
        self.current = self._load(1)
        #: What servers are given: the first context, whose SNI callback hands each handshake the newest.
        self.context = self.current.context
        self.context.sni_callback = self._handshake
        self._failed: str | None = None  # the digest of the last contents that did not do (logged once)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._forced = False
        self._task: asyncio.Task[None] | None = None

    @property
    def poll_seconds(self) -> float:
        return self.tls.poll_seconds

    def _make_context(self) -> ssl.SSLContext:
        context = server_context(self.tls, self._alpn)
        context.options |= self._options
        return context

    def _handshake(self, ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                   context: ssl.SSLContext) -> None:
        ssl_object.context = self.current.context

    def _stat_all(self) -> list[_Stat]:
        return [_stat(p) for p in self._paths]

    def _read(self) -> tuple[bytes, bytes, bytes | None]:
        flags = self.tls.flags
        ca = read_pem(self.tls.client_ca_file, flags.client_ca) if self.tls.client_ca_file else None
        return read_pem(self.tls.cert_file, flags.cert), read_pem(self.tls.key_file, flags.key), ca

    def _load(self, generation: int) -> Loaded:
        """Read the files and make a context of them; ConfigError naming the flag of a file that does not do.

        The files are read before and after the context is made of them: if they differ, a file was being
        written meanwhile, and what was loaded may not be what was read.
        """
        before = self._read()
        context = self._make_context()
        if self._read() != before:
            raise ConfigError(self.tls.flags.cert, "the files changed while being read (still being written?)")
        cert, key, ca = before
        return Loaded(context, cert, key, ca, generation, _digest(cert, key, ca), _fingerprint(cert))

    # -- rotation ------------------------------------------------------------------------

    def _scan(self, forced: bool) -> Loaded | _Unusable | None:
        """What the files hold now if it differs from what is in use: a new loading, or why it does not do;
        None when nothing changed. Runs in a thread."""
        stats = self._stat_all()
        if stats == self._stats and not forced:
            return None
        self._stats = stats
        try:
            digest = _digest(*self._read())
        except ConfigError as exc:
            return _Unusable(exc, None)
        if digest == self.current.digest:
            return None
        if digest == self._failed and not forced:
            return None
        try:
            return self._load(self.current.generation + 1)
        except ConfigError as exc:
            return _Unusable(exc, digest)

    async def check(self, *, forced: bool = False) -> bool:
        """Look at the files now (``forced``: read them even if they look unchanged); True when a new
        certificate was put in use. Logs what it did."""
        async with self._lock:
            result = await asyncio.to_thread(self._scan, forced)
        if isinstance(result, Loaded):
            previous, self.current, self._failed = self.current, result, None
            log.info("%s: new certificate %s (%s) in use for new connections, instead of %s; connections "
                     "already open keep theirs", self.port, result.fingerprint, self.tls.cert_file,
                     previous.fingerprint)
            return True
        if isinstance(result, _Unusable):
            log.error("%s: the certificate files changed but cannot be used, so %s stays in use: %s",
                      self.port, self.current.fingerprint, result.error)
            self._failed = result.digest
        elif forced:
            log.info("%s: certificate files unchanged (%s in use)", self.port, self.current.fingerprint)
        return False

    def reload(self) -> None:
        """Read the files again now (SIGHUP), even if they look unchanged; the poll task does it."""
        self._forced = True
        self._wake.set()

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                timeout = self.poll_seconds if self.poll_seconds > 0 else None
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            forced, self._forced = self._forced, False
            try:
                await self.check(forced=forced)
            except Exception:  # a bug: the certificate in use stays, and the next look may do better
                log.exception("%s: looking at the certificate files failed", self.port)

    def start(self) -> None:
        """Look at the files every ``poll_seconds`` (0: only on :meth:`reload`) until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name=f"certificates of the {self.port}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
