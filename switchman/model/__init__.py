"""The user's routing config: typed, validated, versioned."""

from __future__ import annotations

from switchman.model.raw import load_resource_file, parse_resources

__all__ = ["load_resource_file", "parse_resources"]
