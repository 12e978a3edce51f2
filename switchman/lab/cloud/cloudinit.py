"""cloud-init user data: a ``#cloud-config`` document with files to write and commands to run, as YAML.

Multi-line strings come out as YAML literal blocks, so the user data in a plan
reads like the files it writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["File", "cloud_config"]


@dataclass(frozen=True)
class File:
    path: str
    content: str
    permissions: str = "0644"


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def cloud_config(hostname: str, packages: Sequence[str], files: Sequence[File], runcmd: Sequence[Sequence[str]],
                 ssh_authorized_keys: Sequence[str] = ()) -> str:
    doc: dict[str, Any] = {
        "hostname": hostname,
        "package_update": True,
        "packages": list(packages),
        "write_files": [{"path": f.path, "permissions": f.permissions, "owner": "root:root", "content": f.content}
                        for f in files],
        "runcmd": [list(c) for c in runcmd],
    }
    if ssh_authorized_keys:
        doc["ssh_authorized_keys"] = list(ssh_authorized_keys)
    return "#cloud-config\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000)
