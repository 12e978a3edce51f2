"""``--expect-revision N`` (apply, delete, rollback) and the client's ``expected_revision``: a change made only
onto the revision it was made against; anything else is a conflict (exit 5) and stores nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchman.app import Switchman
from switchman.client import Conflict, SwitchmanClient
from tests.functional.cli.conftest import CHECKOUT_FILE, Cli, api_url
from tests.functional.cli.test_commands import applied, checkout, write_yaml


async def test_apply_delete_and_rollback_with_the_right_or_a_stale_revision(
    cli: Cli, server: Switchman, tmp_path: Path
) -> None:
    first = await cli("apply", "-f", CHECKOUT_FILE, "--expect-revision", "0")
    assert first.code == 0 and first.out.rstrip().endswith("revision 1"), first
    docs = checkout()
    docs[0]["spec"]["weights"] = {"v1": 50, "v2": 50}
    canary = write_yaml(tmp_path / "canary.yaml", docs)

    stale = await cli("apply", "-f", canary, "--expect-revision", "0")
    assert stale.code == 5, stale
    assert stale.err.strip() == "switchman: the head is revision 1, not 0 as expected: read it again"
    assert (await cli("apply", "-f", canary, "--expect-revision", "1")).code == 0

    assert (await cli("rollback", "1", "--expect-revision", "1")).code == 5
    back = await cli("rollback", "1", "--expect-revision", "2")
    assert back.code == 0 and back.out.rstrip().endswith("revision 3"), back

    assert (await cli("delete", "listener", "ingress", env={"SWITCHMAN_EXPECT_REVISION": "2"})).code == 5
    assert (await cli("delete", "listener", "ingress", env={"SWITCHMAN_EXPECT_REVISION": "3"})).code == 0
    async with SwitchmanClient(api_url(server)) as client:
        assert [e["number"] for e in await client.history()] == [4, 3, 2, 1]


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
async def test_an_expected_revision_that_is_not_one_is_bad_input(cli: Cli, value: str) -> None:
    result = await cli("apply", "-f", CHECKOUT_FILE, "--expect-revision", value)
    assert result.code == 2 and "--expect-revision" in result.err, result


async def test_the_client_sends_if_match_and_reads_the_head(server: Switchman) -> None:
    await applied(server)
    async with SwitchmanClient(api_url(server)) as client:
        with pytest.raises(Conflict, match="not 7"):
            await client.set_weights("checkout", {"v1": 90, "v2": 10}, expected_revision=7)
        result = await client.set_weights("checkout", {"v1": 90, "v2": 10}, expected_revision=1)
        assert (result.revision, result.head) == (2, 2)
        dry = await client.delete("listener", "ingress", dry_run=True, expected_revision=result.head)
        assert (dry.revision, dry.head) == (None, 2)
        with pytest.raises(Conflict):
            await client.rollback(1, expected_revision=1)
        with pytest.raises(Conflict):
            await client.set_route_split("ingress-routes", "main", [], expected_revision=1)
        with pytest.raises(ValueError, match="expected_revision"):
            await client.apply(checkout(), expected_revision=-1)
        assert (await client.rollback(1, expected_revision=2)).head == 3
