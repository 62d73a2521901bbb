/* dipseg annotation page: paint labels on a canvas, stream a DIPSEG fit, save VOC masks.
 *
 * Plain JavaScript, no dependencies, no build step. Talks to the JSON API of
 * dipseg.web.app (see docs/web.md). State the page exposes for scripts:
 *   #app[data-state]  loading | empty | ready | error
 *   #app[data-fit]    idle | queued | running | done | cancelled | error
 *   #app[data-mask]   none | preview | final
 *   #app[data-saved]  true | false   (false: labels or mask changed since the last save)
 *   window.dipseg     small scripting API (state(), imageToClient(x, y), ...)
 */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const app = $("app");
  const stage = $("stage");
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const UNLABELLED = 255;
  const MAX_UNDO = 100;

  let RGB = []; // class id -> [r, g, b]

  const S = {
    config: null,
    images: [],
    mode: "folder",
    id: null,
    info: null,
    W: 0,
    H: 0,
    img: null,
    labels: null, // Uint8Array W*H, 255 = unlabelled
    labelCanvas: null,
    labelCtx: null,
    labelData: null,
    maskCanvas: null,
    maskCtx: null,
    maskKind: "none",
    cls: 1,
    tool: "brush",
    size: 15,
    sizeChosen: false,
    opacity: 0.5,
    maskHidden: false,
    view: { scale: 1, x: 0, y: 0 },
    fitted: true,
    undo: [],
    redo: [],
    stroke: null,
    pan: null,
    space: false,
    pointer: null,
    job: null,
    dirty: false,
    maskUnsaved: false,
    saving: false,
    loadToken: 0,
    renderQueued: false,
  };

  // ------------------------------------------------------------------ small helpers

  const enc = encodeURIComponent;

  function setData(key, value) {
    app.dataset[key] = String(value);
  }

  function status(text, kind) {
    const el = $("status");
    el.textContent = text;
    el.dataset.kind = kind || "info";
  }

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

  async function api(method, url, body) {
    const opt = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      opt.headers["Content-Type"] = "application/json";
      opt.body = JSON.stringify(body);
    }
    const resp = await fetch(url, opt);
    if (!resp.ok) throw new Error(await errorText(resp));
    return resp.json();
  }

  async function fetchBitmap(url) {
    const resp = await fetch(url, { cache: "no-store" });
    if (!resp.ok) throw new Error(await errorText(resp));
    const blob = await resp.blob();
    return createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  }

  function makeCanvas(w, h) {
    const c = document.createElement("canvas");
    c.width = w;
    c.height = h;
    return c;
  }

  function hexToRgb(hex) {
    const n = parseInt(hex.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }

  function colourOf(c) {
    const rgb = RGB[c] || [255, 255, 255];
    return `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
  }

  function index() {
    return S.images.findIndex((im) => im.id === S.id);
  }

  // ------------------------------------------------------------------ labels <-> wire

  function encodeLabels() {
    const a = S.labels;
    const rle = [];
    let v = a[0];
    let n = 1;
    for (let i = 1; i < a.length; i++) {
      const x = a[i];
      if (x === v) n++;
      else {
        rle.push(v, n);
        v = x;
        n = 1;
      }
    }
    rle.push(v, n);
    return { width: S.W, height: S.H, rle };
  }

  function decodeLabels(obj) {
    if (!obj || obj.width !== S.W || obj.height !== S.H) return false;
    const rle = obj.rle;
    let k = 0;
    for (let i = 0; i + 1 < rle.length; i += 2) {
      S.labels.fill(rle[i], k, k + rle[i + 1]);
      k += rle[i + 1];
    }
    return true;
  }

  function labelledCount() {
    let n = 0;
    const a = S.labels;
    if (!a) return 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== UNLABELLED) n++;
    return n;
  }

  function labelCounts() {
    const counts = {};
    const a = S.labels;
    if (!a) return counts;
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (v !== UNLABELLED) counts[v] = (counts[v] || 0) + 1;
    }
    return counts;
  }

  // ------------------------------------------------------------------ drawing

  function paintLabelRect(x0, y0, x1, y1) {
    const d = S.labelData.data;
    const W = S.W;
    for (let y = y0; y < y1; y++) {
      let i = y * W + x0;
      let j = i * 4;
      for (let x = x0; x < x1; x++, i++, j += 4) {
        const v = S.labels[i];
        if (v === UNLABELLED) {
          d[j + 3] = 0;
        } else {
          const c = RGB[v] || [255, 255, 255];
          d[j] = c[0];
          d[j + 1] = c[1];
          d[j + 2] = c[2];
          d[j + 3] = 255;
        }
      }
    }
    if (x1 > x0 && y1 > y0) S.labelCtx.putImageData(S.labelData, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }

  function scheduleRender() {
    if (S.renderQueued) return;
    S.renderQueued = true;
    requestAnimationFrame(render);
  }

  function render() {
    S.renderQueued = false;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!S.img) return;
    const v = S.view;
    ctx.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.x, dpr * v.y);
    ctx.imageSmoothingEnabled = v.scale < 1;
    ctx.drawImage(S.img, 0, 0, S.W, S.H);
    ctx.imageSmoothingEnabled = false;
    if (S.maskKind !== "none" && !S.maskHidden && S.opacity > 0) {
      ctx.globalAlpha = S.opacity;
      ctx.drawImage(S.maskCanvas, 0, 0, S.W, S.H);
    }
    ctx.globalAlpha = 0.9;
    ctx.drawImage(S.labelCanvas, 0, 0);
    ctx.globalAlpha = 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.strokeStyle = "rgba(255,255,255,0.3)";
    ctx.lineWidth = 1;
    ctx.strokeRect(v.x - 0.5, v.y - 0.5, S.W * v.scale + 1, S.H * v.scale + 1);
    if (S.pointer && !S.pan && app.dataset.state === "ready") {
      const r = Math.max(1.5, (S.size / 2) * v.scale);
      ctx.beginPath();
      ctx.arc(S.pointer.sx, S.pointer.sy, r, 0, 2 * Math.PI);
      ctx.strokeStyle = "rgba(0,0,0,0.8)";
      ctx.lineWidth = 3;
      ctx.stroke();
      ctx.strokeStyle = S.tool === "eraser" ? "#ffffff" : colourOf(S.cls);
      ctx.lineWidth = 1.5;
      ctx.stroke();
      if (S.tool === "eraser") {
        ctx.setLineDash([3, 3]);
        ctx.strokeStyle = "#000";
        ctx.stroke();
        ctx.setLineDash([]);
      }
    }
  }

  function resize() {
    const r = stage.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(r.width * dpr));
    canvas.height = Math.max(1, Math.round(r.height * dpr));
    if (S.fitted) fitView();
    else scheduleRender();
  }

  // ------------------------------------------------------------------ view

  function updateZoom() {
    $("zoom-value").textContent = `${Math.round(S.view.scale * 100)}%`;
    setData("zoom", S.view.scale.toFixed(4));
  }

  function fitView() {
    if (!S.img) return;
    const r = canvas.getBoundingClientRect();
    const m = 16;
    const s = Math.max(0.01, Math.min((r.width - 2 * m) / S.W, (r.height - 2 * m) / S.H));
    S.view = { scale: s, x: (r.width - S.W * s) / 2, y: (r.height - S.H * s) / 2 };
    S.fitted = true;
    updateZoom();
    scheduleRender();
  }

  function zoomAt(factor, sx, sy) {
    if (!S.img) return;
    const v = S.view;
    const s = Math.min(64, Math.max(0.02, v.scale * factor));
    v.x = sx - ((sx - v.x) * s) / v.scale;
    v.y = sy - ((sy - v.y) * s) / v.scale;
    v.scale = s;
    S.fitted = false;
    updateZoom();
    scheduleRender();
  }

  function zoomCentre(factor) {
    const r = canvas.getBoundingClientRect();
    zoomAt(factor, r.width / 2, r.height / 2);
  }

  function toImage(ev) {
    const r = canvas.getBoundingClientRect();
    const sx = ev.clientX - r.left;
    const sy = ev.clientY - r.top;
    return { x: (sx - S.view.x) / S.view.scale, y: (sy - S.view.y) / S.view.scale, sx, sy };
  }

  // ------------------------------------------------------------------ painting and undo

  function stamp(cx, cy) {
    const s = S.stroke;
    const W = S.W;
    const H = S.H;
    const r = S.size / 2;
    const x0 = Math.max(0, Math.floor(cx - r));
    const x1 = Math.min(W, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r));
    const y1 = Math.min(H, Math.ceil(cy + r));
    const v = s.value;
    const r2 = r * r;
    let changed = false;
    for (let y = y0; y < y1; y++) {
      const dy = y + 0.5 - cy;
      for (let x = x0; x < x1; x++) {
        const dx = x + 0.5 - cx;
        if (dx * dx + dy * dy <= r2) {
          const i = y * W + x;
          if (S.labels[i] !== v) {
            S.labels[i] = v;
            changed = true;
          }
        }
      }
    }
    const ix = Math.floor(cx);
    const iy = Math.floor(cy);
    if (ix >= 0 && iy >= 0 && ix < W && iy < H && S.labels[iy * W + ix] !== v) {
      S.labels[iy * W + ix] = v;
      changed = true;
    }
    if (!changed) return;
    const bx0 = Math.min(x0, ix);
    const by0 = Math.min(y0, iy);
    const bx1 = Math.max(x1, ix + 1);
    const by1 = Math.max(y1, iy + 1);
    s.x0 = Math.min(s.x0, bx0);
    s.y0 = Math.min(s.y0, by0);
    s.x1 = Math.max(s.x1, bx1);
    s.y1 = Math.max(s.y1, by1);
    paintLabelRect(Math.max(0, bx0), Math.max(0, by0), Math.min(W, bx1), Math.min(H, by1));
    markDirty();
  }

  function beginStroke(p) {
    S.stroke = {
      before: S.labels.slice(),
      x0: Infinity,
      y0: Infinity,
      x1: -Infinity,
      y1: -Infinity,
      last: p,
      value: S.tool === "eraser" ? UNLABELLED : S.cls,
    };
    stamp(p.x, p.y);
  }

  function strokeTo(p) {
    const s = S.stroke;
    const dx = p.x - s.last.x;
    const dy = p.y - s.last.y;
    const n = Math.ceil(Math.hypot(dx, dy) / Math.max(0.5, S.size / 4));
    for (let k = 1; k <= n; k++) stamp(s.last.x + (dx * k) / n, s.last.y + (dy * k) / n);
    s.last = p;
  }

  function region(before, after, x0, y0, x1, y1) {
    const w = x1 - x0;
    const h = y1 - y0;
    const b = new Uint8Array(w * h);
    const a = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) {
      const off = (y0 + y) * S.W + x0;
      b.set(before.subarray(off, off + w), y * w);
      a.set(after.subarray(off, off + w), y * w);
    }
    return { x0, y0, w, h, before: b, after: a };
  }

  function endStroke() {
    const s = S.stroke;
    S.stroke = null;
    if (!s || s.x0 === Infinity) return;
    pushUndo(region(s.before, S.labels, s.x0, s.y0, s.x1, s.y1));
  }

  function pushUndo(entry) {
    S.undo.push(entry);
    if (S.undo.length > MAX_UNDO) S.undo.shift();
    S.redo = [];
    updateButtons();
  }

  function applyRegion(e, which) {
    const src = e[which];
    for (let y = 0; y < e.h; y++) {
      const off = (e.y0 + y) * S.W + e.x0;
      S.labels.set(src.subarray(y * e.w, (y + 1) * e.w), off);
    }
    paintLabelRect(e.x0, e.y0, e.x0 + e.w, e.y0 + e.h);
    markDirty();
    scheduleRender();
  }

  function undo() {
    if (S.stroke || !S.undo.length) return;
    const e = S.undo.pop();
    applyRegion(e, "before");
    S.redo.push(e);
    updateButtons();
  }

  function redo() {
    if (S.stroke || !S.redo.length) return;
    const e = S.redo.pop();
    applyRegion(e, "after");
    S.undo.push(e);
    updateButtons();
  }

  function clearLabels() {
    if (!S.labels || !labelledCount()) return;
    const before = S.labels.slice();
    S.labels.fill(UNLABELLED);
    pushUndo(region(before, S.labels, 0, 0, S.W, S.H));
    paintLabelRect(0, 0, S.W, S.H);
    markDirty();
    scheduleRender();
  }

  function markDirty() {
    S.dirty = true;
    setData("saved", false);
  }

  // ------------------------------------------------------------------ controls

  function selectClass(c) {
    if (!S.config || c < 0 || c >= S.config.classes.length) return;
    S.cls = c;
    if (S.tool === "eraser") setTool("brush");
    for (const b of $("classes").children) b.setAttribute("aria-checked", String(Number(b.dataset.classId) === c));
    const chosen = $(`class-${c}`);
    if (chosen && chosen.scrollIntoView) chosen.scrollIntoView({ block: "nearest" });
    setData("class", c);
    scheduleRender();
  }

  function setTool(t) {
    S.tool = t;
    $("tool-brush").setAttribute("aria-pressed", String(t === "brush"));
    $("tool-eraser").setAttribute("aria-pressed", String(t === "eraser"));
    setData("tool", t);
    scheduleRender();
  }

  function setSize(n, chosen) {
    n = Math.max(1, Math.min(200, Math.round(n)));
    S.size = n;
    if (chosen) S.sizeChosen = true;
    $("brush-size").value = String(n);
    $("brush-size-value").textContent = `${n} px`;
    setData("brushSize", n);
    scheduleRender();
  }

  function setOpacity(pct) {
    S.opacity = Math.max(0, Math.min(100, pct)) / 100;
    $("opacity").value = String(Math.round(S.opacity * 100));
    $("opacity-value").textContent = `${Math.round(S.opacity * 100)}%`;
    scheduleRender();
  }

  function setProgress(value, max) {
    const p = $("progress");
    p.max = Math.max(1, max);
    p.value = max > 0 ? Math.min(value, max) : 1;
  }

  function updateButtons() {
    const ready = !!S.img && app.dataset.state === "ready";
    $("segment").disabled = !ready || !!S.job;
    $("cancel").disabled = !S.job;
    $("save").disabled = !ready || S.saving;
    $("undo").disabled = !S.undo.length;
    $("redo").disabled = !S.redo.length;
    $("clear").disabled = !ready;
    const dl = $("download");
    if (ready && S.maskKind === "final") {
      dl.href = `/api/images/${enc(S.id)}/mask.png?download=1&t=${Date.now()}`;
      dl.setAttribute("download", (S.info && S.info.files && S.info.files.mask) || "mask.png");
      dl.setAttribute("aria-disabled", "false");
    } else {
      dl.href = "#";
      dl.setAttribute("aria-disabled", "true");
    }
    updateNav();
  }

  function updateNav() {
    const i = index();
    $("prev").disabled = i <= 0;
    $("next").disabled = i < 0 || i >= S.images.length - 1;
    $("image-index").textContent = i >= 0 ? `image ${i + 1} / ${S.images.length}` : "";
  }

  function buildClasses() {
    const list = $("classes");
    list.replaceChildren();
    RGB = S.config.classes.map((c) => hexToRgb(c.colour));
    for (const c of S.config.classes) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "class-item";
      b.id = `class-${c.id}`;
      b.setAttribute("data-testid", `class-${c.id}`);
      b.dataset.classId = String(c.id);
      b.dataset.className = c.name;
      b.setAttribute("role", "radio");
      b.setAttribute("aria-checked", "false");
      b.title = c.id < 10 ? `${c.name} (key ${c.id})` : c.name;
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = c.colour;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = c.name;
      const key = document.createElement("span");
      key.className = "key";
      key.textContent = c.id < 10 ? String(c.id) : "";
      b.append(sw, name, key);
      b.addEventListener("click", () => selectClass(c.id));
      list.appendChild(b);
    }
    selectClass(S.config.classes.length > 1 ? 1 : 0);
  }

  function showList(L) {
    S.images = L.images;
    S.mode = L.mode;
    $("done-count").textContent = `${L.done} / ${L.total} done`;
    setData("done", L.done);
    setData("total", L.total);
    const sel = $("image-select");
    sel.replaceChildren(
      ...L.images.map((im, i) => {
        const o = document.createElement("option");
        o.value = im.id;
        o.textContent = `${im.done ? "✓" : "·"} ${i + 1}. ${im.name}`;
        return o;
      })
    );
    sel.disabled = !L.images.length;
    if (S.id) sel.value = S.id;
    updateNav();
  }

  async function refreshList() {
    showList(await api("GET", "/api/images"));
  }

  // ------------------------------------------------------------------ images

  async function openImage(id) {
    const token = ++S.loadToken;
    abortFit();
    S.stroke = null;
    setData("state", "loading");
    updateButtons();
    status("Loading…");
    try {
      const info = await api("GET", `/api/images/${enc(id)}`);
      const img = await fetchBitmap(info.image_url);
      let labels = null;
      let mask = null;
      let note = "";
      if (info.has_labels) {
        try {
          labels = await api("GET", info.labels_url);
        } catch (e) {
          note = ` (saved labels not loaded: ${e.message})`;
        }
      }
      if (info.has_mask) {
        try {
          mask = await fetchBitmap(info.mask_url);
        } catch (e) {
          note += ` (saved mask not loaded: ${e.message})`;
        }
      }
      if (token !== S.loadToken) return;
      S.id = info.id;
      S.info = info;
      S.W = info.width;
      S.H = info.height;
      S.img = img;
      S.labels = new Uint8Array(S.W * S.H).fill(UNLABELLED);
      if (labels && !decodeLabels(labels)) note += " (saved labels have another size; ignored)";
      S.labelCanvas = makeCanvas(S.W, S.H);
      S.labelCtx = S.labelCanvas.getContext("2d");
      S.labelData = S.labelCtx.createImageData(S.W, S.H);
      paintLabelRect(0, 0, S.W, S.H);
      S.maskCanvas = makeCanvas(S.W, S.H);
      S.maskCtx = S.maskCanvas.getContext("2d");
      S.maskKind = "none";
      if (mask) drawMask(mask, "final");
      setData("mask", S.maskKind);
      S.undo = [];
      S.redo = [];
      S.dirty = false;
      S.maskUnsaved = false;
      if (!S.sizeChosen) setSize(Math.max(3, Math.round(Math.max(S.W, S.H) / 30)));
      setData("imageId", info.id);
      setData("imageName", info.name);
      setData("width", S.W);
      setData("height", S.H);
      setData("saved", true);
      setData("fit", "idle");
      setData("previewCount", 0);
      setProgress(0, 1);
      $("image-name").textContent = `${info.name} · ${S.W}×${S.H}`;
      $("image-select").value = info.id;
      $("drop-hint").hidden = true;
      setData("state", "ready");
      fitView();
      updateButtons();
      const loaded = labels || mask ? `Loaded ${[labels && "labels", mask && "mask"].filter(Boolean).join(" and ")} from the output folder. ` : "";
      status(`${loaded}Paint blobs of two or more classes, then run DIPSEG (Enter).${note}`);
      if (window.history && window.history.replaceState) window.history.replaceState(null, "", `#${enc(info.id)}`);
    } catch (e) {
      if (token !== S.loadToken) return;
      setData("state", S.img ? "ready" : "error");
      updateButtons();
      status(`Cannot open ${id}: ${e.message}`, "error");
    }
  }

  function drawMask(bitmap, kind) {
    S.maskCtx.clearRect(0, 0, S.W, S.H);
    S.maskCtx.imageSmoothingEnabled = false;
    S.maskCtx.drawImage(bitmap, 0, 0, S.W, S.H);
    S.maskKind = kind;
    setData("mask", kind);
    scheduleRender();
  }

  async function switchTo(id) {
    if (!id || (id === S.id && S.img)) return;
    if (S.img && $("autosave").checked && (S.dirty || S.maskUnsaved)) {
      const ok = await save();
      if (!ok) return;
    }
    await openImage(id);
  }

  async function go(delta) {
    const i = index();
    const j = i + delta;
    if (i < 0 || j < 0 || j >= S.images.length) return;
    await switchTo(S.images[j].id);
  }

  async function uploadFiles(files) {
    let first = null;
    for (const file of files) {
      if (S.config && file.size > S.config.max_upload_bytes) {
        status(`${file.name} is ${file.size} bytes, more than the limit of ${S.config.max_upload_bytes}`, "error");
        continue;
      }
      status(`Uploading ${file.name}…`);
      const fd = new FormData();
      fd.append("file", file, file.name);
      try {
        const resp = await fetch("/api/upload", { method: "POST", body: fd });
        if (!resp.ok) throw new Error(await errorText(resp));
        const info = await resp.json();
        if (!first) first = info.id;
      } catch (e) {
        status(`Cannot open ${file.name}: ${e.message}`, "error");
      }
    }
    if (first) {
      await refreshList();
      await switchTo(first);
    }
  }

  // ------------------------------------------------------------------ segment, cancel, save

  async function readEvents(resp, onEvent) {
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
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

  async function onFitEvent(job, ev, d) {
    if (S.job !== job || S.id !== job.id) return;
    if (ev === "queued") {
      job.jobId = d.job;
      setData("job", d.job);
      setData("fit", "queued");
      status(d.position > 0 ? `Queued: ${d.position} fit(s) ahead…` : "Starting…");
    } else if (ev === "start") {
      setData("fit", "running");
      setProgress(0, d.total);
      status(d.warm_start ? "Fitting (continuing the previous fit)…" : "Fitting…");
    } else if (ev === "progress") {
      setData("fit", "running");
      setProgress(d.iteration, d.total);
      status(`Fitting… step ${d.iteration} / ${d.total} · ${Number(d.elapsed).toFixed(1)} s`);
      if (d.preview) {
        const bm = await fetchBitmap(d.preview);
        if (S.job !== job) return;
        drawMask(bm, "preview");
        setData("previewCount", Number(app.dataset.previewCount || 0) + 1);
      }
    } else if (ev === "done") {
      job.done = true;
      if (d.mask_url) {
        const bm = await fetchBitmap(d.mask_url);
        if (S.job !== job) return;
        drawMask(bm, "final");
        S.maskUnsaved = true;
        setData("saved", false);
      } else if (S.maskKind === "preview") {
        S.maskKind = "none";
        setData("mask", "none");
      }
      setProgress(d.iterations || 0, d.total || 0);
      const cancelled = d.stopped === "cancelled";
      const n = (d.classes || []).length;
      const what = cancelled ? "Stopped early" : "Done";
      const time = d.seconds !== undefined ? ` in ${Number(d.seconds).toFixed(1)} s` : "";
      const steps = `${d.iterations} steps${d.warm_start ? ", warm start" : ""}, ${n} class${n === 1 ? "" : "es"}`;
      status(`${what}${time} (${steps}).${d.message ? " Note: " + d.message : ""}`, cancelled ? "info" : "ok");
      setData("classesFound", (d.classes || []).map((c) => c.id).join(","));
      setData("fit", cancelled ? "cancelled" : "done");
    } else if (ev === "error") {
      job.done = true;
      setData("fit", "error");
      status(d.detail || "the fit failed", "error");
    }
  }

  async function runSegment() {
    if (!S.img || S.job || app.dataset.state !== "ready") return;
    if (!labelledCount()) {
      status("Paint some labels first: at least two classes.", "error");
      return;
    }
    const job = { id: S.id, ctl: new AbortController(), jobId: null, done: false };
    S.job = job;
    setData("fit", "queued");
    setData("previewCount", 0);
    setProgress(0, 1);
    updateButtons();
    status("Sending labels…");
    try {
      const resp = await fetch(`/api/images/${enc(job.id)}/segment`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({ labels: encodeLabels() }),
        signal: job.ctl.signal,
      });
      if (!resp.ok) throw new Error(await errorText(resp));
      await readEvents(resp, (ev, d) => onFitEvent(job, ev, d));
      if (!job.done && S.job === job) throw new Error("the connection closed before the fit finished");
    } catch (e) {
      if (S.job === job && !job.done) {
        if (e.name === "AbortError") {
          setData("fit", "cancelled");
          status("Stopped.");
        } else {
          setData("fit", "error");
          status(e.message, "error");
        }
      }
    } finally {
      if (S.job === job) {
        S.job = null;
        updateButtons();
      }
    }
  }

  async function cancelFit() {
    const job = S.job;
    if (!job) return;
    $("cancel").disabled = true;
    status("Stopping…");
    if (job.jobId) {
      try {
        await api("POST", `/api/jobs/${enc(job.jobId)}/cancel`);
        return; // the stream ends with a "done" event carrying the partial mask
      } catch (e) {
        /* already finished or unknown: fall through and drop the connection */
      }
    }
    job.ctl.abort();
  }

  function abortFit() {
    const job = S.job;
    if (!job) return;
    S.job = null;
    job.ctl.abort(); // closing the stream cancels the fit on the server
    setData("fit", "idle");
  }

  async function save() {
    if (!S.img || S.saving) return false;
    S.saving = true;
    updateButtons();
    status("Saving…");
    try {
      const r = await api("POST", `/api/images/${enc(S.id)}/save`, { labels: encodeLabels() });
      S.dirty = false;
      S.maskUnsaved = false;
      setData("saved", true);
      status(`Wrote ${Object.values(r.files).join(", ")} to ${r.out_dir}`, "ok");
      $("done-count").textContent = `${r.progress.done} / ${r.progress.total} done`;
      await refreshList();
      return true;
    } catch (e) {
      status(`Could not write the files: ${e.message}`, "error");
      return false;
    } finally {
      S.saving = false;
      updateButtons();
    }
  }

  // ------------------------------------------------------------------ events

  function bind() {
    new ResizeObserver(resize).observe(stage);

    // keep keyboard focus off buttons clicked with the mouse, so shortcuts keep working
    document.addEventListener("mousedown", (e) => {
      if (e.target.closest && e.target.closest("button")) e.preventDefault();
    });

    canvas.addEventListener("pointerdown", (e) => {
      if (!S.img || app.dataset.state !== "ready") return;
      try {
        canvas.setPointerCapture(e.pointerId);
      } catch (err) {
        /* synthetic pointers may not be capturable */
      }
      const p = toImage(e);
      S.pointer = p;
      if (e.button === 1 || e.button === 2 || (e.button === 0 && S.space)) {
        S.pan = { sx: e.clientX, sy: e.clientY, x: S.view.x, y: S.view.y };
        stage.classList.add("panning");
        e.preventDefault();
        return;
      }
      if (e.button !== 0) return;
      e.preventDefault();
      beginStroke(p);
      scheduleRender();
    });
    canvas.addEventListener("pointermove", (e) => {
      const p = toImage(e);
      S.pointer = p;
      if (S.pan) {
        S.view.x = S.pan.x + e.clientX - S.pan.sx;
        S.view.y = S.pan.y + e.clientY - S.pan.sy;
        S.fitted = false;
      } else if (S.stroke) {
        const evs = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
        for (const ce of evs.length ? evs : [e]) strokeTo(toImage(ce));
      }
      scheduleRender();
    });
    const up = () => {
      if (S.pan) {
        S.pan = null;
        stage.classList.remove("panning");
      }
      if (S.stroke) endStroke();
      scheduleRender();
    };
    canvas.addEventListener("pointerup", up);
    canvas.addEventListener("pointercancel", up);
    canvas.addEventListener("pointerleave", () => {
      if (!S.stroke && !S.pan) {
        S.pointer = null;
        scheduleRender();
      }
    });
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    canvas.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const p = toImage(e);
        const unit = e.deltaMode === 1 ? 0.05 : e.deltaMode === 2 ? 1 : 0.0015;
        zoomAt(Math.exp(-e.deltaY * unit), p.sx, p.sy);
      },
      { passive: false }
    );

    $("tool-brush").addEventListener("click", () => setTool("brush"));
    $("tool-eraser").addEventListener("click", () => setTool("eraser"));
    $("brush-size").addEventListener("input", (e) => setSize(Number(e.target.value), true));
    $("opacity").addEventListener("input", (e) => setOpacity(Number(e.target.value)));
    $("undo").addEventListener("click", undo);
    $("redo").addEventListener("click", redo);
    $("clear").addEventListener("click", clearLabels);
    $("zoom-in").addEventListener("click", () => zoomCentre(1.25));
    $("zoom-out").addEventListener("click", () => zoomCentre(0.8));
    $("zoom-fit").addEventListener("click", fitView);
    $("segment").addEventListener("click", runSegment);
    $("cancel").addEventListener("click", cancelFit);
    $("save").addEventListener("click", save);
    $("prev").addEventListener("click", () => go(-1));
    $("next").addEventListener("click", () => go(1));
    $("image-select").addEventListener("change", (e) => {
      e.target.blur(); // give the keyboard shortcuts back
      switchTo(e.target.value);
    });
    $("open").addEventListener("click", () => $("file-input").click());
    $("file-input").addEventListener("change", (e) => {
      const files = Array.from(e.target.files || []);
      e.target.value = "";
      uploadFiles(files);
    });
    $("download").addEventListener("click", (e) => {
      if ($("download").getAttribute("aria-disabled") === "true") e.preventDefault();
    });

    stage.addEventListener("dragover", (e) => {
      e.preventDefault();
      stage.classList.add("dragover");
    });
    stage.addEventListener("dragleave", () => stage.classList.remove("dragover"));
    stage.addEventListener("drop", (e) => {
      e.preventDefault();
      stage.classList.remove("dragover");
      const files = Array.from((e.dataTransfer && e.dataTransfer.files) || []).filter(
        (f) => !f.type || f.type.startsWith("image/")
      );
      if (files.length) uploadFiles(files);
    });

    document.addEventListener("keydown", onKey);
    document.addEventListener("keyup", (e) => {
      if (e.key === " ") S.space = false;
    });
    window.addEventListener("blur", () => {
      S.space = false;
    });
  }

  function onKey(e) {
    const t = e.target;
    const tag = t && t.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && !["range", "checkbox"].includes(t.type))) return;
    if ((tag === "BUTTON" || tag === "A") && (e.key === "Enter" || e.key === " ")) return;
    const k = e.key;
    const mod = e.ctrlKey || e.metaKey;
    if (mod && (k === "z" || k === "Z")) {
      e.preventDefault();
      if (e.shiftKey) redo();
      else undo();
      return;
    }
    if (mod && (k === "y" || k === "Y")) {
      e.preventDefault();
      redo();
      return;
    }
    if (mod && (k === "s" || k === "S")) {
      e.preventDefault();
      save();
      return;
    }
    if (mod || e.altKey) return;
    if (/^[0-9]$/.test(k)) {
      e.preventDefault();
      selectClass(Number(k));
      return;
    }
    let handled = true;
    switch (k) {
      case "[":
        setSize(S.size > 10 ? S.size / 1.2 : S.size - 1, true);
        break;
      case "]":
        setSize(S.size >= 10 ? S.size * 1.2 : S.size + 1, true);
        break;
      case "b":
      case "B":
        setTool("brush");
        break;
      case "e":
      case "E":
        setTool("eraser");
        break;
      case "Enter":
        runSegment();
        break;
      case "Escape":
        cancelFit();
        break;
      case "n":
      case "N":
      case "PageDown":
        go(1);
        break;
      case "p":
      case "P":
      case "PageUp":
        go(-1);
        break;
      case "+":
      case "=":
        zoomCentre(1.25);
        break;
      case "-":
      case "_":
        zoomCentre(0.8);
        break;
      case "f":
      case "F":
        fitView();
        break;
      case "m":
      case "M":
        S.maskHidden = !S.maskHidden;
        scheduleRender();
        break;
      case "o":
      case "O":
        $("file-input").click();
        break;
      case " ":
        S.space = true;
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
  }

  // ------------------------------------------------------------------ scripting API

  window.dipseg = {
    state: () => ({
      state: app.dataset.state,
      fit: app.dataset.fit,
      mask: app.dataset.mask,
      saved: app.dataset.saved === "true",
      image: S.id,
      width: S.W,
      height: S.H,
      cls: S.cls,
      tool: S.tool,
      brushSize: S.size,
      zoom: S.view.scale,
      labelled: labelledCount(),
      undo: S.undo.length,
      redo: S.redo.length,
      job: S.job ? S.job.jobId : null,
    }),
    labelCounts,
    imageToClient: (x, y) => {
      const r = canvas.getBoundingClientRect();
      return { x: r.left + S.view.x + x * S.view.scale, y: r.top + S.view.y + y * S.view.scale };
    },
    clientToImage: (x, y) => toImage({ clientX: x, clientY: y }),
    selectClass,
    setTool,
    setBrushSize: (n) => setSize(n, true),
    segment: runSegment,
    cancel: cancelFit,
    save,
    next: () => go(1),
    prev: () => go(-1),
    open: switchTo,
    undo,
    redo,
  };

  // ------------------------------------------------------------------ start

  async function start() {
    bind();
    setOpacity(50);
    try {
      S.config = await api("GET", "/api/config");
      buildClasses();
      await refreshList();
    } catch (e) {
      setData("state", "error");
      status(`Cannot reach the dipseg server: ${e.message}`, "error");
      return;
    }
    setData("mode", S.mode);
    resize();
    if (!S.images.length) {
      setData("state", "empty");
      $("drop-hint").hidden = false;
      status(S.mode === "folder" ? "The folder holds no images: open or drop one." : "Open or drop an image to start.");
      updateButtons();
      return;
    }
    const wanted = decodeURIComponent(window.location.hash.slice(1));
    const first = S.images.find((im) => im.id === wanted) || S.images.find((im) => !im.done) || S.images[0];
    await openImage(first.id);
  }

  start();
})();
