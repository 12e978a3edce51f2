"""The state file: what the lab created, in order, so that destroy removes exactly that, in reverse.

A JSON file, written atomically (a temporary file renamed over it) after
every change, with mode 0600: it also keeps the lab's secrets (the CA, the
bootstrap token, passwords), made once so that a re-run renders the same
files. Resources that existed before the lab (found, not created) are never
recorded, so destroy leaves them alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from switchman.errors import LabError

__all__ = ["Record", "State"]

VERSION = 1


@dataclass(frozen=True)
class Record:
    """One created resource: its step, kind, name and id (and what destroy needs besides, in ``data``)."""

    step: str
    kind: str
    name: str
    id: str
    data: Mapping[str, str] = field(default_factory=dict)


class State:
    """The records, the secrets and each step's outputs of one lab, kept in ``path``."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self.records: list[Record] = []
        self.secrets: dict[str, str] = {}
        self.outputs: dict[str, dict[str, str]] = {}

    @classmethod
    def load(cls, path: Path, name: str) -> State:
        """The state in ``path``, or an empty one when there is no such file; LabError when it is not ours."""
        state = cls(path, name)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return state
        except (OSError, ValueError) as exc:
            raise LabError(f"state file {path} cannot be read: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise LabError(f"state file {path} is not a version-{VERSION} cloud lab state")
        if data.get("name") != name:
            raise LabError(f"state file {path} belongs to the lab {data.get('name')!r}, not {name!r}")
        state.records = [Record(**r) for r in data.get("records", [])]
        state.secrets = dict(data.get("secrets", {}))
        state.outputs = {k: dict(v) for k, v in data.get("outputs", {}).items()}
        return state

    def save(self) -> None:
        data: dict[str, Any] = {
            "version": VERSION, "name": self.name, "records": [asdict(r) for r in self.records],
            "secrets": self.secrets, "outputs": self.outputs,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- records ------------------------------------------------------------

    def find(self, step: str, kind: str, name: str) -> Record | None:
        return next((r for r in self.records if (r.step, r.kind, r.name) == (step, kind, name)), None)

    def add(self, record: Record) -> None:
        """Record a created resource and save at once (a crash right after still leaves it recorded)."""
        self.records = [r for r in self.records if (r.step, r.kind, r.name) != (record.step, record.kind, record.name)]
        self.records.append(record)
        self.save()

    def remove(self, record: Record) -> None:
        self.records = [r for r in self.records if r != record]
        self.save()

    def of_step(self, step: str) -> list[Record]:
        return [r for r in self.records if r.step == step]

    def reversed_of_step(self, step: str) -> Iterator[Record]:
        return reversed(self.of_step(step))

    # -- secrets and outputs ------------------------------------------------

    def secret(self, key: str, make: Callable[[], str]) -> str:
        """The secret ``key``, made by ``make()`` and saved the first time it is asked for."""
        if key not in self.secrets:
            self.secrets[key] = make()
            self.save()
        return self.secrets[key]

    def set_secret(self, key: str, value: str) -> None:
        """Keep a secret learned from elsewhere (a password read back from a host), saving when it changed."""
        if self.secrets.get(key) != value:
            self.secrets[key] = value
            self.save()

    def set_output(self, step: str, key: str, value: str) -> None:
        if self.outputs.get(step, {}).get(key) != value:
            self.outputs.setdefault(step, {})[key] = value
            self.save()

    def forget_step(self, step: str) -> None:
        """Drop a destroyed step's outputs and secrets (named ``<step>.…``), so a new apply starts afresh."""
        self.outputs.pop(step, None)
        self.secrets = {k: v for k, v in self.secrets.items() if not k.startswith(f"{step}.")}
        self.save()

    def output(self, step: str, key: str) -> str | None:
        return self.outputs.get(step, {}).get(key)
