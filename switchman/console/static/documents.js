// The documents Switchman holds, and one document with the revisions that touched it.

import { docKey, h, table, time, yamlLines } from "./dom.js";

export const hints = ["revision"];

function list(docs) {
  const rows = docs.map((d) =>
    h("tr", { "data-doc": docKey(d) },
      h("td", {}, d.kind),
      h("td", {}, h("a", { href: `#/documents/${docKey(d)}` }, d.metadata.name)),
      h("td", { class: "muted" }, Object.entries(d.metadata.labels || {}).map(([k, v]) => `${k}=${v}`).join(", "))));
  return h("div", {}, h("h1", {}, "Documents"),
    docs.length ? table(["kind", "name", "labels"], rows, { id: "documents" }) : h("p", { class: "muted" }, "No documents yet."));
}

async function one(kind, name, ctx) {
  const key = `${kind.toLowerCase()}/${name}`;
  const [{ revisions }, doc] = await Promise.all([
    ctx.get("/v1/history?limit=1000"),
    ctx.get(`/v1/documents/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`).catch((e) => {
      if (e.status === 404) return null;
      throw e;
    }),
  ]);
  const touched = revisions.filter((r) => [...r.added, ...r.changed, ...r.removed].includes(key));
  const rows = touched.map((r, i) => {
    const what = r.added.includes(key) ? "added" : r.removed.includes(key) ? "removed" : "changed";
    const before = touched[i + 1]?.number ?? r.number - 1;
    return h("tr", {},
      h("td", { class: "num" }, r.number), h("td", {}, time(r.created_at)), h("td", {}, r.author),
      h("td", {}, what), h("td", {}, r.message),
      h("td", {}, before > 0 ? h("a", { href: `#/history?a=${before}&b=${r.number}&doc=${encodeURIComponent(key)}` }, "diff") : ""));
  });
  return h("div", {},
    h("h1", {}, key),
    doc ? h("pre", { class: "doc" }, yamlLines(doc).join("\n")) : h("p", { class: "muted" }, "Not in the served configuration (deleted)."),
    h("h2", {}, "History"),
    table(["revision", "when", "author", "", "message", ""], rows));
}

export async function view(route, ctx) {
  if (route.parts.length >= 2) return one(route.parts[0], route.parts.slice(1).join("/"), ctx);
  return list((await ctx.get("/v1/documents")).documents);
}
