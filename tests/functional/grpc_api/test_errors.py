"""Errors: one table from the stable codes (the REST API's) to gRPC statuses, seen on real refusals."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from switchman.api.grpc import management_pb2 as pb
from switchman.api.grpc.errors import GRPC_STATUS
from switchman.api.openapi import OPENAPI
from tests.functional.api.docs import checkout
from tests.functional.api.test_errors import RacingStore
from tests.functional.grpc_api.conftest import Grpc, Start, apply_request, refused, trailers


def test_every_stable_code_has_a_grpc_status() -> None:
    error = OPENAPI["paths"]["/v1/apply"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    codes = error["properties"]["error"]["properties"]["code"]["enum"]
    assert set(GRPC_STATUS) == set(codes)
    assert GRPC_STATUS == {
        "invalid_config": grpc.StatusCode.INVALID_ARGUMENT,
        "bad_request": grpc.StatusCode.INVALID_ARGUMENT,
        "unauthorized": grpc.StatusCode.UNAUTHENTICATED,
        "forbidden": grpc.StatusCode.PERMISSION_DENIED,
        "not_found": grpc.StatusCode.NOT_FOUND,
        "conflict": grpc.StatusCode.ABORTED,
        "too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
        "store_unavailable": grpc.StatusCode.UNAVAILABLE,
        "unavailable": grpc.StatusCode.UNAVAILABLE,
        "internal": grpc.StatusCode.INTERNAL,
    }


async def test_a_commit_that_loses_a_race_with_an_expected_revision_is_aborted(start: Start, tmp_path: Path) -> None:
    store = RacingStore(str(tmp_path / "race.db"))
    api = await start(store=store)
    await api.stub.Apply(apply_request(checkout()))
    store.armed = True
    docs = checkout()
    docs[0]["spec"]["weights"] = {"v1": 50, "v2": 50}
    request = apply_request(docs)
    request.expected_revision = 1
    error = await refused(api.stub.Apply(request))
    assert (error.code(), trailers(error)) == (grpc.StatusCode.ABORTED, {"switchman-error-code": "conflict"})
    history = (await api.stub.History(pb.HistoryRequest())).revisions
    assert [(e.number, e.author) for e in history] == [(2, "other-replica"), (1, "anonymous")]


async def test_a_store_that_is_gone_is_unavailable(api: Grpc, caplog: pytest.LogCaptureFixture) -> None:
    await api.switchman.store.close()
    error = await refused(api.stub.ListDocuments(pb.ListDocumentsRequest()))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert trailers(error) == {"switchman-error-code": "store_unavailable"}
    assert "the store is closed" in error.details()
    assert any(r.levelno == logging.ERROR and "ListDocuments" in r.getMessage() for r in caplog.records)


async def test_a_path_that_is_not_ascii_still_travels(api: Grpc) -> None:
    doc = checkout()[0]
    doc["spec"]["wéights"] = doc["spec"].pop("weights")
    error = await refused(api.stub.Apply(apply_request([doc])))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(error)["switchman-error-path"] == "service/checkout: spec.w\\xe9ights"  # metadata is ASCII
    assert "wéights" in error.details()  # the details may say anything


async def test_the_service_shares_the_xds_port_quietly(start: Start, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="grpc")
    api = await start()
    assert (await api.stub.Status(pb.StatusRequest())).nodes == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith("grpc")] == []
