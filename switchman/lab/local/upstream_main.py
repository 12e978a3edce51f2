"""One demo upstream as its own process: ``python -m switchman.lab.local.upstream_main SERVICE VERSION PORT_FILE``.

It runs :class:`switchman.lab.local.upstream.Upstream` on a free loopback port,
writes that port to ``PORT_FILE`` (atomically: whoever waits for the file reads
a whole number), and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from switchman.lab.local.upstream import Upstream

__all__ = ["main", "serve_upstream"]

log = logging.getLogger("switchman.lab.upstream")


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees either nothing or all of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


async def serve_upstream(service: str, version: str, port_file: Path, host: str = "127.0.0.1") -> None:
    """Serve ``service`` ``version`` until SIGTERM or SIGINT; the bound port goes to ``port_file``."""
    upstream = Upstream(service, version, host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    port = await upstream.start()
    write_atomically(port_file, f"{port}\n")
    log.info("upstream %s %s on %s:%d", service, version, host, port)
    try:
        await stop.wait()
    finally:
        await upstream.stop()
        log.info("upstream %s %s stopped", service, version)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m switchman.lab.local.upstream_main")
    parser.add_argument("service")
    parser.add_argument("version")
    parser.add_argument("port_file", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_upstream(args.service, args.version, args.port_file, args.host))


if __name__ == "__main__":
    main()
