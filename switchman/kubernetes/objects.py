"""Kubernetes objects as plain JSON: server-side apply, read, delete, list — for whatever has manifests.

The lab (``switchman lab up --kubernetes``) and the cloud lab's checks apply manifests with this; discovery
does not (it only lists and watches EndpointSlices, :mod:`switchman.kubernetes.api`). An object's path comes
from its ``apiVersion`` and ``kind`` through :data:`KINDS`, the kinds the project's manifests use; any other
kind is a :class:`~switchman.errors.ConfigError` naming it, not a guess at its plural. Failures of the API
server become :class:`KubernetesError` with its status and message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from kubernetes.aio import client as k8s_client

from switchman.errors import ConfigError, SwitchmanError
from switchman.kubernetes.api import configuration
from switchman.kubernetes.settings import KubernetesSettings

__all__ = ["FIELD_MANAGER", "KINDS", "Kind", "KubernetesError", "ObjectRef", "Objects", "connect_objects"]

#: The field manager of every server-side apply: ``kubectl get -o yaml --show-managed-fields`` names it.
FIELD_MANAGER: Final = "switchman"
_TIMEOUT: Final = 30.0


class KubernetesError(SwitchmanError):
    """The API server refused or failed a request; ``status`` is its HTTP status (0: it was not reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Kind:
    plural: str
    namespaced: bool


#: (apiVersion, kind) -> its resource. What the project's manifests and checks use, nothing more.
KINDS: Final[Mapping[tuple[str, str], Kind]] = {
    ("v1", "Namespace"): Kind("namespaces", False),
    ("v1", "ServiceAccount"): Kind("serviceaccounts", True),
    ("v1", "ConfigMap"): Kind("configmaps", True),
    ("v1", "Secret"): Kind("secrets", True),
    ("v1", "Service"): Kind("services", True),
    ("v1", "Pod"): Kind("pods", True),
    ("v1", "Node"): Kind("nodes", False),
    ("v1", "Event"): Kind("events", True),
    ("v1", "PersistentVolume"): Kind("persistentvolumes", False),
    ("v1", "PersistentVolumeClaim"): Kind("persistentvolumeclaims", True),
    ("apps/v1", "Deployment"): Kind("deployments", True),
    ("apps/v1", "DaemonSet"): Kind("daemonsets", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): Kind("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): Kind("clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): Kind("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): Kind("rolebindings", True),
    ("storage.k8s.io/v1", "StorageClass"): Kind("storageclasses", False),
    ("discovery.k8s.io/v1", "EndpointSlice"): Kind("endpointslices", True),
    ("authorization.k8s.io/v1", "SubjectAccessReview"): Kind("subjectaccessreviews", False),
}


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """Which object: enough to read or delete it again (what a lab records of what it made)."""

    api_version: str
    kind: str
    name: str
    namespace: str = ""

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        meta = obj.get("metadata") or {}
        ref = cls(str(obj.get("apiVersion", "")), str(obj.get("kind", "")), str(meta.get("name", "")),
                  str(meta.get("namespace", "")))
        if not ref.name:
            raise ConfigError(f"{ref.kind or 'object'}.metadata.name", "missing")
        ref.resource()  # a kind we do not know is refused here, before anything is sent
        return ref

    def resource(self) -> Kind:
        try:
            kind = KINDS[(self.api_version, self.kind)]
        except KeyError:
            raise ConfigError(
                f"{self.kind}/{self.name}.apiVersion",
                f"{self.api_version} {self.kind} is not a kind this project applies "
                f"({', '.join(sorted(k for _, k in KINDS))})",
            ) from None
        if kind.namespaced and not self.namespace:
            raise ConfigError(f"{self.kind}/{self.name}.metadata.namespace", "missing: the kind is namespaced")
        return kind

    def path(self, named: bool = True) -> str:
        kind = self.resource()
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        where = f"/namespaces/{self.namespace}" if kind.namespaced else ""
        return f"{root}{where}/{kind.plural}" + (f"/{self.name}" if named else "")

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    def to_json(self) -> dict[str, str]:
        return {"apiVersion": self.api_version, "kind": self.kind, "name": self.name, "namespace": self.namespace}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ObjectRef:
        return cls(str(data["apiVersion"]), str(data["kind"]), str(data["name"]), str(data.get("namespace", "")))


async def connect_objects(settings: KubernetesSettings) -> Objects:
    """An :class:`Objects` for the cluster ``settings`` name; ConfigError when its kubeconfig cannot be loaded."""
    return Objects(k8s_client.ApiClient(await configuration(settings)))


class Objects:
    """Requests on objects as JSON, through the client's authenticated session."""

    def __init__(self, api_client: k8s_client.ApiClient) -> None:
        self._client = api_client

    @property
    def server(self) -> str:
        return str(self._client.configuration.host)

    async def close(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> Objects:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        """One request; (status, JSON body). Raises KubernetesError when the server is not reached."""
        status, raw = await self._send(method, path, body, query or [], content_type, "application/json")
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {"message": raw[:300].decode(errors="replace")}
        return status, data if isinstance(data, dict) else {"items": data}

    async def _send(
        self, method: str, path: str, body: Any, query: list[tuple[str, str]], content_type: str, accept: str,
    ) -> tuple[int, bytes]:
        headers = {"Accept": accept, "Content-Type": content_type}
        try:
            serialized = await self._client.param_serialize(
                method, path, query_params=query, header_params=headers, body=body,
                auth_settings=["BearerToken"],
            )
            response = await self._client.call_api(
                *serialized, _request_timeout=_TIMEOUT, _preload_content=False
            )
            async with response.response:
                raw = await response.response.read()
                status = response.response.status
        except k8s_client.ApiException as exc:
            status, raw = int(exc.status or 0), (exc.body or b"")
            if isinstance(raw, str):
                raw = raw.encode()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise KubernetesError(f"{method} {self.server}{path}: {type(exc).__name__}: {exc}") from None
        return status, raw

    @staticmethod
    def _error(what: str, status: int, data: Mapping[str, Any]) -> KubernetesError:
        return KubernetesError(f"{what}: HTTP {status}: {data.get('message') or data.get('reason') or data}", status)

    async def apply(self, obj: Mapping[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply ``obj`` (created or updated, conflicts forced: this manager owns what it applies);
        with ``dry_run``, validated and admitted by the server but not stored. Returns the object as stored."""
        ref = ObjectRef.of(obj)
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        if dry_run:
            query.append(("dryRun", "All"))
        status, data = await self.request(
            "PATCH", ref.path(), body=dict(obj), query=query, content_type="application/apply-patch+yaml"
        )
        if status not in (200, 201):
            raise self._error(f"applying {ref}" + (" (dry run)" if dry_run else ""), status, data)
        return data

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        status, data = await self.request("GET", ref.path())
        if status == 404:
            return None
        if status != 200:
            raise self._error(f"reading {ref}", status, data)
        return data

    async def list(
        self, ref: ObjectRef, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        """Every object of ``ref``'s kind (in its namespace), by selectors; ``ref.name`` is ignored."""
        query = [(k, v) for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v]
        status, data = await self.request("GET", ref.path(named=False), query=query)
        if status != 200:
            raise self._error(f"listing {ref.kind} in {ref.namespace or 'the cluster'}", status, data)
        return list(data.get("items") or [])

    async def log(self, ref: ObjectRef, tail_lines: int = 0) -> str:
        """A pod's log (the last ``tail_lines`` lines, when given); "" when the pod has none yet."""
        if ref.kind != "Pod":
            raise ConfigError(f"{ref}", "only pods have logs")
        query = [("tailLines", str(tail_lines))] if tail_lines else []
        # the log is text/plain, which the API server does not list among what it serves: "*/*" takes it
        status, raw = await self._send("GET", f"{ref.path()}/log", None, query, "application/json", "*/*")
        if status == 400 and b"waiting to start" in raw:
            return ""
        if status != 200:
            raise KubernetesError(f"reading the log of {ref}: HTTP {status}: "
                                  f"{' '.join(raw[:300].decode(errors='replace').split())}", status)
        return raw.decode(errors="replace")

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``obj`` (for kinds that are created, not applied: reviews, which have no name)."""
        meta = obj.get("metadata") or {}
        ref = ObjectRef(str(obj.get("apiVersion", "")), str(obj.get("kind", "")), str(meta.get("name", "")),
                        str(meta.get("namespace", "")))
        ref.resource()
        status, data = await self.request("POST", ref.path(named=False), body=dict(obj))
        if status not in (200, 201):
            raise self._error(f"creating {ref}", status, data)
        return data

    async def delete(self, ref: ObjectRef) -> bool:
        """Delete (in the background: dependents go after it); False when it was not there."""
        status, data = await self.request(
            "DELETE", ref.path(), body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        )
        if status == 404:
            return False
        if status not in (200, 202):
            raise self._error(f"deleting {ref}", status, data)
        return True
