"""The typed edge over ``kubernetes.aio``: list and watch EndpointSlices as plain JSON.

The client's generated models (pydantic) are skipped on purpose: a watch of a thousand pods would build
and validate a model per event only for discovery to read five fields of it. The list and the watch are
asked for without preloading, and the JSON is read here; every failure becomes a
:class:`~switchman.errors.DiscoveryError` (:class:`Gone` for 410: the resourceVersion is too old, list
again), so nothing of the client's exception types leaks past this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from kubernetes.aio import client as k8s_client
from kubernetes.aio import config as k8s_config

from switchman.errors import ConfigError, DiscoveryError
from switchman.kubernetes.settings import KubernetesSettings

__all__ = ["WATCH_SECONDS", "Gone", "KubernetesApi", "SliceList", "configuration", "connect"]

#: How long one watch request lasts before the API server ends it (it is then opened again from the last
#: resourceVersion); the client gives up a little later, should the server not end it.
WATCH_SECONDS: Final = 300
_LIST_TIMEOUT: Final = 30.0


class Gone(DiscoveryError):
    """Raised when the API server no longer has the resourceVersion asked for (410): list again."""


@dataclass(frozen=True, slots=True)
class SliceList:
    items: list[dict[str, Any]]
    resource_version: str


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def _kubeconfig(settings: KubernetesSettings) -> str:
    """The kubeconfig file to load; "" for the in-cluster config. Raises ConfigError when there is none."""
    path = settings.kubeconfig or os.environ.get("KUBECONFIG", "")
    if not path and _in_cluster():
        return ""
    path = path or os.path.expanduser("~/.kube/config")
    if not os.path.exists(path):
        raise ConfigError("--kubeconfig", f"{path} does not exist (and this is no pod: no in-cluster ServiceAccount)")
    return path


async def configuration(settings: KubernetesSettings) -> k8s_client.Configuration:
    """The client configuration for ``settings``; ConfigError when the kubeconfig cannot be loaded."""
    conf = k8s_client.Configuration()
    path = _kubeconfig(settings)
    try:
        if not path:
            k8s_config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
        else:
            await k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=settings.context or None, client_configuration=conf,
                persist_config=False,
            )
    except ConfigError:
        raise
    except Exception as exc:  # the client's ConfigException, a YAML or file error: the user's file is wrong
        raise ConfigError("--kubeconfig", f"{path or 'in-cluster config'}: {exc}") from None
    # Retries are discovery's own (it relists, backs off and reports): the client must not hide a failure.
    conf.retries = None
    return conf


async def connect(settings: KubernetesSettings, watch_seconds: int = WATCH_SECONDS) -> KubernetesApi:
    """An API client for ``settings``; raises ConfigError when the kubeconfig cannot be loaded."""
    return KubernetesApi(k8s_client.ApiClient(await configuration(settings)), watch_seconds)


def _status_error(status: int, body: bytes, what: str) -> DiscoveryError:
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = body[:200].decode(errors="replace")
    text = f"{what}: HTTP {status}" + (f": {message}" if message else "")
    return Gone(text) if status == 410 else DiscoveryError(text)


class KubernetesApi:
    """What discovery asks of the API server, as JSON; see the module's docstring."""

    def __init__(self, api_client: k8s_client.ApiClient, watch_seconds: int = WATCH_SECONDS) -> None:
        self._client = api_client
        self._discovery = k8s_client.DiscoveryV1Api(api_client)
        self.watch_seconds = watch_seconds

    @property
    def server(self) -> str:
        return str(self._client.configuration.host)

    async def close(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]

    async def list_slices(self, namespace: str) -> SliceList:
        """Every EndpointSlice of ``namespace``, and the resourceVersion to watch from."""
        what = f"listing EndpointSlices in {namespace}"
        try:
            response = await self._discovery.list_namespaced_endpoint_slice_without_preload_content(
                namespace, _request_timeout=_LIST_TIMEOUT
            )
            async with response:
                body = await response.read()
                if response.status != 200:
                    raise _status_error(response.status, body, what)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise DiscoveryError(f"{what}: {type(exc).__name__}: {exc}") from None
        try:
            data = json.loads(body)
            return SliceList(list(data.get("items") or []), str(data["metadata"]["resourceVersion"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DiscoveryError(f"{what}: not an EndpointSliceList ({exc})") from None

    async def watch_slices(self, namespace: str, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        """The watch events of ``namespace``'s EndpointSlices after ``resource_version`` (with bookmarks), until
        the server ends the watch. The first item is ``{"type": "WATCHING"}``: the server accepted the watch.
        An ERROR event with code 410, or a 410 answer, raises :class:`Gone`."""
        what = f"watching EndpointSlices in {namespace}"
        try:
            response = await self._discovery.list_namespaced_endpoint_slice_without_preload_content(
                namespace, watch=True, resource_version=resource_version, allow_watch_bookmarks=True,
                timeout_seconds=self.watch_seconds, _request_timeout=self.watch_seconds + 30.0,
            )
            async with response:
                if response.status != 200:
                    raise _status_error(response.status, await response.read(), what)
                yield {"type": "WATCHING"}
                while True:
                    line = await response.content.readline()
                    if not line:
                        return  # the server ended this watch
                    event = json.loads(line)
                    if not isinstance(event, dict):
                        raise DiscoveryError(f"{what}: an event is not an object")
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        code = int(status.get("code") or 0)
                        raise _status_error(code, json.dumps(status).encode(), what)
                    yield event
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise DiscoveryError(f"{what}: {type(exc).__name__}: {exc}") from None
        except ValueError as exc:
            raise DiscoveryError(f"{what}: an event is not JSON ({exc})") from None
