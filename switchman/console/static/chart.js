// A small SVG chart over time, 0-100 %: step lines (what was set) and dots (what was measured).

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

// series: [{name, class, points: [[t, value]], step: bool}]; t in seconds, value in 0..100. Drawn at the
// width it will have on the page (width, in CSS pixels), so that its text stays the page's size on any screen.
export function chart(series, start, end, title, width) {
  const W = Math.max(280, Math.round(width)), H = 200, L = 40, R = 8, T = 8, B = 20;
  const span = Math.max(end - start, 1);
  const x = (t) => L + ((t - start) / span) * (W - L - R);
  const y = (v) => T + (1 - Math.min(Math.max(v, 0), 100) / 100) * (H - T - B);
  const grid = [0, 25, 50, 75, 100].map((v) => [
    svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }),
    svg("text", { x: L - 4, y: y(v) + 4, class: "axis", "text-anchor": "end" }, `${v}%`),
  ]).flat();
  const seconds = Math.round(span);
  const axis = [
    svg("text", { x: L, y: H - 4, class: "axis" }, "start"),
    svg("text", { x: W - R, y: H - 4, class: "axis", "text-anchor": "end" }, `+${seconds >= 120 ? `${Math.round(seconds / 60)} min` : `${seconds} s`}`),
  ];
  const drawn = series.flatMap((s) => {
    if (!s.points.length) return [];
    if (!s.step) return s.points.map(([t, v]) => svg("circle", { cx: x(t), cy: y(v), r: 3, class: s.class }, svg("title", {}, `${s.name}: ${v}`)));
    let d = "";
    s.points.forEach(([t, v], i) => { d += i ? ` H${x(t)} V${y(v)}` : `M${x(t)} ${y(v)}`; });
    d += ` H${x(end)}`;
    return [svg("path", { d, class: s.class })];
  });
  const figure = document.createElement("figure");
  figure.className = "chart";
  figure.append(svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title }, ...grid, ...axis, ...drawn));
  const caption = document.createElement("figcaption");
  series.forEach((s) => {
    const key = document.createElement("span");
    key.className = `key ${s.class}`;
    caption.append(key, ` ${s.name} `);
  });
  figure.append(caption);
  return figure;
}
