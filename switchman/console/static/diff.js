// A line diff of two texts, laid out side by side: the longest common subsequence of lines.

import { h } from "./dom.js";

const LIMIT = 4_000_000; // cells of the table; past it, the whole text is shown as replaced

function script(a, b) {
  const n = a.length, m = b.length;
  if (n * m > LIMIT) return [...a.map((l) => ["del", l]), ...b.map((l) => ["add", l])];
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push(["same", a[i]]); i++; j++; }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) out.push(["add", b[j++]]);
    else out.push(["del", a[i++]]);
  }
  return out;
}

// Rows of [left, right, kind]: runs of removed and added lines are paired up as changed lines.
export function sideBySide(a, b) {
  const rows = [];
  let dels = [], adds = [];
  const flush = () => {
    for (let k = 0; k < Math.max(dels.length, adds.length); k++)
      rows.push([dels[k] ?? null, adds[k] ?? null, dels[k] !== undefined && adds[k] !== undefined ? "mod" : dels[k] !== undefined ? "del" : "add"]);
    dels = []; adds = [];
  };
  for (const [op, line] of script(a, b)) {
    if (op === "same") { flush(); rows.push([line, line, "same"]); }
    else (op === "del" ? dels : adds).push(line);
  }
  flush();
  return rows;
}

// The diff as a table, with unchanged stretches longer than 2 * context lines folded.
export function diffTable(a, b, leftTitle, rightTitle, context = 3) {
  const rows = sideBySide(a, b);
  const near = rows.map((_, i) => rows.slice(Math.max(0, i - context), i + context + 1).some((r) => r[2] !== "same"));
  const body = [];
  let folded = 0;
  rows.forEach(([left, right, kind], i) => {
    if (!near[i]) { folded++; return; }
    if (folded) body.push(h("tr", { class: "fold" }, h("td", { colspan: 2 }, `${folded} unchanged lines`)));
    folded = 0;
    body.push(h("tr", { class: kind }, h("td", { class: "left" }, left ?? ""), h("td", { class: "right" }, right ?? "")));
  });
  if (folded) body.push(h("tr", { class: "fold" }, h("td", { colspan: 2 }, `${folded} unchanged lines`)));
  return h("div", { class: "scroll" },
    h("table", { class: "diff" }, h("thead", {}, h("tr", {}, h("th", {}, leftTitle), h("th", {}, rightTitle))), h("tbody", {}, body)));
}
