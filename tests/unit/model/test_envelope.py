"""The envelope every document shares: kind, metadata.name, spec; nothing else at the top."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.model.docs import cluster, parse, rejected

NAME_RULE = "is not a name of lowercase letters, digits, '.', '_' and '-'"


def test_unknown_kind_is_refused_with_the_kinds_there_are() -> None:
    err = rejected({**cluster(), "kind": "Gateway"})
    assert err.path == "request[0]: kind"
    assert err.reason == "'Gateway' is not one of Listener, Routes, Cluster, Service, Rollout, EnvoyResource"


def test_kind_is_required() -> None:
    doc = cluster()
    del doc["kind"]
    err = rejected(doc)
    assert (err.path, err.reason) == ("request[0]: kind", "is required")


def test_kinds_are_case_sensitive() -> None:
    err = rejected({**cluster(), "kind": "cluster"})
    assert err.path == "request[0]: kind"
    assert "'cluster' is not one of" in err.reason


def test_a_document_must_be_a_mapping() -> None:
    err = rejected(["kind", "Cluster"])
    assert (err.path, err.reason) == ("request[0]", "must be a mapping, not a list")


def test_metadata_is_required() -> None:
    doc = cluster()
    del doc["metadata"]
    err = rejected(doc)
    assert (err.path, err.reason) == ("request[0]: metadata", "is required")


def test_name_is_required() -> None:
    err = rejected({**cluster(), "metadata": {"labels": {"team": "shop"}}})
    assert (err.path, err.reason) == ("request[0]: metadata.name", "is required")


@pytest.mark.parametrize(
    "name",
    ["Checkout", "-checkout", "checkout-", "check out", "check/out", "a" * 64, "é"],
    ids=["upper", "leading-dash", "trailing-dash", "space", "slash", "64-chars", "non-ascii"],
)
def test_name_must_be_plain(name: str) -> None:
    err = rejected({**cluster(), "metadata": {"name": name}})
    assert err.path == "request[0]: metadata.name"
    assert err.reason == f"{name!r} {NAME_RULE}"


@pytest.mark.parametrize("name", ["a", "a" * 63, "checkout-v2.eu_west", "0"])
def test_plain_names_are_accepted(name: str) -> None:
    assert parse({**cluster(), "metadata": {"name": name}}).name == name


@pytest.mark.parametrize(
    ("value", "reason"),
    [(None, "is required"), ("", "must be a non-empty string, not an empty string"),
     (7, "must be a non-empty string, not the number 7")],
)
def test_name_must_be_a_non_empty_string(value: Any, reason: str) -> None:
    err = rejected({**cluster(), "metadata": {"name": value}})
    assert (err.path, err.reason) == ("request[0]: metadata.name", reason)


def test_unknown_metadata_field_is_refused_with_the_allowed_ones() -> None:
    err = rejected({**cluster(), "metadata": {"name": "c", "namespace": "prod"}})
    assert err.path == "request[0]: metadata.namespace"
    assert err.reason == "unknown field (allowed here: groups, labels, name)"


def test_unknown_top_level_field_is_refused_with_the_allowed_ones() -> None:
    err = rejected({**cluster(), "status": {}})
    assert err.path == "request[0]: status"
    assert err.reason == "unknown field (allowed here: apiVersion, kind, metadata, spec)"


def test_spec_is_required() -> None:
    doc = cluster()
    del doc["spec"]
    err = rejected(doc)
    assert (err.path, err.reason) == ("request[0]: spec", "is required")


def test_spec_must_be_a_mapping_and_the_error_names_the_document() -> None:
    err = rejected({**cluster(), "spec": ["endpoints"]})
    assert (err.path, err.reason) == ("cluster/c: spec", "must be a mapping, not a list")


def test_label_values_must_be_strings() -> None:
    err = rejected({**cluster(), "metadata": {"name": "c", "labels": {"replicas": 3}}})
    assert err.path == "cluster/c: metadata.labels.replicas"
    assert err.reason == "must be a string, not the number 3 (quote it: labels are text)"


def test_labels_and_api_version_are_accepted() -> None:
    doc = parse({**cluster(), "apiVersion": "switchman/v1", "metadata": {"name": "c", "labels": {"team": "shop"}}})
    assert doc.labels == {"team": "shop"}
    assert doc.id == "cluster/c"


def test_errors_inside_the_spec_name_the_document_not_the_request_position() -> None:
    err = rejected(cluster("checkout", endpoints="none"), where="request[4]")
    assert err.path == "cluster/checkout: spec.endpoints"
