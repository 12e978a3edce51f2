"""Measurements from a Prometheus that scrapes Envoys' admin ``/stats/prometheus``.

For users who already run Prometheus (as Flagger's do): a Rollout with
``analysis.provider.prometheus.address`` is judged by instant queries
(``/api/v1/query`` at ``time=end``) over the interval, summed over every
Envoy the Prometheus scrapes. The metrics are Envoy's own, as Envoy 1.40
names them (see :func:`queries`):

- ``envoy_cluster_upstream_rq_completed``: one per request the cluster
  answered, counting the *last* try only (tries that were retried are
  ``envoy_cluster_retry_upstream_rq_*``), and counting Envoy's own 503/504
  for a connect failure, a reset, a timeout or no healthy host: so a
  failure a retry hid is no error, and one without a response is.
  ``envoy_cluster_upstream_rq_total`` is not used: it counts tries that got
  an upstream stream, so it misses connect failures and counts retries.
  Envoy creates this counter at 0 with the cluster, so ``increase`` sees a
  cluster's very first requests.
- ``envoy_cluster_upstream_rq_xx{envoy_response_code_class="5"}``: those
  that ended in a 5xx, Envoy's own included (connect failures and resets are
  charged as 503 here already: adding ``upstream_cx_connect_fail`` or
  ``upstream_rq_rx_reset`` would count them twice). Envoy creates this
  series at the first 5xx, and ``increase`` takes a series' first sample as
  its baseline: 5xx answered before that first scrape are counted only by
  extrapolation.
- ``envoy_cluster_upstream_rq_time_bucket``: request time in milliseconds
  (buckets 0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, ... ms), which Envoy
  merges into what it exposes every ``stats_flush_interval`` (5 s by
  default), so latency lags the counters by up to that much.

Envoy's default tag extraction puts a cluster name only up to its first dot
in ``envoy_cluster_name`` (``a.b`` becomes ``envoy_cluster_name="a"`` and
metric names ``envoy_cluster_b_...``), so a cluster whose name has a dot
cannot be measured here: :class:`MetricsUnavailable` says so.

Prometheus's ``increase`` extrapolates to the ends of the range from the
samples inside it, so a count is exact only when the traffic is steady or
the range starts and ends on a scrape; ``judge`` uses shares and quantiles,
on which that matters little.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from switchman.errors import SwitchmanError
from switchman.rollout.analysis import Measurement

__all__ = ["MetricsUnavailable", "PrometheusSource", "Queries", "queries"]

#: Label Envoy's Prometheus output carries the cluster name in (its ``envoy.cluster_name`` tag).
CLUSTER_LABEL: Final = "envoy_cluster_name"


class MetricsUnavailable(SwitchmanError):
    """Raised when a Prometheus cannot give a measurement: it cannot be reached or does not answer in
    time, answers with an HTTP error or ``"status": "error"``, answers something that is not a
    Prometheus query result, or the cluster's name cannot be matched in Envoy's Prometheus output.

    Nothing was measured: an analysis that meets it has decided nothing (inconclusive).
    """


@dataclass(frozen=True, slots=True)
class Queries:
    """The PromQL of one measurement, each an instant query evaluated at the interval's end."""

    requests: str
    errors: str
    p50: str
    p99: str


def _label_value(value: str) -> str:
    """``value`` as a PromQL double-quoted string (backslash, quote and line breaks escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def queries(cluster: str, seconds: int) -> Queries:
    """The queries that measure the Envoy cluster ``cluster`` over the ``seconds`` before their evaluation time."""
    name = f"{CLUSTER_LABEL}={_label_value(cluster)}"
    window = f"[{int(seconds)}s]"

    def quantile(q: str) -> str:
        return f"histogram_quantile({q}, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{{{name}}}{window})))"

    return Queries(
        requests=f"sum(increase(envoy_cluster_upstream_rq_completed{{{name}}}{window}))",
        errors=f'sum(increase(envoy_cluster_upstream_rq_xx{{{name},envoy_response_code_class="5"}}{window}))',
        p50=quantile("0.5"),
        p99=quantile("0.99"),
    )


def window_seconds(start: float, end: float) -> int:
    """The range of the queries for ``[start, end]``: whole seconds, rounded up (a millisecond of
    float noise aside), at least 1."""
    return max(1, math.ceil(end - start - 0.001))


class PrometheusSource:
    """A :class:`~switchman.rollout.analysis.MetricsSource` that asks the Prometheus at ``address``
    (a base URL: ``http://prometheus:9090``, or with the path prefix it is served under).

    ``session``: an aiohttp session to use (the caller closes it); without one the source makes its
    own on first use and :meth:`close` closes it. ``timeout``: seconds a whole measurement may take.
    """

    def __init__(self, address: str, *, session: aiohttp.ClientSession | None = None, timeout: float = 5.0) -> None:
        self.address = address.rstrip("/")
        self.timeout = timeout
        self._session = session
        self._own_session = session is None

    async def close(self) -> None:
        """Close the session the source made itself (not one it was given)."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def measure(self, cluster: str, start: float, end: float, reporter: str | None) -> Measurement:
        """What ``cluster`` served in ``[start, end]``, summed over every Envoy the Prometheus scrapes.

        ``reporter`` is not used: Prometheus knows no node groups (a Rollout with a Prometheus
        provider has none). Raises :class:`MetricsUnavailable`.
        """
        if "." in cluster:
            raise MetricsUnavailable(
                f"cluster {cluster!r} has a dot: Envoy's Prometheus output puts only the part before it in "
                f"{CLUSTER_LABEL} (and the rest in the metric names), so its requests cannot be queried"
            )
        asked = queries(cluster, window_seconds(start, end))
        in_order = (asked.requests, asked.errors, asked.p50, asked.p99)
        tasks = [asyncio.create_task(self.value(query, end)) for query in in_order]
        try:
            async with asyncio.timeout(self.timeout):
                requests, errors, p50, p99 = await asyncio.gather(*tasks)
        except TimeoutError:
            raise MetricsUnavailable(f"Prometheus at {self.address} did not answer in {self.timeout:g}s") from None
        finally:
            for task in tasks:
                task.cancel()  # the others, when one failed: nothing waits for them any more
        total = round(requests) if requests is not None else 0
        failed = round(errors) if errors is not None else 0
        # Each series is extrapolated on its own: a window where every request failed can show a few
        # more errors than requests.
        return Measurement(
            requests=total,
            errors=min(failed, total),
            p50_ms=p50,
            p99_ms=p99,
            source="prometheus",
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def value(self, query: str, at: float) -> float | None:
        """The one value of the instant query ``query`` at ``at`` (seconds); None when it has no series or
        its value is NaN or infinite. Raises :class:`MetricsUnavailable`."""
        url = f"{self.address}/api/v1/query"
        try:
            async with self._client().get(url, params={"query": query, "time": f"{at:.3f}"}) as resp:
                text = (await resp.read()).decode(errors="replace")
                status = resp.status
        except aiohttp.ClientError as exc:
            raise MetricsUnavailable(f"Prometheus at {self.address} cannot be reached: {exc}") from exc
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise MetricsUnavailable(f"Prometheus at {self.address} answered HTTP {status}: {text[:200].strip()!r}")
        if status != 200 or body.get("status") != "success":
            reason = f"{body.get('errorType', 'error')}: {body.get('error', text[:200].strip())}"
            raise MetricsUnavailable(f"Prometheus at {self.address} refused {query!r} (HTTP {status}): {reason}")
        return _single_value(body.get("data"), query)


def _single_value(data: Any, query: str) -> float | None:
    """The value of a one-element vector (``sum`` and ``histogram_quantile`` over ``sum by (le)`` give
    at most one); None when empty, NaN or infinite."""
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise MetricsUnavailable(f"Prometheus answered {query!r} with something that is not an instant vector")
    result: list[Any] = data["result"]
    if not result:
        return None
    if len(result) > 1:
        raise MetricsUnavailable(f"Prometheus answered {query!r} with {len(result)} series, not one")
    try:
        value = float(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        raise MetricsUnavailable(f"Prometheus answered {query!r} with a sample that is not [time, value]") from None
    return value if math.isfinite(value) else None
