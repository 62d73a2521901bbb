// The painted labels: one class id per image pixel (UNLABELLED where nothing is painted),
// their coloured canvas layer, brush and eraser strokes, clicks, undo regions and the wire format.

import { S, UNLABELLED, markDirty, pushUndo, historyChanged } from "./state.js";
import { makeCanvas, scheduleRender } from "./view.js";
import { applyBoxes } from "./boxes.js";

// ------------------------------------------------------------------ labels <-> wire

export function encodeLabels() {
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

// Fresh labels for an image of S.W x S.H, filled from `saved` (the wire format) if given.
// Returns false when `saved` has another size and was ignored.
export function resetLabels(saved) {
  S.labels = new Uint8Array(S.W * S.H).fill(UNLABELLED);
  const ok = !saved || decodeLabels(saved);
  // labels from before this page's history (saved, or held by the server) count as strokes
  // unless the server knows them to be exactly a fit's clicks
  S.baseStrokes = labelledCount() > 0 && !(saved && saved.clicks === true);
  S.labelCanvas = makeCanvas(S.W, S.H);
  S.labelCtx = S.labelCanvas.getContext("2d");
  S.labelData = S.labelCtx.createImageData(S.W, S.H);
  paintLabelRect(0, 0, S.W, S.H);
  return ok;
}

export function labelledCount() {
  let n = 0;
  const a = S.labels;
  if (!a) return 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== UNLABELLED) n++;
  return n;
}

export function labelCounts() {
  const counts = {};
  const a = S.labels;
  if (!a) return counts;
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (v !== UNLABELLED) counts[v] = (counts[v] || 0) + 1;
  }
  return counts;
}

// ------------------------------------------------------------------ label layer

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
        const c = S.rgb[v] || [255, 255, 255];
        d[j] = c[0];
        d[j + 1] = c[1];
        d[j + 2] = c[2];
        d[j + 3] = 255;
      }
    }
  }
  if (x1 > x0 && y1 > y0) S.labelCtx.putImageData(S.labelData, 0, 0, x0, y0, x1 - x0, y1 - y0);
}

// ------------------------------------------------------------------ painting and undo

function stamp(cx, cy) {
  const s = S.stroke;
  const W = S.W;
  const H = S.H;
  const r = s.radius;
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

// A brush or eraser stroke from the tool's settings; a click passes its own
// `{ value, radius, kind: "click" }` (one disk, the click protocol's).
export function beginStroke(p, opts = {}) {
  const eraser = S.tool === "eraser";
  S.stroke = {
    before: S.labels.slice(),
    x0: Infinity,
    y0: Infinity,
    x1: -Infinity,
    y1: -Infinity,
    last: p,
    value: opts.value ?? (eraser ? UNLABELLED : S.cls),
    radius: opts.radius ?? S.size / 2,
    kind: opts.kind ?? (eraser ? "eraser" : "brush"),
  };
  stamp(p.x, p.y);
}

export function strokeTo(p) {
  const s = S.stroke;
  const dx = p.x - s.last.x;
  const dy = p.y - s.last.y;
  const n = Math.ceil(Math.hypot(dx, dy) / Math.max(0.5, S.size / 4));
  for (let k = 1; k <= n; k++) stamp(s.last.x + (dx * k) / n, s.last.y + (dy * k) / n);
  s.last = p;
}

function region(before, after, x0, y0, x1, y1, kind) {
  const w = x1 - x0;
  const h = y1 - y0;
  const b = new Uint8Array(w * h);
  const a = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const off = (y0 + y) * S.W + x0;
    b.set(before.subarray(off, off + w), y * w);
    a.set(after.subarray(off, off + w), y * w);
  }
  return { x0, y0, w, h, before: b, after: a, kind };
}

export function endStroke() {
  const s = S.stroke;
  S.stroke = null;
  if (!s || s.x0 === Infinity) return;
  pushUndo(region(s.before, S.labels, s.x0, s.y0, s.x1, s.y1, s.kind));
}

// Whether every label on the image was placed with the Click tool (erasing allowed): the
// history since the last Clear holds clicks only, and nothing older was painted. Boxes make
// it a box fit instead.
export function labelsAreClicks() {
  if (S.boxes.length || !labelledCount()) return false;
  for (let i = S.undo.length - 1; i >= 0; i--) {
    const k = S.undo[i].kind;
    if (k === "clear") return true;
    if (k !== "click" && k !== "eraser" && k !== "boxes") return false;
  }
  return !S.baseStrokes;
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

function apply(e, which) {
  if (e.kind === "boxes") {
    applyBoxes(e, which);
    scheduleRender();
  } else applyRegion(e, which);
}

export function undo() {
  if (S.stroke || S.boxDrag || !S.undo.length) return;
  const e = S.undo.pop();
  apply(e, "before");
  S.redo.push(e);
  historyChanged();
}

export function redo() {
  if (S.stroke || S.boxDrag || !S.redo.length) return;
  const e = S.redo.pop();
  apply(e, "after");
  S.undo.push(e);
  historyChanged();
}

// Replace every label by `wire` (run-length code of this image's size) as one undoable step:
// a proposal's labels, which undo takes back at once. Returns false for another size.
export function loadLabels(wire) {
  if (!S.labels || !wire || wire.width !== S.W || wire.height !== S.H) return false;
  const before = S.labels.slice();
  S.labels.fill(UNLABELLED);
  decodeLabels(wire);
  pushUndo(region(before, S.labels, 0, 0, S.W, S.H, "load"));
  paintLabelRect(0, 0, S.W, S.H);
  markDirty();
  scheduleRender();
  return true;
}

export function clearLabels() {
  if (!S.labels || !labelledCount()) return;
  const before = S.labels.slice();
  S.labels.fill(UNLABELLED);
  pushUndo(region(before, S.labels, 0, 0, S.W, S.H, "clear"));
  paintLabelRect(0, 0, S.W, S.H);
  markDirty();
  scheduleRender();
}
