// Client of the JSON API of dipseg.web.app (see docs/web.md): the only module that knows
// the /api/... paths, so the server can move things around behind one file.
//
// Every failure is an ApiError with a `kind` the page words its message by:
//   "offline"  the server cannot be reached (stopped, restarting, network down)
//   "busy"     429: every fit slot is taken; `retryAfter` says when to try again
//   "token"    403/401: the server does not know this page's token (it was restarted)
//   "missing"  404: no such image or job (after a restart, uploads are gone)
//   "server"   any other refusal; `message` is the server's own explanation

const enc = encodeURIComponent;

let token = "";

// The server's token, from /api/config: every request that changes something carries it,
// which is what tells the server the request comes from this page and not another site.
export function setToken(t) {
  token = t || "";
}

export class ApiError extends Error {
  constructor(kind, message, status = 0, retryAfter = 0) {
    super(message);
    this.name = "ApiError";
    this.kind = kind;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const OFFLINE = "cannot reach the dipseg server: is `dipseg serve` still running?";

async function errorText(resp) {
  try {
    const j = await resp.json();
    const d = j && j.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((x) => (x && x.msg) || JSON.stringify(x)).join("; ");
    return JSON.stringify(d);
  } catch (e) {
    return `HTTP ${resp.status}`;
  }
}

function kindOf(status) {
  if (status === 429) return "busy";
  if (status === 401 || status === 403) return "token";
  if (status === 404) return "missing";
  return "server";
}

// fetch, with a network failure ("Failed to fetch") turned into an "offline" ApiError
async function send(url, opt = {}) {
  const method = (opt.method || "GET").toUpperCase();
  if (method !== "GET" && method !== "HEAD") opt.headers = { ...(opt.headers || {}), "X-Dipseg-Token": token };
  let resp;
  try {
    resp = await fetch(url, opt);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError("offline", OFFLINE);
  }
  if (!resp.ok) {
    const retry = Number(resp.headers.get("Retry-After")) || 0;
    throw new ApiError(kindOf(resp.status), await errorText(resp), resp.status, retry);
  }
  return resp;
}

async function json(method, url, body) {
  const opt = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    opt.headers["Content-Type"] = "application/json";
    opt.body = JSON.stringify(body);
  }
  const resp = await send(url, opt);
  return resp.json();
}

export const getConfig = () => json("GET", "/api/config");

export const listImages = () => json("GET", "/api/images");

export const getImageInfo = (id) => json("GET", `/api/images/${enc(id)}`);

// The URL comes from the image's info (labels_url), not built here.
export const getLabels = (url) => json("GET", url);

// `tight`: kept with the boxes in the image's metadata, so a reload shows the same choice.
export const saveImage = (id, labels, boxes, tight) =>
  json("POST", `/api/images/${enc(id)}/save`, { labels, boxes: boxes || [], tight_boxes: !!tight });

// The network fitted on image `source` proposes image `id`'s mask and labels (now the server's
// unsaved work for `id`); answers the labels as run-length code and the mask's URL.
export const transfer = (id, source) => json("POST", `/api/images/${enc(id)}/transfer`, { source });

export const cancelJob = (jobId) => json("POST", `/api/jobs/${enc(jobId)}/cancel`);

// A cache-busting query, since the mask behind the same URL changes with every fit.
export const maskDownloadUrl = (id) => `/api/images/${enc(id)}/mask.png?download=1&t=${Date.now()}`;

export async function fetchBitmap(url) {
  const resp = await send(url, { cache: "no-store" });
  const blob = await resp.blob();
  // pixels exactly as the server sent them: the image as the fit sees it, the mask in its palette colours
  return createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
}

export async function uploadImage(file) {
  const fd = new FormData();
  fd.append("file", file, file.name);
  const resp = await send("/api/upload", { method: "POST", body: fd });
  return resp.json();
}

// EventSource cannot POST, so the event stream of a fit is read by hand from fetch's body.
async function readEvents(resp, onEvent) {
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError("offline", "the connection to the server broke off during the fit");
    }
    const { value, done } = chunk;
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let ev = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) ev = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trim());
      }
      if (data.length) await onEvent(ev, JSON.parse(data.join("\n")));
    }
  }
}

// Resolves when the stream ends; aborting `signal` closes it, which cancels the fit on the server.
// `tight`: the boxes touch their objects on every side (docs/boxes.md); sent only with boxes.
// `preset`: one of the config's `presets` (omitted: the server's, or its click preset for clicks).
// `clicks`: every label was placed with the Click tool (the server adds the protocol's frame).
export async function segment(id, labels, signal, onEvent, boxes, tight, preset, clicks) {
  const withBoxes = boxes && boxes.length;
  const body = withBoxes ? { labels, boxes, tight_boxes: !!tight } : { labels };
  if (preset) body.preset = preset;
  if (clicks) body.clicks = true;
  const resp = await send(`/api/images/${enc(id)}/segment`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  await readEvents(resp, onEvent);
}
