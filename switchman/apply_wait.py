"""How long an apply waits for the Envoys (``apply --wait``, REST ``?wait=``): read alike by the API and the CLI.

A module of its own, light to import: the CLI reads the option before it talks to the API.
"""

from __future__ import annotations

import re
from typing import Final

from switchman.model.fields import Node

__all__ = ["DEFAULT_WAIT", "MAX_WAIT", "wait_for"]

#: How long ``wait=true`` (the CLI's bare ``--wait``) waits, and the longest wait asked for.
DEFAULT_WAIT: Final = 30.0
MAX_WAIT: Final = 600.0
_SECONDS: Final = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")


def wait_for(value: object, where: str) -> float | None:
    """How long a wait asks for: ``5s``, ``250ms``, ``2m`` or a number of seconds (``0``: look once, do not
    wait), ``true`` (or ``yes``) for :data:`DEFAULT_WAIT`; None for no wait (absent, ``false``, ``no``, empty).
    At most :data:`MAX_WAIT`; raises ConfigError naming ``where`` for anything else."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("", "false", "no")):
        return None
    if value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes")):
        return DEFAULT_WAIT
    if isinstance(value, str) and _SECONDS.fullmatch(value.strip()):
        value = float(value)
    return Node(where, "", value).duration(0.0, MAX_WAIT)
