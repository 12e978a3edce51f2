"""The demo, small: it drives Switchman through its API, shifts traffic, and its verdict holds."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from switchman.lab.demo import DemoSettings, run_demo, within_3_sigma

pytestmark = pytest.mark.envoy


def _report(folder: Path) -> dict[str, Any]:
    [report] = folder.glob("demo-*/report.json")
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def test_three_sigma_bounds() -> None:
    assert within_3_sigma(50, 100, 0.5) and not within_3_sigma(70, 100, 0.5)
    assert within_3_sigma(0, 600, 0.0) and not within_3_sigma(1, 600, 0.0)


async def test_demo_shifts_traffic_within_3_sigma_and_fails_nothing(tmp_path: Path) -> None:
    out = io.StringIO()
    passed = await run_demo(DemoSettings(sidecars=2, rate=300, requests_per_step=300, run_dir=tmp_path), out)
    text = out.getvalue()
    assert passed, text
    # the traffic went front Envoy -> each pod's sidecar -> its app, and the lab is gone afterwards
    logs = {path.name for path in tmp_path.glob("demo-*/lab/*")}  # noqa: ASYNC240 (after the run)
    for name in ("front-envoy", "checkout-v1-0-sidecar", "checkout-v2-0-sidecar", "app-checkout-v2-0", "serve"):
        assert f"{name}.log" in logs, name
    assert "lab.json" not in logs
    steps = {s["name"]: s for s in _report(tmp_path)["steps"]}
    assert steps["canary 50% to v2"]["within_3_sigma"]
    assert steps["load across the whole ramp"]["failures"] == 0
    assert steps["load across the whole ramp"]["requests"] > 300
    assert steps["v2 fails 20%, no retries"]["success_rate"] < 0.95  # the fault is real...
    assert steps["v2 fails 20%, retries on"]["failures"] == 0  # ...and the retries hide it
    assert "PASS" in text


async def test_demo_writes_its_report_folder(tmp_path: Path) -> None:
    out = io.StringIO()  # not a terminal: plain lines, no live table
    # three pods: v1 has two replicas behind the front's split
    await run_demo(DemoSettings(sidecars=3, rate=300, requests_per_step=300, run_dir=tmp_path), out)
    assert "checkout-v1-1 behind http://127.0.0.1:" in out.getvalue()
    _check_report_folder(tmp_path, out)


def _check_report_folder(tmp_path: Path, out: io.StringIO) -> None:
    [folder] = tmp_path.glob("demo-*/")
    assert f"Report: {folder / 'report.html'}" in out.getvalue()
    assert "\x1b[" not in out.getvalue()  # no terminal escapes in a log
    report = _report(tmp_path)
    assert "front Envoy → 3 pods (checkout-v1-0, checkout-v2-0, checkout-v1-1)" in report["lab"]
    assert "front Envoy → 3 pods" in (folder / "report.html").read_text()
    series = report["series"]
    assert [p["kind"] for p in series["phases"]] == ["ramp"] * 4 + ["fault", "retries"]
    assert all(p["applied_s"] <= p["synced_s"] <= p["load_started_s"] < p["load_ended_s"] for p in series["phases"])
    # every request of every step and of the steady load is in the series
    assert series["requests"] == sum(s["requests"] for s in report["steps"])
    assert sum(b["requests"] for b in series["bins"]) == series["requests"]
    assert len(series["bins"]) >= 5
    html = (folder / "report.html").read_text()
    for name in report["figures"]:
        assert (folder / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert f"src='{name}'" in html
    assert (folder / "samples.csv").read_text().count("\n") == series["requests"] + 1
