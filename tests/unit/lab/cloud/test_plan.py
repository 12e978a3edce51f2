"""``lab cloud plan``: every action and rendered file, the same text every time, touching nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from switchman.cli.main import main

HERE = Path(__file__).parent
SNAPSHOT = HERE / "plan.txt"
UPDATE = "SWITCHMAN_UPDATE_SNAPSHOTS"


# scripts/images' archives as the plan reads them (their sizes only).
ARCHIVES = {"checkout-0.1.0.tar": 151_568_384, "envoy-1.40.0.tar": 72_836_096, "switchman-0.1.0.tar": 151_568_896}


@pytest.fixture
def lab_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(HERE / "cloud.yaml", tmp_path / "cloud.yaml")
    images = tmp_path / "runs" / "images"
    images.mkdir(parents=True)
    for name, size in ARCHIVES.items():
        with (images / name).open("wb") as f:
            f.truncate(size)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _plan(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    # The cloud named in cloud.yaml does not exist: a plan that connected anywhere would fail.
    code = main(["lab", "cloud", "plan", "-f", "cloud.yaml", "--state-dir", "state", *args])
    assert code == 0
    return capsys.readouterr().out


def test_plan_matches_snapshot(lab_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _plan(capsys)
    if os.environ.get(UPDATE):
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), f"the plan changed: review it, then set {UPDATE}=1 to take it"
    assert not (lab_dir / "state").exists(), "plan wrote something"
    assert "((bootstrap token))" in text and "BEGIN" not in text, "a plan shows no secrets"


def test_destroy_plan_of_an_empty_state(lab_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "0 to create, 0 to change, 0 recorded, 0 to delete" in _plan(capsys, "--destroy")


def test_plan_without_the_images_says_to_build_them(lab_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (lab_dir / "runs" / "images" / "envoy-1.40.0.tar").unlink()
    code = main(["lab", "cloud", "plan", "-f", "cloud.yaml", "--state-dir", "state"])
    assert code != 0
    err = capsys.readouterr().err
    assert "images: runs/images has no envoy-1.40.0.tar (kubernetes.images): run scripts/images first" in err
