"""``switchman apply -f FILE|DIR|-``: create or replace documents, all or nothing, and say what changed.

Also home of what ``diff``, ``delete`` and ``rollback`` share: reading
document files and printing a change, kubectl style::

    listener/ingress created
    service/checkout configured
    routes/ingress-routes unchanged
    Envoy resources: 0 added, 1 changed, 0 removed
      ~ rds/ingress-routes
    revision 2
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from switchman.apply_wait import DEFAULT_WAIT, MAX_WAIT, wait_for
from switchman.cli.config import add_option, add_switch, client_options, run_client
from switchman.cli.options import env_default
from switchman.client import ApplyResult, ClientError, EnvoyChanges, SwitchmanClient, dumps
from switchman.errors import ConfigError
from switchman.model.labels import parse_selector
from switchman.model.loader import load_documents, yaml_problem

__all__ = [
    "Documents", "add_expect_option", "add_file_option", "add_parser", "print_result", "read_documents", "run",
]

SUFFIXES: Final = (".yaml", ".yml", ".json")
#: The exit status of an apply whose wait found an Envoy that did not ACK it (the change is stored all the same).
NOT_SYNCED: Final = 7
FILE_ENV: Final = "SWITCHMAN_FILE"
_REQUEST_INDEX: Final = re.compile(r"^request\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Documents:
    """Documents read from files, each with where it came from (``examples/checkout.yaml[1]``)."""

    documents: list[dict[str, Any]]
    sources: list[str]

    def ids(self) -> list[str]:
        """``kind/name`` of each document, as the API names them."""
        out = []
        for doc in self.documents:
            kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
            out.append(f"{str(kind).lower()}/{name}")
        return out

    def locate(self, exc: ClientError) -> ClientError:
        """The API's error, saying which file and document it is about."""
        match = _REQUEST_INDEX.match(exc.message)
        if match and int(match.group(1)) < len(self.sources):
            return exc.with_message(self.sources[int(match.group(1))] + exc.message[match.end() :])
        for doc_id, source in zip(self.ids(), self.sources, strict=True):
            if exc.message.startswith(f"{doc_id}:") or exc.message.startswith(f"{doc_id} "):
                return exc.with_message(f"{exc.message} (in {source})")
        return exc


def add_file_option(parser: argparse.ArgumentParser) -> None:
    """``-f/--filename``, repeatable: a file, a folder of ``*.yaml``/``*.yml``/``*.json``, or ``-`` for stdin."""
    parser.add_argument(
        "-f", "--filename", action="append", metavar="FILE|DIR|-",
        help=f"documents to apply: a YAML/JSON file (several documents allowed), a folder (its *.yaml, *.yml "
        f"and *.json, sorted) or - for stdin; repeatable [env {FILE_ENV}]",
    )


def _revision_number(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a revision number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a revision number (0 is an empty store)")
    return number


def add_expect_option(parser: argparse.ArgumentParser) -> None:
    """``--expect-revision N``: change only if the store's head is still revision N."""
    add_option(
        parser, "--expect-revision", env="SWITCHMAN_EXPECT_REVISION", default="", type=_revision_number,
        metavar="N", help="change only if the store's head is still revision N ('switchman history' and every "
        "change's output name it; 0: an empty store); otherwise nothing is stored and the exit status is 5",
    )


def files_of(args: argparse.Namespace) -> list[str]:
    """The ``-f`` values, else ``SWITCHMAN_FILE``; ConfigError when there are none."""
    files: list[str] = list(args.filename or [])
    if not files and env_default(FILE_ENV, ""):
        files = [env_default(FILE_ENV, "")]
    if not files:
        raise ConfigError("-f", "is required: a file, a folder or - for stdin")
    return files


def _parse(text: str, label: str, is_json: bool) -> list[Any]:
    try:
        loaded: list[Any] = [json.loads(text)] if is_json else load_documents(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(label, f"is not JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(label, "is not JSON Switchman takes: it nests too deeply") from None
    except yaml.YAMLError as exc:
        raise ConfigError(label, f"is not YAML: {yaml_problem(exc)}") from None
    docs: list[Any] = []
    for item in loaded:
        if item is None:
            continue
        if isinstance(item, list):
            docs += item
        elif isinstance(item, dict) and "documents" in item and "kind" not in item:
            docs += list(item["documents"] or [])
        else:
            docs.append(item)
    return docs


def _files(spec: str) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
        if not found:
            raise ConfigError(spec, "is a folder with no *.yaml, *.yml or *.json files")
        return found
    if not path.exists():
        raise ConfigError(spec, "does not exist")
    return [path]


def read_documents(specs: Sequence[str]) -> Documents:
    """Every document of ``specs`` (files, folders, ``-``), in order. Raises ConfigError naming the file."""
    documents: list[dict[str, Any]] = []
    sources: list[str] = []
    for spec in specs:
        if spec == "-":
            inputs = [("stdin", sys.stdin.read(), False)]
        else:
            inputs = []
            for path in _files(spec):
                try:
                    inputs.append((str(path), path.read_text(), path.suffix == ".json"))
                except (OSError, UnicodeDecodeError) as exc:
                    raise ConfigError(str(path), f"cannot read: {exc}") from None
        for label, text, is_json in inputs:
            for i, doc in enumerate(_parse(text, label, is_json)):
                if not isinstance(doc, dict):
                    raise ConfigError(f"{label}[{i}]", "is not a mapping (a document has kind, metadata and spec)")
                try:
                    dumps(doc)
                except (TypeError, ValueError) as exc:  # YAML can say more than JSON: !!binary, !!set ...
                    raise ConfigError(f"{label}[{i}]", f"cannot be sent as JSON: {exc}") from None
                documents.append(doc)
                sources.append(f"{label}[{i}]")
    if not documents:
        raise ConfigError(", ".join(specs), "holds no documents")
    return Documents(documents, sources)


def print_envoy(envoy: EnvoyChanges, dry_run: bool, group: str = "") -> None:
    """The Envoy resources a change adds (+), changes (~) and removes (-)."""
    where = f" for node group {group}" if group else ""
    if not envoy:
        print(f"Envoy resources{where}: no change")
        return
    title = f"Envoy resources{where} that would change" if dry_run else f"Envoy resources{where}"
    print(f"{title}: {len(envoy.added)} added, {len(envoy.changed)} changed, {len(envoy.removed)} removed")
    for mark, names in (("+", envoy.added), ("~", envoy.changed), ("-", envoy.removed)):
        for name in names:
            print(f"  {mark} {name}")


def print_result(
    result: ApplyResult, order: Sequence[str] = (), show_unchanged: bool = True, deleted: str = "deleted"
) -> None:
    """A change as kubectl shows one: each document and what happened to it, the Envoy resources, the revision.
    ``deleted`` is the verb for documents the change deletes (``pruned`` for an apply that prunes)."""
    state: dict[str, str] = {}
    for verb, ids in (
        ("created", result.created), ("configured", result.configured),
        ("unchanged", result.unchanged if show_unchanged else ()), (deleted, result.deleted),
    ):
        state.update(dict.fromkeys(ids, verb))
    ordered = [i for i in dict.fromkeys(order) if i in state] + sorted(set(state) - set(order))
    suffix = " (dry run)" if result.dry_run else ""
    for doc_id in ordered:
        print(f"{doc_id} {state[doc_id]}{suffix}")
    print_envoy(result.envoy, result.dry_run)
    for group, changes in result.groups.items():
        print_envoy(changes, result.dry_run, group)
    if result.dry_run:
        print("dry run: nothing was stored")
    elif result.revision is None:
        print("no change: nothing was stored")
    else:
        print(f"revision {result.revision}")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "apply", parents=[client_options()], help="create or replace documents (all or nothing)",
        description="Create or replace documents from files, all or nothing; prints what changed.",
    )
    add_file_option(parser)
    add_switch(parser, "--dry-run", "SWITCHMAN_DRY_RUN", "only show what would change; store nothing")
    add_option(
        parser, "-m", "--message", env="SWITCHMAN_MESSAGE", default="",
        help="why: recorded in the history (default: the apply command)",
    )
    add_expect_option(parser)
    add_switch(
        parser, "--prune", "SWITCHMAN_PRUNE", "also delete, in the same revision, the documents -l selects that the "
        "files do not hold (every document applied must carry -l's labels)",
    )
    add_option(
        parser, "-l", "--selector", env="SWITCHMAN_SELECTOR", default="", metavar="KEY=VALUE[,...]",
        help="with --prune: the labels (metadata.labels) of the documents the files own",
    )
    add_option(
        parser, "--wait", env="SWITCHMAN_WAIT", default="", nargs="?", const=f"{DEFAULT_WAIT:g}s",
        metavar="TIMEOUT", help=f"return once every Envoy the change concerns has ACKed it, or after TIMEOUT "
        f"(250ms, 5s, 2m; bare --wait: {DEFAULT_WAIT:g}s; at most {MAX_WAIT:g}s); exit {NOT_SYNCED} when one did not",
    )
    parser.set_defaults(run=run)


def _selector(args: argparse.Namespace) -> dict[str, str] | None:
    """``-l``'s labels when ``--prune`` is on; ConfigError for one without the other, or an empty selector."""
    selector = parse_selector(str(args.selector or ""), "-l")
    if not args.prune:
        if selector:
            raise ConfigError("-l", "goes with --prune: it selects the documents the apply may delete")
        return None
    if not selector:
        raise ConfigError(
            "--prune", "needs -l KEY=VALUE: the labels of the documents these files own (pruning with no selector "
            "would delete every document they do not hold)",
        )
    return selector


def _wait(args: argparse.Namespace) -> float | None:
    text = str(args.wait or "").strip()
    return wait_for(text, "--wait") if text else None


def print_wait(wait: Mapping[str, Any]) -> None:
    """What the Envoys did with the change: a line per node group, and one per Envoy not synced."""
    timeout = float(wait.get("timeout", 0))
    for group in wait.get("groups", ()):
        name = "every node (group *)" if group["group"] == "*" else f"node group {group['group']}"
        if group["connected"]:
            print(f"{name}: {group['synced']} of {group['connected']} Envoys synced")
        else:
            print(f"{name}: no Envoy connected (nothing to wait for)")
    for node in wait.get("nodes", ()):
        if node["state"] == "synced":
            continue
        documents = sorted({d for n in node.get("nacks", ()) for d in n.get("documents", ())})
        origin = f" (from {', '.join(documents)})" if documents else ""
        print(f"  {node['node_id']} (group {node['group']}): {node['state']}: {node['reason']}{origin}")
    if wait.get("synced") and not wait.get("nodes"):
        print("synced: no Envoy concerned is connected")
    elif wait.get("synced"):
        print(f"synced: every Envoy concerned ACKed it ({float(wait.get('waited', 0)):g}s)")
    else:
        print(f"not synced: not every Envoy concerned ACKed it within {timeout:g}s")


def _message(args: argparse.Namespace, files: Sequence[str]) -> str:
    if args.message:
        return str(args.message)
    text = "apply " + " ".join(f"-f {f}" for f in files)
    return text if len(text) <= 200 else text[:197] + "..."


def run(args: argparse.Namespace) -> int:
    files = files_of(args)
    docs = read_documents(files)

    selector, wait = _selector(args), _wait(args)

    async def action(client: SwitchmanClient) -> int:
        try:
            result = await client.apply(
                docs.documents, message=_message(args, files), dry_run=args.dry_run,
                expected_revision=args.expect_revision, prune=selector, wait=wait,
            )
        except ClientError as exc:
            raise docs.locate(exc) from None
        print_result(result, docs.ids(), deleted="pruned" if selector else "deleted")
        if result.wait is None:
            return 0
        print_wait(result.wait)
        return 0 if result.wait.get("synced") else NOT_SYNCED

    return run_client(args, action)

