"""``switchman --version``: the version and the commit, from git in a checkout, from the wheel in an image."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

import switchman
from switchman.cli.main import main
from switchman.version import BUILD_COMMIT_FILE, build_commit, describe


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository with a committed ``switchman`` package; returns the package's folder."""
    package = tmp_path / "switchman"
    package.mkdir()
    (package / "__init__.py").write_text("")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "switchman")
    git(tmp_path, "commit", "-q", "-m", "first")
    return package


def test_a_checkout_names_its_head_commit(checkout: Path) -> None:
    assert build_commit(checkout) == git(checkout.parent, "rev-parse", "--short", "HEAD")


def test_a_changed_tracked_file_makes_it_dirty(checkout: Path) -> None:
    (checkout / "__init__.py").write_text("x = 1\n")
    assert build_commit(checkout) == git(checkout.parent, "rev-parse", "--short", "HEAD") + "-dirty"


def test_an_untracked_file_leaves_it_clean(checkout: Path) -> None:
    (checkout / "new.py").write_text("")
    assert not build_commit(checkout).endswith("-dirty")


def test_git_wins_over_a_baked_file_in_a_checkout(checkout: Path) -> None:
    (checkout / BUILD_COMMIT_FILE).write_text("0000000\n")
    git(checkout.parent, "add", "switchman")
    git(checkout.parent, "commit", "-q", "-m", "baked")
    assert build_commit(checkout) == git(checkout.parent, "rev-parse", "--short", "HEAD")


def test_an_installed_package_reads_the_commit_baked_into_it(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "switchman"
    package.mkdir(parents=True)
    (package / BUILD_COMMIT_FILE).write_text("1a2b3c4\n")
    assert build_commit(package) == "1a2b3c4"
    assert describe(package) == f"switchman {switchman.__version__} (commit 1a2b3c4)"


def test_without_git_or_a_baked_file_it_is_unknown(tmp_path: Path) -> None:
    package = tmp_path / "switchman"
    package.mkdir()
    assert build_commit(package) == "unknown"
    (package / BUILD_COMMIT_FILE).write_text("\n")
    assert build_commit(package) == "unknown"


def test_a_repository_around_an_installed_package_is_not_asked(checkout: Path) -> None:
    package = checkout.parent / ".venv" / "lib" / "site-packages" / "switchman"
    package.mkdir(parents=True)
    assert build_commit(package) == "unknown"


def test_the_command_prints_it_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out == describe() + "\n"
    assert out.startswith(f"switchman {switchman.__version__} (commit ")


def test_the_package_and_its_metadata_agree_on_the_version() -> None:
    # The wheel (and so the images' tags) take pyproject's; --version prints the package's.
    project = tomllib.loads((Path(switchman.__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert project["version"] == switchman.__version__
