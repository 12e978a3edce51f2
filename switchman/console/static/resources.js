// The Envoy resources a node is served, by type, each one folded.

import { h } from "./dom.js";

export const hints = ["revision", "status"];

export async function view(route, ctx) {
  const { nodes } = await ctx.get("/v1/status");
  const node = route.query.get("node") || nodes[0]?.node_id;
  const choose = h("select", { "aria-label": "node",
    onchange: (e) => (location.hash = `#/resources?node=${encodeURIComponent(e.target.value)}`) },
    nodes.map((n) => h("option", { value: n.node_id, selected: n.node_id === node }, `${n.node_id} (${n.group})`)));
  if (!node) return h("div", {}, h("h1", {}, "Resources"), h("p", { class: "muted" }, "No Envoy is connected."));
  if (!nodes.some((n) => n.node_id === node))
    return h("div", {}, h("h1", {}, "Resources"), choose, h("p", { class: "muted" }, `${node} is not connected.`));
  const served = await ctx.get(`/v1/render?node=${encodeURIComponent(node)}`);
  const types = Object.entries(served.resources);
  return h("div", {},
    h("h1", {}, "Resources"), h("p", {}, choose, ` group ${served.group}`),
    types.map(([type, items]) => h("section", { class: "card", "data-type": type },
      h("h2", {}, `${type} (${items.length})`),
      items.map((r) => h("details", { "data-key": `${type}/${r.name}` }, h("summary", {}, r.name || "(unnamed)"),
        h("pre", {}, JSON.stringify(r, null, 2)))))));
}
