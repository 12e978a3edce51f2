"""The HTTP side of Switchman: health, metrics and the status of every connected node."""

from __future__ import annotations

from switchman.api.status import status_app

__all__ = ["status_app"]
