"""``serve --kubernetes`` refuses what it cannot use before serving anything, naming the option."""

from __future__ import annotations

from pathlib import Path

from tests.functional.cli.conftest import clean_environ, run_switchman


def _serve(tmp_path: Path, *flags: str) -> tuple[str, ...]:
    return ("serve", "--store", str(tmp_path / "s.db"), "--xds-address", "127.0.0.1:0", "--api-address",
            "127.0.0.1:0", *flags)


async def test_a_kubeconfig_that_is_not_there(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.kubeconfig"
    result = await run_switchman(_serve(tmp_path, "--kubernetes", "--kubeconfig", str(missing)),
                                 clean_environ(tmp_path))
    assert result.code == 2, result
    assert f"--kubeconfig: {missing} does not exist" in result.err


async def test_a_kubeconfig_that_is_not_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    result = await run_switchman(_serve(tmp_path, "--kubernetes", "--kubeconfig", str(bad)), clean_environ(tmp_path))
    assert result.code == 2, result
    assert f"--kubeconfig: {bad}: " in result.err


async def test_a_kubeconfig_without_kubernetes(tmp_path: Path) -> None:
    result = await run_switchman(_serve(tmp_path, "--kubeconfig", "x"), clean_environ(tmp_path))
    assert result.code == 2, result
    assert "--kubeconfig: is for --kubernetes (endpoint discovery), which is off" in result.err
