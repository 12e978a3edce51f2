// Every connected Envoy: its group, the version it ACKed per type, whether it is in sync, its last NACK.

import { badge, h, table } from "./dom.js";

export const hints = ["status", "revision"];

const docLink = (key) => h("a", { href: `#/documents/${key}` }, key);

function nack(t) {
  if (!t.nack_message) return null;
  const traced = t.documents.length ? ["; traced to ", t.documents.map((d, i) => [i ? ", " : "", docLink(d)])] : [];
  return h("div", { class: "nack" },
    h("strong", {}, `${t.type} NACKed version ${t.nack_version}`),
    t.nacked_resources.length ? ` (${t.nacked_resources.join(", ")})` : "", ...traced,
    h("pre", {}, t.nack_message));
}

function node(n) {
  const rows = n.types.map((t) =>
    h("tr", { class: t.synced ? "" : "unsynced" },
      h("td", {}, t.type),
      h("td", { class: "version" }, t.acked_version || "—"),
      h("td", { class: "num" }, t.resources),
      h("td", {}, t.synced ? badge("synced", "good") : badge(t.pending_version ? `sent ${t.pending_version}` : t.waiting || "not synced", t.nack_message ? "bad" : "warn")),
    ));
  return h("section", { class: "card node", "data-node": n.node_id },
    h("h2", {}, n.node_id, " ", n.synced ? badge("synced", "good") : badge("not synced", "bad")),
    h("p", { class: "muted" }, `group ${n.group} · cluster ${n.cluster || "—"} · ${n.streams} stream${n.streams === 1 ? "" : "s"} · `,
      h("a", { href: `#/resources?node=${encodeURIComponent(n.node_id)}` }, "resources served")),
    table(["type", "ACKed version", "resources", "state"], rows),
    n.types.map(nack));
}

export async function view(route, ctx) {
  const status = await ctx.get("/v1/status");
  const store = status.store;
  const synced = status.nodes.filter((n) => n.synced).length;
  return h("div", {},
    h("h1", {}, "Envoys"),
    h("p", { class: "summary" },
      `Serving revision ${status.revision ?? "—"} · store ${store.ready ? "ready" : `not ready: ${store.reason}`} · `,
      h("span", { id: "envoy-count" }, `${status.nodes.length} connected, ${synced} synced`)),
    status.nodes.length ? status.nodes.map(node) : h("p", { class: "muted" }, "No Envoy is connected."));
}
