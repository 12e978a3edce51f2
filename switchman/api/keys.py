"""Typed keys of the API application's state."""

from __future__ import annotations

from aiohttp import web

from switchman.control import Controller
from switchman.xds import XdsServer

__all__ = ["CONTROLLER", "XDS"]

CONTROLLER = web.AppKey("controller", Controller)
XDS = web.AppKey("xds", XdsServer)
