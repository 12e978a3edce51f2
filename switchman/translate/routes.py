"""Routes documents -> Envoy RouteConfigurations."""

from __future__ import annotations

from dataclasses import replace

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from switchman.model.config import Config
from switchman.model.kinds.routes import (
    DirectResponse,
    Fault,
    Forward,
    HeaderMatch,
    Match,
    Mirror,
    Redirect,
    Retries,
    Route,
    RoutesSpec,
    Split,
    Target,
    VirtualHost,
)
from switchman.model.kinds.service import ServiceSpec
from switchman.translate.common import duration, fractional_percent, headers_to_add
from switchman.translate.ratelimit import RATE_LIMIT_FILTER, STAT_PREFIX, rate_limit
from switchman.translate.targets import weighted_clusters

__all__ = ["FAULT_FILTER", "route_configuration"]

FAULT_FILTER = "envoy.filters.http.fault"
_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


def _string_match(kind: str, value: str) -> string_pb2.StringMatcher:
    if kind == "exact":
        return string_pb2.StringMatcher(exact=value)
    if kind == "prefix":
        return string_pb2.StringMatcher(prefix=value)
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=value))


def _match(match: Match) -> rc.RouteMatch:
    out = rc.RouteMatch()
    if match.kind == "prefix":
        out.prefix = match.value
    elif match.kind == "path":
        out.path = match.value
    else:
        out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=match.value))
    for header in match.headers:
        out.headers.append(_header(header))
    for param in match.query_params:
        query = rc.QueryParameterMatcher(name=param.name)
        if param.kind == "present":
            query.present_match = True
        else:
            query.string_match.CopyFrom(_string_match(param.kind, param.value))
        out.query_parameters.append(query)
    return out


def _header(header: HeaderMatch) -> rc.HeaderMatcher:
    out = rc.HeaderMatcher(name=header.name, invert_match=header.invert)
    if header.kind == "present":
        out.present_match = True
    else:
        out.string_match.CopyFrom(_string_match(header.kind, header.value))
    return out


def _retry(retries: Retries) -> rc.RetryPolicy:
    policy = rc.RetryPolicy(retry_on=",".join(retries.on), retriable_status_codes=list(retries.status_codes))
    policy.num_retries.value = retries.attempts
    if retries.per_try_timeout is not None:
        policy.per_try_timeout.CopyFrom(duration(retries.per_try_timeout))
    if retries.avoid_previous_hosts:
        predicate = policy.retry_host_predicate.add(name="envoy.retry_host_predicates.previous_hosts")
        predicate.typed_config.Pack(previous_hosts_pb2.PreviousHostsPredicate())
        policy.host_selection_retry_max_attempts = 3
    if retries.backoff_base is not None:
        policy.retry_back_off.base_interval.CopyFrom(duration(retries.backoff_base))
        if retries.backoff_max is not None:
            policy.retry_back_off.max_interval.CopyFrom(duration(retries.backoff_max))
    return policy


def _fault(fault: Fault) -> fault_pb2.HTTPFault:
    out = fault_pb2.HTTPFault()
    if fault.delay is not None:
        delay = fault.delay
        out.delay.CopyFrom(
            common_fault.FaultDelay(fixed_delay=duration(delay.seconds), percentage=fractional_percent(delay.percent))
        )
    if fault.abort is not None:
        out.abort.CopyFrom(
            fault_pb2.FaultAbort(http_status=fault.abort.status, percentage=fractional_percent(fault.abort.percent))
        )
    return out


def _forward(config: Config, route: Route, action: Forward) -> rc.RouteAction:
    out = rc.RouteAction()
    clusters = weighted_clusters(config, action.splits)
    if len(clusters) == 1:
        out.cluster = clusters[0][0]
    else:
        for name, weight in clusters:
            entry = out.weighted_clusters.clusters.add(name=name)
            entry.weight.value = weight
    if route.timeout is not None:
        out.timeout.CopyFrom(duration(route.timeout))
    if route.retries is not None:
        out.retry_policy.CopyFrom(_retry(route.retries))
    for mirror in route.mirrors:
        # A whole service is mirrored to its heaviest version: one copy per request.
        name, _ = max(weighted_clusters(config, (Split(mirror.target, 100),)), key=lambda c: c[1])
        policy = out.request_mirror_policies.add(cluster=name)
        if mirror.percent < 100:
            policy.runtime_fraction.default_value.CopyFrom(fractional_percent(mirror.percent))
    if route.prefix_rewrite is not None:
        out.prefix_rewrite = route.prefix_rewrite
    return out


def _route(config: Config, vhost: VirtualHost, route: Route) -> rc.Route:
    out = rc.Route(name=route.name, match=_match(route.match))
    action = route.action
    if isinstance(action, Forward):
        out.route.CopyFrom(_forward(config, route, action))
    elif isinstance(action, Redirect):
        redirect = rc.RedirectAction(response_code=_REDIRECT_CODES[action.code], https_redirect=action.https)
        if action.host:
            redirect.host_redirect = action.host
        if action.path:
            redirect.path_redirect = action.path
        out.redirect.CopyFrom(redirect)
    elif isinstance(action, DirectResponse):
        out.direct_response.status = action.status
        if action.body:
            out.direct_response.body.inline_string = action.body
    if route.fault is not None:
        out.typed_per_filter_config[FAULT_FILTER].Pack(_fault(route.fault))
    if route.rate_limit is not None:
        prefix = f"{STAT_PREFIX}.{vhost.name}.{route.name}" if route.name else f"{STAT_PREFIX}.{vhost.name}"
        out.typed_per_filter_config[RATE_LIMIT_FILTER].Pack(rate_limit(route.rate_limit, prefix))
    out.request_headers_to_add.extend(headers_to_add(route.request_headers.add))
    out.request_headers_to_remove.extend(route.request_headers.remove)
    out.response_headers_to_add.extend(headers_to_add(route.response_headers.add))
    out.response_headers_to_remove.extend(route.response_headers.remove)
    return out


def _whole_service(config: Config, route: Route) -> ServiceSpec | None:
    """The service a route sends all its traffic to without naming a version, if it does."""
    action = route.action
    if not isinstance(action, Forward) or len(action.splits) != 1:
        return None
    target = action.splits[0].target
    if target.service is None or target.version is not None:
        return None
    service = config.get("Service", target.service)
    assert service is not None and isinstance(service.spec, ServiceSpec)
    return service.spec


def _with_service_policies(config: Config, route: Route) -> list[Route]:
    """A route to a whole service, as the service's cohort and mirror say: one route per cohort
    match ahead of it (the same match plus the cohort's headers, to the cohort's version), and the
    service's mirror on each."""
    spec = _whole_service(config, route)
    if spec is None or (spec.cohort is None and spec.mirror is None):
        return [route]
    target = route.action.splits[0].target  # type: ignore[union-attr]
    mirrors = route.mirrors
    if spec.mirror is not None:
        mirrored = Target(service=target.service, version=spec.mirror.version)
        mirrors = (*mirrors, Mirror(mirrored, spec.mirror.percent))
    routes = []
    if spec.cohort is not None:
        cohort = Forward((Split(Target(service=target.service, version=spec.cohort.version), 100),))
        for i, headers in enumerate(spec.cohort.matches):
            match = replace(route.match, headers=(*route.match.headers, *headers))
            name = f"{route.name}.cohort-{i}" if route.name else ""
            routes.append(replace(route, match=match, action=cohort, name=name, mirrors=route.mirrors))
    routes.append(replace(route, mirrors=mirrors))
    return routes


def _virtual_host(config: Config, vhost: VirtualHost) -> rc.VirtualHost:
    out = rc.VirtualHost(
        name=vhost.name,
        domains=list(vhost.domains),
        routes=[
            _route(config, vhost, expanded)
            for route in vhost.routes
            for expanded in _with_service_policies(config, route)
        ],
    )
    if vhost.rate_limit is not None:
        out.typed_per_filter_config[RATE_LIMIT_FILTER].Pack(rate_limit(vhost.rate_limit, f"{STAT_PREFIX}.{vhost.name}"))
    return out


def route_configuration(config: Config, name: str, spec: RoutesSpec) -> route_pb2.RouteConfiguration:
    return route_pb2.RouteConfiguration(
        name=name, virtual_hosts=[_virtual_host(config, vhost) for vhost in spec.virtual_hosts]
    )
