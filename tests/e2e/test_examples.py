"""The bootstraps a user copies from stay correct: Envoy itself validates them."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from switchman.lab.local.envoy import EnvoyMode, bootstrap, envoy_binary

ROOT = Path(__file__).parents[2]


@pytest.mark.envoy
@pytest.mark.parametrize("path", sorted((ROOT / "envoy").glob("*.yaml")), ids=lambda p: p.name)
def test_envoy_accepts_example_bootstrap(path: Path) -> None:
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.envoy
@pytest.mark.parametrize("mode", list(EnvoyMode), ids=lambda m: m.value)
def test_envoy_accepts_every_rendered_template(mode: EnvoyMode, tmp_path: Path) -> None:
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps(bootstrap("node-1", 18000, cluster="demo", mode=mode, metadata={"zone": "a"})))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config), "--use-dynamic-base-id"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_the_wheel_ships_the_templates(tmp_path: Path) -> None:
    """The control-plane image installs the wheel: the lab's templates must be in it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, timeout=300,
    )
    [wheel] = tmp_path.glob("switchman-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for mode in EnvoyMode:
        assert f"switchman/_envoy_templates/{mode.value}.yaml" in names
