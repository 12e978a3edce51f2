"""Labels on documents and the selectors that pick documents by them (apply --prune)."""

from __future__ import annotations

import pytest

from switchman.errors import ConfigError
from switchman.model.labels import format_selector, matches, parse_selector
from tests.unit.model.docs import cluster, parse, rejected


def labelled(labels: object) -> dict[str, object]:
    return {**cluster(), "metadata": {"name": "c", "labels": labels}}


@pytest.mark.parametrize("labels", [
    {"app": "shop"}, {"switchman.io/set": "edge-1"}, {"tier": ""}, {"a": "x" * 63}, {"A_b.c-d": "V_1.2-x"},
])
def test_kubernetes_labels_are_accepted(labels: dict[str, str]) -> None:
    assert parse(labelled(labels)).labels == labels


@pytest.mark.parametrize(("labels", "path", "reason"), [
    ({"-app": "shop"}, "cluster/c: metadata.labels.-app", "'-app' is not a label key"),
    ({"a" * 64: "x"}, f"cluster/c: metadata.labels.{'a' * 64}", "is not a label key"),
    ({"Bad_Prefix/app": "x"}, "cluster/c: metadata.labels.Bad_Prefix/app", "is not a label key"),
    ({"app": "shop floor"}, "cluster/c: metadata.labels.app", "'shop floor' is not a label value"),
    ({"app": "x" * 64}, "cluster/c: metadata.labels.app", "is not a label value"),
    ({"app": True}, "cluster/c: metadata.labels.app", "must be a string, not the boolean True"),
    ({"app": ["a"]}, "cluster/c: metadata.labels.app", "must be a string"),
])
def test_labels_that_are_not_kubernetes_labels_are_refused_naming_the_label(
    labels: dict[str, object], path: str, reason: str
) -> None:
    err = rejected(labelled(labels))
    assert err.path == path
    assert reason in err.reason


def test_a_selector_reads_pairs_joined_by_commas_and_writes_them_back_sorted() -> None:
    selector = parse_selector(" tier=front , app=shop,")
    assert selector == {"app": "shop", "tier": "front"}
    assert format_selector(selector) == "app=shop,tier=front"
    assert parse_selector("") == {}


@pytest.mark.parametrize(("text", "reason"), [
    ("app", "'app' is not KEY=VALUE"),
    ("app!=shop", "'app!=shop' is not KEY=VALUE"),
    ("app==shop", "'app==shop' is not KEY=VALUE"),
    ("app=shop,app=cart", "names label 'app' twice"),
    ("app=shop floor", "'shop floor' is not a label value"),
    ("-x=1", "'-x' is not a label key"),
])
def test_a_bad_selector_is_refused_naming_it(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_selector(text, "-l")
    assert caught.value.path == "-l"
    assert reason in caught.value.reason


def test_a_document_matches_when_it_carries_every_pair() -> None:
    assert matches({"app": "shop", "tier": "front"}, {"app": "shop"})
    assert not matches({"app": "shop"}, {"app": "shop", "tier": "front"})
    assert not matches({"app": "cart"}, {"app": "shop"})
