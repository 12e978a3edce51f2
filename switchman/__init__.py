"""Switchman: an Envoy control plane in Python.

The package is named ``switchman`` because ``xds-protos`` owns the import
name ``xds``; the xDS protocol lives in :mod:`switchman.xds`.
"""

from __future__ import annotations

from switchman.errors import ConfigError, LabError, ProtocolError, SwitchmanError

__all__ = ["ConfigError", "LabError", "ProtocolError", "SwitchmanError"]
__version__ = "0.1.0"
