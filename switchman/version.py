"""What ``switchman --version`` prints: the version and the commit Switchman was built from.

A checkout asks git (``git rev-parse --short HEAD``, and ``-dirty`` when a tracked file differs from
it). An image has no ``.git``: its build writes the commit into the wheel, as
``switchman/build_commit.txt`` (the Dockerfile's ``COMMIT`` argument). Anything else says ``unknown``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from switchman import __version__

__all__ = ["BUILD_COMMIT_FILE", "build_commit", "describe"]

_PACKAGE = Path(__file__).resolve().parent
BUILD_COMMIT_FILE = "build_commit.txt"


def _git(checkout: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _from_git(checkout: Path) -> str | None:
    head = _git(checkout, "rev-parse", "--short", "HEAD")
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return None  # no git, not a repository, or one git will not read (another owner's)
    diff = _git(checkout, "diff", "--quiet", "HEAD", "--")
    dirty = diff is not None and diff.returncode == 1
    return head.stdout.strip() + ("-dirty" if dirty else "")


def build_commit(package: Path = _PACKAGE) -> str:
    """The commit the package at ``package`` was built from: git's word in a checkout, else the baked file."""
    # Only the package's own checkout counts: an installed copy may sit in a venv inside some other repository.
    if (package.parent / ".git").exists():
        commit = _from_git(package.parent)
        if commit:
            return commit
    baked = package / BUILD_COMMIT_FILE
    if baked.is_file():
        text = baked.read_text().strip()
        if text:
            return text
    return "unknown"


def describe(package: Path = _PACKAGE) -> str:
    """``switchman 0.1.0 (commit 1a2b3c4)``."""
    return f"switchman {__version__} (commit {build_commit(package)})"
