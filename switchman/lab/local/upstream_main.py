"""One demo upstream as its own process: ``python -m switchman.lab.local.upstream_main SERVICE VERSION``.

It runs :class:`switchman.lab.local.upstream.Upstream` on ``--host`` (127.0.0.1)
and ``--port`` (0: a free one), writes the bound port to ``--port-file`` when
given (atomically: whoever waits for the file reads a whole number), and serves
until SIGTERM or SIGINT. The lab gives a port file; the ``checkout`` image
gives a fixed port (8080) and, in a pod, the host 127.0.0.1, so that only the
pod's sidecar reaches it.
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


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` so that a reader sees either nothing or all of it; a new file gets ``mode``
    (0o600 for one that holds a secret), never more than the umask allows."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


async def serve_upstream(
    service: str, version: str, port_file: Path | None = None, host: str = "127.0.0.1", port: int = 0,
) -> None:
    """Serve ``service`` ``version`` on ``host``:``port`` until SIGTERM or SIGINT; the bound port goes to
    ``port_file`` when given."""
    upstream = Upstream(service, version, host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = await upstream.start(port)
    if port_file is not None:
        write_atomically(port_file, f"{bound}\n")
    log.info("upstream %s %s on %s:%d", service, version, host, bound)
    try:
        await stop.wait()
    finally:
        await upstream.stop()
        log.info("upstream %s %s stopped", service, version)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m switchman.lab.local.upstream_main")
    parser.add_argument("service", help="the service it answers for (checkout)")
    parser.add_argument("version", help="the version it answers with (v1)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="the port to listen on (default 0: a free one)")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_upstream(args.service, args.version, args.port_file, args.host, args.port))


if __name__ == "__main__":
    main()
