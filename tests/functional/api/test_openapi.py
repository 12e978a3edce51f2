"""The OpenAPI document is served, and it and the router describe the same API."""

from __future__ import annotations

from switchman.api import api_app
from tests.functional.api.conftest import Api

METHODS = {"get", "post", "put", "patch", "delete"}


def _router_paths(api: Api) -> dict[str, set[str]]:
    app = api_app(api.switchman.controller, api.switchman.xds)
    out: dict[str, set[str]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        out.setdefault(route.resource.canonical, set()).add(route.method.lower())
    return out


async def test_openapi_is_served(api: Api) -> None:
    reply = await api.get("/v1/openapi.json")
    assert reply.status == 200
    assert reply.body["openapi"].startswith("3.")
    assert reply.body["paths"]


async def test_every_documented_path_and_method_exists_in_the_router(api: Api) -> None:
    documented = (await api.get("/v1/openapi.json")).body["paths"]
    router = _router_paths(api)
    for path, item in documented.items():
        assert path in router, f"{path} is documented but not routed"
        assert {m for m in item if m in METHODS} == router[path], path


async def test_every_routed_path_is_documented(api: Api) -> None:
    documented = (await api.get("/v1/openapi.json")).body["paths"]
    assert set(_router_paths(api)) <= set(documented)


async def test_documented_path_parameters_match_the_router(api: Api) -> None:
    documented = (await api.get("/v1/openapi.json")).body["paths"]
    for path, item in documented.items():
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        for method, operation in item.items():
            if method in METHODS:
                declared |= {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        in_path = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        assert declared == in_path, path
