"""The lab's proxy through a real SSH server on 127.0.0.1 (asyncssh's own, standing in for the GCE host).

Behind it, a local HTTP server and a local TLS server, reached as the lab's
clients reach devstack and the API server: aiohttp with ``proxy=`` (the
Kubernetes client's way, CONNECT for https and absolute-form for http),
requests with ``proxies=`` (openstacksdk's session), and kubernetes.aio
loading a kubeconfig with ``proxy-url``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
import yaml
from aiohttp import web

from switchman.lab.cloud.ssh import SshTarget, lab_key, open_shell
from switchman.lab.cloud.tunnel import HttpProxy, ssh_opener
from switchman.testing.sshd import ShellServer
from tests.certs import Authority

pytestmark = pytest.mark.timeout(30)


async def _hello(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"path": request.path_qs, "method": request.method, "body": body.decode(),
                              "proxy_header": request.headers.get("Proxy-Connection", ""),
                              # what the Kubernetes client's VersionInfo needs
                              "major": "1", "minor": "37", "gitVersion": "v1.37.2", "gitCommit": "c",
                              "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.26",
                              "compiler": "gc", "platform": "linux/amd64"})


@asynccontextmanager
async def _site(context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        assert site._server is not None
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _proxy(tmp_path: Path) -> AsyncIterator[tuple[HttpProxy, ShellServer]]:
    key, public = lab_key(tmp_path, "demo")
    async with ShellServer(tmp_path, public + "\n") as server:
        target = SshTarget("127.0.0.1", server.port, "lab", key)
        async with open_shell(target, timeout=10, progress=lambda m: None) as shell, \
                HttpProxy(ssh_opener(shell.conn), str(target)) as proxy:
            yield proxy, server


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


def _tls(ca: Authority) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    issued = ca.issue("api-server", ips=("127.0.0.1",), server=True)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(issued.cert_file, issued.key_file)
    return server, ssl.create_default_context(cafile=str(ca.file))


async def test_http_and_https_through_the_host(tmp_path: Path, ca: Authority) -> None:
    server_tls, client_tls = _tls(ca)
    async with _proxy(tmp_path) as (proxy, sshd), _site() as http_port, _site(server_tls) as https_port, \
            aiohttp.ClientSession() as session:
        # Plain http: absolute-form to the proxy, origin-form to the server, the body passed on.
        async with session.post(f"http://127.0.0.1:{http_port}/identity/v3?x=1", data=b"token please",
                                proxy=proxy.url) as resp:
            answer = await resp.json()
        assert answer["path"] == "/identity/v3?x=1" and answer["body"] == "token please"
        assert answer["method"] == "POST" and answer["proxy_header"] == ""
        # https: CONNECT, then TLS end to end (the certificate for 127.0.0.1 verified by the client).
        async with session.get(f"https://127.0.0.1:{https_port}/version", proxy=proxy.url, ssl=client_tls) as resp:
            assert (await resp.json())["path"] == "/version"
        # The host's sshd made the connections: one direct-tcpip channel each.
        assert ("127.0.0.1", http_port) in sshd.forwards and ("127.0.0.1", https_port) in sshd.forwards

        # openstacksdk's way: a requests session with proxies (off the event loop, as the lab calls it).
        def sdk_like() -> Any:
            with requests.Session() as s:
                s.trust_env = False
                s.proxies = {"http": proxy.url, "https": proxy.url}
                return s.get(f"http://127.0.0.1:{http_port}/compute/v2.1/servers", timeout=10).json()

        assert (await asyncio.to_thread(sdk_like))["path"] == "/compute/v2.1/servers"


async def test_the_kubernetes_client_follows_a_kubeconfigs_proxy_url(tmp_path: Path, ca: Authority) -> None:
    from kubernetes.aio import client, config

    server_tls, _ = _tls(ca)
    async with _proxy(tmp_path) as (proxy, sshd), _site(server_tls) as port:
        kubeconfig = tmp_path / "demo.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "demo",
            "clusters": [{"name": "demo", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                      "certificate-authority": str(ca.file),
                                                      "proxy-url": proxy.url}}],
            "users": [{"name": "demo", "user": {"token": "t"}}],
            "contexts": [{"name": "demo", "context": {"cluster": "demo", "user": "demo"}}]}))
        conf = client.Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=conf)  # type: ignore[no-untyped-call]
        async with client.ApiClient(conf) as api:
            version = await client.VersionApi(api).get_code()
        assert version.git_version == "v1.37.2"
        assert ("127.0.0.1", port) in sshd.forwards


async def test_a_target_the_host_cannot_reach_is_a_502_saying_why(tmp_path: Path) -> None:
    async with _proxy(tmp_path) as (proxy, _), _site() as port, aiohttp.ClientSession() as session:
        pass
    async with _proxy(tmp_path / "again") as (proxy, _), aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/identity", proxy=proxy.url) as resp:
            assert resp.status == 502
            text = await resp.text()
        assert text.startswith(f"switchman lab tunnel: cannot reach 127.0.0.1:{port} through lab@127.0.0.1:")
        with pytest.raises(aiohttp.ClientHttpProxyError) as caught:
            await session.get(f"https://127.0.0.1:{port}/", proxy=proxy.url)
        assert caught.value.status == 502
        # A destination the host refuses to forward to (this stand-in forwards to 127.0.0.1 only).
        async with session.get("http://10.128.0.9/identity", proxy=proxy.url) as resp:
            assert resp.status == 502
            assert "cannot reach 10.128.0.9:80 through" in await resp.text()


async def test_the_labs_tunnel_opens_when_first_asked_and_feeds_openstacksdk_and_the_kubeconfig(
        tmp_path: Path) -> None:
    import openstack

    from switchman.lab.cloud import parse_config
    from switchman.lab.cloud.openstack_api import through
    from switchman.lab.cloud.reach import lab_tunnel, proxied_kubeconfig, proxy_url
    from switchman.lab.cloud.steps import open_context

    _, public = lab_key(tmp_path, "demo")
    async with ShellServer(tmp_path, public + "\n") as server, _site() as port:
        config = parse_config({"name": "demo", "gce": {"project": "switchman-lab", "zone": "us-central1-a",
                                                       "machineType": "n2-standard-8"}, "devstack": {},
                               "openstack": {"flavor": {}, "image": {"name": "noble", "file": "noble.img"}}})
        ctx = open_context(config, tmp_path)
        ctx.state.set_output("gce", "external_ip", "127.0.0.1")
        ctx.state.set_output("gce", "ssh_port", str(server.port))
        ctx.tunnel = tunnel = lab_tunnel(ctx)
        try:
            url = await proxy_url(ctx)
            assert url is not None and url == await proxy_url(ctx), "one proxy for the run"
            sdk = through(openstack.connect(load_yaml_config=False, load_envvars=False,
                                            auth_url=f"http://127.0.0.1:{port}/identity", username="admin",
                                            password="p", project_name="admin", user_domain_id="default",
                                            project_domain_id="default"), url)
            answer = await asyncio.to_thread(lambda: sdk.session.get(f"http://127.0.0.1:{port}/identity/v3",
                                                                     authenticated=False).json())
            assert answer["path"] == "/identity/v3" and ("127.0.0.1", port) in server.forwards
        finally:
            await tunnel.aclose()
        kubeconfig = tmp_path / "demo.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({"clusters": [{"name": "demo", "cluster": {"server": "https://x"}}]}))
        proxied = proxied_kubeconfig(kubeconfig, url)
        assert proxied.name == "demo.proxy.kubeconfig"
        assert yaml.safe_load(proxied.read_text())["clusters"][0]["cluster"]["proxy-url"] == url
