"""The HTTP API: documents, apply, history, rollback, render, status; health and metrics."""

from __future__ import annotations

from switchman.api.app import api_app
from switchman.api.auth import Tokens

__all__ = ["Tokens", "api_app"]
