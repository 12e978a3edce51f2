"""A fake of Compute Engine's instances and zone operations that keeps the API's contract, in memory.

What it honours (what the GCE step relies on):

- ``insert`` and ``delete`` answer at once with a zone operation that is
  PENDING; each ``get`` of the operation moves it on (PENDING, RUNNING, DONE
  after ``gets_to_done`` gets). Meanwhile the instance is PROVISIONING (or
  STOPPING), and RUNNING (or gone) once the operation is DONE.
- A failed operation is DONE with its reasons in ``error.errors`` (and an
  HTTP status); :meth:`FakeCompute.fail_next_insert` plans one.
- ``get`` of an instance or operation that is not there raises
  ``google.api_core.exceptions.NotFound``; inserting a name that exists raises
  ``Conflict``, as the API answers 404 and 409.
- Requests are the library's own messages; each is kept in :attr:`requests`
  (a copy) so tests can check them field by field.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from google.api_core import exceptions as api_exc
from google.cloud import compute_v1

__all__ = ["FakeCompute"]

Status = compute_v1.Operation.Status
# Members, not the ints the enum class body holds (which is what a type checker sees through proto-plus).
PENDING, RUNNING, DONE = Status(Status.PENDING), Status(Status.RUNNING), Status(Status.DONE)
M = TypeVar("M")
_ids = itertools.count(4_000_000_000_000_000_001)


@dataclass
class _Op:
    op: compute_v1.Operation
    gets: int = 0
    errors: list[compute_v1.Errors] = field(default_factory=list)
    then: Callable[[], object] = lambda: None  # what happens to the instance when the operation is done


class FakeCompute:
    """One project's instances in any zone; every instance gets ``nat_ip`` and ``internal_ip``."""

    def __init__(self, *, nat_ip: str = "127.0.0.1", internal_ip: str = "10.128.0.2", gets_to_done: int = 2) -> None:
        self.nat_ip = nat_ip
        self.internal_ip = internal_ip
        self.gets_to_done = gets_to_done
        self.instances: dict[tuple[str, str, str], compute_v1.Instance] = {}
        self.operations: dict[tuple[str, str, str], _Op] = {}
        self.requests: list[Any] = []
        self._fail: list[compute_v1.Errors] = []

    def fail_next_insert(self, code: str, message: str) -> None:
        """The next insert's operation ends DONE with this error, and no instance."""
        self._fail.append(compute_v1.Errors(code=code, message=message))

    def calls(self, kind: type[Any]) -> list[Any]:
        """The requests of one type (``compute_v1.InsertInstanceRequest``), in order."""
        return [r for r in self.requests if isinstance(r, kind)]

    # -- the API ------------------------------------------------------------

    def get_instance(self, request: compute_v1.GetInstanceRequest) -> compute_v1.Instance:
        self._keep(request)
        key = (request.project, request.zone, request.instance)
        if key not in self.instances:
            raise _missing("instances", key)
        return _copy(self.instances[key])

    def insert_instance(self, request: compute_v1.InsertInstanceRequest) -> compute_v1.Operation:
        self._keep(request)
        body = request.instance_resource
        key = (request.project, request.zone, body.name)
        if not body.name or not body.machine_type.startswith(f"zones/{request.zone}/machineTypes/"):
            raise api_exc.BadRequest(  # type: ignore[no-untyped-call]  # google.api_core is not annotated
                f"Invalid value for field 'resource.machineType': '{body.machine_type}'")
        if key in self.instances:
            raise api_exc.Conflict(  # type: ignore[no-untyped-call]
                f"The resource 'projects/{key[0]}/zones/{key[1]}/instances/{key[2]}' already exists")
        errors = [self._fail.pop(0)] if self._fail else []
        instance = _copy(body)
        instance.id = next(_ids)
        instance.status = "PROVISIONING"
        instance.zone = f"projects/{request.project}/zones/{request.zone}"
        for nic in instance.network_interfaces:
            nic.network_i_p = self.internal_ip
            for access in nic.access_configs:
                access.nat_i_p = self.nat_ip
        if not errors:
            self.instances[key] = instance

        def done() -> None:
            if errors:
                return
            self.instances[key].status = "RUNNING"
            self.instances[key].cpu_platform = "Intel Cascade Lake"

        return self._operation(request.project, request.zone, "insert", key, errors, done)

    def delete_instance(self, request: compute_v1.DeleteInstanceRequest) -> compute_v1.Operation:
        self._keep(request)
        key = (request.project, request.zone, request.instance)
        if key not in self.instances:
            raise _missing("instances", key)
        self.instances[key].status = "STOPPING"
        return self._operation(request.project, request.zone, "delete", key, [], lambda: self.instances.pop(key))

    def get_operation(self, request: compute_v1.GetZoneOperationRequest) -> compute_v1.Operation:
        self._keep(request)
        key = (request.project, request.zone, request.operation)
        if key not in self.operations:
            raise _missing("operations", key)
        held = self.operations[key]
        if held.op.status != DONE:
            held.gets += 1
            if held.gets >= self.gets_to_done:
                held.op.status = DONE
                held.op.progress = 100
                if held.errors:
                    held.op.error = compute_v1.Error(errors=held.errors)
                    held.op.http_error_status_code = 400
                    held.op.http_error_message = "BAD REQUEST"
                held.then()
            else:
                held.op.status = RUNNING
        return _copy(held.op)

    # -- inside -------------------------------------------------------------

    def _keep(self, request: Any) -> None:
        self.requests.append(type(request).deserialize(type(request).serialize(request)))

    def _operation(self, project: str, zone: str, kind: str, target: tuple[str, str, str],
                   errors: list[compute_v1.Errors], then: Callable[[], object]) -> compute_v1.Operation:
        name = f"operation-{next(_ids)}-{kind}"
        op = compute_v1.Operation(
            name=name, operation_type=kind, status=PENDING, progress=0,
            zone=f"projects/{project}/zones/{zone}",
            target_link=f"projects/{target[0]}/zones/{target[1]}/instances/{target[2]}",
        )
        self.operations[(project, zone, name)] = _Op(op, errors=errors, then=then)
        return _copy(op)


def _copy(message: M) -> M:
    kind: Any = type(message)
    return cast(M, kind.deserialize(kind.serialize(message)))


def _missing(kind: str, key: tuple[str, str, str]) -> api_exc.NotFound:
    return api_exc.NotFound(  # type: ignore[no-untyped-call]
        f"The resource 'projects/{key[0]}/zones/{key[1]}/{kind}/{key[2]}' was not found")
