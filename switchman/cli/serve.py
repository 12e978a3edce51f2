"""``switchman serve``: run the control plane until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import re
import signal
from typing import TYPE_CHECKING, Final

from switchman.cli.config import add_switch
from switchman.cli.etcd_flags import add_etcd_options, etcd_auth, etcd_tls
from switchman.cli.options import option, seconds, whole_number
from switchman.cli.tls_flags import add_tls_options, api_tls_settings, node_identities, tls_settings
from switchman.errors import ConfigError

if TYPE_CHECKING:  # the server is imported only when it is run: other commands start faster
    from switchman.app import ServeSettings
    from switchman.xds.server import ResponseLimits

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # No abbreviations: ``--etcd-password SECRET`` would be taken for ``--etcd-password-file`` (and the
    # secret, as a file name, echoed in the error) instead of being refused as the option it is not.
    parser = sub.add_parser("serve", help="serve xDS to Envoys and the config API", allow_abbrev=False)
    option(parser, "--xds-address", "SWITCHMAN_XDS_ADDRESS", "127.0.0.1:18000", "where Envoys connect (gRPC)")
    option(parser, "--api-address", "SWITCHMAN_API_ADDRESS", "127.0.0.1:8080", "the REST API (HTTP, or HTTPS "
           "with --api-tls-cert or --tls-cert)")
    option(parser, "--store", "SWITCHMAN_STORE", "switchman.db", "sqlite file, sqlite:///path or etcd://host:port/prefix")
    add_etcd_options(parser)
    option(parser, "--group-by", "SWITCHMAN_GROUP_BY", "cluster", "node grouping: id, cluster or metadata:KEY")
    option(
        parser, "--admin-tokens", "SWITCHMAN_ADMIN_TOKENS", "",
        "name=secret,... allowed to change config (REST and the gRPC management API) and to read; the history "
        "records the name (X-Switchman-Author beside it); without tokens both ports are open to anyone who "
        "reaches them",
    )
    option(
        parser, "--read-tokens", "SWITCHMAN_READ_TOKENS", "",
        "name=secret,... allowed to read (REST, the gRPC management API and CSDS on the xDS port)",
    )
    option(
        parser, "--read-identities", "SWITCHMAN_READ_IDENTITIES", "",
        "client certificate identities (a SPIFFE URI or a DNS name of it; a trailing * matches a prefix), comma-"
        "separated, that may read without a token as a read token does, on a port that checks client "
        "certificates (--xds-client-ca, --api-client-ca); needs tokens",
    )
    option(
        parser, "--history-keep", "SWITCHMAN_HISTORY_KEEP", "1000",
        "revisions kept in the store: after each commit older ones are deleted (on etcd, the keyspace is then "
        "compacted); 0 keeps them all",
    )
    option(
        parser, "--max-body-bytes", "SWITCHMAN_MAX_BODY_BYTES", str(8 * 1024 * 1024),
        "the REST API's largest request body, in bytes (a larger one is refused: 413)",
    )
    option(
        parser, "--xds-transport", "SWITCHMAN_XDS_TRANSPORT", "h2",
        "what serves xDS, CSDS and the gRPC management API on the xDS port: h2 (Switchman's own HTTP/2 "
        "transport: a fraction of grpc.aio's CPU and memory per stream) or grpc (grpc.aio); both serve TLS "
        "and mutual TLS",
    )
    add_tls_options(parser)
    option(
        parser, "--response-limits", "SWITCHMAN_RESPONSE_LIMITS", "envoy=none,grpc=4MiB,other=4MiB",
        "KIND=SIZE,...: the largest xDS response each kind of client can receive (bytes, or with KiB or MiB; "
        "none: no limit). Kinds by the node's user agent: envoy, grpc (gRPC's proxyless clients), other. A larger "
        "response is not sent, and an apply that would make one for a client connected (or declared with "
        "--client-kinds) is refused",
    )
    option(
        parser, "--client-kinds", "SWITCHMAN_CLIENT_KINDS", "",
        "GROUP=KIND[|KIND...],...: kinds of client a node group has besides those connected (to this replica) "
        "when a change is applied, so that its responses are checked against their limits too",
    )
    option(
        parser, "--gc-freeze-seconds", "SWITCHMAN_GC_FREEZE_SECONDS", "1",
        "every so often collect young garbage and gc.freeze() what lives on, so full collections do not stall "
        "pushes to many streams; 0 leaves Python's collector as it is",
    )
    option(
        parser, "--load-reporting-interval", "SWITCHMAN_LOAD_REPORTING_INTERVAL", "1",
        "how often, in seconds, Envoys with load_stats_config report their clusters' load to Switchman (LRS)",
    )
    option(
        parser, "--rollout-lease-seconds", "SWITCHMAN_ROLLOUT_LEASE_SECONDS", "6",
        "how long a replica keeps a rollout it stopped renewing: with replicas on etcd, how soon another takes "
        "over a rollout whose driver died (etcd's minimum is 2)",
    )
    option(
        parser, "--analysis-lag", "SWITCHMAN_ANALYSIS_LAG", "1",
        "how late an access log may reach Switchman after its request started: the slowest request's time plus "
        "the Listener's accessLogService.bufferFlushInterval (0.5 s by default); an analysis window ends (on a "
        "whole second) at least this long before the analysis is made",
    )
    option(
        parser, "--replica-name", "SWITCHMAN_REPLICA_NAME", "",
        "this replica's name in rollout leases (what `rollout status` shows as the driver); empty: a random one",
    )
    add_switch(
        parser, "--kubernetes", "SWITCHMAN_KUBERNETES",
        "discover the endpoints of Service versions that name a Kubernetes Service (kubernetes: {namespace, "
        "service, port}) from its EndpointSlices; the API server from --kubeconfig, else in-cluster (in a pod), "
        "else $KUBECONFIG or ~/.kube/config (docs/kubernetes.md)",
    )
    option(parser, "--kubeconfig", "SWITCHMAN_KUBECONFIG", "", "the kubeconfig file for --kubernetes")
    option(parser, "--kube-context", "SWITCHMAN_KUBE_CONTEXT", "", "the kubeconfig context (default: its current one)")
    parser.set_defaults(run=run)


async def _serve(settings: ServeSettings) -> None:
    from switchman.app import Switchman

    app = Switchman(settings)
    xds_port, api_port = await app.start()
    # Everything loaded so far lives as long as the process: keep it out of
    # the collector's way (full collections walk every tracked object).
    gc.freeze()
    logging.getLogger("switchman").info("serving: xDS on port %d, API on port %d", xds_port, api_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP: read the certificate files again (new connections get new ones), as a change of them does.
    loop.add_signal_handler(signal.SIGHUP, app.reload_certificates)
    await stop.wait()
    await app.stop(grace=2.0)


def _transport(text: str) -> str:
    from switchman.xds.server.server import TRANSPORTS

    if text not in TRANSPORTS:
        raise ConfigError("--xds-transport", f"{text!r} is not one of {', '.join(TRANSPORTS)}")
    return text


_SIZE: Final = re.compile(r"([0-9]+)\s*(KiB|MiB|)", re.IGNORECASE)
_UNIT: Final = {"": 1, "kib": 1024, "mib": 1024 * 1024}


def _response_limits(text: str) -> ResponseLimits:
    """``envoy=none,grpc=4MiB``: the kinds named change, the others keep their defaults."""
    from switchman.xds.server import CLIENT_KINDS, ResponseLimits

    limits: dict[str, int | None] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        kind, _, size = (x.strip() for x in part.partition("="))
        if kind not in CLIENT_KINDS:
            raise ConfigError("--response-limits", f"{kind!r} is not a client kind ({', '.join(CLIENT_KINDS)})")
        match = _SIZE.fullmatch(size)
        if size.lower() == "none":
            limits[kind] = None
        elif match is not None and int(match.group(1)) > 0:
            limits[kind] = int(match.group(1)) * _UNIT[match.group(2).lower()]
        else:
            raise ConfigError("--response-limits", f"{part!r} is not KIND=SIZE (4194304, 512KiB, 64MiB or none)")
    return ResponseLimits(**limits)


def _client_kinds(text: str) -> dict[str, tuple[str, ...]]:
    from switchman.xds.server import CLIENT_KINDS

    declared: dict[str, tuple[str, ...]] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        group, sep, kinds = (x.strip() for x in part.partition("="))
        found = tuple(k.strip() for k in kinds.split("|") if k.strip())
        if not sep or not group or not found:
            raise ConfigError("--client-kinds", f"{part!r} is not GROUP=KIND[|KIND...] (edge=grpc)")
        for kind in found:
            if kind not in CLIENT_KINDS:
                raise ConfigError("--client-kinds", f"{kind!r} is not a client kind ({', '.join(CLIENT_KINDS)})")
        declared[group] = tuple(dict.fromkeys((*declared.get(group, ()), *found)))
    return declared


def run(args: argparse.Namespace) -> int:
    from switchman.api import Tokens
    from switchman.app import ServeSettings
    from switchman.kubernetes import KubernetesSettings
    from switchman.rollout import EngineSettings
    from switchman.telemetry import TelemetrySettings

    settings = ServeSettings(
        xds_address=args.xds_address,
        api_address=args.api_address,
        store=args.store,
        etcd_tls=etcd_tls(args),
        etcd_auth=etcd_auth(args),
        group_by=args.group_by,
        tokens=Tokens.from_flags(args.admin_tokens, args.read_tokens, args.read_identities),
        history_keep=whole_number(args.history_keep, "--history-keep"),
        max_body_bytes=whole_number(args.max_body_bytes, "--max-body-bytes", minimum=1024),
        gc_freeze_seconds=seconds(args.gc_freeze_seconds, "--gc-freeze-seconds", zero_ok=True),
        xds_transport=_transport(args.xds_transport),
        xds_tls=tls_settings(args),
        api_tls=api_tls_settings(args),
        node_identities=node_identities(args.node_identities),
        response_limits=_response_limits(args.response_limits),
        client_kinds=_client_kinds(args.client_kinds),
        telemetry=TelemetrySettings(
            load_reporting_interval=seconds(args.load_reporting_interval, "--load-reporting-interval"),
        ),
        rollouts=EngineSettings(
            lease_ttl=seconds(args.rollout_lease_seconds, "--rollout-lease-seconds"),
            analysis_lag=seconds(args.analysis_lag, "--analysis-lag", zero_ok=True),
            replica=args.replica_name,
        ),
        kubernetes=KubernetesSettings(args.kubeconfig, args.kube_context) if args.kubernetes else None,
    )
    if not args.kubernetes and (args.kubeconfig or args.kube_context):
        raise ConfigError("--kubeconfig", "is for --kubernetes (endpoint discovery), which is off")
    asyncio.run(_serve(settings))
    return 0
