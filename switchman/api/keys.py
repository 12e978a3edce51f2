"""Typed keys of the API application's state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from switchman.control import Controller
from switchman.rollout import RolloutEngine
from switchman.xds import XdsServer

__all__ = ["CONTROLLER", "DISCOVERY", "MAX_BODY_BYTES", "ROLLOUTS", "XDS", "DiscoveryStatus"]

#: How endpoint discovery stands, as JSON (``current``, ``reason``, ...); absent when discovery is off.
DiscoveryStatus = Callable[[], dict[str, Any]]

CONTROLLER = web.AppKey("controller", Controller)
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)
XDS = web.AppKey("xds", XdsServer)
ROLLOUTS = web.AppKey("rollouts", RolloutEngine)
DISCOVERY = web.AppKey[DiscoveryStatus]("discovery")
