"""xDS over our own asyncio HTTP/2 transport (``h2``): callbacks, no task per stream."""

from __future__ import annotations

from switchman.xds.h2.server import H2Server, H2Settings

__all__ = ["H2Server", "H2Settings"]
