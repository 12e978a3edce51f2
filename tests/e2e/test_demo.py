"""The demo, small: it drives Switchman through its API, shifts traffic, and its verdict holds."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from switchman.lab.local.demo import DemoSettings, run_demo, within_3_sigma

pytestmark = pytest.mark.envoy


def _report(folder: Path) -> dict[str, Any]:
    [report] = folder.glob("demo-*.json")
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def test_three_sigma_bounds() -> None:
    assert within_3_sigma(50, 100, 0.5) and not within_3_sigma(70, 100, 0.5)
    assert within_3_sigma(0, 600, 0.0) and not within_3_sigma(1, 600, 0.0)


async def test_demo_shifts_traffic_within_3_sigma_and_fails_nothing(tmp_path: Path) -> None:
    out = io.StringIO()
    passed = await run_demo(DemoSettings(envoys=2, rate=300, requests_per_step=300, run_dir=tmp_path), out)
    text = out.getvalue()
    assert passed, text
    steps = {s["name"]: s for s in _report(tmp_path)["steps"]}
    assert steps["canary 50% to v2"]["within_3_sigma"]
    assert steps["load across the whole ramp"]["failures"] == 0
    assert steps["load across the whole ramp"]["requests"] > 300
    assert steps["v2 fails 20%, no retries"]["success_rate"] < 0.95  # the fault is real...
    assert steps["v2 fails 20%, retries on"]["failures"] == 0  # ...and the retries hide it
    assert "PASS" in text
