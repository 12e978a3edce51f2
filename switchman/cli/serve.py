"""``switchman serve``: run the control plane until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from switchman.app import ServeSettings, Switchman
from switchman.cli.options import option

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="serve xDS to Envoys, and health, metrics and status over HTTP")
    option(parser, "--xds-address", "SWITCHMAN_XDS_ADDRESS", "127.0.0.1:18000", "where Envoys connect (gRPC)")
    option(parser, "--api-address", "SWITCHMAN_API_ADDRESS", "127.0.0.1:8080", "HTTP API: /healthz /metrics /v1/status")
    option(
        parser, "--resources", "SWITCHMAN_RESOURCES", "", "a YAML/JSON file of raw Envoy resources, reloaded on change"
    )
    option(parser, "--group-by", "SWITCHMAN_GROUP_BY", "cluster", "node grouping: id, cluster or metadata:KEY")
    parser.set_defaults(run=run)


async def _serve(settings: ServeSettings) -> None:
    app = Switchman(settings)
    xds_port, api_port = await app.start()
    logging.getLogger("switchman").info("serving: xDS on port %d, API on port %d", xds_port, api_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await app.stop(grace=2.0)


def run(args: argparse.Namespace) -> int:
    settings = ServeSettings(
        xds_address=args.xds_address,
        api_address=args.api_address,
        resources=Path(args.resources) if args.resources else None,
        group_by=args.group_by,
    )
    asyncio.run(_serve(settings))
    return 0
