"""Switchman's exception tree, split by who is at fault.

::

    SwitchmanError                 every error Switchman raises on purpose
    ├── ConfigError                the user's input is wrong (names the field path)
    │   └── SnapshotError          a snapshot refers to something that is not there
    ├── ProtocolError              an xDS client sent something the protocol forbids
    │   └── PermissionDenied       ... or asked for what its identity may not have
    ├── LabError                   provisioning or a child process failed
    └── DiscoveryError             an endpoint source (the Kubernetes API) cannot be read

Edges map these to a gRPC status, an HTTP status or a CLI exit code, each in
one table; the core never does.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DiscoveryError",
    "LabError",
    "PermissionDenied",
    "ProtocolError",
    "SnapshotError",
    "SwitchmanError",
]


class SwitchmanError(Exception):
    """Raised when Switchman itself refuses or fails something."""


class ConfigError(SwitchmanError):
    """Raised when the user's input is wrong.

    ``path`` names where: a document and a field path such as
    ``routes/checkout: spec.virtualHosts[0]``.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class SnapshotError(ConfigError):
    """Raised when a snapshot is inconsistent: a dangling reference or a duplicate name."""


class ProtocolError(SwitchmanError):
    """Raised when an xDS client breaks the protocol (for example a wrong type URL on a stream)."""


class LabError(SwitchmanError):
    """Raised when the lab cannot start, reach or stop one of its parts."""


class PermissionDenied(ProtocolError):
    """Raised when a client asks for what its identity may not have (PERMISSION_DENIED at the edges)."""


class DiscoveryError(SwitchmanError):
    """Raised when the Kubernetes API cannot be reached, refuses a request or answers what is not an API
    object: neither the user's fault nor a client's. Discovery keeps the last endpoints it knew meanwhile."""
