"""The etcd backend: several Switchman replicas share one history.

Layout under a prefix (``/switchman`` by default)::

    <prefix>/revisions/000000000042   JSON of revision 42 (summary and documents)
    <prefix>/head                     "42"
    <prefix>/state/...                runtime state records (:mod:`switchman.store.etcd_state`)
    <prefix>/leases/...               leases, each attached to an etcd lease

A commit is one etcd transaction that compares the head key with the head
the caller expected (for the first commit: that the key does not exist) and
puts both keys; a failed compare is a :class:`ConflictError`. Revision keys
are zero-padded so that etcd's byte order is numeric order, which lets
:meth:`EtcdStore.history` read a run of revisions as one key range.

etcd (3.4) refuses requests over 1.5 MiB by default (``--max-request-bytes``),
so that is the largest revision this backend can commit; a larger one raises
:class:`StoreError` with etcd's message.

Retention. :meth:`EtcdStore.prune` deletes the oldest revision keys in one
range delete. etcd keeps every version of every key until its keyspace is
compacted, so deleted revisions would still count against etcd's quota
(2 GiB by default; past it etcd refuses writes): after a prune that deleted
something, the keyspace is compacted up to the etcd revision of that delete
(at most once every ``compact_interval`` seconds, 60 by default), which
drops the deleted records and older versions of the head key for good. The
interval matters: etcd walks its whole key index for every compaction, so
compacting after each of 3,000 quick commits, beside 35 MiB of other keys,
fell behind and the database grew as if nothing were pruned, while
compacting every 2 s held it flat (40.7 MiB, 30-33 MiB in use). Compaction is
etcd-wide: it drops the history (never the current values) of every key up
to that revision, also outside this prefix, as Kubernetes' API server does.
A watch that would start before it fails and is opened again from the head.

The client is ``aetcd`` (asyncio, gRPC) on a channel of
:mod:`switchman.store.etcd_client` (TLS, user/password authentication, a
reconnection capped at 0.5 s). Its exceptions, and gRPC's, are mapped to
:class:`StoreError` here, at the edge, with the endpoint named, and for TLS
and authentication failures the setting to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from typing import Any, Final

import aetcd  # type: ignore[import-untyped]  # aetcd ships no type information
import grpc

from switchman.store.base import (
    ConflictError,
    Document,
    Revision,
    RevisionNotFound,
    RevisionSummary,
    StoreError,
    check_keep,
    revision_missing,
)
from switchman.store.diff import decode, diff, encode
from switchman.store.etcd_client import RECONNECT_MAX, EtcdAuth, EtcdClient, EtcdTls, explain
from switchman.store.etcd_state import EtcdState

__all__ = ["DEFAULT_PORT", "DEFAULT_PREFIX", "EtcdStore"]

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 2379
DEFAULT_PREFIX: Final = "/switchman"
#: Seconds an etcd call may take before it fails with a StoreError.
DEFAULT_TIMEOUT: Final = 10.0
_DIGITS: Final = 12
#: Revisions fetched per range read: each may be up to etcd's 1.5 MiB request
#: limit, and the whole response must stay under the receive limit below.
_RANGE_BATCH: Final = 16
_MAX_RECEIVE_BYTES: Final = 64 * 1024 * 1024
#: The first and the largest delay before a broken watch is opened again (see _watch).
_RETRY_FIRST: Final = 0.05
_RETRY_MAX: Final = RECONNECT_MAX
#: Seconds between two compactions (see Retention above).
DEFAULT_COMPACT_INTERVAL: Final = 60.0


class _Watcher:
    """One watch's position: the last revision number it has yielded (None: not placed yet)."""

    __slots__ = ("__weakref__", "after", "streaming")

    def __init__(self, after: int | None) -> None:
        self.after = after
        self.streaming = False  # an etcd watch stream is open (set when opened, cleared when it fails)


class EtcdStore(EtcdState):
    """A :class:`~switchman.store.base.Store` on etcd v3, under one key prefix (state and leases: :class:`EtcdState`).

    Creating the object opens no connection; the first call does.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        compact_interval: float = DEFAULT_COMPACT_INTERVAL,
        tls: EtcdTls | None = None,
        auth: EtcdAuth | None = None,
    ) -> None:
        self._compact_interval = compact_interval
        self._compacted_at: float | None = None  # time.monotonic() of the last compaction
        self._endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._prefix = "/" + prefix.strip("/")
        self._head_key = f"{self._prefix}/head".encode()
        self._tls, self._auth = tls, auth
        self._client: Any = EtcdClient(
            f"[{host}]" if ":" in host else host,
            port,
            timeout=timeout,
            options={"grpc.max_receive_message_length": _MAX_RECEIVE_BYTES},
            tls=tls,
            auth=auth,
        )
        self._closed = False
        self._watchers: weakref.WeakSet[_Watcher] = weakref.WeakSet()

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def prefix(self) -> str:
        return self._prefix

    def __repr__(self) -> str:
        tls = ", tls" if self._tls is not None else ""
        user = f", user={self._auth.user!r}" if self._auth is not None else ""
        return f"EtcdStore({self._endpoint!r}, prefix={self._prefix!r}{tls}{user})"

    # -- the Store protocol ------------------------------------------------------------

    async def head(self) -> Revision | None:
        """The newest revision, or None for an empty store."""
        number, _ = await self._head_number()
        return None if number is None else await self.get(number)

    async def head_number(self) -> int | None:
        """The newest revision's number (None: an empty store): one read of the head key."""
        number, _ = await self._head_number()
        return number

    async def get(self, number: int) -> Revision:
        """Revision ``number``; raises :class:`RevisionNotFound` (saying so when it was pruned)."""
        with self._errors(f"reading revision {number}"):
            kv = await self._client.get(self._revision_key(number))
        if kv is None:
            head, _ = await self._head_number()
            raise revision_missing(number, head)
        return self._revision(kv.value)

    async def commit(
        self,
        documents: Sequence[Document],
        *,
        author: str,
        message: str,
        expected_head: int | None,
        rollback_of: int | None = None,
        on_behalf_of: str | None = None,
    ) -> Revision:
        """Store ``documents`` as the next revision if the head is still ``expected_head``.

        The diff is computed against the head read first; the transaction
        then only succeeds if the head key still holds that head, so the diff
        and the compare are about the same revision.
        """
        head, _ = await self._head_number()
        if head != expected_head:
            raise self._conflict(expected_head, head)
        if rollback_of is not None:
            try:
                await self.get(rollback_of)
            except RevisionNotFound:
                # A prune racing this check may delete it just after: the rollback's documents are
                # the caller's, read before, so the new revision is right all the same.
                raise revision_missing(rollback_of, head, "cannot roll back") from None
        previous = () if head is None else (await self.get(head)).documents
        changes = diff(previous, documents)
        number = (head or 0) + 1
        record: dict[str, Any] = {
            "number": number,
            "author": author,
            "created_at": time.time(),
            "message": message,
            "added": changes.added,
            "changed": changes.changed,
            "removed": changes.removed,
            "rollback_of": rollback_of,
            "on_behalf_of": on_behalf_of,
            "documents": tuple(documents),
        }
        value = encode(record)
        tx = self._client.transactions
        key = self._revision_key(number)
        compare = [
            tx.version(self._head_key) == 0 if head is None else tx.value(self._head_key) == str(head).encode(),
            tx.version(key) == 0,
        ]
        with self._errors(f"committing revision {number}"):
            succeeded, _ = await self._client.transaction(
                compare=compare,
                success=[tx.put(key, value.encode()), tx.put(self._head_key, str(number).encode())],
                failure=[],
            )
        if not succeeded:
            now, _ = await self._head_number()
            if now != head:
                raise self._conflict(expected_head, now)
            raise StoreError(
                f"etcd at {self._endpoint}: {key.decode()} already exists but {self._head_key.decode()} is {head}:"
                " the store under this prefix was written by something else"
            )
        for watcher in self._watchers:
            if watcher.after is None:
                watcher.after = number - 1
        return self._revision(value)

    async def history(self, limit: int = 50) -> list[RevisionSummary]:
        """The newest ``limit`` revisions, newest first (read as key ranges, a batch at a time)."""
        head, _ = await self._head_number()
        if head is None or limit <= 0:
            return []
        summaries: list[RevisionSummary] = []
        end = head
        first = max(1, head - limit + 1)
        while end >= first:
            start = max(first, end - _RANGE_BATCH + 1)
            with self._errors(f"reading revisions {start} to {end}"):
                found = await self._client.get_range(self._revision_key(start), self._revision_key(end + 1))
            batch = [self._revision(kv.value).summary for kv in found]
            summaries.extend(sorted(batch, key=lambda s: s.number, reverse=True))
            end = start - 1
        return summaries

    async def prune(self, keep: int) -> int:
        """Delete every revision but the newest ``keep`` (one range delete); returns how many went.

        Then compacts etcd's keyspace up to that delete, at most once every
        ``compact_interval`` seconds (the module's docstring says why). A
        compaction that fails is logged: the prune itself is done.
        """
        check_keep(keep)
        head, _ = await self._head_number()
        if head is None or head <= keep:
            return 0
        first_kept = head - keep + 1
        with self._errors(f"deleting revisions before {first_kept}"):
            deleted = await self._client.delete_range(
                f"{self._prefix}/revisions/".encode(), self._revision_key(first_kept)
            )
        if deleted.deleted:
            await self._compact(int(deleted.header.revision))
        return int(deleted.deleted)

    def watch(self, *, after: int | None = None) -> AsyncGenerator[Revision, None]:
        """Every new head, in order, each revision exactly once, from any replica.

        An etcd watch on the head key, no polling: each put of the head wakes
        it, and it then reads the revisions it has not yielded yet (numbers
        have no gaps, so none is skipped even if etcd merged two events). If
        the stream breaks (etcd restarted, network), it is opened again with
        a short backoff (at most 0.5 s), a warning logged once an outage, and
        the revisions committed meanwhile are yielded on reconnection.

        "New" means newer than ``after`` when it is given (the number the
        caller already holds, which makes ``head()`` then ``watch(after=...)``
        race-free); otherwise newer than the head when iteration starts, and
        never misses a commit made through this object after this call. The
        iteration ends when the store is closed.
        """
        watcher = _Watcher(after)
        self._watchers.add(watcher)
        return self._watch(watcher)

    async def close(self) -> None:
        """Close the connection; running watches end, later calls raise :class:`StoreError`."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(aetcd.ClientError, grpc.RpcError, TimeoutError):
            await self._client.close()

    # -- watching ----------------------------------------------------------------------

    async def _watch(self, watcher: _Watcher) -> AsyncGenerator[Revision, None]:
        """Open the stream again after each failure, with a delay doubling from 0.05 s to 0.5 s: the channel
        reconnects as often (see :mod:`switchman.store.etcd_client`), so a watch follows etcd within half a
        second of its return. The first failure of an outage is a warning, the repeats are debug."""
        delay = _RETRY_FIRST
        warned = False
        try:
            while not self._closed:
                try:
                    async with contextlib.aclosing(self._watch_stream(watcher)) as revisions:
                        async for revision in revisions:
                            delay = _RETRY_FIRST
                            yield revision
                    problem = "ended"
                except StoreError as e:
                    problem = f"broke: {e}"
                if self._closed:
                    return
                if watcher.streaming:  # it had been following: a new outage
                    delay, warned, watcher.streaming = _RETRY_FIRST, False, False
                (log.debug if warned else log.warning)(
                    "watch on %s %s; again in %.2f s%s", self._endpoint, problem, delay,
                    " (and as often until it answers)" if not warned else "",
                )
                warned = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
        finally:
            self._watchers.discard(watcher)

    async def _watch_stream(self, watcher: _Watcher) -> AsyncGenerator[Revision, None]:
        """One etcd watch stream: catch up from ``watcher.after``, then follow the head key.

        The stream starts right after the etcd revision at which the head was
        read, so a commit landing between the read and the watch is an event.
        """
        head, read_at = await self._head_number()
        target = head or 0
        if watcher.after is None:
            watcher.after = target
        with self._errors("watching the head"):
            stream = await self._client.watch(self._head_key, start_revision=read_at + 1, kind=aetcd.EventKind.PUT)
        watcher.streaming = True
        try:
            events = aiter(stream)
            while True:
                while watcher.after < target:
                    number = watcher.after + 1
                    try:
                        revision = await self.get(number)
                    except RevisionNotFound:
                        target = await self._skip_pruned(watcher, number, target)
                        continue
                    watcher.after = revision.number
                    yield revision
                with self._errors("watching the head"):
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        return
                target = max(target, self._parse_head(event.kv.value))
        finally:
            if not self._closed:  # close() has ended every stream, and aetcd's cancel then fails
                with contextlib.suppress(aetcd.ClientError, grpc.RpcError, TimeoutError):
                    await stream.cancel()

    async def _skip_pruned(self, watcher: _Watcher, number: int, target: int) -> int:
        """Revision ``number`` is gone: pruned before this watch read it (a revision key and the head
        are written in one transaction, so a missing one below the head was deleted). Every revision
        holds the whole config, so the watch goes on with the head; returns the new target."""
        head, _ = await self._head_number()
        if head is None or head <= number:
            raise revision_missing(number, head, f"etcd at {self._endpoint}: watching")
        log.info("revisions %d to %d were pruned before the watch read them; going on with %d", number, head - 1, head)
        watcher.after = head - 1
        return max(target, head)

    async def _compact(self, revision: int) -> None:
        """Compact etcd's keyspace up to ``revision``, unless the last compaction is too recent."""
        now = time.monotonic()
        if self._compacted_at is not None and now - self._compacted_at < self._compact_interval:
            return
        self._compacted_at = now
        try:
            with self._errors(f"compacting up to etcd revision {revision}"):
                await self._client.compact(revision)
        except StoreError as e:
            if "compacted" in str(e):  # someone compacted further already: nothing left to do
                return
            log.warning("%s (the pruned revisions still take space in etcd until a compaction)", e)
        else:
            log.debug("etcd at %s compacted up to revision %d", self._endpoint, revision)

    # -- helpers -----------------------------------------------------------------------

    async def _head_number(self) -> tuple[int | None, int]:
        """The head's number (None: empty) and the etcd revision it was read at.

        A range read, not a get: it answers with etcd's revision even when
        the key is absent.
        """
        with self._errors("reading the head"):
            found = await self._client.get_range(self._head_key, self._head_key + b"\0")
        read_at = int(found.header.revision)
        if not found.count:
            return None, read_at
        return self._parse_head(found[0].value), read_at

    def _parse_head(self, value: bytes) -> int:
        try:
            return int(value)
        except ValueError:
            raise StoreError(
                f"etcd at {self._endpoint}: {self._head_key.decode()} holds {value!r}, not a revision number"
            ) from None

    def _revision_key(self, number: int) -> bytes:
        return f"{self._prefix}/revisions/{number:0{_DIGITS}d}".encode()

    def _revision(self, value: bytes | str) -> Revision:
        data = decode(value)
        try:
            if not isinstance(data, Mapping):
                raise TypeError("not an object")
            summary = RevisionSummary(
                number=int(data["number"]),
                author=str(data["author"]),
                created_at=float(data["created_at"]),
                message=str(data["message"]),
                added=tuple(data["added"]),
                changed=tuple(data["changed"]),
                removed=tuple(data["removed"]),
                rollback_of=None if data["rollback_of"] is None else int(data["rollback_of"]),
                on_behalf_of=None if data.get("on_behalf_of") is None else str(data["on_behalf_of"]),
            )
            return Revision(summary, tuple(data["documents"]))
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"etcd at {self._endpoint}: a revision under {self._prefix} is malformed: {e}") from e

    def _conflict(self, expected: int | None, head: int | None) -> ConflictError:
        def describe(n: int | None) -> str:
            return "none (an empty store)" if n is None else str(n)

        return ConflictError(
            f"etcd at {self._endpoint}{self._prefix}: expected head {describe(expected)},"
            f" but the head is {describe(head)}"
        )

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Map aetcd's and gRPC's exceptions to :class:`StoreError`, naming the endpoint (and, for TLS and
        authentication failures, the setting to look at)."""
        if self._closed:
            raise StoreError(f"etcd at {self._endpoint}: the store is closed")
        try:
            yield
        except (aetcd.ClientError, grpc.RpcError) as e:
            text = " ".join((e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e) or repr(e)).split())
            hint = explain(text, self._tls, self._auth)
            if hint is not None:
                raise StoreError(f"etcd at {self._endpoint}: {doing} failed: {hint} ({text})") from e
            if isinstance(e, (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError)):
                raise StoreError(f"etcd at {self._endpoint} is unreachable ({doing}): {text}") from e
            raise StoreError(f"etcd at {self._endpoint}: {doing} failed: {text}") from e
        except TimeoutError as e:
            raise StoreError(f"etcd at {self._endpoint}: {doing} timed out") from e
