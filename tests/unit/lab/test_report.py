"""The demo's report writer and live view, on synthetic samples (no Envoy)."""

from __future__ import annotations

import io
import json
import random
import struct
from pathlib import Path

import pytest
from rich.console import Console

from switchman.lab.local.load import LoadResult, Sample
from switchman.lab.report import FIGURES, DemoRun, Phase, StepResult, bin_samples, requested_at, write_report
from switchman.lab.report.live import DemoView, row
from switchman.lab.report.model import PhaseKind
from switchman.lab.report.plots import DPI, FIG_SIZE, plot_counters
from switchman.lab.report.series import percentile

T0 = 1_800_000_000.0


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _phase(name: str, label: str, kind: PhaseKind, v2: float, at: float, length: float = 3.0) -> Phase:
    return Phase(name, label, kind, v2, T0 + at, T0 + at + 0.02, T0 + at + 0.03, T0 + at + length)


def _synthetic_run(seed: int = 7) -> DemoRun:
    """A run shaped like the demo's: a ramp 0/10/50/100, then a fault, then retries; 200 requests/s."""
    rng = random.Random(seed)
    phases = [
        _phase("canary 0% to v2", "0 %", "ramp", 0.0, 0.0),
        _phase("canary 10% to v2", "10 %", "ramp", 0.1, 3.0),
        _phase("canary 50% to v2", "50 %", "ramp", 0.5, 6.0),
        _phase("canary 100% to v2", "100 %", "ramp", 1.0, 9.0),
        _phase("v2 fails 20%, no retries", "fault", "fault", 1.0, 12.0),
        _phase("v2 fails 20%, retries on", "retries", "retries", 1.0, 15.0),
    ]
    samples: list[Sample] = []
    for i in range(18 * 200):
        t = T0 + i / 200
        v2 = rng.random() < requested_at(t, phases)
        fault, retries = T0 + 12 <= t < T0 + 15, t >= T0 + 15
        latency = rng.uniform(1, 4) + (rng.random() < 0.2) * rng.uniform(20, 80) * retries
        if fault and v2 and rng.random() < 0.2:
            samples.append(Sample(t, 500, latency, "v2"))
        else:
            samples.append(Sample(t, 200, latency, "v2" if v2 else "v1"))
    steps = [
        StepResult(p.name, p.requested_v2, 600, p.requested_v2, True, 1.0, 3.5, 0, p.kind != "fault") for p in phases
    ]
    steps.insert(4, StepResult("load across the whole ramp", None, 1200, None, True, 1.0, 3.7, 0, True))
    return DemoRun("20260101-000000", True, steps, phases, samples)


def test_percentile_is_nearest_rank_like_load_result() -> None:
    values = [float(v) for v in range(1, 101)]
    load = LoadResult([Sample(0.0, 200, v, "v1") for v in values])
    assert percentile(values, 0.99) == load.p99_ms() == 100.0
    assert percentile(values, 0.5) == 51.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_requested_weight_follows_the_phases() -> None:
    run = _synthetic_run()
    assert requested_at(T0 - 1, run.phases) == 0.0
    assert requested_at(T0 + 3.5, run.phases) == 0.1
    assert requested_at(T0 + 100, run.phases) == 1.0
    assert requested_at(T0 - 1, run.phases, initial_v2=0.3) == 0.3


def test_bins_count_every_request_and_judge_the_split() -> None:
    run = _synthetic_run()
    bins = bin_samples(run.samples, run.phases, origin=T0, width=1.0)
    assert len(bins) == 18
    assert sum(b.requests for b in bins) == len(run.samples)
    assert all(b.requests == 200 for b in bins)
    assert bins[0].share_v2 == 0.0 and bins[0].sigma_v2 == 0.0 and bins[0].within_3_sigma
    assert bins[7].expected_v2 == pytest.approx(0.5)
    assert bins[7].sigma_v2 == pytest.approx(0.5 / 200**0.5)
    assert sum(1 for b in bins if b.within_3_sigma is False) <= 1
    assert bins[13].success_rate is not None and bins[13].success_rate < 0.95  # the fault
    assert bins[16].p99_ms is not None and bins[16].p99_ms > 20  # the retries
    # a bin that straddles a change is judged against the mix of the two weights
    [straddle] = bin_samples(
        [Sample(T0 + 2.5, 200, 1.0, "v1"), Sample(T0 + 3.5, 200, 1.0, "v2")], run.phases, origin=T0 + 2, width=2.0
    )
    assert straddle.expected_v2 == pytest.approx(0.05)
    assert bin_samples([], run.phases, origin=T0) == []


def test_report_folder_has_json_pngs_and_html(tmp_path: Path) -> None:
    run = _synthetic_run()
    folder = tmp_path / "demo-20260101-000000"
    html_path = write_report(run, folder)
    assert html_path == folder / "report.html"
    assert {p.name for p in folder.iterdir()} == {"report.json", "report.html", "samples.csv", *FIGURES}

    for name in FIGURES:
        assert _png_size(folder / name) == (round(FIG_SIZE[0] * DPI), round(FIG_SIZE[1] * DPI))

    report = json.loads((folder / "report.json").read_text())
    assert report["passed"] is True
    assert [s["name"] for s in report["steps"]] == [s.name for s in run.steps]
    assert set(report["figures"]) == set(FIGURES)
    series = report["series"]
    assert series["requests"] == len(run.samples) and series["bin_seconds"] == 1.0
    assert len(series["bins"]) == 18 and series["failures"] > 0
    assert [p["label"] for p in series["phases"]] == ["0 %", "10 %", "50 %", "100 %", "fault", "retries"]
    assert series["phases"][1]["applied_s"] == pytest.approx(3.0)
    assert series["phases"][1]["sync_ms"] == pytest.approx(20.0, abs=0.1)

    html = html_path.read_text()
    for name in FIGURES:
        assert f"<img src='{name}'" in html  # relative: the folder can be moved or served as is
    assert "PASS" in html and "canary 50% to v2" in html and "load across the whole ramp" in html
    assert str(tmp_path) not in html


def test_a_run_s_counters_are_kept_and_plotted(tmp_path: Path) -> None:
    run = _synthetic_run()
    stat = "cluster.checkout-v2.upstream_rq_5xx"
    run.counters = [(T0 + t / 4, {stat: max(0, t - 48) * 10}) for t in range(72)]
    write_report(run, tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["counters"][-1] == {"t_s": 17.75, stat: 230}
    path = plot_counters(run.counters, run.samples, run.phases, T0, T0 + 18, tmp_path / "counters.png")
    assert _png_size(path) == (round(FIG_SIZE[0] * DPI), round(FIG_SIZE[1] * DPI))


def test_failed_run_and_empty_run_still_write_a_report(tmp_path: Path) -> None:
    run = _synthetic_run()
    run.passed = False
    assert "FAIL" in write_report(run, tmp_path / "failed").read_text()
    empty = DemoRun("20260101-000001", False, [], [], [])
    write_report(empty, tmp_path / "empty")
    assert json.loads((tmp_path / "empty" / "report.json").read_text())["series"]["bins"] == []
    assert _png_size(tmp_path / "empty" / "split.png") == (round(FIG_SIZE[0] * DPI), round(FIG_SIZE[1] * DPI))


def test_view_prints_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    step = StepResult("canary 10% to v2", 0.1, 600, 0.103, True, 1.0, 3.8, 0, True)
    with DemoView(out) as view:
        assert not view.live
        view.start_step(step.name, 0.1, LoadResult())
        view.finish_step(step)
    lines = out.getvalue().strip().splitlines()
    assert lines[0].startswith("step") and lines[-1] == row(step)
    assert "10.3%" in lines[-1] and "\x1b[" not in out.getvalue()


def test_live_view_shows_the_running_step() -> None:
    out = io.StringIO()
    load = LoadResult([Sample(0.0, 200, 2.0, "v1")] * 9 + [Sample(0.0, 200, 5.0, "v2")])
    steady = LoadResult([Sample(0.0, 200, 1.0, "v1")] * 3)
    with DemoView(out, live=True, refresh_per_second=20) as view:
        view.watch_steady(steady)
        view.finish_step(StepResult("canary 0% to v2", 0.0, 600, 0.0, True, 1.0, 3.7, 0, True))
        view.start_step("canary 10% to v2", 0.1, load)
        view.finish_step(StepResult("canary 10% to v2", 0.1, 10, 0.1, True, 1.0, 5.0, 0, True))
        view.start_step("canary 50% to v2", 0.5, load)
        frame = io.StringIO()
        Console(file=frame, width=120).print(view.render())
    text = frame.getvalue()
    assert "▶ canary 50% to v2" in text and "50/50" in text and "90.0/10.0" in text
    assert max(len(line) for line in text.splitlines()) <= 80  # fits a plain terminal
    assert "steady load across the ramp: 3 requests, 0 failed" in text
    assert "canary 10% to v2" in out.getvalue()  # the last frame stays on screen
