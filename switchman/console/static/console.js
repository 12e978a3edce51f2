// The console: sign-in, the router between views, buttons for those who may change, and live updates.

import { call, follow, get, token } from "./api.js";
import { h } from "./dom.js";
import * as envoys from "./envoys.js";
import * as documents from "./documents.js";
import * as history from "./history.js";
import * as resources from "./resources.js";
import * as rollouts from "./rollouts.js";

const VIEWS = { envoys, documents, history, resources, rollouts };
const $ = (id) => document.getElementById(id);

// What every view gets: who is signed in, buttons that only admins see, and messages.
const ctx = {
  admin: false,
  armed: null, // {key, until}: a button clicked once, waiting for its confirmation
  toast(message, kind = "ok") {
    const el = $("toast");
    el.textContent = message;
    el.className = kind;
    el.hidden = false;
    clearTimeout(ctx.toastTimer);
    ctx.toastTimer = setTimeout(() => (el.hidden = true), kind === "ok" ? 4000 : 8000);
  },
  // A button that changes something: only for admins, and asked twice ("Confirm ...") when confirm is set.
  button(label, key, action, { confirm = false } = {}) {
    if (!ctx.admin) return null;
    const armed = confirm && ctx.armed?.key === key && ctx.armed.until > Date.now();
    const el = h("button", { type: "button", class: `write${armed ? " armed" : ""}`, "data-action": key },
      armed ? `Confirm: ${label}` : label);
    el.addEventListener("click", async () => {
      if (confirm && !(ctx.armed?.key === key && ctx.armed.until > Date.now())) {
        ctx.armed = { key, until: Date.now() + 5000 };
        el.classList.add("armed");
        el.textContent = `Confirm: ${label}`;
        return;
      }
      ctx.armed = null;
      el.disabled = true;
      try {
        ctx.toast(await action());
      } catch (error) {
        ctx.toast(error.message, "error");
      }
      refresh();
    });
    return el;
  },
  call,
  get,
};

function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const name = parts.shift() || "envoys";
  return { name: VIEWS[name] ? name : "envoys", parts, query: new URLSearchParams(query || "") };
}

let rendering = null, again = false;
// Draws the current view again from the API, keeping the open <details> and the scroll position.
async function refresh() {
  if (rendering) { again = true; return rendering; }
  rendering = (async () => {
    do {
      again = false;
      const r = route();
      for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("here", a.dataset.view === r.name);
      let content;
      try {
        content = await VIEWS[r.name].view(r, ctx);
      } catch (error) {
        if (error.status === 401) return signIn("The token is no longer accepted.");
        content = h("p", { class: "error" }, `Could not load this view: ${error.message}`);
      }
      const main = $("main");
      const open = new Set([...main.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
      for (const d of content.querySelectorAll?.("details[data-key]") || []) if (open.has(d.dataset.key)) d.open = true;
      main.replaceChildren(content);
    } while (again);
  })();
  try { await rendering; } finally { rendering = null; }
}

function signIn(message = "") {
  const form = $("login-form").content.firstElementChild.cloneNode(true);
  const error = form.querySelector(".error");
  if (message) { error.textContent = message; error.hidden = false; }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    token.set(form.token.value.trim());
    if (!(await start())) {
      error.textContent = "That token is not known here.";
      error.hidden = false;
    }
  });
  $("main").replaceChildren(form);
  $("signout").hidden = true;
  $("who").textContent = "";
  form.token.focus();
}

let following = false;
// Who is signed in decides what is shown; returns false when the API wants a token and has none it knows.
async function start() {
  const me = await get("/v1/whoami");
  if (!me.role) { token.clear(); return false; }
  ctx.admin = me.role === "admin";
  document.body.classList.toggle("reader", !ctx.admin);
  $("who").textContent = me.tokens ? `${me.name} (${me.role})` : "no tokens: open to all";
  $("signout").hidden = !me.tokens;
  if (!following) {
    following = true;
    follow(onHint, (live) => {
      $("live").classList.toggle("on", live);
      $("live").title = `live updates: ${live ? "on" : "reconnecting"}`;
    });
  }
  await refresh();
  return true;
}

function onHint(kind) {
  const hints = VIEWS[route().name].hints;
  if (kind === "hello" || hints.includes(kind)) refresh();
}

$("signout").addEventListener("click", () => { token.clear(); location.reload(); });
window.addEventListener("hashchange", () => { ctx.armed = null; refresh(); });
start().then((ok) => ok || signIn(), (error) => ctx.toast(`The API does not answer: ${error.message}`, "error"));
