"""The bootstraps a user copies from stay correct: Envoy itself validates them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from switchman.lab.local.envoy import envoy_binary

ROOT = Path(__file__).parents[2]


@pytest.mark.envoy
@pytest.mark.parametrize("path", sorted((ROOT / "envoy").glob("*.yaml")), ids=lambda p: p.name)
def test_envoy_accepts_example_bootstrap(path: Path) -> None:
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
