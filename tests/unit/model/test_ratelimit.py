"""rateLimit on a route or a virtual host: a token bucket, read field by field."""

from __future__ import annotations

from typing import Any

import pytest

from switchman.model.kinds.ratelimit import RateLimit
from switchman.model.kinds.routes import RoutesSpec
from tests.unit.model.docs import parse, rejected, route, routes

R0 = "routes/r: spec.virtualHosts[0].routes[0].rateLimit"
BUCKET = {"maxTokens": 10, "fillInterval": "1s"}


def _limits(doc: dict[str, Any]) -> tuple[RateLimit | None, RateLimit | None]:
    spec = parse(doc).spec
    assert isinstance(spec, RoutesSpec)
    [vhost] = spec.virtual_hosts
    return vhost.rate_limit, vhost.routes[0].rate_limit


def test_defaults_fill_the_bucket_back_to_full_and_answer_429() -> None:
    _, limit = _limits(routes("r", route(rateLimit=BUCKET)))
    assert limit == RateLimit(max_tokens=10, tokens_per_fill=10, fill_interval=1.0)
    assert (limit.status, limit.enabled_percent, limit.enforced_percent) == (429, 100.0, 100.0)


def test_every_field() -> None:
    spec = {**BUCKET, "tokensPerFill": 2, "status": 503, "rateLimitHeaders": True,
            "refusedHeaders": {"X-Limited": "yes"}, "enabledPercent": 50, "enforcedPercent": 0.5}
    hosts = [{"name": "h", "domains": ["*"], "rateLimit": BUCKET, "routes": [route(rateLimit=spec)]}]
    host_limit, route_limit = _limits(routes(hosts=hosts))
    assert host_limit == RateLimit(10, 10, 1.0)
    assert route_limit == RateLimit(10, 2, 1.0, 503, True, {"x-limited": "yes"}, 50.0, 0.5)


CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "no-tokens": ({"fillInterval": "1s"}, f"{R0}.maxTokens", "is required"),
    "zero-tokens": ({**BUCKET, "maxTokens": 0}, f"{R0}.maxTokens", "0 is below 1"),
    "fast-fill": ({**BUCKET, "fillInterval": "10ms"}, f"{R0}.fillInterval", "must be at least 0.05s"),
    "status-2xx": ({**BUCKET, "status": 200}, f"{R0}.status", "200 is below 400"),
    "status-unnamed": (
        {**BUCKET, "status": 430}, f"{R0}.status",
        "430 is not a status Envoy's rate limit answers with (it takes 400-417, 421-424, 426, 428-429, 431, "
        "500-508, 510-511)",
    ),
    "percent": ({**BUCKET, "enforcedPercent": 101}, f"{R0}.enforcedPercent", "101 is above 100"),
    "header-name": ({**BUCKET, "refusedHeaders": {":status": "1"}}, f"{R0}.refusedHeaders.:status",
                    "':status' is not a header name (no pseudo-headers such as :path)"),
    "header-value": ({**BUCKET, "refusedHeaders": {"x-a": "a\nb"}}, f"{R0}.refusedHeaders.x-a",
                     "must not contain CR, LF or NUL"),
    "unknown": ({**BUCKET, "burst": 3}, f"{R0}.burst",
                "unknown field (allowed here: enabledPercent, enforcedPercent, fillInterval, maxTokens, "
                "rateLimitHeaders, refusedHeaders, status, tokensPerFill)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mistakes_name_the_field(case: str) -> None:
    spec, path, reason = CASES[case]
    err = rejected(routes("r", route(rateLimit=spec)))
    assert (err.path, err.reason) == (path, reason)


def test_a_virtual_host_limit_is_checked_too() -> None:
    hosts = [{"name": "h", "domains": ["*"], "rateLimit": {"maxTokens": 1}, "routes": [route()]}]
    err = rejected(routes(hosts=hosts))
    assert (err.path, err.reason) == ("routes/r: spec.virtualHosts[0].rateLimit.fillInterval", "is required")
