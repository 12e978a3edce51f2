"""The web console: a page served at ``/`` on the API port that shows and changes Switchman through its REST API.

Plain HTML, CSS and JavaScript modules from :mod:`switchman.console.static`,
with no build step. The page reads and changes nothing but what the public
REST API offers, with the token its user signs in with, and follows
``/v1/events`` to show changes without a reload.
"""

from __future__ import annotations

from switchman.console.serve import add_console

__all__ = ["add_console"]
