"""Apply, delete, roll back: the one path by which configuration changes.

Every change goes the same way: the new set of documents is checked (each
document, then all together), translated into Envoy resources and built
into a snapshot — all before anything is stored. Only then is it committed
to the store; the snapshot is served when the store says a new head exists
(from this replica or another), so replicas converge through the store.
A rejected change leaves the store and the running config untouched.

Every change may name the revision it was made against
(``expected_revision``, the REST API's ``If-Match``): when the head has
moved since, it is refused with :class:`~switchman.store.ConflictError`
and nothing is stored. After a commit, revisions older than the newest
``history_keep`` are pruned from the store (0 keeps them all).

Endpoints discovered outside the documents (Kubernetes) are laid over the served snapshots by
:class:`~switchman.control.discovered.DiscoveredLayer`: :meth:`Controller.set_discovered` re-sends only
the load assignments they feed, and makes no revision.

New heads from the store arrive through a :class:`~switchman.control.follower.Follower`,
which outlives the store's failures and says how well it follows
(:meth:`Controller.health`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from google.protobuf import json_format

from switchman.control.discovered import DiscoveredEndpoint, DiscoveredLayer, endpoint_rows
from switchman.control.follower import PROBE_INTERVAL, Follower, StoreHealth
from switchman.control.groups import Served, build_served
from switchman.errors import ConfigError, SwitchmanError
from switchman.model.config import Document, parse_document
from switchman.model.document import document_id
from switchman.model.kinds.service import KubernetesSource
from switchman.model.labels import check_selector, format_selector, matches
from switchman.store.base import ConflictError, Revision, RevisionSummary, Store, StoreError
from switchman.xds import DEFAULT_GROUP, Snapshot, SnapshotCache
from switchman.xds import resources as rt

__all__ = ["ApplyResult", "Controller", "NotFound", "RenderedDiff"]

log = logging.getLogger(__name__)


#: How long a group commit waits for more edits before it starts, while more keep coming, and at most
#: (see Controller.edit_together).
_LINGER: Final = 0.005
_LINGER_MAX: Final = 0.05


class NotFound(SwitchmanError):
    """Raised when a document or revision asked for does not exist."""


@dataclass(frozen=True, slots=True)
class RenderedDiff:
    """What an apply would change in the Envoy resources: ``type/name`` lists."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ApplyResult:
    revision: int | None  # None for a dry run or when nothing changed
    created: tuple[str, ...]
    configured: tuple[str, ...]
    unchanged: tuple[str, ...]
    deleted: tuple[str, ...]
    envoy: RenderedDiff  # for every node (the default group)
    dry_run: bool
    groups: Mapping[str, RenderedDiff] = field(default_factory=dict)  # for each named node group
    # The store's head as this change leaves it: the new revision, or for a dry run or a change that
    # changed nothing, the head it was checked against (None: an empty store). What If-Match takes next.
    head: int | None = None
    # When (wall clock) the new revision was installed in the snapshot cache, this replica serving it: the
    # moment its change took effect here, the pushes to the Envoys starting. None when nothing was committed.
    served_at: float | None = None


def _parse_revision(revision: Revision) -> dict[str, Document]:
    out = {}
    for i, raw in enumerate(revision.documents):
        doc = parse_document(raw, f"revision {revision.number} [{i}]")
        out[doc.id] = doc
    return out


def _diff_snapshots(old: Snapshot | None, new: Snapshot | None) -> RenderedDiff:
    added, changed, removed = [], [], []
    for type_url in rt.ORDERED_TYPES:
        before = old.get(type_url).resources if old is not None else {}
        after = new.get(type_url).resources if new is not None else {}
        short = rt.short_name(type_url)
        added += [f"{short}/{n}" for n in sorted(after.keys() - before.keys())]
        removed += [f"{short}/{n}" for n in sorted(before.keys() - after.keys())]
        both = sorted(after.keys() & before.keys())
        changed += [f"{short}/{n}" for n in both if after[n].version != before[n].version]
    return RenderedDiff(tuple(added), tuple(changed), tuple(removed))


def _split_entry(entry: Mapping[str, Any]) -> str:
    """``checkout/v2=10``: one split entry, for the history's message."""
    target = entry.get("cluster") or entry.get("service")
    version = f"/{entry['version']}" if entry.get("version") else ""
    return f"{target}{version}={entry.get('weight')}"


@dataclass(slots=True)
class _QueuedEdit:
    target: str  # a document id
    change: Callable[[dict[str, Any]], dict[str, Any]]
    author: str
    message: str
    done: asyncio.Future[ApplyResult]


def _edited(
    documents: Mapping[str, Document], target: str, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> Document:
    """Document ``target`` of ``documents`` as ``change`` (given a copy of it) makes it, checked on its own;
    raises NotFound when there is no such document, or what ``change`` or the check raises."""
    doc = documents.get(target)
    if doc is None:
        raise NotFound(f"{target} does not exist")
    return parse_document(change(copy.deepcopy(dict(doc.raw))), target)


def _with_edited(
    target: str, change: Callable[[dict[str, Any]], dict[str, Any]], current: dict[str, Document]
) -> dict[str, Document]:
    return {**current, target: _edited(current, target, change)}


def _apply_edits(
    current: Mapping[str, Document], edits: Sequence[_QueuedEdit]
) -> tuple[dict[str, Document], list[tuple[_QueuedEdit, SwitchmanError]]]:
    """``current`` with each edit made in turn, and the edits that do not apply (left out) with their errors.
    It touches no future: it may run on a worker thread."""
    proposed = dict(current)
    failed = []
    for edit in edits:
        try:
            proposed[edit.target] = _edited(proposed, edit.target, edit.change)
        except SwitchmanError as exc:
            failed.append((edit, exc))
    return proposed, failed


class _EditsFailed(SwitchmanError):
    """Raised when edits that applied to one head do not all apply to the head the change found: they are
    then made one by one, so that those that fail fail alone."""


def _edits_made_on(
    base: Mapping[str, Document], made: dict[str, Document], edits: Sequence[_QueuedEdit], current: dict[str, Document]
) -> dict[str, Document]:
    """``edits`` made on ``current``: ``made`` when ``current`` holds the very documents ``base`` did (the
    edits were made on it already), else made again."""
    if len(current) == len(base) and all(current.get(k) is doc for k, doc in base.items()):
        return dict(made)
    proposed, failed = _apply_edits(current, edits)
    if failed:
        raise _EditsFailed(f"{len(failed)} of {len(edits)} edits do not apply to the new head")
    return proposed


#: Changes with at least this many documents are checked and built on a worker thread: thousands of
#: documents take tens of milliseconds that the event loop (every xDS stream's pushes, keepalives) should
#: not wait for. Smaller ones are done inline: a thread hop costs more than they do.
OFF_LOOP_DOCUMENTS: Final = 200

_T = TypeVar("_T")


async def _off_loop_if_big(documents: int, work: Callable[[], _T]) -> _T:
    if documents >= OFF_LOOP_DOCUMENTS:
        return await asyncio.to_thread(work)
    return work()


def _proposed_and_served(
    mutate: Callable[[dict[str, Document]], dict[str, Document]], current: dict[str, Document]
) -> tuple[dict[str, Document], Served]:
    proposed = mutate(current)
    return proposed, build_served(proposed.values())


def _joined(authors: Iterable[str]) -> str:
    """Every author once, in order: ``rollout/a, rollout/b``."""
    return ", ".join(dict.fromkeys(authors))


class Controller:
    """Owns the path from documents to served snapshots.

    ``history_keep``: after each commit, keep the newest that many revisions
    in the store (0: all). ``probe_interval``: how often the follower asks
    the store for its head (see :mod:`switchman.control.follower`).
    ``admit``: called with every change's snapshots (by node group) before
    it is stored, dry runs included; it may refuse the change with
    ConfigError (the xDS server's check that clients can receive them).
    """

    def __init__(
        self, store: Store, cache: SnapshotCache, *, history_keep: int = 0, probe_interval: float = PROBE_INTERVAL,
        admit: Callable[[Mapping[str, Snapshot]], None] | None = None,
    ) -> None:
        if history_keep < 0:
            raise ValueError(f"history_keep is 0 (keep all) or more, not {history_keep}")
        self.store = store
        self.cache = cache
        self.history_keep = history_keep
        self.admit = admit
        self._lock = asyncio.Lock()
        self._served: Served | None = None
        self.discovered = DiscoveredLayer()
        self._installed: dict[str, Snapshot] = {}  # what the cache holds: the served snapshots, overlaid
        self._sources_listeners: list[Callable[[frozenset[KubernetesSource]], None]] = []
        self._served_revision: int | None = None
        self._parsed: tuple[int, dict[str, Document]] | None = None
        self._follower = Follower(store, self._followed, lambda: self._served_revision, probe_interval=probe_interval)
        self._listeners: list[Callable[[int], None]] = []
        self._queued: list[_QueuedEdit] = []  # edit_together's, waiting for the lock
        # The revision this replica last committed, while nothing newer has come from the store: the head
        # a change starts from without reading it (see _change_locked).
        self._committed_head: int | None = None
        self._pruned_at = 0  # the revision the history was last pruned at
        self._committer: asyncio.Task[None] | None = None

    # -- serving -------------------------------------------------------------

    async def start(self) -> None:
        """Serve the store's head, then follow new heads (from any replica); prune the history to
        ``history_keep`` revisions now, not only after the next commit: a store too full to take one (etcd
        past its quota) is freed by a replica started with a smaller ``--history-keep``."""
        head = await self.store.head()
        if head is not None:
            self._serve(head)
            self._pruned_at = head.number
            await self._prune()
        # From the head just read on: a commit landing in between is not missed.
        self._follower.start(head.number if head is not None else None)

    async def stop(self) -> None:
        await self._follower.stop()

    def health(self) -> StoreHealth:
        """How this replica follows the store: served and head revisions, last contact, last error, ready."""
        return self._follower.health()

    def _followed(self, revision: Revision) -> None:
        if self._served_revision is None or revision.number > self._served_revision:
            self._serve(revision)

    def _serve(self, revision: Revision) -> None:
        try:
            served = build_served(self._documents_of(revision).values())
        except SwitchmanError as exc:  # stored by a newer or broken replica: keep serving what we have
            log.error("revision %d not served, still serving %s: %s", revision.number, self._served_revision, exc)
            return
        except Exception:  # a bug (in checking or translating): the follower must go on all the same
            log.exception("revision %d not served, still serving %s", revision.number, self._served_revision)
            return
        self._install(served)
        self._served_now(revision.number)
        log.info("serving revision %d (node groups: %s)", revision.number, ", ".join(served.snapshots))

    def add_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(revision)`` each time a new revision is served (from this replica or another)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[int], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _served_now(self, revision: int) -> None:
        self._served_revision = revision
        for listener in list(self._listeners):
            listener(revision)

    def _install(self, served: Served) -> None:
        installed = {}
        for group, snapshot in served.snapshots.items():
            installed[group] = self.discovered.overlay(snapshot, served.discovered)
            self.cache.set_snapshot(group, installed[group])
        if self._served is not None:
            for group in self._served.snapshots.keys() - served.snapshots.keys():
                self.cache.clear_snapshot(group)  # its nodes fall back to the default group
        before = self.discovery_sources()
        self._served, self._installed = served, installed
        sources = self.discovery_sources()
        for gone in before - sources:
            self.discovered.forget(gone)
        if sources != before:
            for listener in list(self._sources_listeners):
                listener(sources)

    # -- discovered endpoints ------------------------------------------------

    def discovery_sources(self) -> frozenset[KubernetesSource]:
        """The Kubernetes sources that the served documents name."""
        return frozenset(self._served.discovered.values()) if self._served is not None else frozenset()

    def add_sources_listener(self, listener: Callable[[frozenset[KubernetesSource]], None]) -> None:
        """Call ``listener(sources)`` whenever the set of :meth:`discovery_sources` changes."""
        self._sources_listeners.append(listener)

    def set_discovered(self, source: KubernetesSource, endpoints: Sequence[DiscoveredEndpoint]) -> bool:
        """``source``'s endpoints are now ``endpoints``: every group whose snapshot has a cluster fed by it gets
        new load assignments for those clusters alone (no revision, no translation). True when something
        was re-sent."""
        if not self.discovered.update(source, endpoints) or self._served is None:
            return False
        sent = False
        for group, snapshot in list(self._installed.items()):
            changed = self.discovered.overlay(snapshot, self._served.discovered, only=source)
            if changed is not snapshot:
                self._installed[group] = changed
                self.cache.set_snapshot(group, changed)
                sent = True
        return sent

    def endpoints(self, group: str = DEFAULT_GROUP) -> dict[str, list[dict[str, Any]]]:
        """Every endpoint a node group is served now, by cluster, with where it came from."""
        snapshot = self.cache.snapshot(group)
        if snapshot is None or self._served is None:
            return {}
        return endpoint_rows(snapshot, self._served.discovered, self.discovered, self._served.origin)

    def _documents_of(self, revision: Revision | None) -> dict[str, Document]:
        """The checked documents of ``revision``. Revisions never change, so the last one parsed
        is kept: every change and every read starts from the head, which is mostly the same one."""
        if revision is None:
            return {}
        if self._parsed is None or self._parsed[0] != revision.number:
            self._parsed = (revision.number, _parse_revision(revision))
        return dict(self._parsed[1])

    @property
    def served_revision(self) -> int | None:
        return self._served_revision

    # -- changes -------------------------------------------------------------

    async def apply(
        self,
        raws: Sequence[Any],
        *,
        author: str,
        message: str = "",
        dry_run: bool = False,
        source: str = "request",
        expected_revision: int | None = None,
        on_behalf_of: str | None = None,
        prune: Mapping[str, str] | None = None,
    ) -> ApplyResult:
        """Create or replace documents (kubectl apply); all or nothing.

        ``prune`` (a label selector): also delete, in the same revision, every document that carries its
        labels and is not among ``raws`` — what makes the store hold exactly a folder's documents. Every
        document applied must carry them too (or the next prune would not see it); an empty selector is
        refused rather than read as "every document"."""
        if prune is not None:
            if not prune:
                raise ConfigError(
                    "selector", "is empty: a prune needs labels to choose what it may delete (-l app=shop); "
                    "an empty selector would delete every document this apply does not name"
                )
            check_selector(prune)
        incoming = await _off_loop_if_big(
            len(raws), lambda: [parse_document(raw, f"{source}[{i}]") for i, raw in enumerate(raws)]
        )
        seen: set[str] = set()
        for doc in incoming:
            if doc.id in seen:
                raise ConfigError(doc.id, "appears twice in this apply")
            if prune is not None and not matches(doc.labels, prune):
                raise ConfigError(
                    f"{doc.id}: metadata.labels",
                    f"does not carry {format_selector(prune)}: what an apply with a prune selector applies must carry "
                    "its labels, or the next such apply would neither see nor prune it",
                )
            seen.add(doc.id)
        applied = {d.id: d for d in incoming}

        def mutate(current: dict[str, Document]) -> dict[str, Document]:
            if prune is None:
                return {**current, **applied}
            kept = {k: d for k, d in current.items() if k in applied or not matches(d.labels, prune)}
            return {**kept, **applied}

        if not message:
            message = "apply" if prune is None else f"apply, pruning {format_selector(prune)}"
        return await self._change(
            mutate, author=author, message=message, dry_run=dry_run, expected_revision=expected_revision,
            on_behalf_of=on_behalf_of,
        )

    async def delete(
        self,
        kind: str,
        name: str,
        *,
        author: str,
        dry_run: bool = False,
        expected_revision: int | None = None,
        on_behalf_of: str | None = None,
    ) -> ApplyResult:
        target = document_id(kind, name)

        def without(current: dict[str, Document]) -> dict[str, Document]:
            if target not in current:
                raise NotFound(f"{target} does not exist")
            return {k: v for k, v in current.items() if k != target}

        return await self._change(
            without, author=author, message=f"delete {target}", dry_run=dry_run, expected_revision=expected_revision,
            on_behalf_of=on_behalf_of,
        )

    async def edit(
        self,
        kind: str,
        name: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        author: str,
        message: str,
        dry_run: bool = False,
        expected_revision: int | None = None,
        on_behalf_of: str | None = None,
    ) -> ApplyResult:
        """Replace one document by ``change(copy of it)``: read, changed and committed under the one lock,
        so a change that lands meanwhile (from this replica, or another: the store checks the head) is
        never replayed from a stale copy. ``change`` may raise NotFound or ConfigError."""
        return await self._change(
            functools.partial(_with_edited, document_id(kind, name), change), author=author, message=message,
            dry_run=dry_run, expected_revision=expected_revision, on_behalf_of=on_behalf_of,
        )

    async def edit_together(
        self,
        kind: str,
        name: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        author: str,
        message: str,
    ) -> ApplyResult:
        """:meth:`edit`, but edits that arrive while another change is being made are committed together, in
        one revision (a group commit): what many rollouts stepping at the same moment need — one check,
        one snapshot build and one commit for all of them, not one each, one after the other. The revision's
        author names every author in it, its message every message. Each edit is still checked: one that
        does not apply (NotFound, ConfigError) fails alone, and if the edits are wrong only together, each is
        made on its own so that the culprit alone fails."""
        done: asyncio.Future[ApplyResult] = asyncio.get_running_loop().create_future()
        self._queued.append(_QueuedEdit(document_id(kind, name), change, author, message, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return await done

    async def _commit_queued(self) -> None:
        while self._queued:
            # Rollouts due at the same moment reach here one after another: while more keep coming, wait
            # for them (a little at a time, up to a bound), so that they share this revision rather than
            # queue for the next ones, each a full check and build.
            waited = 0.0
            while True:
                seen = len(self._queued)
                await asyncio.sleep(_LINGER)
                waited += _LINGER
                if len(self._queued) == seen or waited >= _LINGER_MAX:
                    break
            async with self._lock:
                batch, self._queued = self._queued, []
                try:
                    # Those that do not apply fail now, so that the revision names only the others' authors.
                    _, current, _ = await self._head()
                    proposed, failed = _apply_edits(current, batch)
                    for edit, exc in failed:
                        if not edit.done.done():
                            edit.done.set_exception(exc)
                    batch = [e for e in batch if not e.done.done()]
                    if not batch:
                        continue
                    result = await self._change_locked(
                        functools.partial(_edits_made_on, current, proposed, batch),
                        author=_joined(e.author for e in batch), message="; ".join(e.message for e in batch),
                    )
                except (ConfigError, _EditsFailed):
                    for edit in batch:  # wrong together: each on its own, so the culprit alone fails
                        if not edit.done.done():
                            await self._edit_alone(edit)
                    continue
                except Exception as exc:  # the store, or a bug: every caller hears of it, none waits forever
                    for edit in batch:
                        if not edit.done.done():
                            edit.done.set_exception(exc)
                    continue
                for edit in batch:
                    if not edit.done.done():
                        edit.done.set_result(result)

    async def _edit_alone(self, edit: _QueuedEdit) -> None:
        try:
            result = await self._change_locked(
                functools.partial(_with_edited, edit.target, edit.change),
                author=edit.author, message=edit.message,
            )
        except SwitchmanError as exc:
            if not edit.done.done():
                edit.done.set_exception(exc)
        else:
            if not edit.done.done():
                edit.done.set_result(result)

    async def set_weights(
        self,
        service: str,
        weights: Mapping[str, int],
        *,
        author: str,
        expected_revision: int | None = None,
        on_behalf_of: str | None = None,
    ) -> ApplyResult:
        """Replace a Service's default split (what a traffic shift moves)."""

        def weighted(raw: dict[str, Any]) -> dict[str, Any]:
            raw["spec"] = {**dict(raw["spec"]), "weights": dict(weights)}
            return raw

        return await self.edit(
            "Service", service, weighted, author=author, message=f"weights of service/{service}: {dict(weights)}",
            expected_revision=expected_revision, on_behalf_of=on_behalf_of,
        )

    async def set_route_split(
        self,
        routes: str,
        route: str,
        split: Sequence[Mapping[str, Any]],
        *,
        author: str,
        dry_run: bool = False,
        expected_revision: int | None = None,
        on_behalf_of: str | None = None,
    ) -> ApplyResult:
        """Replace the action of the route named ``route`` in Routes ``routes`` by a weighted ``split``
        (entries as in a document: ``{"service": "checkout", "version": "v2", "weight": 10}``)."""

        def resplit(raw: dict[str, Any]) -> dict[str, Any]:
            found = [r for vhost in raw["spec"]["virtualHosts"] for r in vhost["routes"] if r.get("name") == route]
            if not found:
                raise NotFound(f"routes/{routes} has no route named {route!r} (name a route with routes[].name)")
            for entry in found:
                for action in ("cluster", "service", "split", "redirect", "directResponse"):
                    entry.pop(action, None)
                entry["split"] = [dict(item) for item in split]
            return raw

        weights = ", ".join(_split_entry(s) for s in split)
        return await self.edit(
            "Routes", routes, resplit, author=author, message=f"split of routes/{routes} {route}: {weights}",
            dry_run=dry_run, expected_revision=expected_revision, on_behalf_of=on_behalf_of,
        )

    async def rollback(
        self, number: int, *, author: str, expected_revision: int | None = None, on_behalf_of: str | None = None
    ) -> ApplyResult:
        """A new revision with the documents of revision ``number``; RevisionNotFound (saying so) if it was pruned."""
        target = await self.store.get(number)
        docs = self._documents_of(target)
        return await self._change(
            lambda current: docs, author=author, message=f"rollback to revision {number}", rollback_of=number,
            expected_revision=expected_revision, on_behalf_of=on_behalf_of,
        )

    async def _head(self) -> tuple[int | None, dict[str, Document], bool]:
        """The head a change starts from: its number, its checked documents, and whether it is the one
        this replica itself committed last (known without reading the store; see :meth:`_change_locked`)."""
        cached = self._parsed if self._committed_head is not None else None
        if cached is not None and cached[0] == self._committed_head == self._served_revision:
            return cached[0], dict(cached[1]), True
        head = await self.store.head()
        return (head.number if head is not None else None), self._documents_of(head), False

    async def _change(
        self,
        mutate: Callable[[dict[str, Document]], dict[str, Document]],
        *,
        author: str,
        message: str,
        dry_run: bool = False,
        rollback_of: int | None = None,
        expected_revision: int | None = None,
        on_behalf_of: str | None = None,
    ) -> ApplyResult:
        async with self._lock:
            return await self._change_locked(
                mutate, author=author, message=message, dry_run=dry_run, rollback_of=rollback_of,
                expected_revision=expected_revision, on_behalf_of=on_behalf_of,
            )

    async def _change_locked(
        self,
        mutate: Callable[[dict[str, Document]], dict[str, Document]],
        *,
        author: str,
        message: str,
        dry_run: bool = False,
        rollback_of: int | None = None,
        expected_revision: int | None = None,
        on_behalf_of: str | None = None,
    ) -> ApplyResult:
        """:meth:`_change`, with the lock held by the caller.

        The head is the revision this replica serves when it committed that one itself (it knows its
        documents, checked, and has nothing newer from the store): no read of the store. The commit's own
        head check catches a commit from another replica meanwhile; the change is then made again on
        the store's head (unless the caller expected a revision: that is its conflict)."""
        head_number, current, known = await self._head()
        if expected_revision is not None and (head_number or 0) != expected_revision:
            raise ConflictError(
                f"the head is revision {head_number or 0}, not {expected_revision} as expected: read it again"
            )
        proposed, served = await _off_loop_if_big(len(current), lambda: _proposed_and_served(mutate, current))
        if self.admit is not None:
            self.admit(served.snapshots)
        if head_number is not None and head_number == self._served_revision and self._served is not None:
            old = self._served.snapshots
        else:
            old = build_served(current.values()).snapshots if current else {}
        new = served.snapshots
        envoy = _diff_snapshots(old.get(DEFAULT_GROUP), new.get(DEFAULT_GROUP))
        groups = {
            g: _diff_snapshots(old.get(g), new.get(g)) for g in sorted((old.keys() | new.keys()) - {DEFAULT_GROUP})
        }
        created = tuple(sorted(proposed.keys() - current.keys()))
        deleted = tuple(sorted(current.keys() - proposed.keys()))
        both = sorted(proposed.keys() & current.keys())
        configured = tuple(k for k in both if proposed[k].raw != current[k].raw)
        unchanged = tuple(k for k in both if proposed[k].raw == current[k].raw)
        if dry_run or (not (created or deleted or configured) and rollback_of is None):
            return ApplyResult(None, created, configured, unchanged, deleted, envoy, dry_run, groups, head_number)
        try:
            revision = await self.store.commit(
                [proposed[k].raw for k in sorted(proposed)],
                author=author,
                message=message,
                expected_head=head_number,
                rollback_of=rollback_of,
                on_behalf_of=on_behalf_of,
            )
        except ConflictError:
            self._committed_head = None
            if not known or expected_revision is not None:
                raise
            return await self._change_locked(  # another replica committed: again, on the store's head
                mutate, author=author, message=message, dry_run=dry_run, rollback_of=rollback_of,
                on_behalf_of=on_behalf_of,
            )
        self._committed_head = revision.number
        self._follower.committed(revision.number)
        self._install(served)
        served_at = time.time()
        self._parsed = (revision.number, dict(proposed))  # what was committed, already checked
        self._served_now(revision.number)
        log.info(
            "revision %d by %s%s: %s; serving it", revision.number, author,
            f" for {on_behalf_of}" if on_behalf_of else "", message,
        )
        if self.history_keep and revision.number - self._pruned_at >= max(1, self.history_keep // 10):
            # Every tenth of the kept history, not every commit: a prune is one more store call in the lock.
            self._pruned_at = revision.number
            await self._prune()
        return ApplyResult(
            revision.number, created, configured, unchanged, deleted, envoy, False, groups, revision.number,
            served_at,
        )
    async def _prune(self) -> None:
        """Keep the newest ``history_keep`` revisions. The commit is done: a prune that fails is logged (the
        next commit prunes again), not the change's failure."""
        if not self.history_keep:
            return
        try:
            pruned = await self.store.prune(self.history_keep)
        except StoreError as exc:
            log.warning("pruning the history to %d revisions failed: %s", self.history_keep, exc)
            return
        if pruned:
            log.debug("pruned %d revisions (keeping %d)", pruned, self.history_keep)

    # -- reading -------------------------------------------------------------

    async def documents(self, kind: str | None = None) -> list[Mapping[str, Any]]:
        return (await self.documents_at(kind))[1]

    async def documents_at(self, kind: str | None = None) -> tuple[int | None, list[Mapping[str, Any]]]:
        """The head's number (None: an empty store) and its documents (of ``kind``), sorted by id."""
        head = await self.store.head()
        docs = self._documents_of(head).values()
        chosen = [d.raw for d in sorted(docs, key=lambda d: d.id) if kind is None or d.kind.lower() == kind.lower()]
        return (head.number if head is not None else None), chosen

    async def parsed(self, kind: str) -> list[Document]:
        """The served revision's checked documents of ``kind``, by id: known here, without reading the store
        (which it does only when this replica serves nothing yet, or has read a newer head than it serves)."""
        if self._parsed is not None and self._parsed[0] == self._served_revision:
            docs = self._parsed[1].values()
        else:
            docs = self._documents_of(await self.store.head()).values()
        return sorted((d for d in docs if d.kind.lower() == kind.lower()), key=lambda d: d.id)

    async def document(self, kind: str, name: str) -> Mapping[str, Any]:
        return (await self.document_at(kind, name))[1]

    async def document_at(self, kind: str, name: str) -> tuple[int | None, Mapping[str, Any]]:
        """The head's number and one of its documents; raises NotFound."""
        head, docs = await self.documents_at(kind)
        for raw in docs:
            if raw.get("metadata", {}).get("name") == name:
                return head, raw
        raise NotFound(f"{document_id(kind, name)} does not exist")

    async def history(self, limit: int = 50) -> list[RevisionSummary]:
        return await self.store.history(limit)

    def render(self, group: str = DEFAULT_GROUP) -> dict[str, list[Any]]:
        """The Envoy resources a node group is served now, as JSON, by type."""
        snapshot = self.cache.snapshot(group)
        out: dict[str, list[Any]] = {}
        if snapshot is None:
            return out
        for type_url in rt.ORDERED_TYPES:
            resources = snapshot.get(type_url).resources
            out[rt.short_name(type_url)] = [
                json_format.MessageToDict(resources[n].message) for n in sorted(resources)
            ]
        return out

    def document_of(self, type_url: str, name: str) -> str | None:
        """Which document produced the Envoy resource ``type_url/name`` (for NACKs)."""
        return self._served.origin.get((type_url, name)) if self._served is not None else None

    def document_of_short(self, short_type: str, name: str) -> str | None:
        """:meth:`document_of` with the short type (``rds``) that statuses use."""
        for type_url in rt.ORDERED_TYPES:
            if rt.short_name(type_url) == short_type:
                return self.document_of(type_url, name)
        return None

