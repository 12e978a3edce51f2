"""Documents the API tests apply: the checkout example with its listener on port 0."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).parents[3] / "examples"


def example(name: str, port: int = 0) -> list[dict[str, Any]]:
    """An example's documents with every listener port set to ``port``."""
    docs = [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d is not None]
    for doc in docs:
        if doc["kind"] == "Listener":
            doc["spec"]["port"] = port
    return docs


def checkout() -> list[dict[str, Any]]:
    return example("checkout.yaml")


def by_id(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{d['kind'].lower()}/{d['metadata']['name']}": copy.deepcopy(d) for d in docs}
