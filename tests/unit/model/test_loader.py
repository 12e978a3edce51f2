"""The bounded YAML loader: what safe_load_all reads, except alias bombs, recursive aliases and deep nesting."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from switchman.model.loader import ALIAS_BUDGET, MAX_DEPTH, YamlRefused, load_documents, yaml_problem

EXAMPLES = Path(__file__).parents[3] / "examples"


def bomb(levels: int, width: int = 10) -> str:
    """The "billion laughs" in a field that takes anything (an Envoy Cluster's filter metadata): each level
    is ``width`` aliases of the one before, so the last stands for ``width ** levels`` strings."""
    items = [f"&a0 [{','.join(['l'] * width)}]"]
    items += [f"&a{i} [{','.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return (
        "kind: EnvoyResource\nmetadata: {name: c}\nspec:\n"
        '  "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: c\n'
        f"  metadata: {{filter_metadata: {{x: {{l: [{', '.join(items)}]}}}}}}\n"
    )


def test_the_examples_read_as_safe_load_all_reads_them() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        text = path.read_text()
        assert load_documents(text) == list(yaml.safe_load_all(text)), path


def test_anchors_and_aliases_within_the_budget_are_kept() -> None:
    text = (
        "common: &endpoints [{address: 127.0.0.1, port: 9001}, {address: 127.0.0.1, port: 9002}]\n"
        "v1: {endpoints: *endpoints}\nv2: {endpoints: *endpoints}\n"
        "base: &base {connectTimeout: 1s, lb: round_robin}\nmerged: {<<: *base, lb: random}\n"
    )
    assert load_documents(text) == list(yaml.safe_load_all(text))
    assert load_documents(text)[0]["merged"] == {"connectTimeout": "1s", "lb": "random"}


@pytest.mark.parametrize("levels", [6, 7, 30])
def test_an_alias_bomb_is_refused_at_once_naming_the_alias(levels: int) -> None:
    text = bomb(levels)
    started = time.perf_counter()
    with pytest.raises(YamlRefused) as refused:
        load_documents(text)
    took = time.perf_counter() - started
    assert took < 0.1, f"{took * 1000:.1f} ms to refuse a {len(text)}-byte bomb"
    problem = yaml_problem(refused.value)
    assert "the alias *a2 brings aliases to" in problem and "(line 6, column" in problem, problem
    assert f"{ALIAS_BUDGET:,}" in problem


def test_every_document_of_a_stream_has_its_own_anchors() -> None:
    text = "".join(f"---\na: &a [{i}, {i + 1}]\nb: [*a, *a]\n" for i in range(50))
    assert load_documents(text) == list(yaml.safe_load_all(text))


def test_the_budget_grows_with_what_the_text_spells_out() -> None:
    # 300 aliases of a 50-node list: 15,000 nodes, over the floor, but the text spells out more than that.
    spelled = "\n".join(f"k{i}: [{', '.join(str(j) for j in range(60))}]" for i in range(300))
    text = f"a: &a [{', '.join(['x'] * 49)}]\n{spelled}\nb: [{', '.join(['*a'] * 300)}]\n"
    assert len(load_documents(text)[0]["b"]) == 300
    with pytest.raises(YamlRefused):
        load_documents(f"a: &a [{', '.join(['x'] * 49)}]\nb: [{', '.join(['*a'] * 300)}]\n")


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: [1, *a]}\n"], ids=["sequence", "mapping"])
def test_a_recursive_alias_is_refused(text: str) -> None:
    with pytest.raises(YamlRefused, match="refers to itself"):
        load_documents(text)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    assert load_documents("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(YamlRefused, match=f"nest deeper than {MAX_DEPTH}"):
        load_documents(deep)
    with pytest.raises(yaml.YAMLError):  # not a RecursionError, however deep (libyaml stops at 1,000 itself)
        load_documents("[" * 100_000)


def test_yaml_errors_stay_yaml_errors() -> None:
    for text in ("kind: [unclosed\n", "a: *nope\n", "- &x 1\n- &x 2\n"):
        with pytest.raises(yaml.YAMLError):
            load_documents(text)
    assert load_documents("") == []
    assert load_documents("---\n---\na: 1\n") == [None, {"a": 1}]
