"""How the command finds the API and its token (flag > environment > config file > default), and tokens."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from switchman.app import Switchman
from switchman.client import SwitchmanClient
from tests.functional.cli.conftest import (
    ADMIN,
    CHECKOUT_FILE,
    READER,
    Cli,
    Result,
    ServerFactory,
    api_url,
    clean_environ,
    run_switchman,
)


async def marked(start_server: ServerFactory, name: str) -> Switchman:
    """A server holding one Cluster named ``name``: ``get`` tells which server answered."""
    app = await start_server()
    async with SwitchmanClient(api_url(app)) as client:
        cluster = {"kind": "Cluster", "metadata": {"name": name}, "spec": {"endpoints": []}}
        await client.apply([cluster])
    return app


def which(result: Result) -> str:
    assert result.code == 0, result
    [doc] = json.loads(result.out)
    return str(doc["metadata"]["name"])


async def test_api_precedence_flag_env_file_default(start_server: ServerFactory, home: Path) -> None:
    from_file, from_env, from_flag = [await marked(start_server, n) for n in ("file", "env", "flag")]
    config = home / ".config" / "switchman" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"api: {api_url(from_file)}\n")
    env = clean_environ(home)

    assert which(await run_switchman(("get", "-o", "json"), env)) == "file"
    env["SWITCHMAN_API"] = api_url(from_env)
    assert which(await run_switchman(("get", "-o", "json"), env)) == "env"
    # After the command, or before it.
    assert which(await run_switchman(("get", "-o", "json", "--api", api_url(from_flag)), env)) == "flag"
    assert which(await run_switchman(("--api", api_url(from_flag), "get", "-o", "json"), env)) == "flag"

    # SWITCHMAN_CONFIG names another file; XDG_CONFIG_HOME moves the default one.
    other = home / "other.yaml"
    other.write_text(f"api: {api_url(from_env)}\n")
    env = clean_environ(home) | {"SWITCHMAN_CONFIG": str(other)}
    assert which(await run_switchman(("get", "-o", "json"), env)) == "env"
    xdg = home / "xdg"
    (xdg / "switchman").mkdir(parents=True)
    (xdg / "switchman" / "config.yaml").write_text(f"api: {api_url(from_flag)}\n")
    env = clean_environ(home) | {"XDG_CONFIG_HOME": str(xdg)}
    assert which(await run_switchman(("get", "-o", "json"), env)) == "flag"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_the_default_api(home: Path) -> None:
    if _port_open(8080):
        pytest.skip("something listens on 127.0.0.1:8080, the default")
    result = await run_switchman(("status",), clean_environ(home))
    assert result.code == 6, result
    assert result.err.startswith("switchman: cannot reach the API at http://127.0.0.1:8080: ")
    assert "(the address is from the default; set --api, SWITCHMAN_API or api: in " in result.err


async def test_token_precedence_flag_env_file(secured: Switchman, home: Path) -> None:
    config = home / ".config" / "switchman" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"api: {api_url(secured)}\ntoken: {READER}\n")
    env = clean_environ(home)
    apply = ("apply", "-f", CHECKOUT_FILE)

    # The file's read token: reading works, changing is refused, and the message says why and what to do.
    assert (await run_switchman(("get",), env)).code == 0
    refused = await run_switchman(apply, env)
    assert refused.code == 5, refused
    assert refused.err.strip() == (
        "switchman: not allowed: token 'viewer' may only read; 'switchman apply' needs an admin token "
        f"(this one is from {config})"
    )
    # The environment beats the file...
    env["SWITCHMAN_TOKEN"] = "not-a-token"
    unknown = await run_switchman(apply, env)
    assert unknown.code == 5, unknown
    assert unknown.err.strip() == (
        f"switchman: the API at {api_url(secured)} refused the token from SWITCHMAN_TOKEN: the token is not known"
    )
    # ... and the flag beats the environment.
    done = await run_switchman((*apply, "--token", ADMIN), env)
    assert done.code == 0 and "revision 1" in done.out, done
    async with SwitchmanClient(api_url(secured), token=READER) as client:
        assert (await client.history())[0]["author"] == "ci"


async def test_tokens_required(secured_cli: Cli, secured: Switchman, home: Path) -> None:
    no_token = await secured_cli("get")
    assert no_token.code == 5, no_token
    config = home / ".config" / "switchman" / "config.yaml"
    assert no_token.err.strip() == (
        f"switchman: the API at {api_url(secured)} requires a token: pass --token, set SWITCHMAN_TOKEN "
        f"or put token: in {config}"
    )
    reader = {"SWITCHMAN_TOKEN": READER}
    assert (await secured_cli("status", env=reader)).code == 0
    assert (await secured_cli("history", env=reader)).code == 0
    for args in (("apply", "-f", CHECKOUT_FILE), ("delete", "service", "x"), ("rollback", "1")):
        refused = await secured_cli(*args, env=reader)
        assert refused.code == 5 and "token 'viewer' may only read" in refused.err, refused
        assert f"'switchman {args[0]}' needs an admin token" in refused.err
    # The author is the token's name; --author (or SWITCHMAN_AUTHOR) says whom the change is for.
    admin = {"SWITCHMAN_TOKEN": ADMIN}
    assert (await secured_cli("apply", "-f", CHECKOUT_FILE, "--author", "alice", env=admin)).code == 0
    history = await secured_cli("history", "-o", "json", env=admin)
    assert (json.loads(history.out)[0]["author"], json.loads(history.out)[0]["on_behalf_of"]) == ("ci", "alice")
    table = (await secured_cli("history", env=admin)).out.splitlines()
    assert table[1].split()[3:5] == ["ci", "alice"]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("api: [1, 2\n", "is not YAML"),
        ("- api\n", "must be a mapping with the keys api, token, ca_cert, client_cert and client_key"),
        ("api: http://x\nserver: y\n",
         "server: is not a setting (settings: api, token, ca_cert, client_cert, client_key)"),
        ("token: 42\n", "token: must be a string, not int"),
        ("api: ftp://example.com\n", "is not an http:// or https:// URL"),
    ],
    ids=["yaml", "not-a-mapping", "unknown-key", "not-a-string", "not-http"],
)
async def test_a_bad_config_file_exits_2_naming_it(home: Path, content: str, error: str) -> None:
    config = home / "config.yaml"
    config.write_text(content)
    result = await run_switchman(("get",), clean_environ(home) | {"SWITCHMAN_CONFIG": str(config)})
    assert result.code == 2, result
    [line] = result.err.splitlines()
    assert line.startswith("switchman: ") and str(config) in line and error in line


async def test_a_named_config_file_must_exist_and_urls_are_checked(home: Path) -> None:
    missing = home / "nope.yaml"
    result = await run_switchman(("get",), clean_environ(home) | {"SWITCHMAN_CONFIG": str(missing)})
    assert (result.code, result.err.strip()) == (2, f"switchman: {missing}: does not exist (named by SWITCHMAN_CONFIG)")
    result = await run_switchman(("get", "--api", "http://host:port"), clean_environ(home))
    assert (result.code, result.err.strip()) == (
        2, "switchman: api (from --api): 'http://host:port' is not an http:// or https:// URL"
    )
    result = await run_switchman(("get",), clean_environ(home) | {"SWITCHMAN_TIMEOUT": "soon"})
    assert (result.code, result.err.strip()) == (2, "switchman: SWITCHMAN_TIMEOUT: 'soon' is not a number of seconds")
