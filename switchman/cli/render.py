"""``switchman render --node ID | --group G``: the Envoy resources a node (or node group) is served, as JSON."""

from __future__ import annotations

import argparse
import json

from switchman.cli.config import add_option, client_options, run_client
from switchman.client import SwitchmanClient

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "render", parents=[client_options()], help="the Envoy resources a node or group is served (JSON)",
        description="Print the Envoy resources (by type: sds, cds, eds, lds, rds) that a connected node, or a "
        "node group, is served now, as Envoy's JSON, and under `endpoints` every endpoint by cluster with its "
        "health, zone and source (`document service/NAME`, or `kubernetes NAMESPACE/SERVICE/SLICE`). With "
        "neither option: the default group.",
    )
    which = parser.add_mutually_exclusive_group()
    add_option(which, "--node", env="SWITCHMAN_RENDER_NODE", default="", help="a connected node's id")
    add_option(which, "--group", env="SWITCHMAN_RENDER_GROUP", default="", help="a node group")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    async def action(client: SwitchmanClient) -> int:
        node = args.node or None
        group = None if node else args.group or None  # both (a flag and the environment): the node, as the API
        print(json.dumps(await client.render(node=node, group=group), indent=2))
        return 0

    return run_client(args, action)
