"""``switchman rollout``: list, status, watch and the commands, as a user runs them against a real Switchman."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from switchman.app import Switchman
from switchman.client import SwitchmanClient
from tests.functional.cli.conftest import Cli, api_url
from tests.functional.cli.test_commands import applied


def rollout(**spec: Any) -> dict[str, Any]:
    body = {"service": "checkout", "stable": "v1", "canary": "v2",
            "analysis": {"interval": "0.2s", "stepWeights": [10, 50]}} | spec
    return {"kind": "Rollout", "metadata": {"name": "checkout"}, "spec": body}


async def test_watch_follows_a_run_to_its_end_and_says_how_it_ended(cli: Cli, server: Switchman) -> None:
    await applied(server)
    async with SwitchmanClient(api_url(server)) as client:
        await client.apply([rollout(skipAnalysis=True)])
    watched = await cli("rollout", "watch", "checkout", "--every", "0.1")
    assert watched.code == 0, watched
    assert "phase Succeeded" in watched.out and "Promoted" in watched.out
    listed = await cli("rollout", "list")
    assert listed.code == 0, listed
    header, row = listed.out.splitlines()
    assert header.split()[:5] == ["NAME", "STRATEGY", "SERVICE", "PHASE", "WEIGHT"]
    assert row.split()[:6] == ["checkout", "canary", "checkout:", "v1", "->", "v2"] and "Succeeded" in row


async def test_status_and_commands(cli: Cli, server: Switchman) -> None:
    await applied(server)
    async with SwitchmanClient(api_url(server)) as client:
        # no Envoy here: every analysis is inconclusive and the run holds at its first step
        await client.apply([rollout()])
        for _ in range(100):
            if ((await client.rollout("checkout")).get("state") or {}).get("weight") == 10:
                break
            await asyncio.sleep(0.05)
    status = await cli("rollout", "status", "checkout")
    assert status.code == 0, status
    assert "canary of service/checkout: v1 -> v2" in status.out and "canary weight 10%" in status.out
    paused = await cli("rollout", "pause", "checkout", "-o", "json")
    assert paused.code == 0 and json.loads(paused.out)["state"]["phase"] == "Paused", paused
    again = await cli("rollout", "pause", "checkout")
    assert again.code == 5 and "already paused by anonymous" in again.err, again
    promoted = await cli("rollout", "promote", "checkout", "--full")
    assert promoted.code == 0 and "phase Progressing" in promoted.out, promoted
    missing = await cli("rollout", "status", "nope")
    assert missing.code == 5 and "rollout/nope does not exist" in missing.err, missing
