"""The lab on one machine: processes on loopback (Envoy, upstreams, load)."""

from __future__ import annotations

from switchman.lab.local.envoy import EnvoyMode, EnvoyProcess, XdsClientTls, bootstrap
from switchman.lab.local.upstream import Upstream

__all__ = ["EnvoyMode", "EnvoyProcess", "Upstream", "XdsClientTls", "bootstrap"]
