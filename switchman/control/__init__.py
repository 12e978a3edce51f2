"""The controller: applies documents (check, store, translate, serve) and answers what is running."""

from __future__ import annotations

from switchman.control.controller import ApplyResult, Controller, NotFound
from switchman.control.follower import StoreHealth

__all__ = ["ApplyResult", "Controller", "NotFound", "StoreHealth"]
