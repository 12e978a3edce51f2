"""added/changed/removed by kind/metadata.name, and the canonical JSON both backends compare."""

from __future__ import annotations

import pytest

from switchman.store import StoreError, diff
from switchman.store.diff import decode, document_key, encode
from tests.unit.store.contract import doc


def test_lists_are_by_kind_and_name_and_sorted() -> None:
    before = [doc("Route", "r"), doc("Cluster", "b", port=1), doc("Cluster", "a")]
    after = [doc("Cluster", "z"), doc("Cluster", "b", port=2), doc("Route", "r"), doc("Listener", "a")]
    changes = diff(before, after)
    assert changes.added == ("cluster/z", "listener/a")
    assert changes.changed == ("cluster/b",)
    assert changes.removed == ("cluster/a",)


def test_from_nothing_everything_is_added() -> None:
    changes = diff([], [doc("Cluster", "b"), doc("Cluster", "a")])
    assert changes.added == ("cluster/a", "cluster/b")
    assert changes.changed == changes.removed == ()
    assert diff([doc("Cluster", "a")], []).removed == ("cluster/a",)


def test_the_same_document_spelled_differently_is_not_changed() -> None:
    # Key order and list-versus-tuple do not survive storage as JSON, so they are no change.
    stored = {"kind": "Route", "metadata": {"name": "r"}, "spec": {"weights": [10, 90], "retry": True}}
    again = {"spec": {"retry": True, "weights": (10, 90)}, "metadata": {"name": "r"}, "kind": "Route"}
    assert diff([stored], [again]).changed == ()
    assert diff([stored], [dict(again, spec={"weights": [90, 10], "retry": True})]).changed == ("route/r",)


def test_same_name_in_another_kind_is_another_document() -> None:
    changes = diff([doc("Cluster", "checkout")], [doc("Route", "checkout")])
    assert changes.added == ("route/checkout",)
    assert changes.removed == ("cluster/checkout",)


@pytest.mark.parametrize(
    "document",
    [
        {"metadata": {"name": "x"}},
        {"kind": "", "metadata": {"name": "x"}},
        {"kind": "Cluster"},
        {"kind": "Cluster", "metadata": "x"},
        {"kind": "Cluster", "metadata": {"name": 3}},
    ],
)
def test_a_document_without_kind_and_name_is_refused(document: dict[str, object]) -> None:
    with pytest.raises(StoreError, match=r"document 1: .*kind and metadata\.name"):
        diff([], [doc("Cluster", "ok"), document])


def test_a_name_twice_is_refused() -> None:
    with pytest.raises(StoreError, match="document 2: cluster/a appears twice"):
        diff([], [doc("Cluster", "a"), doc("Route", "a"), doc("Cluster", "a", port=2)])


def test_document_key() -> None:
    assert document_key(doc("Listener", "ingress"), 0) == "listener/ingress"


def test_encode_is_canonical_and_strict() -> None:
    assert encode({"b": 1, "a": ("x", "é")}) == '{"a":["x","é"],"b":1}'
    assert decode(encode({"b": [1.5, None]})) == {"b": [1.5, None]}
    for bad in (float("nan"), float("inf"), {1j: 1}, object()):
        with pytest.raises(StoreError, match="not plain JSON"):
            encode(bad)
    with pytest.raises(StoreError, match="unreadable"):
        decode(b"{")
