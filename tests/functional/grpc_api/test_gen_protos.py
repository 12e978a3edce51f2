"""scripts/gen-protos --check: passes on the committed code, fails (saying what to do) once a proto changes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[3]


def _copy_of_the_repo(tmp_path: Path) -> Path:
    """What the script reads, in a scratch folder, with a .venv/bin/python that is this interpreter."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "protos", root / "protos")
    shutil.copytree(ROOT / "switchman" / "api" / "grpc", root / "switchman" / "api" / "grpc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "gen-protos", root / "scripts" / "gen-protos")
    shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([root / "scripts" / "gen-protos", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_check_passes_on_the_committed_code(tmp_path: Path) -> None:
    result = _run(_copy_of_the_repo(tmp_path), "--check")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_check_fails_after_a_proto_edit_and_generating_fixes_it(tmp_path: Path) -> None:
    root = _copy_of_the_repo(tmp_path)
    proto = root / "protos" / "switchman" / "v1" / "management.proto"
    text = proto.read_text()
    assert "message StatusRequest {}" in text
    proto.write_text(text.replace("message StatusRequest {}", "message StatusRequest {\n  string note = 1;\n}", 1))
    result = _run(root, "--check")
    assert result.returncode == 1
    assert "management_pb2.py is not what protos/switchman/v1 generates" in result.stderr
    assert "run scripts/gen-protos and commit the result" in result.stderr

    assert _run(root).returncode == 0
    assert "note" in (root / "switchman" / "api" / "grpc" / "management_pb2.pyi").read_text()
    assert _run(root, "--check").returncode == 0


def test_check_fails_on_a_generated_file_without_its_proto(tmp_path: Path) -> None:
    root = _copy_of_the_repo(tmp_path)
    (root / "switchman" / "api" / "grpc" / "old_pb2.py").write_text("# generated once\n")
    result = _run(root, "--check")
    assert result.returncode == 1
    assert "committed only: old_pb2.py" in result.stderr
