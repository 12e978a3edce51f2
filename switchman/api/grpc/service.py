"""The gRPC management API (``switchman.v1.Management``): the REST API's operations, over gRPC.

Every method calls the :class:`~switchman.control.Controller` (and, for
render and status, the xDS server's :meth:`~switchman.xds.XdsServer.statuses`)
exactly as the REST handlers do, checks the same bearer tokens
(:class:`~switchman.api.auth.Tokens`: read tokens, and client certificates
whose identity may read, may call the reads, admin tokens everything) and
refuses with the same stable error codes, as gRPC statuses
(:mod:`switchman.api.grpc.errors`).

The message types are generated from ``protos/switchman/v1/management.proto``
(``scripts/gen-protos``); documents travel as ``google.protobuf.Struct``,
rendered Envoy resources as ``google.protobuf.Any``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2, json_format, struct_pb2, timestamp_pb2

from switchman.api.auth import Caller, Tokens, authorize
from switchman.api.errors import ApiError
from switchman.api.grpc import management_pb2 as pb
from switchman.api.grpc import management_pb2_grpc as pb_grpc
from switchman.api.grpc.errors import GrpcError, grpc_error
from switchman.api.options import prune_selector, wait_seconds
from switchman.api.rollouts import ROLLOUT_VERBS
from switchman.api.wait import WaitReport, wait_for_envoys
from switchman.control import ApplyResult, Controller, StoreHealth
from switchman.control.controller import RenderedDiff
from switchman.errors import SwitchmanError
from switchman.model.document import KINDS
from switchman.rollout import RolloutEngine
from switchman.store.base import RevisionSummary
from switchman.xds import DEFAULT_GROUP, XdsServer
from switchman.xds import resources as rt
from switchman.xds.h2.servicer import peer_of, unary_methods
from switchman.xds.server.methods import AsyncUnaryMethod

__all__ = ["AUTHOR_METADATA", "ManagementService", "add_management_service", "management_methods"]

log = logging.getLogger(__name__)

AUTHOR_METADATA: Final = "x-switchman-author"
_HISTORY_DEFAULT, _HISTORY_MAX = 50, 1000
# A double holds every integer up to 2**53 exactly; past that a "whole" number is not one the client meant.
_EXACT_INTEGERS: Final = 2**53
_TYPE_URL_OF_SHORT: Final[Mapping[str, str]] = {rt.short_name(url): url for url in rt.ORDERED_TYPES}

_T = TypeVar("_T")


# -- documents: Struct <-> JSON ------------------------------------------------------------------------------------


def _from_value(value: struct_pb2.Value, where: str) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return _from_struct(value.struct_value, where)
    if kind == "list_value":
        return [_from_value(v, f"{where}[{i}]") for i, v in enumerate(value.list_value.values)]
    if kind == "number_value":
        number = float(value.number_value)
        if not math.isfinite(number):
            raise ApiError(400, "bad_request", f"{where}: {number} is not a JSON number")
        # As a JSON parser reads it: 90 is an integer (a weight, a port), 0.5 is not.
        return int(number) if number.is_integer() and abs(number) <= _EXACT_INTEGERS else number
    if kind == "string_value":
        return str(value.string_value)
    if kind == "bool_value":
        return bool(value.bool_value)
    if kind == "null_value":
        return None
    raise ApiError(400, "bad_request", f"{where}: a value with none of its kinds set")


def _from_struct(struct: struct_pb2.Struct, where: str) -> dict[str, Any]:
    # A Struct is a map, which has no order on the wire: by key, so that the same document always reads the same.
    return {k: _from_value(v, f"{where}.{k}") for k, v in sorted(struct.fields.items())}


def _to_value(obj: object, out: struct_pb2.Value) -> None:
    if obj is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        out.bool_value = obj
    elif isinstance(obj, int | float):
        out.number_value = float(obj)
    elif isinstance(obj, str):
        out.string_value = obj
    elif isinstance(obj, Mapping):
        _fill_struct(obj, out.struct_value)
    elif isinstance(obj, Sequence):
        values = out.list_value.values
        for item in obj:
            _to_value(item, values.add())
        out.list_value.SetInParent()  # an empty list is still a list
    else:
        raise TypeError(f"{type(obj).__name__} is not JSON")


def _fill_struct(obj: Mapping[str, Any], out: struct_pb2.Struct) -> struct_pb2.Struct:
    out.SetInParent()
    for key, item in obj.items():
        _to_value(item, out.fields[str(key)])
    return out


def _to_struct(obj: Mapping[str, Any]) -> struct_pb2.Struct:
    return _fill_struct(obj, struct_pb2.Struct())


# -- results ---------------------------------------------------------------------------------------------------------


def _result(result: ApplyResult) -> pb.ApplyResponse:
    return pb.ApplyResponse(
        revision=result.revision,
        created=result.created,
        configured=result.configured,
        unchanged=result.unchanged,
        deleted=result.deleted,
        envoy=_changes(result.envoy),
        dry_run=result.dry_run,
        groups={group: _changes(changes) for group, changes in result.groups.items()},
        head=result.head,
    )


def _wait_report(report: WaitReport) -> pb.WaitReport:
    return pb.WaitReport(
        synced=report.synced,
        timeout=report.timeout,
        waited=report.waited,
        revision=report.revision,
        groups=[pb.WaitGroup(group=g.group, connected=g.connected, synced=g.synced) for g in report.groups],
        nodes=[
            pb.WaitNode(
                node_id=n.node_id, group=n.group, state=n.state, reason=n.reason,
                nacks=[
                    pb.WaitNack(type=k.type, message=k.message, resources=k.resources, documents=k.documents)
                    for k in n.nacks
                ],
            )
            for n in report.nodes
        ],
    )


def _changes(diff: RenderedDiff) -> pb.EnvoyChanges:
    return pb.EnvoyChanges(added=diff.added, changed=diff.changed, removed=diff.removed)


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    whole = math.floor(seconds)
    return timestamp_pb2.Timestamp(seconds=whole, nanos=min(round((seconds - whole) * 1e9), 999_999_999))


def _revision(summary: RevisionSummary) -> pb.Revision:
    return pb.Revision(
        number=summary.number,
        author=summary.author,
        created_at=_timestamp(summary.created_at),
        message=summary.message,
        added=summary.added,
        changed=summary.changed,
        removed=summary.removed,
        rollback_of=summary.rollback_of,
        on_behalf_of=summary.on_behalf_of,
    )


def _health(health: StoreHealth) -> pb.StoreHealth:
    return pb.StoreHealth(
        ready=health.ready,
        reason=health.reason,
        served_revision=health.served_revision,
        store_head=health.store_head,
        last_contact=_timestamp(health.last_contact) if health.last_contact is not None else None,
        last_error=health.last_error,
        last_error_at=_timestamp(health.last_error_at) if health.last_error_at is not None else None,
        store=health.store,
    )


def _expected(request: Any) -> int | None:
    """A change request's expected_revision, if it has one (REST's If-Match)."""
    if not request.HasField("expected_revision"):
        return None
    expected = int(request.expected_revision)
    if expected < 0:
        raise ApiError(400, "bad_request", f"expected_revision is a revision number (0 or more), not {expected}")
    return expected


def _pack(type_url: str, body: Mapping[str, Any]) -> any_pb2.Any:
    """An Envoy resource, from the JSON that render gives, as an ``Any`` holding the Envoy message."""
    message = rt.message_class(type_url)()
    json_format.ParseDict(body, message)
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _kind(text: str) -> str:
    """A kind as the model spells it (``routes`` -> ``Routes``); NOT_FOUND for no such kind, as in REST."""
    for kind in KINDS:
        if kind.lower() == text.lower():
            return kind
    raise ApiError(404, "not_found", f"there is no kind {text!r} (kinds: {', '.join(KINDS)})")


# -- the service -----------------------------------------------------------------------------------------------------


class ManagementService(pb_grpc.ManagementServicer):
    """``switchman.v1.Management`` on a :class:`Controller`; register it with :func:`add_management_service`."""

    def __init__(
        self, controller: Controller, xds: XdsServer, tokens: Tokens | None = None,
        rollouts: RolloutEngine | None = None,
    ) -> None:
        self.controller = controller
        self.xds = xds
        self.tokens = tokens or Tokens()
        self.rollouts = rollouts

    # -- changes (admin) ---------------------------------------------------------------------------------------------

    async def Apply(self, request: pb.ApplyRequest, context: grpc.aio.ServicerContext) -> pb.ApplyResponse:
        async def apply(caller: Caller) -> pb.ApplyResponse:
            docs = [_from_struct(d, f"documents[{i}]") for i, d in enumerate(request.documents)]
            prune = prune_selector(request.prune, dict(sorted(request.selector.items())))
            wait = wait_seconds(request.wait.ToTimedelta().total_seconds()) if request.HasField("wait") else None
            result = await self.controller.apply(
                docs, author=caller.author, message=request.message, dry_run=request.dry_run, source="request",
                expected_revision=_expected(request), on_behalf_of=caller.on_behalf_of, prune=prune,
            )
            answer = _result(result)
            if wait is not None and not result.dry_run:
                answer.wait.CopyFrom(_wait_report(await wait_for_envoys(self.xds, self.controller, result, wait)))
            return answer

        return await self._call("Apply", context, apply, change=True)

    async def DeleteDocument(
        self, request: pb.DeleteDocumentRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyResponse:
        async def delete(caller: Caller) -> pb.ApplyResponse:
            kind = _kind(request.kind)
            return _result(
                await self.controller.delete(
                    kind, request.name, author=caller.author, dry_run=request.dry_run,
                    expected_revision=_expected(request), on_behalf_of=caller.on_behalf_of,
                )
            )

        return await self._call("DeleteDocument", context, delete, change=True)

    async def SetWeights(self, request: pb.SetWeightsRequest, context: grpc.aio.ServicerContext) -> pb.ApplyResponse:
        async def set_weights(caller: Caller) -> pb.ApplyResponse:
            # A map has no order: by version, so that the history's message does not depend on the wire.
            weights = {str(k): int(v) for k, v in sorted(request.weights.items())}
            return _result(
                await self.controller.set_weights(
                    request.service, weights, author=caller.author, expected_revision=_expected(request),
                    on_behalf_of=caller.on_behalf_of,
                )
            )

        return await self._call("SetWeights", context, set_weights, change=True)

    async def SetRouteSplit(
        self, request: pb.SetRouteSplitRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyResponse:
        async def set_split(caller: Caller) -> pb.ApplyResponse:
            split = [_from_struct(entry, f"split[{i}]") for i, entry in enumerate(request.split)]
            result = await self.controller.set_route_split(
                request.routes, request.route, split, author=caller.author, dry_run=request.dry_run,
                expected_revision=_expected(request), on_behalf_of=caller.on_behalf_of,
            )
            return _result(result)

        return await self._call("SetRouteSplit", context, set_split, change=True)

    async def Rollback(self, request: pb.RollbackRequest, context: grpc.aio.ServicerContext) -> pb.ApplyResponse:
        async def rollback(caller: Caller) -> pb.ApplyResponse:
            return _result(
                await self.controller.rollback(
                    int(request.revision), author=caller.author, expected_revision=_expected(request),
                    on_behalf_of=caller.on_behalf_of,
                )
            )

        return await self._call("Rollback", context, rollback, change=True)

    # -- reads -------------------------------------------------------------------------------------------------------

    async def GetDocument(
        self, request: pb.GetDocumentRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDocumentResponse:
        async def get(caller: Caller) -> pb.GetDocumentResponse:
            doc = await self.controller.document(request.kind, request.name)
            return pb.GetDocumentResponse(document=_to_struct(doc))

        return await self._call("GetDocument", context, get, change=False)

    async def ListDocuments(
        self, request: pb.ListDocumentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDocumentsResponse:
        async def documents(caller: Caller) -> pb.ListDocumentsResponse:
            docs = await self.controller.documents(request.kind or None)
            return pb.ListDocumentsResponse(documents=[_to_struct(d) for d in docs])

        return await self._call("ListDocuments", context, documents, change=False)

    async def History(self, request: pb.HistoryRequest, context: grpc.aio.ServicerContext) -> pb.HistoryResponse:
        async def history(caller: Caller) -> pb.HistoryResponse:
            limit = min(int(request.limit) or _HISTORY_DEFAULT, _HISTORY_MAX)
            entries = await self.controller.history(limit)
            return pb.HistoryResponse(revisions=[_revision(e) for e in entries])

        return await self._call("History", context, history, change=False)

    async def GetRevision(
        self, request: pb.GetRevisionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRevisionResponse:
        async def revision(caller: Caller) -> pb.GetRevisionResponse:
            found = await self.controller.store.get(int(request.number))
            return pb.GetRevisionResponse(
                revision=_revision(found.summary), documents=[_to_struct(d) for d in found.documents]
            )

        return await self._call("GetRevision", context, revision, change=False)

    async def Render(self, request: pb.RenderRequest, context: grpc.aio.ServicerContext) -> pb.RenderResponse:
        async def render(caller: Caller) -> pb.RenderResponse:
            group = request.group
            if request.node:
                matches = [s for s in self.xds.statuses() if s.node_id == request.node]
                if not matches:
                    raise ApiError(404, "not_found", f"no node {request.node!r} is connected")
                group = matches[0].group
            group = group or DEFAULT_GROUP
            types = []
            for short, resources in self.controller.render(group).items():
                type_url = _TYPE_URL_OF_SHORT[short]
                packed = [_pack(type_url, r) for r in resources]
                types.append(pb.RenderedType(type=short, type_url=type_url, resources=packed))
            return pb.RenderResponse(group=group, types=types)

        return await self._call("Render", context, render, change=False)

    async def Status(self, request: pb.StatusRequest, context: grpc.aio.ServicerContext) -> pb.StatusResponse:
        async def status(caller: Caller) -> pb.StatusResponse:
            nodes = []
            for node in self.xds.statuses():
                types = [
                    pb.TypeStatus(
                        type=t.type,
                        acked_version=t.acked_version,
                        resources=t.resources,
                        pending_version=t.pending_version,
                        nack_version=t.nack_version,
                        nack_message=t.nack_message,
                        nacked_resources=t.nacked_resources,
                        waiting=t.waiting,
                        synced=t.synced,
                        documents=sorted(
                            {d for name in t.nacked_resources if (d := self.controller.document_of_short(t.type, name))}
                        ),
                    )
                    for t in node.types
                ]
                nodes.append(
                    pb.NodeStatus(
                        node_id=node.node_id,
                        cluster=node.cluster,
                        group=node.group,
                        streams=node.streams,
                        types=types,
                        synced=all(t.synced for t in node.types),
                    )
                )
            return pb.StatusResponse(
                revision=self.controller.served_revision, nodes=nodes, store=_health(self.controller.health())
            )

        return await self._call("Status", context, status, change=False)

    # -- rollouts ----------------------------------------------------------------------------------------------------

    def _engine(self) -> RolloutEngine:
        if self.rollouts is None:
            raise ApiError(404, "not_found", "this server runs no rollout engine")
        return self.rollouts

    async def ListRollouts(
        self, request: pb.ListRolloutsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRolloutsResponse:
        async def rollouts(caller: Caller) -> pb.ListRolloutsResponse:
            engine = self._engine()
            found = [pb.RolloutStatus(status=_to_struct(await engine.status(n))) for n in await engine.names()]
            return pb.ListRolloutsResponse(rollouts=found)

        return await self._call("ListRollouts", context, rollouts, change=False)

    async def GetRollout(self, request: pb.GetRolloutRequest, context: grpc.aio.ServicerContext) -> pb.RolloutStatus:
        async def rollout(caller: Caller) -> pb.RolloutStatus:
            return pb.RolloutStatus(status=_to_struct(await self._engine().status(request.name)))

        return await self._call("GetRollout", context, rollout, change=False)

    async def RolloutCommand(
        self, request: pb.RolloutCommandRequest, context: grpc.aio.ServicerContext
    ) -> pb.RolloutStatus:
        async def rollout_command(caller: Caller) -> pb.RolloutStatus:
            verb = request.command
            if verb not in ROLLOUT_VERBS:
                choices = ", ".join(ROLLOUT_VERBS)
                raise ApiError(400, "bad_request", f"there is no rollout command {verb!r} (commands: {choices})")
            if request.full and verb != "promote":
                raise ApiError(400, "bad_request", "full goes with promote only")
            command = "promote-full" if request.full else verb
            status = await self._engine().command(request.name, command, caller.author)
            return pb.RolloutStatus(status=_to_struct(status))

        return await self._call("RolloutCommand", context, rollout_command, change=True)

    # -- auth and errors ---------------------------------------------------------------------------------------------

    def _caller(self, context: grpc.aio.ServicerContext, *, change: bool) -> Caller:
        """Who is calling (what the history records, as REST does: switchman.api.auth); raises ApiError for a
        missing, unknown or read-only token."""
        metadata = {str(k).lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        return authorize(
            self.tokens, metadata.get("authorization", ""), metadata.get(AUTHOR_METADATA, ""), change=change,
            names=peer_of(context).names, token_header="authorization", author_header=AUTHOR_METADATA,
        )

    async def _call(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        body: Callable[[Caller], Awaitable[_T]],
        *,
        change: bool,
    ) -> _T:
        """Authorize, run ``body(caller)``, and turn a refusal into its gRPC status."""
        try:
            return await body(self._caller(context, change=change))
        except SwitchmanError as exc:
            error = grpc_error(exc)
            if error.code in ("internal", "store_unavailable"):
                log.error("%s: %s", method, exc)
        except Exception:  # a bug: still answer with a status the client understands
            log.exception("%s failed", method)
            error = GrpcError(grpc.StatusCode.INTERNAL, "internal", "internal error; the server log has the details")
        await _abort(context, error)


async def _abort(context: grpc.aio.ServicerContext, error: GrpcError) -> NoReturn:
    await context.abort(error.status, error.message, trailing_metadata=error.trailing_metadata)
    raise AssertionError("ServicerContext.abort returned")  # it raises; this is for the type checker


def add_management_service(
    server: grpc.aio.Server, controller: Controller, xds: XdsServer, tokens: Tokens | None = None,
    rollouts: RolloutEngine | None = None,
) -> ManagementService:
    """Serve ``switchman.v1.Management`` on ``server`` (before it starts)."""
    service = ManagementService(controller, xds, tokens, rollouts)
    pb_grpc.add_ManagementServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    return service


def management_methods(
    controller: Controller, xds: XdsServer, tokens: Tokens | None = None, rollouts: RolloutEngine | None = None
) -> list[AsyncUnaryMethod]:
    """``switchman.v1.Management`` as methods of the HTTP/2 xDS transport (:mod:`switchman.xds.h2`)."""
    service = ManagementService(controller, xds, tokens, rollouts)
    return unary_methods(service, pb.DESCRIPTOR.services_by_name["Management"])
