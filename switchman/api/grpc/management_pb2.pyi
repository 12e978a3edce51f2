import datetime

from google.protobuf import any_pb2 as _any_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApplyResponse(_message.Message):
    __slots__ = ("revision", "created", "configured", "unchanged", "deleted", "envoy", "dry_run", "groups", "head", "wait")
    class GroupsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: EnvoyChanges
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[EnvoyChanges, _Mapping]] = ...) -> None: ...
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    ENVOY_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    revision: int
    created: _containers.RepeatedScalarFieldContainer[str]
    configured: _containers.RepeatedScalarFieldContainer[str]
    unchanged: _containers.RepeatedScalarFieldContainer[str]
    deleted: _containers.RepeatedScalarFieldContainer[str]
    envoy: EnvoyChanges
    dry_run: bool
    groups: _containers.MessageMap[str, EnvoyChanges]
    head: int
    wait: WaitReport
    def __init__(self, revision: _Optional[int] = ..., created: _Optional[_Iterable[str]] = ..., configured: _Optional[_Iterable[str]] = ..., unchanged: _Optional[_Iterable[str]] = ..., deleted: _Optional[_Iterable[str]] = ..., envoy: _Optional[_Union[EnvoyChanges, _Mapping]] = ..., dry_run: _Optional[bool] = ..., groups: _Optional[_Mapping[str, EnvoyChanges]] = ..., head: _Optional[int] = ..., wait: _Optional[_Union[WaitReport, _Mapping]] = ...) -> None: ...

class WaitReport(_message.Message):
    __slots__ = ("synced", "timeout", "waited", "revision", "groups", "nodes")
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    WAITED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    synced: bool
    timeout: float
    waited: float
    revision: int
    groups: _containers.RepeatedCompositeFieldContainer[WaitGroup]
    nodes: _containers.RepeatedCompositeFieldContainer[WaitNode]
    def __init__(self, synced: _Optional[bool] = ..., timeout: _Optional[float] = ..., waited: _Optional[float] = ..., revision: _Optional[int] = ..., groups: _Optional[_Iterable[_Union[WaitGroup, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[WaitNode, _Mapping]]] = ...) -> None: ...

class WaitGroup(_message.Message):
    __slots__ = ("group", "connected", "synced")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    group: str
    connected: int
    synced: int
    def __init__(self, group: _Optional[str] = ..., connected: _Optional[int] = ..., synced: _Optional[int] = ...) -> None: ...

class WaitNode(_message.Message):
    __slots__ = ("node_id", "group", "state", "reason", "nacks")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NACKS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    group: str
    state: str
    reason: str
    nacks: _containers.RepeatedCompositeFieldContainer[WaitNack]
    def __init__(self, node_id: _Optional[str] = ..., group: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., nacks: _Optional[_Iterable[_Union[WaitNack, _Mapping]]] = ...) -> None: ...

class WaitNack(_message.Message):
    __slots__ = ("type", "message", "resources", "documents")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    resources: _containers.RepeatedScalarFieldContainer[str]
    documents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., resources: _Optional[_Iterable[str]] = ..., documents: _Optional[_Iterable[str]] = ...) -> None: ...

class EnvoyChanges(_message.Message):
    __slots__ = ("added", "changed", "removed")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedScalarFieldContainer[str]
    changed: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, added: _Optional[_Iterable[str]] = ..., changed: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ...) -> None: ...

class ApplyRequest(_message.Message):
    __slots__ = ("documents", "message", "dry_run", "expected_revision", "prune", "selector", "wait")
    class SelectorEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    PRUNE_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    message: str
    dry_run: bool
    expected_revision: int
    prune: bool
    selector: _containers.ScalarMap[str, str]
    wait: _duration_pb2.Duration
    def __init__(self, documents: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., message: _Optional[str] = ..., dry_run: _Optional[bool] = ..., expected_revision: _Optional[int] = ..., prune: _Optional[bool] = ..., selector: _Optional[_Mapping[str, str]] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetDocumentRequest(_message.Message):
    __slots__ = ("kind", "name")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetDocumentResponse(_message.Message):
    __slots__ = ("document",)
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    document: _struct_pb2.Struct
    def __init__(self, document: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ListDocumentsRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class ListDocumentsResponse(_message.Message):
    __slots__ = ("documents",)
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, documents: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class DeleteDocumentRequest(_message.Message):
    __slots__ = ("kind", "name", "dry_run", "expected_revision")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    dry_run: bool
    expected_revision: int
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., dry_run: _Optional[bool] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class SetWeightsRequest(_message.Message):
    __slots__ = ("service", "weights", "expected_revision")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    service: str
    weights: _containers.ScalarMap[str, int]
    expected_revision: int
    def __init__(self, service: _Optional[str] = ..., weights: _Optional[_Mapping[str, int]] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class SetRouteSplitRequest(_message.Message):
    __slots__ = ("routes", "route", "split", "dry_run", "expected_revision")
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    routes: str
    route: str
    split: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    dry_run: bool
    expected_revision: int
    def __init__(self, routes: _Optional[str] = ..., route: _Optional[str] = ..., split: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., dry_run: _Optional[bool] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ("revisions",)
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    revisions: _containers.RepeatedCompositeFieldContainer[Revision]
    def __init__(self, revisions: _Optional[_Iterable[_Union[Revision, _Mapping]]] = ...) -> None: ...

class Revision(_message.Message):
    __slots__ = ("number", "author", "created_at", "message", "added", "changed", "removed", "rollback_of", "on_behalf_of")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_OF_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    number: int
    author: str
    created_at: _timestamp_pb2.Timestamp
    message: str
    added: _containers.RepeatedScalarFieldContainer[str]
    changed: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    rollback_of: int
    on_behalf_of: str
    def __init__(self, number: _Optional[int] = ..., author: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., added: _Optional[_Iterable[str]] = ..., changed: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., rollback_of: _Optional[int] = ..., on_behalf_of: _Optional[str] = ...) -> None: ...

class GetRevisionRequest(_message.Message):
    __slots__ = ("number",)
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    number: int
    def __init__(self, number: _Optional[int] = ...) -> None: ...

class GetRevisionResponse(_message.Message):
    __slots__ = ("revision", "documents")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    revision: Revision
    documents: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, revision: _Optional[_Union[Revision, _Mapping]] = ..., documents: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("revision", "expected_revision")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    expected_revision: int
    def __init__(self, revision: _Optional[int] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class RenderRequest(_message.Message):
    __slots__ = ("node", "group")
    NODE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    node: str
    group: str
    def __init__(self, node: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class RenderResponse(_message.Message):
    __slots__ = ("group", "types")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    group: str
    types: _containers.RepeatedCompositeFieldContainer[RenderedType]
    def __init__(self, group: _Optional[str] = ..., types: _Optional[_Iterable[_Union[RenderedType, _Mapping]]] = ...) -> None: ...

class RenderedType(_message.Message):
    __slots__ = ("type", "type_url", "resources")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TYPE_URL_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    type: str
    type_url: str
    resources: _containers.RepeatedCompositeFieldContainer[_any_pb2.Any]
    def __init__(self, type: _Optional[str] = ..., type_url: _Optional[str] = ..., resources: _Optional[_Iterable[_Union[_any_pb2.Any, _Mapping]]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("revision", "nodes", "store")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    store: StoreHealth
    def __init__(self, revision: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ..., store: _Optional[_Union[StoreHealth, _Mapping]] = ...) -> None: ...

class StoreHealth(_message.Message):
    __slots__ = ("ready", "reason", "served_revision", "store_head", "last_contact", "last_error", "last_error_at", "store")
    READY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SERVED_REVISION_FIELD_NUMBER: _ClassVar[int]
    STORE_HEAD_FIELD_NUMBER: _ClassVar[int]
    LAST_CONTACT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_AT_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    reason: str
    served_revision: int
    store_head: int
    last_contact: _timestamp_pb2.Timestamp
    last_error: str
    last_error_at: _timestamp_pb2.Timestamp
    store: str
    def __init__(self, ready: _Optional[bool] = ..., reason: _Optional[str] = ..., served_revision: _Optional[int] = ..., store_head: _Optional[int] = ..., last_contact: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., last_error_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., store: _Optional[str] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("node_id", "cluster", "group", "streams", "types", "synced")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    cluster: str
    group: str
    streams: int
    types: _containers.RepeatedCompositeFieldContainer[TypeStatus]
    synced: bool
    def __init__(self, node_id: _Optional[str] = ..., cluster: _Optional[str] = ..., group: _Optional[str] = ..., streams: _Optional[int] = ..., types: _Optional[_Iterable[_Union[TypeStatus, _Mapping]]] = ..., synced: _Optional[bool] = ...) -> None: ...

class TypeStatus(_message.Message):
    __slots__ = ("type", "acked_version", "resources", "pending_version", "nack_version", "nack_message", "nacked_resources", "waiting", "synced", "documents")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ACKED_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PENDING_VERSION_FIELD_NUMBER: _ClassVar[int]
    NACK_VERSION_FIELD_NUMBER: _ClassVar[int]
    NACK_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NACKED_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    type: str
    acked_version: str
    resources: int
    pending_version: str
    nack_version: str
    nack_message: str
    nacked_resources: _containers.RepeatedScalarFieldContainer[str]
    waiting: str
    synced: bool
    documents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, type: _Optional[str] = ..., acked_version: _Optional[str] = ..., resources: _Optional[int] = ..., pending_version: _Optional[str] = ..., nack_version: _Optional[str] = ..., nack_message: _Optional[str] = ..., nacked_resources: _Optional[_Iterable[str]] = ..., waiting: _Optional[str] = ..., synced: _Optional[bool] = ..., documents: _Optional[_Iterable[str]] = ...) -> None: ...

class ListRolloutsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRolloutsResponse(_message.Message):
    __slots__ = ("rollouts",)
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    rollouts: _containers.RepeatedCompositeFieldContainer[RolloutStatus]
    def __init__(self, rollouts: _Optional[_Iterable[_Union[RolloutStatus, _Mapping]]] = ...) -> None: ...

class GetRolloutRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RolloutCommandRequest(_message.Message):
    __slots__ = ("name", "command", "full")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    name: str
    command: str
    full: bool
    def __init__(self, name: _Optional[str] = ..., command: _Optional[str] = ..., full: _Optional[bool] = ...) -> None: ...

class RolloutStatus(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: _struct_pb2.Struct
    def __init__(self, status: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
