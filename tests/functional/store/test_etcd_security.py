"""An etcd store over TLS with a client certificate, and with etcd's user/password authentication: against a
real etcd of the test's own (certificates made here), through ``serve``'s settings and its command line.

What an operator checks: two replicas on a TLS etcd apply, keep the history and follow each other; a wrong
CA, a missing client certificate, a wrong password and a user without permission on the prefix each stop
``switchman serve`` at start with one line that names the option to fix; a user limited to its prefix works,
also after etcd restarts (its tokens are forgotten then).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.app import ServeSettings, Switchman
from switchman.cli.main import main
from switchman.store import EtcdAuth, EtcdTls
from tests.certs import Authority
from tests.e2e.helpers import checkout_documents, history_numbers, until
from tests.e2e.serve_process import Serve
from tests.etcd_process import EtcdCerts, enable_auth, free_port, needs_etcd_binary, private_etcd, until_healthy

USER, PASSWORD = "switchman", "s3cret-for-the-test"


@dataclass
class TlsEtcd:
    port: int
    peer_port: int
    certs: EtcdCerts
    data: Path
    running: contextlib.ExitStack

    async def start(self) -> None:
        proc = self.running.enter_context(private_etcd(self.data, self.port, self.peer_port, certs=self.certs))
        self.running.callback(proc.kill)
        await until_healthy(self.port, self.certs)

    async def restart(self) -> None:
        """Kill etcd (SIGKILL) and start it again on its data."""
        self.running.close()
        await self.start()

    def url(self, prefix: str) -> str:
        return f"etcd://127.0.0.1:{self.port}{prefix}"

    def flags(self, *, ca: Path | None = None, client_cert: bool = True) -> list[str]:
        flags = ["--etcd-ca", str(ca or self.certs.ca.file)]
        if client_cert:
            flags += ["--etcd-cert", str(self.certs.client.cert_file), "--etcd-key", str(self.certs.client.key_file)]
        return flags


@pytest.fixture
async def tls_etcd(tmp_path: Path) -> AsyncIterator[TlsEtcd]:
    """etcd serving TLS only, to clients that show a certificate its CA signed."""
    etcd = TlsEtcd(free_port(), free_port(), EtcdCerts.make(tmp_path), tmp_path / "etcd", contextlib.ExitStack())
    try:
        await etcd.start()
        yield etcd
    finally:
        etcd.running.close()


@contextlib.asynccontextmanager
async def replicas(settings: ServeSettings, count: int = 2) -> AsyncIterator[list[Switchman]]:
    apps = [Switchman(settings) for _ in range(count)]
    try:
        for app in apps:
            await app.start()
        yield apps
    finally:
        for app in apps:
            await app.stop(0)


async def apply(app: Switchman, weights: dict[str, int]) -> int:
    url = f"http://127.0.0.1:{app.api_port}/v1/apply"
    async with aiohttp.ClientSession() as s, s.post(url, json={"documents": checkout_documents(1, 2, weights)}) as r:
        body: dict[str, Any] = await r.json()
        assert r.status == 200, body
        return int(body["revision"])


async def serves(app: Switchman, revision: int) -> None:
    async def check() -> bool:
        return app.controller.served_revision == revision and app.controller.health().ready

    await until(check, 10, f"{app.store!r} serves revision {revision} and is ready")


async def serve_refused(store: str, flags: Sequence[str], env: dict[str, str] | None = None) -> str:
    """Run ``switchman serve`` and expect it to stop at start with exit status 1; its stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchman", "serve", "--store", store, "--xds-address", "127.0.0.1:0",
        "--api-address", "127.0.0.1:0", *flags,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "GRPC_VERBOSITY": "NONE", **(env or {})},
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = err.decode()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


@needs_etcd_binary
async def test_over_tls_with_a_client_certificate_replicas_apply_keep_history_and_follow_each_other(
    tls_etcd: TlsEtcd,
) -> None:
    settings = ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0",
                             store=tls_etcd.url("/switchman-tls"), etcd_tls=tls_etcd.certs.client_tls())
    async with replicas(settings) as (a, b):
        one = await apply(a, {"v1": 100})
        two = await apply(b, {"v1": 50, "v2": 50})
        await serves(a, two)  # b's commit, through a's watch over TLS
        three = await apply(a, {"v2": 100})
        await serves(b, three)
        assert await history_numbers(b.api_port) == [three, two, one]
        assert "tls" in repr(a.store)


@needs_etcd_binary
async def test_a_wrong_ca_a_missing_client_certificate_or_plaintext_stop_serve_naming_the_option(
    tls_etcd: TlsEtcd, tmp_path: Path
) -> None:
    store = tls_etcd.url("/switchman-tls")
    other = Authority(tmp_path, "not etcd's CA")
    wrong_ca = await serve_refused(store, tls_etcd.flags(ca=other.file))
    assert "--etcd-ca" in wrong_ca and "not signed by the CA" in wrong_ca and str(other.file) in wrong_ca, wrong_ca
    no_cert = await serve_refused(store, tls_etcd.flags(client_cert=False))
    assert "wants a client certificate (--etcd-cert, --etcd-key)" in no_cert, no_cert
    plaintext = await serve_refused(store, [])
    assert "does it serve TLS on this port (then give --etcd-ca)" in plaintext, plaintext
    for line in (wrong_ca, no_cert, plaintext):
        assert line.startswith(f"switchman: etcd at 127.0.0.1:{tls_etcd.port}: "), line


@needs_etcd_binary
async def test_a_user_limited_to_its_prefix_works_across_an_etcd_restart_and_a_bad_password_is_refused(
    tls_etcd: TlsEtcd, tmp_path: Path
) -> None:
    prefix = f"/switchman-auth-{uuid.uuid4().hex[:8]}"
    await enable_auth(tls_etcd.port, tls_etcd.certs, USER, PASSWORD, f"{prefix}/")
    password_file = tmp_path / "etcd-password"
    password_file.write_text(PASSWORD + "\n")
    settings = ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=tls_etcd.url(prefix),
                             etcd_tls=tls_etcd.certs.client_tls(), etcd_auth=EtcdAuth(USER, PASSWORD),
                             history_keep=2)  # prunes and compacts, as the limited user
    async with replicas(settings) as (a, b):
        one = await apply(a, {"v1": 100})
        await serves(b, one)
        two = await apply(b, {"v2": 100})
        await serves(a, two)
        # etcd restarts: every token it gave is forgotten; the replicas authenticate again by themselves
        await tls_etcd.restart()
        three = await until(lambda: _apply_or_none(a, {"v1": 10, "v2": 90}), 10, "a change after the restart")
        await serves(b, three)
        assert (await history_numbers(a.api_port))[:2] == [three, two]

    flags = tls_etcd.flags()
    ok_env = {"SWITCHMAN_ETCD_PASSWORD": PASSWORD}
    bad = await serve_refused(tls_etcd.url(prefix), [*flags, "--etcd-user", USER],
                              {"SWITCHMAN_ETCD_PASSWORD": "not-the-password"})
    assert f"etcd refused user '{USER}': wrong user or password (--etcd-user" in bad, bad
    elsewhere = await serve_refused(tls_etcd.url("/someone-else"), [*flags, "--etcd-user", USER], ok_env)
    assert f"user '{USER}' may not do this: its role needs readwrite on the store's key prefix" in elsewhere
    anonymous = await serve_refused(tls_etcd.url(prefix), flags)
    assert "etcd has authentication enabled: give --etcd-user and a password" in anonymous, anonymous
    # the password from a file: serve starts and serves the head
    serve = Serve(tls_etcd.url(prefix), transport="h2",
                  extra=[*flags, "--etcd-user", USER, "--etcd-password-file", str(password_file)])
    try:
        await serve.start()
        url = f"http://127.0.0.1:{serve.api_port}/v1/status"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert (await resp.json())["revision"] == three
    finally:
        await serve.ensure_stopped()


async def _apply_or_none(app: Switchman, weights: dict[str, int]) -> int | None:
    url = f"http://127.0.0.1:{app.api_port}/v1/apply"
    async with aiohttp.ClientSession() as s, s.post(url, json={"documents": checkout_documents(1, 2, weights)}) as r:
        return int((await r.json())["revision"]) if r.status == 200 else None


# -- the options themselves: refused before anything starts (exit 2, the option named) -----------------


@pytest.mark.parametrize(
    ("flags", "env", "named"),
    [
        (["--etcd-cert", "c.pem", "--etcd-key", "k.pem"], {}, "--etcd-cert: TLS to etcd needs --etcd-ca"),
        (["--etcd-ca", "/nonexistent/ca.pem"], {}, "--etcd-ca: cannot read /nonexistent/ca.pem"),
        (["--etcd-ca", "{ca}", "--etcd-cert", "{cert}"], {}, "--etcd-key: --etcd-cert needs it"),
        (["--etcd-ca", "{cert}", "--etcd-cert", "{cert}", "--etcd-key", "{other_key}"], {},
         "--etcd-key: {other_key} is not the PEM key of {cert}"),
        (["--etcd-ca", "{key}"], {}, "--etcd-ca: {key} holds no PEM CA certificate"),
        (["--etcd-user", "u"], {}, "--etcd-user: needs a password: set SWITCHMAN_ETCD_PASSWORD"),
        ([], {"SWITCHMAN_ETCD_PASSWORD": "p"},
         "--etcd-user: a password is given (SWITCHMAN_ETCD_PASSWORD) but no user"),
        (["--etcd-user", "u", "--etcd-password-file", "{empty}"], {}, "--etcd-password-file: {empty} is empty"),
        (["--etcd-user", "u", "--etcd-password-file", "{empty}"], {"SWITCHMAN_ETCD_PASSWORD": "p"},
         "--etcd-password-file: SWITCHMAN_ETCD_PASSWORD is set too"),
        (["--store", "local.db", "--etcd-ca", "{ca}"], {}, "--etcd-ca: the store (local.db) is not etcd"),
    ],
)
def test_etcd_options_that_cannot_work_stop_serve_naming_the_option(
    flags: list[str], env: dict[str, str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca = Authority(tmp_path, "some CA")
    issued, other = ca.issue("client"), ca.issue("another")
    (tmp_path / "empty").write_text("\n")
    files = {"ca": str(ca.file), "cert": str(issued.cert_file), "key": str(issued.key_file),
             "other_key": str(other.key_file), "empty": str(tmp_path / "empty")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = [] if "--store" in flags else ["--store", "etcd://127.0.0.1:1/x"]
    assert main(["serve", *store, *(f.format(**files) for f in flags)]) == 2
    assert capsys.readouterr().err.startswith(f"switchman: {named.format(**files)}")


def test_the_password_is_no_command_line_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--store", "etcd://127.0.0.1:1/x", "--etcd-user", "u", "--etcd-password", "p"])
    assert "unrecognized arguments: --etcd-password p" in capsys.readouterr().err


def test_a_tls_setting_is_kept_out_of_reprs(tmp_path: Path) -> None:
    ca = Authority(tmp_path, "some CA")
    issued = ca.issue("client")
    tls = EtcdTls.from_files(str(ca.file), str(issued.cert_file), str(issued.key_file))
    auth = EtcdAuth(USER, PASSWORD)
    assert PASSWORD not in repr(auth) and "PRIVATE KEY" not in repr(tls)
