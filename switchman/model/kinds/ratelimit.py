"""``rateLimit``: a token bucket on a route or a virtual host, kept by each Envoy (Envoy's local rate limit).

A request takes one token; a request that finds the bucket empty is
answered ``status`` (429) by the Envoy itself. The bucket holds
``maxTokens`` and gets ``tokensPerFill`` more every ``fillInterval``. A
route's limit replaces its virtual host's (Envoy takes the most specific).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from envoy.type.v3 import http_status_pb2

from switchman.model.fields import Node

__all__ = ["MIN_FILL_INTERVAL", "RateLimit", "read_header_values", "read_rate_limit"]

MIN_FILL_INTERVAL = 0.05  # Envoy refuses a token bucket that fills more often than every 50ms
_HEADER_NAME = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
# Envoy takes only the status codes its HttpStatus enum names.
_STATUSES = tuple(sorted(code for code in http_status_pb2.StatusCode.values() if code >= 400))


@dataclass(frozen=True, slots=True)
class RateLimit:
    max_tokens: int
    tokens_per_fill: int
    fill_interval: float
    status: int = 429
    # x-ratelimit-limit, x-ratelimit-remaining and x-ratelimit-reset on every answer of the route
    rate_limit_headers: bool = False
    refused_headers: Mapping[str, str] = field(default_factory=dict)  # added to the answers it refuses
    enabled_percent: float = 100.0  # the share of requests that take a token
    enforced_percent: float = 100.0  # the share of requests without a token that are refused (else only counted)


def read_header_values(node: Node) -> dict[str, str]:
    """A mapping of header names (tokens, lowercased) to values."""
    out: dict[str, str] = {}
    for name, value in node.items():
        Node(value.doc, value.path, name).text(_HEADER_NAME, "a header name (no pseudo-headers such as :path)")
        out[name.lower()] = value.header_value()
    return out


def _status(node: Node) -> int:
    code = node.integer(400, 599)
    if code not in _STATUSES:
        node.fail(f"{code} is not a status Envoy's rate limit answers with (it takes {_spans(_STATUSES)})")
    return code


def _spans(codes: tuple[int, ...]) -> str:
    """``400-417, 421, ...``: runs of consecutive codes."""
    runs: list[list[int]] = []
    for code in codes:
        if runs and runs[-1][-1] == code - 1:
            runs[-1].append(code)
        else:
            runs.append([code])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def read_rate_limit(node: Node) -> RateLimit:
    max_tokens = node["maxTokens"].integer(1)
    per_fill, status, headers, refused, enabled, enforced = (
        node.get("tokensPerFill"), node.get("status"), node.get("rateLimitHeaders"), node.get("refusedHeaders"),
        node.get("enabledPercent"), node.get("enforcedPercent"),
    )
    result = RateLimit(
        max_tokens=max_tokens,
        tokens_per_fill=per_fill.integer(1) if per_fill else max_tokens,
        fill_interval=node["fillInterval"].duration(MIN_FILL_INTERVAL, 24 * 3600.0),
        status=_status(status) if status else 429,
        rate_limit_headers=headers.flag() if headers else False,
        refused_headers=read_header_values(refused) if refused else {},
        enabled_percent=enabled.number(0, 100) if enabled else 100.0,
        enforced_percent=enforced.number(0, 100) if enforced else 100.0,
    )
    node.done()
    return result
