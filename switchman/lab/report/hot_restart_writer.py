"""Write the hot-restart drill's report folder: report.json, requests.png and report.html."""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from switchman.lab.local.hot_restart import Handover
from switchman.lab.report.hot_restart import BaseIdClash, EarlyRestart, HotRestartReport, RestartFigures

__all__ = ["FIGURE", "plot_requests", "write_hot_restart_report"]

FIGURE = "requests.png"
_CAPTION = (
    "Requests started per second and failed requests, per 100 ms, with p99 latency below. Each restart is "
    "marked: the new epoch started (dashed), went LIVE and took over (solid), the old epoch drained (shaded) "
    "and exited (dotted)."
)
_OK = "#2ca02c"
_FAIL = "#d62728"
_SENT = "#1f77b4"
_MARK = "#7f7f7f"


def _mark_restarts(ax: Any, restarts: tuple[RestartFigures, ...], labels: bool) -> None:
    for i, r in enumerate(restarts):
        h = r.handover
        start, live, exited = r.started_s, r.started_s + h.live_s, r.started_s + h.old_exited_s
        first = labels and i == 0
        ax.axvline(start, color=_MARK, linestyle="--", linewidth=1.2, label="new epoch started" if first else None)
        ax.axvline(live, color="black", linewidth=1.2, label="new epoch LIVE (takes over)" if first else None)
        ax.axvspan(live, exited, color="#ff7f0e", alpha=0.12, label="old epoch drains" if first else None)
        ax.axvline(exited, color=_MARK, linestyle=":", linewidth=1.5, label="old epoch exited" if first else None)


def plot_requests(report: HotRestartReport, path: Path) -> Path:
    """Requests/s, successes/s and failures per bin on top, p99 latency below; the restarts marked."""
    fig = Figure(figsize=(11.0, 6.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2.2, 1.0))
    points = report.series
    width = report.bin_s
    xs = [p.t_s + width / 2 for p in points]
    top.plot(xs, [p.requests / width for p in points], color=_SENT, linewidth=1.4, label="requests/s started")
    top.plot(xs, [p.successes / width for p in points], color=_OK, linewidth=1.0, linestyle="--",
             label="2xx/s")
    failures = [p.failures / width for p in points]
    failed = report.load.requests - report.load.successes
    top.bar(xs, failures, width=width * 0.9, color=_FAIL, label=f"failed/s ({failed} in all)")
    _mark_restarts(top, report.restarts, labels=True)
    top.set_ylabel("requests per second", fontsize=11)
    top.set_ylim(0, max([report.load.rate * 1.6, *(p.requests / width * 1.1 for p in points)]))
    top.set_title(
        f"Envoy hot restart under load: {report.load.requests} requests at {report.load.rate:g}/s, "
        f"{len(report.restarts)} restart(s), {failed} failed",
        fontsize=13,
    )
    top.grid(True, alpha=0.3)
    top.legend(loc="lower left", ncols=3, fontsize=9, framealpha=0.9)
    p99 = [math.nan if p.p99_ms is None else p.p99_ms for p in points]
    bottom.plot(xs, p99, color="#9467bd", linewidth=1.2, label="p99 latency per 100 ms")
    _mark_restarts(bottom, report.restarts, labels=False)
    bottom.set_yscale("log")
    bottom.set_ylabel("p99 (ms)", fontsize=11)
    bottom.set_xlabel("seconds since the load started", fontsize=11)
    bottom.grid(True, alpha=0.3)
    bottom.legend(loc="upper left", fontsize=9)
    if points:
        bottom.set_xlim(0, points[-1].t_s + width)
    fig.savefig(path, dpi=100, format="png")
    return path


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1150px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.meta { color: #666; margin-top: 0; }
.verdict { font-size: 1.1rem; padding: 0.7rem 1rem; border-radius: 6px; margin: 1rem 0; }
.verdict.pass { background: #e6f4ea; border: 1px solid #34a853; }
.verdict.fail { background: #fce8e6; border: 1px solid #d93025; }
table { border-collapse: collapse; font-size: 0.93rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #e3e3e3; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.good { color: #188038; font-weight: 600; }
td.bad { color: #c5221f; font-weight: 600; }
code { background: #f3f3f3; padding: 0.05rem 0.3rem; border-radius: 3px; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.93rem; }
"""


def _yes(value: bool) -> str:
    return f"<td class='{'good' if value else 'bad'}'>{'yes' if value else 'no'}</td>"


def _refused(started: bool) -> str:
    """A negative drill's start: expected not to happen."""
    return f"<td class='{'bad' if started else 'good'}'>{'yes' if started else 'no'}</td>"


def _rows(rows: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{escape(k)}</th>{v if v.startswith('<td') else f'<td>{v}</td>'}</tr>" for k, v in rows)


def _handover_rows(h: Handover) -> list[tuple[str, str]]:
    return [
        ("epochs", f"{h.old_epoch} (pid {h.old_pid}) → {h.new_epoch} (pid {h.new_pid}), base id {h.base_id}"),
        ("new epoch started → LIVE", f"{h.live_s * 1000:.0f} ms"),
        ("new epoch started → answering on the listener", f"{h.serving_s * 1000:.0f} ms"),
        ("new epoch started → old epoch exited", f"{h.old_exited_s * 1000:.0f} ms"),
        ("LIVE → old epoch exited (drain and shutdown)", f"{h.drain_s * 1000:.0f} ms"),
        ("old epoch's exit code", f"<td class='{'good' if h.old_exit_code == 0 else 'bad'}'>{h.old_exit_code}</td>"),
        ("server.hot_restart_generation", f"{h.generation_before} → {h.generation_after}"),
        ("generation rose by one", _yes(h.generation_rose_by_one)),
        ("listener port before / after", f"{h.listener_port_before} / {h.listener_port_after}"),
        ("listen socket handed over (same inode)", _yes(h.socket_inherited)),
        ("old epoch's connections while it drained",
         escape(", ".join(f"{t:.1f}s: {n}" for t, n in h.drain[:: max(1, len(h.drain) // 12)]))),
    ]


def _restart_table(r: RestartFigures) -> str:
    c = r.config
    rows = [
        *_handover_rows(r.handover),
        ("requests while it ran / failed", f"{r.requests} / {r.failures}"),
        ("new epoch had the current config when it took over", _yes(c.current)),
        ("Switchman's revision (applied / served)", f"{c.applied_revision} / {c.served_revision}"),
        ("versions in the new epoch / served", escape(
            ", ".join(f"{t}: {'|'.join(c.epoch_versions.get(t, [])) or '-'} / {c.served_versions.get(t, '-')}"
                      for t in ("cds", "lds", "rds"))
        )),
        ("endpoints in the new epoch / served", escape(
            json.dumps(c.epoch_endpoints) + " / " + json.dumps(c.served_endpoints)
        )),
    ]
    return f"<h3>Restart at {r.started_s:.2f} s</h3><table>{_rows(rows)}</table>"


def _clash_table(c: BaseIdClash) -> str:
    rows = [
        ("base id (both families)", str(c.base_id)),
        ("second family started", _refused(c.second_started)),
        ("its exit code", str(c.second_exit_code)),
        ("Envoy's words", f"<code>{escape(c.envoy_error)}</code>"),
        ("it failed after", f"{c.failed_after_s * 1000:.0f} ms"),
        ("first family's state afterwards", escape(c.first_state_after)),
        ("first family's listener answered", str(c.first_answered_after)),
        ("first family hot-restarted afterwards",
         _yes(c.first_restart is not None and c.first_restart.old_exit_code == 0
              and c.first_restart.generation_rose_by_one)),
    ]
    if c.first_restart_error:
        rows.append(("that restart failed", escape(c.first_restart_error)))
    return f"<table>{_rows(rows)}</table>"


def _early_table(e: EarlyRestart) -> str:
    rows = [
        ("base id", str(e.base_id)),
        ("epoch 0's state when epoch 1 started", escape(e.parent_state_before)),
        ("epoch 1 started", _refused(e.child_started)),
        ("its exit code", str(e.child_exit_code)),
        ("Envoy's words", f"<code>{escape(e.envoy_error)}</code>"),
        ("it failed after", f"{e.failed_after_s * 1000:.0f} ms"),
        ("epoch 0 alive afterwards / state",
         f"{'yes' if e.parent_alive_after else 'no'} / {escape(e.parent_state_after)}"),
        ("config let through → epoch 0 LIVE", f"{e.parent_live_after_s * 1000:.0f} ms"),
        ("epoch 1 again, once epoch 0 was LIVE",
         _yes(e.retry is not None and e.retry.old_exit_code == 0 and e.retry.generation_rose_by_one)),
    ]
    if e.retry is not None:
        rows.append(("that restart: LIVE after / old epoch exited after",
                     f"{e.retry.live_s * 1000:.0f} ms / {e.retry.old_exited_s * 1000:.0f} ms"))
    if e.retry_error:
        rows.append(("that restart failed", escape(e.retry_error)))
    return f"<table>{_rows(rows)}</table>"


def _html(report: HotRestartReport) -> str:
    verdict = "PASS" if report.passed else "FAIL"
    detail = (
        "no request failed across the hot restarts; each new epoch took over with the current config; "
        "the generation rose by one each time and every old epoch drained and exited 0"
        if report.passed else "; ".join(report.problems)
    )
    load = report.load
    load_rows = [
        ("requests / 2xx", f"{load.requests} / {load.successes}"),
        ("non-2xx answers", f"<td class='{'bad' if load.non_2xx else 'good'}'>{load.non_2xx}</td>"),
        ("connection, reset and protocol errors",
         f"<td class='{'bad' if load.errors else 'good'}'>{load.errors}</td>"),
        ("failures by kind", escape(json.dumps(load.error_kinds)) or "none"),
        ("HTTP/2 requests sent again (the server had not taken them)", str(load.resent)),
        ("by client", escape(", ".join(
            f"{kind}: {v['requests']} ({v['failures']} failed)" for kind, v in load.by_client.items()
        ))),
        ("rate asked / achieved", f"{load.rate:g}/s / {load.achieved_rate:g}/s"),
        ("latency p50 / p99 / max", f"{load.p50_ms:.1f} / {load.p99_ms:.1f} / {load.max_ms:.1f} ms"),
    ]
    failed = "".join(
        f"<tr><td>{f['t_s']:.3f}</td><td>{escape(str(f['client']))}</td><td>{f['status']}</td>"
        f"<td>{escape(str(f['error']))}</td></tr>"
        for f in report.failed_requests
    )
    failed_table = (
        f"<h2>Failed requests</h2><table><tr><th>t (s)</th><th>client</th><th>status</th><th>error</th></tr>"
        f"{failed}</table>" if failed else ""
    )
    negatives = ""
    if report.base_id_clash is not None:
        negatives += "<h2>Negative drill: a second family with a base id in use</h2>" + _clash_table(
            report.base_id_clash
        )
    if report.early_restart is not None:
        negatives += "<h2>Negative drill: epoch 1 while epoch 0 is still initializing</h2>" + _early_table(
            report.early_restart
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Envoy hot-restart drill: {verdict}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Envoy hot-restart drill</h1>
<p class="meta">{escape(report.envoy_version)} · hot restart version {escape(report.hot_restart_version)} ·
node {escape(report.node_id)} · listener 127.0.0.1:{report.listener_port} · Switchman revision
{report.applied_revision}</p>
<div class="verdict {verdict.lower()}"><strong>{verdict}</strong>: {escape(detail)}.</div>
<figure><img src="{FIGURE}" alt="{escape(_CAPTION)}" width="1100" height="640">
<figcaption>{escape(_CAPTION)}</figcaption></figure>
<h2>Load</h2>
<table>{_rows(load_rows)}</table>
<h2>Restarts</h2>
{"".join(_restart_table(r) for r in report.restarts)}
{failed_table}
{negatives}
</body>
</html>
"""


def write_hot_restart_report(report: HotRestartReport, folder: Path) -> Path:
    """Write report.json, requests.png and report.html into ``folder``; return the path of report.html."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    plot_requests(report, folder / FIGURE)
    html = folder / "report.html"
    html.write_text(_html(report))
    return html
