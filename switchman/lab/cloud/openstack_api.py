"""The edge to ``openstacksdk``: connections, and every call run off the event loop with its errors mapped.

openstacksdk is synchronous; :func:`call` runs one call in a worker thread
(a blocking call on the event loop would stall every other task) and turns the
SDK's exceptions into :class:`~switchman.errors.LabError` naming what was
being done.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import openstack
import openstack.connection
from openstack import exceptions as os_exc
from openstack.identity.v3 import _proxy as identity_v3

from switchman.errors import LabError

__all__ = ["Conn", "NotFound", "admin_connection", "call", "identity", "lookup", "through", "user_connection"]

T = TypeVar("T")
Conn = openstack.connection.Connection
NotFound = os_exc.NotFoundException


async def call(doing: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a worker thread; an SDK error becomes a LabError that says what was ``doing``.

    NotFound passes through untouched: callers that look things up decide what
    a missing resource means.
    """
    try:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))
    except os_exc.NotFoundException:
        raise
    except (os_exc.SDKException, OSError) as exc:
        raise LabError(f"openstack: {doing}: {_first_line(exc)}") from exc


def through(conn: Conn, proxy: str | None) -> Conn:
    """``conn`` with every request through ``proxy`` (the lab's tunnel), the environment's proxies left out."""
    if proxy is not None:
        session = conn.session.session  # keystoneauth's session wraps a requests.Session
        session.trust_env = False  # else HTTP(S)_PROXY and NO_PROXY would win over the session's proxies
        session.proxies = {"http": proxy, "https": proxy}
    return conn


async def admin_connection(cloud: str | None, auth: dict[str, str] | None = None, proxy: str | None = None) -> Conn:
    """The admin connection: the clouds.yaml entry ``cloud``, or explicit ``auth`` (a devstack's admin).

    With explicit credentials clouds.yaml and OS_* variables are not read:
    openstack.connect would otherwise merge in the only cloud it finds there.
    """
    if cloud is not None:
        conn = await call(f"connect to the cloud {cloud!r} of clouds.yaml", openstack.connect, cloud=cloud)
    elif auth is not None:
        conn = await call(f"connect to {auth.get('auth_url')}", openstack.connect, load_yaml_config=False,
                          load_envvars=False, **auth)
    else:
        raise LabError("openstack: no admin credentials (openstack.cloud, or a devstack step's output)")
    through(conn, proxy)
    await call("authenticate as admin", conn.authorize)
    return conn


async def user_connection(admin: Conn, username: str, password: str, project_id: str,
                          proxy: str | None = None) -> Conn:
    """A connection as the lab's user in the lab's project, at the admin connection's endpoint and region."""
    auth_url = admin.config.get_auth_args().get("auth_url")
    conn = await call(
        f"connect as {username}", openstack.connect, auth_url=auth_url, username=username, password=password,
        project_id=project_id, user_domain_id="default", region_name=admin.config.get_region_name(),
        verify=admin.verify, load_yaml_config=False, load_envvars=False,
    )
    through(conn, proxy)
    await call(f"authenticate as {username}", conn.authorize)
    return conn


def lookup(find: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``find(*args, ignore_missing=False)``, None when nothing matches (runs inside :func:`call`'s thread).

    The SDK's find_* methods default to ignore_missing=True, deprecated for removal in openstacksdk 6.
    """
    try:
        return find(*args, ignore_missing=False, **kwargs)
    except os_exc.NotFoundException:
        return None


def identity(conn: Conn) -> identity_v3.Proxy:
    """Keystone v3, the only identity API with projects and domains (v2 ended with Queens)."""
    proxy = conn.identity
    if not isinstance(proxy, identity_v3.Proxy):
        raise LabError("openstack: the cloud's identity API is not Keystone v3")
    return proxy


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
