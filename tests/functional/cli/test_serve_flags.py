"""``switchman serve`` refuses flags it cannot run with before it binds anything: exit 2, naming the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functional.cli.conftest import clean_environ, run_switchman


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--admin-tokens", "ops="), "--admin-tokens: token 'ops' has an empty secret"),
        (("--admin-tokens", "ops= \u00a0 "), "--admin-tokens: token 'ops' has an empty secret"),
        (("--admin-tokens", "ops=a,ops=b"), "--admin-tokens: token 'ops' is given twice"),
        (("--admin-tokens", "ops=s3cret", "--read-tokens", "ops=r3ad"), "--read-tokens: token 'ops' is also an admin"),
        (("--admin-tokens", "ci=s3cret", "--read-tokens", "viewer=s3cret"),
         "--read-tokens: tokens 'ci' and 'viewer' have the same"),
        (("--admin-tokens", "=s3cret"), "--admin-tokens: token 1 has no name"),
        (("--history-keep", "-1"), "--history-keep: '-1' must be 0 or more"),
        (("--history-keep", "many"), "--history-keep: 'many' is not a whole number"),
        (("--max-body-bytes", "10"), "--max-body-bytes: '10' must be 1024 or more"),
        (("--xds-tls-cert", "/nonexistent/xds.crt", "--xds-tls-key", "/nonexistent/xds.key"),
         "--xds-tls-cert: cannot read /nonexistent/xds.crt"),
        (("--xds-tls-key", "/nonexistent/xds.key"), "--xds-tls-key: given without --xds-tls-cert"),
        (("--xds-client-ca", "/nonexistent/ca.pem"), "--xds-client-ca: mutual TLS needs --xds-tls-cert"),
        (("--node-identities", "spiffe://lab/front"), "--node-identities: cannot read spiffe://lab/front"),
        (("--node-identities", "spiffe://lab/*x=front"), "--node-identities: 'spiffe://lab/*x': '*' may only end"),
        (("--node-identities", "spiffe://lab/front=front"), "--node-identities: needs --xds-client-ca: node "
                                                              "identities come from client certificates"),
        (("--tls-key", "/nonexistent/both.key"), "--tls-key: given without --tls-cert"),
        (("--tls-cert", "/nonexistent/both.crt"), "--tls-key: --tls-cert needs its key"),
        (("--tls-cert", "/nonexistent/both.crt", "--tls-key", "/nonexistent/both.key"),
         "--tls-cert: cannot read /nonexistent/both.crt"),
        (("--api-tls-cert", "/nonexistent/api.crt", "--api-tls-key", "/nonexistent/api.key"),
         "--api-tls-cert: cannot read /nonexistent/api.crt"),
        (("--api-tls-key", "/nonexistent/api.key"), "--api-tls-key: given without --api-tls-cert"),
        (("--api-client-ca", "/nonexistent/ca.pem"), "--api-client-ca: mutual TLS needs --api-tls-cert and "
                                                     "--api-tls-key (or --tls-cert and --tls-key)"),
        (("--read-identities", "spiffe://lab/ops/*"),
         "--read-identities: certificate identities may read only where tokens are required"),
        (("--admin-tokens", "ops=s3cret", "--read-identities", "spiffe://*/ops"),
         "--read-identities: 'spiffe://*/ops': '*' may only end"),
        (("--admin-tokens", "ops=s3cret", "--read-identities", "spiffe://lab/ops=front"),
         "--read-identities: 'spiffe://lab/ops=front' is not an identity pattern"),
    ],
)
async def test_serve_refuses_flags_it_cannot_use(tmp_path: Path, flags: tuple[str, ...], says: str) -> None:
    environ = clean_environ(tmp_path)
    result = await run_switchman(
        ("serve", "--store", str(tmp_path / "s.db"), "--api-address", "127.0.0.1:0", "--xds-address", "127.0.0.1:0",
         *flags),
        environ,
    )
    assert result.code == 2, result
    assert result.err.startswith(f"switchman: {says}"), result
    assert "s3cret" not in result.err and "r3ad" not in result.err  # never the secret
    assert not (tmp_path / "s.db").exists()  # nothing was started


async def test_the_environment_sets_them_too(tmp_path: Path) -> None:
    environ = {**clean_environ(tmp_path), "SWITCHMAN_ADMIN_TOKENS": "ops=", "SWITCHMAN_HISTORY_KEEP": "5"}
    result = await run_switchman(("serve", "--store", str(tmp_path / "s.db")), environ)
    assert (result.code, result.err.strip()) == (2, "switchman: --admin-tokens: token 'ops' has an empty secret")


@pytest.mark.parametrize(
    ("variable", "says"),
    [
        ("SWITCHMAN_TLS_CERT", "--tls-key: --tls-cert needs its key"),
        ("SWITCHMAN_TLS_KEY", "--tls-key: given without --tls-cert"),
        ("SWITCHMAN_API_TLS_KEY", "--api-tls-key: given without --api-tls-cert"),
        ("SWITCHMAN_API_CLIENT_CA", "--api-client-ca: mutual TLS needs --api-tls-cert"),
        ("SWITCHMAN_READ_IDENTITIES", "--read-identities: certificate identities may read only where tokens"),
    ],
)
async def test_the_tls_flags_have_their_variables(tmp_path: Path, variable: str, says: str) -> None:
    environ = {**clean_environ(tmp_path), variable: "/nonexistent/file.pem"}
    result = await run_switchman(("serve", "--store", str(tmp_path / "s.db")), environ)
    assert (result.code, result.err.startswith(f"switchman: {says}")) == (2, True), result
