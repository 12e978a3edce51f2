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
from tests.certs import Authority, replace_file
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


async def test_the_command_presents_a_client_certificate_to_an_api_that_asks(
    start: Start, ca: Authority, tmp_path: Path,
) -> None:
    clients = Authority(ca.directory, "API clients")
    app = await start(client_ca=clients, tokens=Tokens(admin={"ci": ADMIN}, read_identities=("spiffe://lab/ops/*",)))
    ops = clients.issue("ops", uris=(OPS,))
    environ = clean_environ(tmp_path) | {"SWITCHMAN_API": https(app), "SWITCHMAN_CA_CERT": str(ca.file)}

    flagged = await run_switchman(("history", "--client-cert", str(ops.cert_file), "--client-key",
                                   str(ops.key_file)), environ)
    assert (flagged.code, flagged.out.strip()) == (0, "no revisions yet"), flagged  # the certificate may read
    from_env = await run_switchman(("--token", ADMIN, "apply", "-f", str(EXAMPLES / "checkout.yaml")), environ | {
        "SWITCHMAN_CLIENT_CERT": str(ops.cert_file), "SWITCHMAN_CLIENT_KEY": str(ops.key_file)})
    assert from_env.code == 0, from_env  # an admin token over mutual TLS
    config = tmp_path / "config.yaml"
    config.write_text(f"client_cert: {ops.cert_file}\nclient_key: {ops.key_file}\n")
    from_file = await run_switchman(("history",), environ | {"SWITCHMAN_CONFIG": str(config)})
    assert from_file.code == 0 and "apply" in from_file.out, from_file  # the revision applied above

    without = await run_switchman(("history",), environ)
    assert without.code == 6, without
    assert "does the API ask for a client certificate" in without.err and "--client-cert" in without.err, without
    stranger = Authority(ca.directory, "another CA").issue("stranger", uris=(OPS,))
    untrusted = await run_switchman(("history", "--client-cert", str(stranger.cert_file), "--client-key",
                                     str(stranger.key_file)), environ)
    assert untrusted.code == 6, untrusted
    assert f"does the API trust the client certificate {stranger.cert_file} (from --client-cert)" in untrusted.err

    half = await run_switchman(("history", "--client-cert", str(ops.cert_file)), environ)
    assert half.code == 2, half
    assert half.err.startswith("switchman: client_key (--client-key): client_cert (from --client-cert) needs it"), half
    wrong_key = await run_switchman(("history", "--client-cert", str(ops.cert_file), "--client-key",
                                     str(stranger.key_file)), environ)
    assert wrong_key.code == 2, wrong_key
    assert wrong_key.err.startswith("switchman: client_cert (from --client-cert): "), wrong_key
    assert "are not a PEM certificate and its key" in wrong_key.err, wrong_key


async def test_a_rotated_client_ca_on_the_api_refuses_the_old_ones_clients(start: Start, ca: Authority) -> None:
    old_clients = Authority(ca.directory, "API clients")
    app = await start(client_ca=old_clients)
    old, new_clients = old_clients.issue("ops-old", uris=(OPS,)), Authority(ca.directory, "API clients 2")
    new = new_clients.issue("ops-new", uris=(OPS,))
    async with SwitchmanClient(https(app), ca_cert=str(ca.file),
                               client_cert=(str(old.cert_file), str(old.key_file))) as before:
        assert await before.history() == []
        replace_file(old_clients.file, new_clients.pem)
        assert app.api_certificates is not None and await app.api_certificates.check()
        assert await before.history() == []  # its connection, made before, goes on
        async with SwitchmanClient(https(app), ca_cert=str(ca.file),
                                   client_cert=(str(old.cert_file), str(old.key_file))) as refused:
            with pytest.raises(Unreachable):
                await refused.history()
        async with SwitchmanClient(https(app), ca_cert=str(ca.file),
                                   client_cert=(str(new.cert_file), str(new.key_file))) as accepted:
            assert await accepted.history() == []
