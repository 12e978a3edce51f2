"""``switchman apply --prune -l`` and ``--wait``: a folder's documents held exactly; waiting on the Envoys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from switchman.app import Switchman
from switchman.client import SwitchmanClient
from tests.functional.cli.conftest import CHECKOUT_FILE, Cli, api_url


def folder_docs(labels: dict[str, str]) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(Path(CHECKOUT_FILE).read_text()) if d]
    for doc in docs:
        doc["metadata"]["labels"] = dict(labels)
        if doc["kind"] == "Listener":
            doc["spec"]["port"] = 0
    return docs


def write(folder: Path, docs: list[dict[str, Any]]) -> str:
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for doc in docs:
        (folder / f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml").write_text(yaml.safe_dump(doc))
    return str(folder)


async def test_apply_prune_holds_exactly_the_folders_documents(cli: Cli, server: Switchman, tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    docs = folder_docs({"app": "shop"})
    extra = {"kind": "Cluster", "metadata": {"name": "payments", "labels": {"app": "shop"}},
             "spec": {"endpoints": [{"address": "127.0.0.1", "port": 9300}]}}
    first = await cli("apply", "-f", write(folder, [*docs, extra]), "--prune", "-l", "app=shop")
    assert first.code == 0, first
    assert "cluster/payments created" in first.out

    write(folder, docs)  # the cluster's file is gone
    dry = await cli("apply", "-f", str(folder), "--prune", "--selector", "app=shop", "--dry-run")
    assert dry.code == 0, dry
    assert "cluster/payments pruned (dry run)" in dry.out.splitlines()
    pruned = await cli("apply", "-f", str(folder), "--prune", "-l", "app=shop")
    assert pruned.code == 0, pruned
    assert "cluster/payments pruned" in pruned.out.splitlines() and pruned.out.rstrip().endswith("revision 2")
    async with SwitchmanClient(api_url(server)) as client:
        assert "cluster/payments" not in {f"{d['kind'].lower()}/{d['metadata']['name']}" for d in await client.list()}


async def test_apply_prune_refuses_what_is_not_meant(cli: Cli, server: Switchman, tmp_path: Path) -> None:
    folder = write(tmp_path / "shop", folder_docs({"app": "shop"}))
    for args, message in (
        (("--prune",), "switchman: --prune: needs -l KEY=VALUE"),
        (("-l", "app=shop"), "switchman: -l: goes with --prune"),
        (("--prune", "-l", "app"), "switchman: -l: 'app' is not KEY=VALUE"),
        (("--prune", "-l", "app=cart"), "does not carry app=cart"),
    ):
        result = await cli("apply", "-f", folder, *args)
        assert result.code == 2, (args, result)
        assert message in result.err, (args, result)
    async with SwitchmanClient(api_url(server)) as client:
        assert await client.history() == []


async def test_apply_wait_with_no_envoy_connected_says_so(cli: Cli, server: Switchman, tmp_path: Path) -> None:
    folder = write(tmp_path / "shop", folder_docs({"app": "shop"}))
    result = await cli("apply", "-f", folder, "--wait=2s")
    assert result.code == 0, result
    assert result.out.splitlines()[-2:] == [
        "every node (group *): no Envoy connected (nothing to wait for)",
        "synced: no Envoy concerned is connected",
    ]
    bad = await cli("apply", "-f", folder, "--wait", "11m")
    assert (bad.code, bad.err.strip()) == (2, "switchman: --wait: must be at most 600s"), bad
