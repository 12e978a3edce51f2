"""The REST API over HTTPS (and mutual TLS), reached by the Python client and the ``switchman`` command with a
CA made in the test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml

from switchman.api import Tokens
from switchman.app import Switchman
from switchman.client import Forbidden, SwitchmanClient, Unreachable, Untrusted
from switchman.errors import ConfigError
from switchman.tls import API_FLAGS, TlsSettings
from tests.certs import Authority
from tests.functional.cli.conftest import ADMIN, EXAMPLES, clean_environ, run_switchman
from tests.functional.conftest import Switchmen

Start = Callable[..., Awaitable[Switchman]]
OPS = "spiffe://lab/ops/alice"


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


@pytest.fixture
def start(ca: Authority, switchmen: Switchmen) -> Start:
    """``await start(client_ca=..., tokens=...)``: a Switchman whose API serves HTTPS with a certificate ``ca``
    signed (mutual TLS with ``client_ca``)."""
    server = ca.issue("api-server", ips=("127.0.0.1",), server=True)

    async def make(client_ca: Authority | None = None, tokens: Tokens | None = None) -> Switchman:
        tls = TlsSettings(str(server.cert_file), str(server.key_file), str(client_ca.file) if client_ca else None,
                          require_client_cert=client_ca is not None, flags=API_FLAGS)
        return await switchmen(api_tls=tls, tokens=tokens or Tokens())

    return make


def https(app: Switchman) -> str:
    return f"https://127.0.0.1:{app.api_port}"


def checkout() -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / "checkout.yaml").read_text()) if d]


async def test_the_client_trusts_the_api_with_its_ca_and_not_without(start: Start, ca: Authority) -> None:
    app = await start()
    async with SwitchmanClient(https(app), ca_cert=str(ca.file)) as client:
        assert (await client.apply(checkout())).revision == 1
        assert [e["number"] for e in await client.history()] == [1]
    async with SwitchmanClient(https(app)) as client:
        with pytest.raises(Untrusted, match="presented a certificate this client does not trust"):
            await client.history()
    with pytest.raises(ConfigError, match=r"ca_cert: cannot read /nonexistent/ca\.pem"):
        SwitchmanClient(https(app), ca_cert="/nonexistent/ca.pem")


async def test_the_command_takes_the_ca_from_its_flag_or_the_environment(
    start: Start, ca: Authority, tmp_path: Path,
) -> None:
    app = await start()
    environ = clean_environ(tmp_path) | {"SWITCHMAN_API": https(app)}
    flagged = await run_switchman(("--ca-cert", str(ca.file), "history"), environ)
    assert flagged.code == 0, flagged
    from_env = await run_switchman(("history",), environ | {"SWITCHMAN_CA_CERT": str(ca.file)})
    assert from_env.code == 0, from_env
    untrusted = await run_switchman(("history",), environ)
    assert untrusted.code == 6, untrusted
    assert "does not trust" in untrusted.err and "--ca-cert" in untrusted.err, untrusted
    missing = await run_switchman(("history", "--ca-cert", str(tmp_path / "none.pem")), environ)
    assert missing.code == 2, missing
    assert missing.err.startswith("switchman: ca_cert (from --ca-cert): cannot read"), missing


async def test_mutual_tls_on_the_api_and_a_certificate_that_may_read(start: Start, ca: Authority) -> None:
    clients = Authority(ca.directory, "API clients")
    tokens = Tokens(admin={"ci": ADMIN}, read_identities=("spiffe://lab/ops/*",))
    app = await start(client_ca=clients, tokens=tokens)
    ops = clients.issue("ops", uris=(OPS,))
    robot = clients.issue("robot", uris=("spiffe://lab/ci",))
    async with SwitchmanClient(https(app), ca_cert=str(ca.file), client_cert=(str(ops.cert_file),
                                                                              str(ops.key_file))) as client:
        assert await client.history() == []  # no token: the certificate may read
        with pytest.raises(Forbidden, match=f"certificate identity '{OPS}' may only read"):
            await client.apply(checkout())
    async with SwitchmanClient(https(app), ADMIN, ca_cert=str(ca.file),
                               client_cert=(str(robot.cert_file), str(robot.key_file))) as client:
        assert (await client.apply(checkout())).revision == 1  # an admin token over mutual TLS
    async with SwitchmanClient(https(app), ADMIN, ca_cert=str(ca.file)) as client:
        with pytest.raises(Unreachable):  # no client certificate: the handshake fails
            await client.history()
