// The REST API as the page uses it: the token kept in sessionStorage, JSON calls, and the event stream.

const KEY = "switchman.token";

export const token = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

function headers(extra = {}) {
  const out = { ...extra };
  if (token.get()) out.Authorization = `Bearer ${token.get()}`;
  return out;
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "";
  }
}

export async function call(method, path, body, extraHeaders = {}) {
  const init = { method, headers: headers(extraHeaders) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, init);
  const data = resp.headers.get("Content-Type")?.startsWith("application/json") ? await resp.json() : null;
  if (!resp.ok) throw new ApiError(resp.status, data);
  return { data, etag: resp.headers.get("ETag") };
}

export const get = async (path) => (await call("GET", path)).data;

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// Follows /v1/events (server-sent events, read with fetch so that the token goes in a header, never a URL),
// calling onHint(kind, data) for each event and onLive(true|false) as the stream comes and goes.
export async function follow(onHint, onLive) {
  for (;;) {
    try {
      const resp = await fetch("/v1/events", { headers: headers(), cache: "no-store" });
      if (resp.ok) {
        onLive(true);
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const kind = /^event: (.*)$/m.exec(block)?.[1] || "message";
            const data = /^data: (.*)$/m.exec(block)?.[1] || "";
            onHint(kind, data);
          }
        }
      }
    } catch {
      // the server went away, or a reload: try again below
    }
    onLive(false);
    await sleep(1000);
  }
}
