"""The user's routing config: typed, validated, versioned."""

from __future__ import annotations

from switchman.model.raw import parse_resources

__all__ = ["parse_resources"]
