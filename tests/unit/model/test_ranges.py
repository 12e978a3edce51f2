"""Every bounded number: just outside its range is refused with the bound named; the bounds themselves pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.model.docs import Raw, cluster, listener, parse, rejected, route, routes, service

R0 = "routes/r: spec.virtualHosts[0].routes[0]"


def _endpoint(**fields: Any) -> Raw:
    return cluster(endpoints=[{"address": "127.0.0.1", "port": 9001, **fields}])


Make = Callable[[Any], Raw]
# name: (document for a value, path, lowest allowed, highest allowed or None)
RANGES: dict[str, tuple[Make, str, int, int | None]] = {
    "listener-port": (lambda v: listener(port=v), "listener/l: spec.port", 0, 65535),
    "endpoint-port": (lambda v: _endpoint(port=v), "cluster/c: spec.endpoints[0].port", 1, 65535),
    "endpoint-weight": (lambda v: _endpoint(weight=v), "cluster/c: spec.endpoints[0].weight", 1, 128),
    "split-weight": (lambda v: routes("r", route(split=[{"cluster": "c", "weight": v}, {"cluster": "d", "weight": 1}])),
                     f"{R0}.split[0].weight", 0, 100),
    "service-weight": (lambda v: service(weights={"v1": v, "v2": 1}), "service/s: spec.weights.v1", 0, 100),
    "retry-attempts": (lambda v: routes("r", route(retries={"attempts": v})), f"{R0}.retries.attempts", 1, 100),
    "retry-status-code": (
        lambda v: routes("r", route(retries={"retryOn": ["retriable-status-codes"], "statusCodes": [v]})),
        f"{R0}.retries.statusCodes[0]", 100, 599,
    ),
    "direct-response-status": (lambda v: routes("r", route(directResponse={"status": v})),
                               f"{R0}.directResponse.status", 200, 599),
    "fault-abort-status": (lambda v: routes("r", route(fault={"abort": {"status": v, "percent": 1}})),
                           f"{R0}.fault.abort.status", 200, 599),
    "fault-abort-percent": (lambda v: routes("r", route(fault={"abort": {"status": 503, "percent": v}})),
                            f"{R0}.fault.abort.percent", 0, 100),
    "fault-delay-percent": (lambda v: routes("r", route(fault={"delay": {"fixed": "1s", "percent": v}})),
                            f"{R0}.fault.delay.percent", 0, 100),
    "mirror-percent": (lambda v: routes("r", route(mirror={"cluster": "c", "percent": v})),
                       f"{R0}.mirror.percent", 0, 100),
    "max-ejection-percent": (lambda v: cluster(outlierDetection={"maxEjectionPercent": v}),
                             "cluster/c: spec.outlierDetection.maxEjectionPercent", 0, 100),
    "consecutive-5xx": (lambda v: cluster(outlierDetection={"consecutive5xx": v}),
                        "cluster/c: spec.outlierDetection.consecutive5xx", 1, None),
    "retry-budget-percent": (lambda v: cluster(circuitBreakers={"retryBudget": {"percent": v}}),
                             "cluster/c: spec.circuitBreakers.retryBudget.percent", 0, 100),
    "max-connections": (lambda v: cluster(circuitBreakers={"maxConnections": v}),
                        "cluster/c: spec.circuitBreakers.maxConnections", 1, None),
    "max-retries": (lambda v: cluster(circuitBreakers={"maxRetries": v}),
                    "cluster/c: spec.circuitBreakers.maxRetries", 0, None),
    "healthy-threshold": (lambda v: cluster(healthCheck={"path": "/", "healthyThreshold": v}),
                          "cluster/c: spec.healthCheck.healthyThreshold", 1, None),
    "destination-port": (lambda v: listener(filterChains=[{"routes": "r", "match": {"destinationPort": v}}]),
                         "listener/l: spec.filterChains[0].match.destinationPort", 1, 65535),
    "xff-trusted-hops": (lambda v: listener(http={"xffNumTrustedHops": v}),
                         "listener/l: spec.http.xffNumTrustedHops", 0, 10),
}


@pytest.mark.parametrize("case", list(RANGES), ids=list(RANGES))
def test_below_the_range_is_refused(case: str) -> None:
    make, path, low, _ = RANGES[case]
    err = rejected(make(low - 1))
    assert err.path == path
    assert err.reason in (f"{low - 1} is below {low}", f"{float(low - 1):g} is below {float(low):g}")


@pytest.mark.parametrize("case", [c for c in RANGES if RANGES[c][3] is not None], ids=lambda c: c)
def test_above_the_range_is_refused(case: str) -> None:
    make, path, _, high = RANGES[case]
    assert high is not None
    err = rejected(make(high + 1))
    assert err.path == path
    assert err.reason in (f"{high + 1} is above {high}", f"{float(high + 1):g} is above {float(high):g}")


@pytest.mark.parametrize("case", list(RANGES), ids=list(RANGES))
def test_the_bounds_themselves_are_accepted(case: str) -> None:
    make, _, low, high = RANGES[case]
    for value in (low, high):
        if value is not None:
            parse(make(value))


def test_percents_take_fractions() -> None:
    parse(routes("r", route(fault={"delay": {"fixed": "1s", "percent": 0.5}})))
    err = rejected(routes("r", route(fault={"delay": {"fixed": "1s", "percent": 100.5}})))
    assert (err.path, err.reason) == (f"{R0}.fault.delay.percent", "100.5 is above 100")


DURATION_BOUNDS: dict[str, tuple[Make, str, str]] = {
    "connect-timeout-low": (lambda v: cluster(connectTimeout=v), "0s", "must be at least 0.001s"),
    "connect-timeout-high": (lambda v: cluster(connectTimeout=v), "2h", "must be at most 3600s"),
    "per-try-timeout": (lambda v: routes("r", route(retries={"perTryTimeout": v})), "0ms", "must be at least 0.001s"),
    "backoff-base": (lambda v: routes("r", route(retries={"backoff": {"base": v}})), "0s", "must be at least 0.001s"),
    "health-check-interval": (lambda v: cluster(healthCheck={"path": "/", "interval": v}), "5ms",
                              "must be at least 0.01s"),
    "outlier-interval": (lambda v: cluster(outlierDetection={"interval": v}), "0s", "must be at least 0.001s"),
}
DURATION_PATHS = {
    "connect-timeout-low": "cluster/c: spec.connectTimeout",
    "connect-timeout-high": "cluster/c: spec.connectTimeout",
    "per-try-timeout": f"{R0}.retries.perTryTimeout",
    "backoff-base": f"{R0}.retries.backoff.base",
    "health-check-interval": "cluster/c: spec.healthCheck.interval",
    "outlier-interval": "cluster/c: spec.outlierDetection.interval",
}


@pytest.mark.parametrize("case", list(DURATION_BOUNDS), ids=list(DURATION_BOUNDS))
def test_durations_outside_their_range_are_refused(case: str) -> None:
    make, value, reason = DURATION_BOUNDS[case]
    err = rejected(make(value))
    assert (err.path, err.reason) == (DURATION_PATHS[case], reason)
