// Applied revisions: who, when, what changed; a side-by-side diff of any two, and a rollback to any one.

import { diffTable } from "./diff.js";
import { docKey, h, table, time, yamlLines } from "./dom.js";

export const hints = ["revision"];

const changes = (r) => [
  ...r.added.map((k) => h("span", { class: "add" }, `+${k} `)),
  ...r.changed.map((k) => h("span", { class: "mod" }, `~${k} `)),
  ...r.removed.map((k) => h("span", { class: "del" }, `-${k} `)),
];

const revisionCache = new Map(); // a revision never changes once made
async function documentsOf(number, ctx) {
  if (!revisionCache.has(number)) {
    const { documents } = await ctx.get(`/v1/revisions/${number}`);
    revisionCache.set(number, new Map(documents.map((d) => [docKey(d), yamlLines(d)])));
  }
  return revisionCache.get(number);
}

async function diff(a, b, only, ctx) {
  const [left, right] = await Promise.all([documentsOf(a, ctx), documentsOf(b, ctx)]);
  const keys = [...new Set([...left.keys(), ...right.keys()])].sort().filter((k) => !only || k === only);
  const differing = keys.filter((k) => (left.get(k) || []).join("\n") !== (right.get(k) || []).join("\n"));
  const same = keys.length - differing.length;
  return h("section", { class: "card", id: "diff" },
    h("h2", {}, `Revision ${a} → ${b}`, only ? ` · ${only}` : ""),
    differing.length ? null : h("p", { class: "muted" }, "No document differs."),
    differing.map((k) => h("div", { class: "diffdoc", "data-doc": k }, h("h3", {}, k),
      diffTable(left.get(k) || [], right.get(k) || [], left.has(k) ? `${a}` : `${a} (absent)`, right.has(k) ? `${b}` : `${b} (absent)`))),
    same ? h("p", { class: "muted" }, `${same} document${same === 1 ? "" : "s"} unchanged.`) : null);
}

function pick(name, number, chosen, query) {
  const next = new URLSearchParams(query);
  next.set(name, number);
  return h("input", { type: "radio", name, checked: chosen === number, "aria-label": `${name} = revision ${number}`,
    onchange: () => (location.hash = `#/history?${next}`) });
}

export async function view(route, ctx) {
  const { revisions } = await ctx.get("/v1/history?limit=200");
  const head = revisions[0]?.number;
  const q = route.query;
  const b = Number(q.get("b")) || head;
  const a = Number(q.get("a")) || revisions.find((r) => r.number < b)?.number;
  const rollback = (r) => ctx.button(`Roll back to ${r.number}`, `rollback:${r.number}`, async () => {
    const { data } = await ctx.call("POST", "/v1/rollback", { revision: r.number }, { "If-Match": `"${head}"` });
    return data.revision ? `Rolled back to revision ${r.number}: now revision ${data.revision}` : "Nothing to change";
  }, { confirm: true });
  const rows = revisions.map((r) =>
    h("tr", { "data-revision": r.number, class: r.number === head ? "head" : "" },
      h("td", { class: "pick" }, pick("a", r.number, a, q), pick("b", r.number, b, q)),
      h("td", { class: "num" }, r.number),
      h("td", {}, time(r.created_at)),
      h("td", {}, r.author, r.on_behalf_of ? h("span", { class: "muted" }, ` for ${r.on_behalf_of}`) : ""),
      h("td", {}, r.message, r.rollback_of ? h("span", { class: "muted" }, ` (rollback to ${r.rollback_of})`) : ""),
      h("td", { class: "changes" }, changes(r)),
      h("td", {}, r.number === head ? h("span", { class: "muted" }, "served") : rollback(r))));
  return h("div", {},
    h("h1", {}, "History"),
    h("p", { class: "muted" }, "Pick two revisions (A, B) to see what differs between them."),
    table(["A B", "revision", "when", "author", "message", "changes", ""], rows, { id: "history" }),
    a && b && a !== b ? await diff(a, b, q.get("doc"), ctx) : null);
}
