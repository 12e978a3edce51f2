"""Rate limits -> Envoy's local rate limit filter: one on every HTTP connection manager, configured per route.

The filter in the connection manager has no bucket and enables nothing, so
it passes every request; a route's or virtual host's
``typed_per_filter_config`` gives it a bucket there. Envoy counts in
``STAT_PREFIX.http_local_rate_limit.{enabled,enforced,rate_limited,ok}``,
where the stat prefix is ``rate_limit.VHOST`` or ``rate_limit.VHOST.ROUTE``
(a route without a name counts with its virtual host's prefix).
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2 as lrl
from envoy.type.v3 import http_status_pb2, token_bucket_pb2

from switchman.model.kinds.ratelimit import RateLimit
from switchman.translate.common import duration, fractional_percent, headers_to_add

__all__ = ["RATE_LIMIT_FILTER", "STAT_PREFIX", "filter_config", "rate_limit"]

RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit"
STAT_PREFIX = "rate_limit"


def filter_config() -> lrl.LocalRateLimit:
    """The connection manager's own config: no bucket, so nothing is limited until a route says so."""
    return lrl.LocalRateLimit(stat_prefix=STAT_PREFIX)


def _share(percent: float, runtime_key: str) -> base_pb2.RuntimeFractionalPercent:
    return base_pb2.RuntimeFractionalPercent(default_value=fractional_percent(percent), runtime_key=runtime_key)


def rate_limit(limit: RateLimit, stat_prefix: str) -> lrl.LocalRateLimit:
    """The per-route (or per-virtual-host) config of the local rate limit filter."""
    bucket = token_bucket_pb2.TokenBucket(max_tokens=limit.max_tokens, fill_interval=duration(limit.fill_interval))
    bucket.tokens_per_fill.value = limit.tokens_per_fill
    out = lrl.LocalRateLimit(
        stat_prefix=stat_prefix,
        token_bucket=bucket,
        # Envoy's defaults are 0 %: a bucket it neither checks nor enforces.
        filter_enabled=_share(limit.enabled_percent, f"{stat_prefix}.enabled"),
        filter_enforced=_share(limit.enforced_percent, f"{stat_prefix}.enforced"),
        status=http_status_pb2.HttpStatus(code=limit.status),
        response_headers_to_add=headers_to_add(limit.refused_headers),
    )
    if limit.rate_limit_headers:
        out.enable_x_ratelimit_headers = ratelimit_pb2.DRAFT_VERSION_03
    return out
