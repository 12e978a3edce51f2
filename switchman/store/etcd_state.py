"""Runtime state records and leases on etcd, beside the revisions.

Layout under the store's prefix::

    <prefix>/state/<key>      {"updated_at": ..., "value": {...}}
    <prefix>/leases/<name>    the holder, attached to an etcd lease

A record's version is its key's ``mod_revision``: etcd's revision counter
only grows, so a version is never given again, also across a delete and a
re-create. A write is one transaction comparing it (``mod_revision ==
expected``, or ``version == 0`` for "must not exist"), so a stale writer
changes nothing.

A lease is an etcd lease with the TTL attached to the name's key: when the
holder stops renewing, because it gave up or its process died, etcd deletes
the key when the TTL runs out and another replica can take it. etcd grants
whole seconds (the TTL is rounded up) and raises a TTL below its minimum to
that minimum (1.5 election timeouts, rounded up: 2 s with etcd's defaults),
and checks for expiry every half second or so, so an abandoned lease lasts
somewhat longer than asked. A renewal keeps the TTL the lease was taken
with.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from typing import Any, Final

from switchman.store.base import ConflictError, StateRecord, StoreError
from switchman.store.diff import decode, encode
from switchman.store.state import check_expected, check_key, check_lease, describe_version, encode_state

__all__ = ["EtcdState"]

#: etcd's answer when a lease has expired (or was revoked) already.
_LEASE_NOT_FOUND: Final = "requested lease not found"


class EtcdState:
    """The :class:`~switchman.store.base.StateStore` half of :class:`~switchman.store.etcd.EtcdStore`.

    A mixin: it uses the store's aetcd client, key prefix, endpoint and
    error mapping.
    """

    _client: Any
    _prefix: str
    _endpoint: str

    def _errors(self, doing: str) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError  # EtcdStore's

    # -- state records -----------------------------------------------------------------

    async def get_state(self, key: str) -> StateRecord | None:
        """The record under ``key``, or None."""
        check_key(key)
        with self._errors(f"reading state {key}"):
            kv = await self._client.get(self._state_key(key))
        return None if kv is None else self._record(key, kv.value, kv.mod_revision)

    async def list_state(self, prefix: str) -> list[StateRecord]:
        """Every record whose key starts with ``prefix`` (``""``: all), sorted by key.

        One range read, so the answer must fit the client's 64 MiB receive
        limit: some sixty records at the largest size, thousands of usual ones.
        """
        with self._errors(f"listing state under {prefix!r}"):
            found = await self._client.get_prefix(self._state_key(prefix))
        start = len(self._state_key(""))
        records = [self._record(kv.key[start:].decode(), kv.value, kv.mod_revision) for kv in found]
        return sorted(records, key=lambda r: r.key)

    async def put_state(self, key: str, value: Mapping[str, Any], *, expected_version: int | None) -> StateRecord:
        """Write ``value`` under ``key`` if the record is still at ``expected_version`` (None: absent).

        One transaction: the compare, the put, and a read of the key that
        gives its new mod_revision (on failure: the version it is at, for
        the :class:`ConflictError`).
        """
        text = encode_state(key, value)
        check_expected(expected_version)
        stored = decode(text)  # the value as get_state() will return it
        updated_at = time.time()
        name = self._state_key(key)
        tx = self._client.transactions
        with self._errors(f"writing state {key}"):
            succeeded, responses = await self._client.transaction(
                compare=[tx.version(name) == 0 if expected_version is None else tx.mod(name) == expected_version],
                success=[tx.put(name, encode({"updated_at": updated_at, "value": stored}).encode()), tx.get(name)],
                failure=[tx.get(name)],
            )
        read = responses[-1]  # a range read: [(value, kv)], or [] for a missing key
        if not succeeded:
            raise self._state_conflict(key, expected_version, read[0][1].mod_revision if read else None)
        return StateRecord(key, stored, int(read[0][1].mod_revision), updated_at)

    async def delete_state(self, key: str, *, expected_version: int | None = None) -> None:
        """Delete the record under ``key``, if it is at ``expected_version`` (None: whatever it is at)."""
        check_key(key)
        check_expected(expected_version)
        name = self._state_key(key)
        tx = self._client.transactions
        with self._errors(f"deleting state {key}"):
            succeeded, responses = await self._client.transaction(
                compare=[] if expected_version is None else [tx.mod(name) == expected_version],
                success=[tx.delete(name)],
                failure=[tx.get(name)],
            )
        if not succeeded:
            read = responses[-1]
            raise self._state_conflict(key, expected_version, read[0][1].mod_revision if read else None)

    # -- leases ------------------------------------------------------------------------

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``holder``.

        Renewing (the key holds ``holder``) is one keep-alive of the etcd
        lease the key is attached to, and a read that checks the key is
        still the one it read (see :meth:`_renewed`). Taking grants a new etcd lease of
        ``ttl`` seconds (rounded up to whole seconds) and puts the key in a
        transaction that succeeds only if the key does not exist
        (create_revision == 0) or holds ``holder``; a lease granted for
        nothing is revoked.
        """
        check_lease(name, holder, ttl)
        key, mine = self._lease_key(name), holder.encode()
        tx = self._client.transactions
        with self._errors(f"taking lease {name}"):
            kv = await self._client.get(key)
            if kv is not None and kv.value != mine:
                return False
            if kv is not None and kv.lease and await self._renewed(key, kv):
                return True
            lease = await self._client.lease(max(1, math.ceil(ttl)))
            put = tx.put(key, mine, lease=lease.id)
            succeeded, responses = await self._client.transaction(
                compare=[tx.create(key) == 0],
                success=[put],
                failure=[tx.txn(compare=[tx.value(key) == mine], success=[put], failure=[])],
            )
        taken = bool(succeeded or responses[0].response_txn.succeeded)
        if not taken:
            await self._revoke(lease.id, name)
        return taken

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up, if ``holder`` holds it; otherwise do nothing.

        The key is deleted in a transaction that checks the holder, and its
        etcd lease is revoked after (not instead: the key might have been
        put again with another lease in between, and only the holder check
        is atomic with the delete).
        """
        check_lease(name, holder)
        key = self._lease_key(name)
        tx = self._client.transactions
        with self._errors(f"releasing lease {name}"):
            succeeded, responses = await self._client.transaction(
                compare=[tx.value(key) == holder.encode()], success=[tx.get(key), tx.delete(key)], failure=[]
            )
        if succeeded and responses[0] and responses[0][0][1].lease:
            await self._revoke(responses[0][0][1].lease, name)

    async def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` now, or None."""
        check_lease(name)
        with self._errors(f"reading lease {name}"):
            kv = await self._client.get(self._lease_key(name))
        return None if kv is None else bytes(kv.value).decode()

    # -- helpers -----------------------------------------------------------------------

    async def _renewed(self, key: bytes, kv: Any) -> bool:
        """Keep the lease ``kv`` is attached to alive; True if the key is still that same key.

        A keep-alive answered with a TTL means the etcd lease lives, but not
        that the key is still attached to it (a release and a take may have
        come in between); an unchanged mod_revision, read after the
        keep-alive, proves the key is the one this holder read.
        """
        reply = await self._client.refresh_lease(kv.lease)
        if reply is None or reply.TTL <= 0:
            return False  # expired since the read: the key went with it
        now = await self._client.get(key)
        return now is not None and now.mod_revision == kv.mod_revision

    async def _revoke(self, lease_id: int, name: str) -> None:
        try:
            with self._errors(f"revoking the etcd lease of {name}"):
                await self._client.revoke_lease(lease_id)
        except StoreError as e:
            if _LEASE_NOT_FOUND not in str(e):
                raise

    def _state_key(self, key: str) -> bytes:
        return f"{self._prefix}/state/{key}".encode()

    def _lease_key(self, name: str) -> bytes:
        return f"{self._prefix}/leases/{name}".encode()

    def _record(self, key: str, value: bytes, mod_revision: int) -> StateRecord:
        data = decode(value)
        if not (isinstance(data, Mapping) and isinstance(data.get("value"), Mapping)):
            raise StoreError(f"etcd at {self._endpoint}: state {key!r} under {self._prefix} is malformed")
        try:
            updated_at = float(data["updated_at"])
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"etcd at {self._endpoint}: state {key!r} under {self._prefix} is malformed") from e
        return StateRecord(key, data["value"], int(mod_revision), updated_at)

    def _state_conflict(self, key: str, expected: int | None, current: int | None) -> ConflictError:
        return ConflictError(
            f"etcd at {self._endpoint}{self._prefix}: state {key!r}: expected version {describe_version(expected)},"
            f" but it is {'absent' if current is None else current}"
        )
