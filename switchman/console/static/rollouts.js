// Rollouts: where each stands, live; one rollout's traffic over time, analyses and events, and its commands.

import { chart } from "./chart.js";
import { badge, h, table, time } from "./dom.js";

export const hints = ["rollouts", "revision"];

const PHASE = { Progressing: "warn", Paused: "warn", Succeeded: "good", Failed: "bad", Aborted: "bad" };
const pct = (v) => (v === null || v === undefined ? "—" : `${v}%`);

function summary(r) {
  const s = r.state;
  return h("tr", { "data-rollout": r.name },
    h("td", {}, h("a", { href: `#/rollouts/${encodeURIComponent(r.name)}` }, r.name)),
    h("td", {}, `${r.service}: ${r.stable} → ${r.canary}`), h("td", {}, r.strategy),
    h("td", { class: "phase" }, s ? badge(s.phase, PHASE[s.phase] || "") : badge("not started", "")),
    h("td", { class: "num" }, s ? pct(s.weight) : "—"),
    h("td", {}, s ? `${Math.max(s.stage + 1, 0)}/${r.stages.length}` : ""),
    h("td", { class: "muted" }, s?.message || ""));
}

function commands(r, ctx) {
  const s = r.state;
  if (!s) return [];
  const verb = (label, v, body, confirm = false) => ctx.button(label, `${v}:${r.name}`, async () => {
    await ctx.call("POST", `/v1/rollouts/${encodeURIComponent(r.name)}/${v}`, body);
    return `${label}: sent to rollout ${r.name}`;
  }, { confirm });
  const ended = ["Succeeded", "Failed", "Aborted"].includes(s.phase);
  if (ended) return s.phase === "Succeeded" ? [] : [verb("Retry", "retry")];
  return [
    s.phase === "Paused" ? verb("Resume", "resume") : verb("Pause", "pause"),
    verb("Promote", "promote"), verb("Promote fully", "promote", { full: true }, true), verb("Abort", "abort", undefined, true),
  ];
}

function traffic(r, s) {
  const end = s.finished_at || Date.now() / 1000;
  const weights = s.events.map((e) => [e.at, e.weight]);
  const rates = s.analyses.filter((a) => a.measurement?.successRate != null).map((a) => [a.at, a.measurement.successRate]);
  // The split measured: the canary's share of what both versions answered in each analysis window.
  const split = s.analyses
    .filter((a) => a.measurement?.requests != null && a.stableRequests != null && a.measurement.requests + a.stableRequests > 0)
    .map((a) => [a.at, (100 * a.measurement.requests) / (a.measurement.requests + a.stableRequests)]);
  return chart([
    { name: `${r.canary} weight set`, class: "weight", points: weights, step: true },
    { name: `${r.canary} share measured`, class: "split", points: split },
    { name: `${r.canary} success rate measured`, class: "rate", points: rates },
  ], s.started_at, end, `rollout ${r.name} over time`, document.getElementById("main").clientWidth - 40);
}

function analyses(s) {
  const rows = [...s.analyses].reverse().map((a) => {
    const m = a.measurement || {};
    const outcome = String(a.outcome).toLowerCase();
    const width = a.end && a.start ? a.end - a.start : 0;
    return h("tr", { class: outcome },
      h("td", {}, time(a.at)), h("td", {}, badge(a.outcome, outcome === "passed" ? "good" : outcome === "failed" ? "bad" : "warn")),
      h("td", { class: "num" }, pct(a.weight)), h("td", { class: "num" }, m.requests ?? "—"),
      h("td", { class: "num" }, width && m.requests != null ? (m.requests / width).toFixed(1) : "—"),
      h("td", { class: "num" }, pct(m.successRate)), h("td", { class: "num" }, m.p99Ms != null ? `${m.p99Ms} ms` : "—"),
      h("td", { class: "muted" }, a.reason || ""));
  });
  return table(["at", "outcome", "weight", "requests", "req/s", "success", "p99", "why"], rows, { id: "analyses" });
}

const events = (s) => table(["at", "event", "stage", "weight", "message"], [...s.events].reverse().map((e) =>
  h("tr", {}, h("td", {}, time(e.at)), h("td", {}, e.kind), h("td", { class: "num" }, e.stage + 1),
    h("td", { class: "num" }, pct(e.weight)), h("td", {}, e.message))), { id: "events" });

async function one(name, ctx) {
  const r = await ctx.get(`/v1/rollouts/${encodeURIComponent(name)}`);
  const s = r.state || r.previousRun;
  return h("div", {},
    h("h1", {}, `Rollout ${r.name} `, s ? badge(s.phase, PHASE[s.phase] || "") : badge("not started", "")),
    h("p", { class: "summary" }, `${r.strategy} of ${r.service}: ${r.stable} → ${r.canary} · `,
      s ? `stage ${Math.max(s.stage + 1, 0)}/${r.stages.length}${s.stage >= 0 ? ` (${r.stages[s.stage]})` : ""} · canary weight ` : "",
      s ? h("strong", { id: "weight" }, pct(s.weight)) : "", ` · analysis every ${r.interval} s · driven by ${r.driver || "—"}`),
    s?.message ? h("p", { id: "message" }, s.message) : null,
    h("p", { class: "actions" }, commands(r, ctx)),
    s ? [traffic(r, s), h("h2", {}, "Analyses"), analyses(s), h("h2", {}, "Events"), events(s)]
      : h("p", { class: "muted" }, "This rollout has not started yet."));
}

export async function view(route, ctx) {
  if (route.parts.length) return one(route.parts.join("/"), ctx);
  const { rollouts } = await ctx.get("/v1/rollouts");
  return h("div", {}, h("h1", {}, "Rollouts"), rollouts.length
    ? table(["name", "service", "strategy", "phase", "weight", "stage", "message"], rollouts.map(summary), { id: "rollouts" })
    : h("p", { class: "muted" }, "No rollouts. A Rollout document starts one (docs/rollouts.md)."));
}
