// Small helpers to build the page: elements, times, and the text form of documents.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const table = (head, rows, attrs = {}) =>
  h("div", { class: "scroll" },
    h("table", attrs, h("thead", {}, h("tr", {}, head.map((t) => h("th", {}, t)))), h("tbody", {}, rows)));

export const badge = (text, kind) => h("span", { class: `badge ${kind}` }, text);

export function time(seconds) {
  if (!seconds) return "";
  const d = new Date(seconds * 1000);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

const PLAIN = /^[A-Za-z_./][A-Za-z0-9_ ./:@*-]*$/;
const scalar = (v) =>
  typeof v === "string"
    ? (PLAIN.test(v) && !/^(true|false|null|yes|no|on|off|~)$/i.test(v) && !v.endsWith(" ") ? v : JSON.stringify(v))
    : JSON.stringify(v);

// A document as YAML lines (keys sorted, as the diff needs them stable).
export function yamlLines(value, indent = "") {
  if (Array.isArray(value)) {
    if (!value.length) return [`${indent}[]`];
    return value.flatMap((item) => {
      const inner = yamlLines(item, indent + "  ");
      return [`${indent}- ${inner[0].trimStart()}`, ...inner.slice(1)];
    });
  }
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort();
    if (!keys.length) return [`${indent}{}`];
    return keys.flatMap((k) => {
      const v = value[k];
      const nested = v && typeof v === "object" && (Array.isArray(v) ? v.length : Object.keys(v).length);
      return nested ? [`${indent}${scalar(k)}:`, ...yamlLines(v, indent + "  ")] : [`${indent}${scalar(k)}: ${yamlLines(v)[0]}`];
    });
  }
  return [`${indent}${scalar(value)}`];
}

export const docKey = (doc) => `${String(doc.kind).toLowerCase()}/${doc.metadata?.name}`;
