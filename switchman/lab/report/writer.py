"""Write the demo's report folder: report.json, samples.csv, three PNG plots and report.html."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from html import escape
from pathlib import Path
from typing import Any

from switchman.lab.report.model import DemoRun, Phase, Section, StepResult
from switchman.lab.report.plots import plot_latency, plot_split, plot_success
from switchman.lab.report.series import Bin, bin_samples

__all__ = ["FIGURES", "write_report"]

# file name -> what the figure shows (its alt text and caption)
FIGURES: dict[str, str] = {
    "split.png": "Measured share of v2 per second against the requested weight, with the binomial 3σ band.",
    "latency.png": "Latency p50 and p99 per second (log scale).",
    "success.png": "Success rate per second; the fault phase (no retries) and the retry phase are shaded.",
}
BIN_SECONDS = 1.0


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _bin_json(b: Bin) -> dict[str, Any]:
    return {
        "t_s": b.start,
        "requests": b.requests,
        "answered": b.answered,
        "v2": b.v2,
        "share_v2": _round(b.share_v2),
        "expected_v2": _round(b.expected_v2),
        "sigma_v2": _round(b.sigma_v2),
        "within_3_sigma": b.within_3_sigma,
        "p50_ms": _round(b.p50_ms, 2),
        "p99_ms": _round(b.p99_ms, 2),
        "success_rate": _round(b.success_rate),
    }


def _phase_json(p: Phase, origin: float) -> dict[str, Any]:
    return {
        "name": p.name,
        "label": p.label,
        "kind": p.kind,
        "requested_v2": p.requested_v2,
        "applied_s": round(p.applied - origin, 4),
        "synced_s": round(p.synced - origin, 4),
        "sync_ms": round(p.sync_ms, 1),
        "load_started_s": round(p.started - origin, 4),
        "load_ended_s": round(p.ended - origin, 4),
    }


def _origin_and_end(run: DemoRun) -> tuple[float, float]:
    starts = [s.started for s in run.samples] + [p.applied for p in run.phases]
    ends = [s.started for s in run.samples] + [p.ended for p in run.phases]
    if not starts:
        return 0.0, 1.0
    origin = min(starts)
    return origin, max(max(ends), origin + 1.0)


def _pct(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}%}"


def _step_row(r: StepResult) -> str:
    judged = r.requested_v2 is not None and r.measured_v2 is not None
    mark = ("ok" if r.within_3_sigma else "OFF") if judged else ""
    failed = r.failures > 0 and r.counts_against_verdict
    cells = [
        f"<td class='name'>{escape(r.name)}</td>",
        f"<td>{_pct(r.requested_v2, 0)}</td>",
        f"<td>{_pct(r.measured_v2, 1)}</td>",
        f"<td class='{'good' if mark == 'ok' else 'bad' if mark else ''}'>{mark}</td>",
        f"<td>{r.requests}</td>",
        f"<td class='{'bad' if failed else ''}'>{r.failures}</td>",
        f"<td>{r.success_rate:.2%}</td>",
        f"<td>{r.p99_ms:.1f}</td>",
        f"<td>{'yes' if r.counts_against_verdict else 'no (shows the fault)'}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _phase_row(p: dict[str, Any]) -> str:
    return (
        f"<tr><td class='name'>{escape(str(p['name']))}</td><td>{p['requested_v2']:.0%}</td>"
        f"<td>{p['applied_s']:.2f}</td><td>{p['synced_s']:.2f}</td><td>{p['sync_ms']:.0f}</td>"
        f"<td>{p['load_started_s']:.2f} &ndash; {p['load_ended_s']:.2f}</td></tr>"
    )


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1150px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.meta { color: #666; margin-top: 0; }
.verdict { font-size: 1.15rem; padding: 0.7rem 1rem; border-radius: 6px; margin: 1rem 0; }
.verdict.pass { background: #e6f4ea; border: 1px solid #34a853; }
.verdict.fail { background: #fce8e6; border: 1px solid #d93025; }
table { border-collapse: collapse; font-size: 0.95rem; }
th, td { padding: 0.35rem 0.7rem; border-bottom: 1px solid #e3e3e3; text-align: right; }
th { background: #f5f5f5; }
td.name, th.name { text-align: left; }
td.good { color: #188038; font-weight: 600; }
td.bad { color: #c5221f; font-weight: 600; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.95rem; }
"""


def _section_html(section: Section) -> str:
    head = "".join(f"<th{' class=name' if i == 0 else ''}>{escape(c)}</th>" for i, c in enumerate(section.columns))
    rows = "".join(
        "<tr>" + "".join(f"<td{' class=name' if i == 0 else ''}>{escape(v)}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in section.rows
    )
    return (f"<h2>{escape(section.title)}</h2>\n<p>{escape(section.note)}</p>\n"
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _drill_html(run: DemoRun) -> str:
    """A drill's checks, figures and the rollout's events (nothing for the demo)."""
    if not run.checks:
        return ""
    checks = "".join(
        f"<tr><td class='name'>{escape(c.name)}</td><td class='{'good' if c.passed else 'bad'}'>"
        f"{'pass' if c.passed else 'FAIL'}</td><td class='name'>{escape(c.detail)}</td></tr>"
        for c in run.checks
    )
    facts = "".join(
        f"<tr><td class='name'>{escape(k)}</td><td class='name'>{escape(json.dumps(v))}</td></tr>"
        for k, v in run.facts.items() if k != "analysisAgreement"
    )
    origin = min((s.started for s in run.samples), default=0.0)
    events = "".join(
        f"<tr><td>{float(e.get('at', 0)) - origin:.2f}</td><td class='name'>{escape(str(e.get('kind')))}</td>"
        f"<td>{e.get('weight')}%</td><td class='name'>{escape(str(e.get('message')))}</td></tr>"
        for e in run.events
    )
    return f"""<h2>Checks</h2>
<table><thead><tr><th class=name>check</th><th>result</th><th class=name>numbers</th></tr></thead>
<tbody>{checks}</tbody></table>
<h2>Figures</h2>
<table><tbody>{facts}</tbody></table>
{"".join(_section_html(s) for s in run.sections)}
<h2>Rollout events</h2>
<table><thead><tr><th>s</th><th class=name>event</th><th>weight</th><th class=name>message</th></tr></thead>
<tbody>{events}</tbody></table>"""


def _html(run: DemoRun, phases: list[dict[str, Any]], outside: int, bins: int) -> str:
    verdict = "PASS" if run.passed else "FAIL"
    if run.checks:
        failed = [c.name for c in run.checks if not c.passed]
        detail = "every check held" if not failed else "not held: " + "; ".join(failed)
    else:
        detail = (
            "every split within binomial 3σ of the requested weight, and no request failed while traffic moved"
            if run.passed
            else "a split was outside 3σ of the requested weight, or a request failed while traffic moved"
        )
    step_head = "".join(
        f"<th{' class=name' if h == 'step' else ''}>{h}</th>"
        for h in ("step", "want v2", "got v2", "3σ", "requests", "failures", "success", "p99 ms", "in verdict")
    )
    phase_head = "".join(
        f"<th{' class=name' if h == 'step' else ''}>{h}</th>"
        for h in ("step", "v2 weight", "applied at s", "all Envoys synced at s", "sync ms", "step load s")
    )
    figures = "\n".join(
        f"<figure><img src='{escape(name)}' alt='{escape(text)}' width='1100' height='460'>"
        f"<figcaption>{escape(text)}</figcaption></figure>"
        for name, text in {**FIGURES, **run.figures}.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(run.title)} {escape(run.stamp)}: {verdict}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{escape(run.title)}</h1>
<p class="meta">Run {escape(run.stamp)} · {len(run.samples)} requests · times in seconds since the demo started</p>
<p class="meta">{escape(run.lab)}</p>
<div class="verdict {verdict.lower()}"><strong>{verdict}</strong>: {escape(detail)}.</div>
{_drill_html(run)}
<h2>Steps</h2>
<table><thead><tr>{step_head}</tr></thead><tbody>
{"".join(_step_row(r) for r in run.steps)}
</tbody></table>
<h2>Timeline</h2>
<table><thead><tr>{phase_head}</tr></thead><tbody>
{"".join(_phase_row(p) for p in phases)}
</tbody></table>
<p>{outside} of {bins} one-second bins had a v2 share outside their 3σ band (about 1 in 370 is expected by chance;
bins straddling a change mix two weights and are judged against the mix).</p>
<h2>Figures</h2>
{figures}
</body>
</html>
"""


def write_report(run: DemoRun, folder: Path) -> Path:
    """Write the report for ``run`` into ``folder`` (created if needed); return the path of report.html."""
    folder.mkdir(parents=True, exist_ok=True)
    origin, end = _origin_and_end(run)
    bins = bin_samples(run.samples, run.phases, origin, BIN_SECONDS, run.initial_v2)
    end = max(end, origin + len(bins) * BIN_SECONDS)  # the last bin whole on the plots
    phases = [_phase_json(p, origin) for p in run.phases]
    outside = sum(1 for b in bins if b.within_3_sigma is False)

    plot_split(bins, run.phases, origin, end, run.initial_v2, folder / "split.png")
    plot_latency(bins, run.phases, origin, end, folder / "latency.png")
    plot_success(bins, run.phases, origin, end, folder / "success.png")

    with (folder / "samples.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["t_s", "status", "latency_ms", "version", "error"])
        for s in run.samples:
            writer.writerow([f"{s.started - origin:.6f}", s.status, f"{s.latency_ms:.3f}", s.version, s.error])

    report = {
        "passed": run.passed,
        "stamp": run.stamp,
        "lab": run.lab,
        "steps": [asdict(r) for r in run.steps],
        "series": {
            "origin_unix_s": origin,
            "duration_s": round(end - origin, 4),
            "bin_seconds": BIN_SECONDS,
            "requests": len(run.samples),
            "failures": sum(1 for s in run.samples if not s.ok),
            "initial_v2": run.initial_v2,
            "phases": phases,
            "bins_outside_3_sigma": outside,
            "bins": [_bin_json(b) for b in bins],
        },
        "figures": {name: {"file": name, "caption": text} for name, text in {**FIGURES, **run.figures}.items()},
        "checks": [asdict(c) for c in run.checks],
        "facts": run.facts,
        "events": run.events,
        "samples": "samples.csv",
        "html": "report.html",
    }
    (folder / "report.json").write_text(json.dumps(report, indent=2))
    html = folder / "report.html"
    html.write_text(_html(run, phases, outside, len(bins)))
    return html
