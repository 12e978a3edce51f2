"""Every command that talks to the API, run as ``python -m switchman`` against a real Switchman.

Exit statuses (switchman/cli/main.py): 0 done; 1 ``diff`` found differences;
2 bad input (an option, a file, a document the API refused); 5 the API
refused (token, not found); 6 the API could not be reached.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchman.app import Switchman
from switchman.client import SwitchmanClient
from switchman.xds import resources as rt
from tests.functional.ads import AdsClient
from tests.functional.cli.conftest import CHECKOUT_FILE, EXAMPLES, Cli, api_url, free_port
from tests.unit.model.test_loader import bomb

CHECKOUT = CHECKOUT_FILE


def checkout() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / "checkout.yaml").read_text()) if d]


def write_yaml(path: Path, docs: list[dict[str, Any]]) -> str:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


async def applied(server: Switchman, docs: list[dict[str, Any]] | None = None, message: str = "") -> None:
    async with SwitchmanClient(api_url(server)) as client:
        await client.apply(docs or checkout(), message=message)


# -- apply -------------------------------------------------------------------------------------------------


async def test_apply_dry_run_then_apply_then_unchanged(cli: Cli, server: Switchman) -> None:
    dry = await cli("apply", "-f", CHECKOUT, "--dry-run")
    assert dry.code == 0, dry
    assert dry.out.splitlines()[:3] == [
        "service/checkout created (dry run)",
        "routes/ingress-routes created (dry run)",
        "listener/ingress created (dry run)",
    ]
    assert "Envoy resources that would change: 6 added, 0 changed, 0 removed" in dry.out
    assert "  + cds/checkout-v1" in dry.out.splitlines()
    assert dry.out.rstrip().endswith("dry run: nothing was stored")
    async with SwitchmanClient(api_url(server)) as client:
        assert await client.list() == []

    first = await cli("apply", "-f", CHECKOUT, "-m", "checkout, blue and green")
    assert first.code == 0, first
    assert first.out.splitlines()[:3] == [
        "service/checkout created", "routes/ingress-routes created", "listener/ingress created",
    ]
    assert "Envoy resources: 6 added, 0 changed, 0 removed" in first.out
    assert first.out.rstrip().endswith("revision 1")
    assert first.err == ""

    again = await cli("apply", "--filename", CHECKOUT)
    assert again.code == 0, again
    assert "service/checkout unchanged" in again.out and "Envoy resources: no change" in again.out
    assert again.out.rstrip().endswith("no change: nothing was stored")

    async with SwitchmanClient(api_url(server)) as client:
        [entry] = await client.history()
    assert entry["message"] == "checkout, blue and green"


async def test_apply_a_folder_and_stdin(cli: Cli, server: Switchman, tmp_path: Path) -> None:
    service, routes, listener = checkout()
    folder = tmp_path / "config"
    folder.mkdir()
    # Sorted by name: the JSON file (a list) first, then the YAML; other files are ignored.
    (folder / "a-service.json").write_text(json.dumps([service]))
    write_yaml(folder / "b-routes.yml", [routes])
    (folder / "notes.txt").write_text("not a document")
    result = await cli("apply", "-f", str(folder), "-f", "-", stdin=yaml.safe_dump(listener))
    assert result.code == 0, result
    assert result.out.splitlines()[:3] == [
        "service/checkout created", "routes/ingress-routes created", "listener/ingress created",
    ]
    async with SwitchmanClient(api_url(server)) as client:
        [entry] = await client.history()
    assert entry["message"] == f"apply -f {folder} -f -"  # the default message: the command


async def test_a_bad_document_names_the_document_field_and_file(cli: Cli, server: Switchman, tmp_path: Path) -> None:
    docs = checkout()
    docs[0]["spec"]["weights"]["v3"] = 5
    path = write_yaml(tmp_path / "bad.yaml", docs)
    result = await cli("apply", "-f", path)
    assert result.code == 2, result
    assert result.out == ""
    assert result.err.strip() == (
        "switchman: service/checkout: spec.weights.v3: there is no version 'v3' (versions: v1, v2)"
        f" (in {path}[0])"
    )

    # Before its name is known, a document is named by its file and place in it.
    docs = checkout()
    del docs[1]["kind"]
    path = write_yaml(tmp_path / "no-kind.yaml", docs)
    result = await cli("apply", "-f", path)
    assert result.code == 2, result
    assert result.err.strip() == f"switchman: {path}[1]: kind: is required"

    # A problem between documents: the one with the dangling reference is named.
    result = await cli("apply", "-f", "-", stdin=yaml.safe_dump_all(checkout()[1:]))
    assert result.code == 2, result
    assert result.err.startswith("switchman: routes/ingress-routes: spec.virtualHosts[0].routes[1]: names service")
    assert "(in stdin[0])" in result.err

    async with SwitchmanClient(api_url(server)) as client:
        assert await client.list() == []  # all or nothing


async def test_apply_refuses_bad_files(cli: Cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [unclosed\n")
    result = await cli("apply", "-f", str(broken))
    assert result.code == 2, result
    # libyaml's words when PyYAML has it (the CLI reads YAML through it), else PyYAML's own
    problems = ("did not find expected ',' or ']' (line 2, column 1)",
                "expected ',' or ']', but got '<stream end>' (line 2, column 1)")
    assert result.err in {f"switchman: {broken}: is not YAML: {problem}\n" for problem in problems}, result

    bombed = tmp_path / "bomb.yaml"
    bombed.write_text(bomb(7))
    result = await cli("apply", "-f", str(bombed))
    assert result.code == 2, result
    assert result.err.startswith(f"switchman: {bombed}: is not YAML: the alias *a2 brings aliases to"), result
    assert "(line 6, column" in result.err

    result = await cli("apply", "-f", str(tmp_path / "missing.yaml"))
    assert (result.code, result.err.strip()) == (2, f"switchman: {tmp_path / 'missing.yaml'}: does not exist")

    result = await cli("apply", "-f", "-", stdin="- just\n- a list\n")
    assert (result.code, result.err.strip()) == (
        2, "switchman: stdin[0]: is not a mapping (a document has kind, metadata and spec)"
    )

    result = await cli("apply", "-f", "-", stdin="kind: Service\nmetadata: {name: x}\nspec: !!binary aGVsbG8=\n")
    assert result.code == 2 and result.err.startswith("switchman: stdin[0]: cannot be sent as JSON: "), result

    result = await cli("apply")
    assert (result.code, result.err.strip()) == (2, "switchman: -f: is required: a file, a folder or - for stdin")

    empty = tmp_path / "empty"
    empty.mkdir()
    result = await cli("apply", "-f", str(empty))
    assert result.code == 2 and "no *.yaml, *.yml or *.json files" in result.err, result

    # SWITCHMAN_FILE stands in for -f.
    result = await cli("apply", "--dry-run", env={"SWITCHMAN_FILE": CHECKOUT})
    assert result.code == 0 and "service/checkout created (dry run)" in result.out, result


# -- get ---------------------------------------------------------------------------------------------------


async def test_get(cli: Cli, server: Switchman) -> None:
    await applied(server)
    everything = await cli("get")
    assert everything.code == 0, everything
    assert everything.out.splitlines() == [
        "KIND      NAME            SUMMARY",
        "Listener  ingress         127.0.0.1:10000 -> routes ingress-routes",
        "Routes    ingress-routes  1 virtual host, 3 routes",
        "Service   checkout        versions v1, v2; weights v1=100 v2=0",
    ]
    services = await cli("get", "services")
    assert services.out.splitlines()[1:] == ["Service  checkout  versions v1, v2; weights v1=100 v2=0"]

    one = await cli("get", "Service", "checkout", "-o", "yaml")
    assert one.code == 0, one
    assert yaml.safe_load(one.out) == checkout()[0]

    as_json = await cli("get", "routes", "-o", "json")
    assert json.loads(as_json.out) == [checkout()[1]]

    # YAML of several documents is a stream that applies again, unchanged.
    dump = await cli("get", "-o", "yaml")
    assert dump.out.count("---") == 2
    again = await cli("apply", "-f", "-", stdin=dump.out)
    assert again.code == 0 and "no change: nothing was stored" in again.out, again

    from_env = await cli("get", "listener", "ingress", env={"SWITCHMAN_OUTPUT": "json"})
    assert json.loads(from_env.out)["spec"]["port"] == 10000

    empty = await cli("get", "cluster")
    assert (empty.code, empty.out, empty.err.strip()) == (0, "", "no Cluster documents")


async def test_get_errors(cli: Cli) -> None:
    missing = await cli("get", "service", "nope")
    assert (missing.code, missing.err.strip()) == (5, "switchman: service/nope does not exist")
    unknown = await cli("get", "gateway")
    assert unknown.code == 2
    assert unknown.err.strip() == (
        "switchman: KIND: 'gateway' is not a kind (kinds: Listener, Routes, Cluster, Service, Rollout, EnvoyResource)"
    )
    bad_output = await cli("get", "-o", "xml")
    assert bad_output.code == 2 and "'xml' is not one of table, yaml, json" in bad_output.err
    bad_env = await cli("get", env={"SWITCHMAN_OUTPUT": "xml"})
    assert bad_env.code == 2 and "'xml' is not one of table, yaml, json" in bad_env.err


# -- delete ------------------------------------------------------------------------------------------------


async def test_delete(cli: Cli, server: Switchman) -> None:
    await applied(server)
    referenced = await cli("delete", "service", "checkout")
    assert referenced.code == 2, referenced
    assert referenced.err.strip() == (
        "switchman: service/checkout cannot be deleted: routes/ingress-routes: spec.virtualHosts[0].routes[1]: "
        "names service 'checkout', which does not exist"
    )

    dry = await cli("delete", "Listener", "ingress", "--dry-run")
    assert dry.code == 0, dry
    assert dry.out.splitlines() == [
        "listener/ingress deleted (dry run)",
        "Envoy resources that would change: 0 added, 0 changed, 1 removed",
        "  - lds/ingress",
        "dry run: nothing was stored",
    ]

    done = await cli("delete", "listeners", "ingress")
    assert done.code == 0, done
    assert done.out.splitlines() == [
        "listener/ingress deleted", "Envoy resources: 0 added, 0 changed, 1 removed", "  - lds/ingress", "revision 2",
    ]
    gone = await cli("delete", "listener", "ingress")
    assert (gone.code, gone.err.strip()) == (5, "switchman: listener/ingress does not exist")


# -- diff --------------------------------------------------------------------------------------------------


async def test_diff(cli: Cli, server: Switchman, tmp_path: Path) -> None:
    new = await cli("diff", "-f", CHECKOUT)
    assert new.code == 1, new
    assert "service/checkout created" in new.out and "  + lds/ingress" in new.out

    await applied(server)
    same = await cli("diff", "-f", CHECKOUT)
    assert same.code == 0, same
    assert same.out.splitlines() == [
        "service/checkout unchanged", "routes/ingress-routes unchanged", "listener/ingress unchanged",
        "Envoy resources: no change",
    ]

    docs = checkout()
    docs[0]["spec"]["weights"] = {"v1": 50, "v2": 50}
    path = write_yaml(tmp_path / "canary.yaml", docs)
    changed = await cli("diff", "-f", path)
    assert changed.code == 1, changed
    lines = changed.out.splitlines()
    assert lines[0] == "service/checkout configured"
    assert lines[1:3] == ["--- service/checkout (served)", "+++ service/checkout (file)"]
    assert "-    v1: 100" in lines and "+    v1: 50" in lines and "+    v2: 50" in lines
    assert lines[-2:] == ["Envoy resources that would change: 0 added, 1 changed, 0 removed", "  ~ rds/ingress-routes"]

    async with SwitchmanClient(api_url(server)) as client:
        assert len(await client.history()) == 1  # diff changes nothing

    docs[0]["spec"]["weights"] = {"v9": 100}
    invalid = await cli("diff", "-f", write_yaml(tmp_path / "invalid.yaml", docs))
    assert invalid.code == 2 and "spec.weights.v9" in invalid.err, invalid


# -- history and rollback ----------------------------------------------------------------------------------


async def test_history_and_rollback(cli: Cli, server: Switchman) -> None:
    empty = await cli("history")
    assert (empty.code, empty.out) == (0, "no revisions yet\n")

    await applied(server, message="first")
    async with SwitchmanClient(api_url(server), author="alice") as client:
        await client.set_weights("checkout", {"v1": 0, "v2": 100})

    history = await cli("history")
    assert history.code == 0, history
    header, newest, oldest = history.out.splitlines()
    assert header.split() == ["REVISION", "WHEN", "AUTHOR", "FOR", "MESSAGE", "CHANGES"]
    assert newest.startswith("2 ") and " alice " in newest and newest.endswith("~service/checkout")
    assert "weights of service/checkout" in newest
    assert oldest.startswith("1 ") and " anonymous " in oldest and " first " in oldest
    assert oldest.endswith("+listener/ingress +routes/ingress-routes +service/checkout")

    limited = await cli("history", "--limit", "1", "-o", "json")
    assert [e["number"] for e in json.loads(limited.out)] == [2]
    assert (await cli("history", "--limit", "0")).code == 2

    back = await cli("rollback", "1")
    assert back.code == 0, back
    assert back.out.splitlines() == [
        "rolled back to revision 1",
        "service/checkout configured",
        "Envoy resources: 0 added, 1 changed, 0 removed",
        "  ~ rds/ingress-routes",
        "revision 3",
    ]
    async with SwitchmanClient(api_url(server)) as client:
        assert (await client.get("Service", "checkout"))["spec"]["weights"] == {"v1": 100, "v2": 0}
        assert (await client.history())[0]["rollback_of"] == 1

    missing = await cli("rollback", "99")
    assert missing.code == 5 and "revision 99 does not exist" in missing.err, missing
    assert (await cli("rollback", "one")).code == 2


# -- status and render -------------------------------------------------------------------------------------


def acked_and_nacked(types: dict[str, Any]) -> bool:
    return bool(types.get("cds", {}).get("acked_version") and types.get("eds", {}).get("nack_message"))


async def settled(server: Switchman, done: Callable[[dict[str, Any]], bool]) -> None:
    """Wait until ``done`` holds for the status types (by type) of the connected nodes."""
    async with SwitchmanClient(api_url(server)) as client:
        for _ in range(200):
            status = await client.status()
            if done({t["type"]: t for n in status["nodes"] for t in n["types"]}):
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"the status never settled: {status}")


async def test_status_shows_nodes_acks_and_nacks_traced_to_documents(
    cli: Cli, server: Switchman, ads: Any
) -> None:
    nothing = await cli("status")
    assert (nothing.code, nothing.out) == (0, "serving nothing yet (no revision)\nno Envoys connected\n")

    await applied(server)
    envoy: AdsClient = ads("envoy-1")
    clusters = await envoy.request(rt.CLUSTER)
    await envoy.ack(clusters)
    names = ("checkout-v1", "checkout-v2")
    endpoints = await envoy.request(rt.ENDPOINT, names)
    await envoy.nack(endpoints, "endpoints rejected: the test says so", names)
    await settled(server, acked_and_nacked)

    result = await cli("status")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0] == "serving revision 1 (the store's head is 1)"
    assert lines[1].split() == ["NODE", "GROUP", "STREAMS", "SYNCED", "CDS", "EDS"]
    row = lines[2].split()
    assert row[:4] == ["envoy-1", "demo", "1", "no"]  # it did not take the endpoints
    assert row[4] == clusters.version_info[:10] and row[5] == "(2)"
    assert row[6:] == ["not", "ACKed", "(NACK)"]
    assert lines[3].startswith(
        f"last NACK: envoy-1 eds version {endpoints.version_info[:10]}: endpoints rejected: the test says so"
    )


async def test_status_traces_a_nack_to_its_documents(cli: Cli, server: Switchman, ads: Any) -> None:
    await applied(server)
    envoy: AdsClient = ads("envoy-2")
    await envoy.ack(await envoy.request(rt.CLUSTER))
    names = ("checkout-v1", "checkout-v2")
    await envoy.nack(await envoy.request(rt.ENDPOINT, names), "no thanks", names)
    await settled(server, lambda t: bool(t.get("eds", {}).get("nack_message")))
    result = await cli("status")
    assert "no thanks (documents: service/checkout)" in result.out, result


async def test_a_node_stays_synced_when_resources_it_does_not_use_change(
    cli: Cli, server: Switchman, ads: Any
) -> None:
    await applied(server)
    envoy: AdsClient = ads("envoy-3")
    await envoy.ack(await envoy.request(rt.ROUTE, ("ingress-routes",)), ("ingress-routes",))
    await settled(server, lambda types: bool(types.get("rds", {}).get("synced")))

    spare = {
        "kind": "EnvoyResource", "metadata": {"name": "spare-routes"},
        "spec": {"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "name": "spare-routes"},
    }
    await applied(server, [spare])
    result = await cli("status")
    assert result.code == 0, result
    [row] = [line.split() for line in result.out.splitlines() if line.startswith("envoy-3")]
    assert row[3] == "yes", result


async def test_render(cli: Cli, server: Switchman) -> None:
    await applied(server)
    result = await cli("render")
    assert result.code == 0, result
    rendered = json.loads(result.out)
    assert rendered["group"] == "*"
    assert [c["name"] for c in rendered["resources"]["cds"]] == ["checkout-v1", "checkout-v2"]
    assert rendered["resources"]["lds"][0]["name"] == "ingress"
    assert json.loads((await cli("render", "--group", "*")).out) == rendered

    ghost = await cli("render", "--node", "ghost")
    assert (ghost.code, ghost.err.strip()) == (5, "switchman: no node 'ghost' is connected")
    both = await cli("render", "--node", "a", "--group", "b")
    assert both.code == 2 and "not allowed with argument" in both.err


@pytest.mark.parametrize(
    "args",
    [("apply", "-f", CHECKOUT), ("diff", "-f", CHECKOUT), ("get",), ("delete", "service", "x"), ("history",),
     ("rollback", "1"), ("status",), ("render",)],
    ids=lambda a: a[0],
)
async def test_every_command_says_when_the_api_is_unreachable(cli: Cli, args: tuple[str, ...]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = await cli(*args, env={"SWITCHMAN_API": url})
    assert result.code == 6, result
    assert result.out == ""
    [line] = result.err.splitlines()
    assert line.startswith(f"switchman: cannot reach the API at {url}: ")
    assert "the address is from SWITCHMAN_API" in line


async def test_help_lists_the_commands(cli: Cli) -> None:
    result = await cli("--help")
    assert result.code == 0
    for command in ("apply", "diff", "get", "delete", "history", "rollback", "status", "render"):
        assert command in result.out
    apply_help = await cli("apply", "--help")
    assert "SWITCHMAN_API" in apply_help.out and "SWITCHMAN_MESSAGE" in apply_help.out
