"""Typed keys of the API application's state."""

from __future__ import annotations

from aiohttp import web

from switchman.control import Controller
from switchman.rollout import RolloutEngine
from switchman.xds import XdsServer

__all__ = ["CONTROLLER", "MAX_BODY_BYTES", "ROLLOUTS", "XDS"]

CONTROLLER = web.AppKey("controller", Controller)
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)
XDS = web.AppKey("xds", XdsServer)
ROLLOUTS = web.AppKey("rollouts", RolloutEngine)
