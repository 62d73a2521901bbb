// The box tool: drag a rectangle for the current class, drag a box to move it, Delete removes
// the selected one. Boxes live in image pixels (x0, y0, x1, y1; docs/boxes.md) and share the
// brush's undo history (entries of kind "boxes" hold the whole list before and after).

import { S, pushUndo, markDirty } from "./state.js";

const MIN_SIDE = 2; // a drag shorter than this (image pixels) is a click, not a box
const GRAB = 6; // screen pixels around a box's edge that still pick it

export function resetBoxes(boxes) {
  S.boxes = (boxes || []).map((b) => ({ ...b }));
  S.boxDrag = null;
  S.selectedBox = -1;
}

const copy = () => S.boxes.map((b) => ({ ...b }));
const clampX = (x) => Math.max(0, Math.min(S.W, x));
const clampY = (y) => Math.max(0, Math.min(S.H, y));

function commit(before) {
  pushUndo({ kind: "boxes", before, after: copy() });
  markDirty();
}

// the smallest box under image point p (with a few screen pixels of slack), or -1
export function boxAt(p) {
  const tol = GRAB / Math.max(S.view.scale, 1e-6);
  let best = -1;
  let area = Infinity;
  S.boxes.forEach((b, i) => {
    const inside = p.x >= b.x0 - tol && p.x <= b.x1 + tol && p.y >= b.y0 - tol && p.y <= b.y1 + tol;
    const a = (b.x1 - b.x0) * (b.y1 - b.y0);
    if (inside && a < area) {
      best = i;
      area = a;
    }
  });
  return best;
}

export function beginBox(p) {
  const hit = boxAt(p);
  const before = copy();
  if (hit >= 0) {
    S.selectedBox = hit;
    const b = S.boxes[hit];
    S.boxDrag = { kind: "move", i: hit, start: p, orig: { ...b }, before, moved: false };
  } else {
    const x = clampX(p.x);
    const y = clampY(p.y);
    S.boxDrag = { kind: "new", start: { x, y }, box: { cls: S.cls, x0: x, y0: y, x1: x, y1: y }, before };
    S.selectedBox = -1;
  }
}

export function dragBox(p) {
  const d = S.boxDrag;
  if (!d) return;
  if (d.kind === "new") {
    const x = clampX(p.x);
    const y = clampY(p.y);
    d.box.x0 = Math.min(d.start.x, x);
    d.box.x1 = Math.max(d.start.x, x);
    d.box.y0 = Math.min(d.start.y, y);
    d.box.y1 = Math.max(d.start.y, y);
  } else {
    const o = d.orig;
    const w = o.x1 - o.x0;
    const h = o.y1 - o.y0;
    const dx = Math.max(-o.x0, Math.min(S.W - o.x1, p.x - d.start.x));
    const dy = Math.max(-o.y0, Math.min(S.H - o.y1, p.y - d.start.y));
    const b = S.boxes[d.i];
    b.x0 = o.x0 + dx;
    b.y0 = o.y0 + dy;
    b.x1 = b.x0 + w;
    b.y1 = b.y0 + h;
    d.moved = d.moved || dx !== 0 || dy !== 0;
  }
}

export function endBox() {
  const d = S.boxDrag;
  S.boxDrag = null;
  if (!d) return;
  if (d.kind === "new") {
    const b = d.box;
    // whole pixels: what the user sees is what the fit gets
    b.x0 = Math.floor(b.x0);
    b.y0 = Math.floor(b.y0);
    b.x1 = Math.ceil(b.x1);
    b.y1 = Math.ceil(b.y1);
    if (b.x1 - b.x0 < MIN_SIDE || b.y1 - b.y0 < MIN_SIDE) return;
    S.boxes.push(b);
    S.selectedBox = S.boxes.length - 1;
    commit(d.before);
  } else if (d.moved) {
    const b = S.boxes[d.i];
    const w = b.x1 - b.x0;
    const h = b.y1 - b.y0;
    b.x0 = Math.round(b.x0);
    b.y0 = Math.round(b.y0);
    b.x1 = b.x0 + w;
    b.y1 = b.y0 + h;
    commit(d.before);
  }
}

export function deleteSelectedBox() {
  if (S.selectedBox < 0 || S.selectedBox >= S.boxes.length) return false;
  const before = copy();
  S.boxes.splice(S.selectedBox, 1);
  S.selectedBox = -1;
  commit(before);
  return true;
}

export function clearBoxes() {
  if (!S.boxes.length) return;
  const before = copy();
  S.boxes = [];
  S.selectedBox = -1;
  commit(before);
}

// undo / redo of a "boxes" history entry
export function applyBoxes(e, which) {
  S.boxes = e[which].map((b) => ({ ...b }));
  S.selectedBox = -1;
  markDirty();
}

// [[class, x0, y0, x1, y1], ...] for the API
export function encodeBoxes() {
  return S.boxes.map((b) => [b.cls, b.x0, b.y0, b.x1, b.y1]);
}

export function drawBoxes(ctx, colourOf) {
  const v = S.view;
  const all = S.boxDrag && S.boxDrag.kind === "new" ? [...S.boxes, S.boxDrag.box] : S.boxes;
  all.forEach((b, i) => {
    const x = v.x + b.x0 * v.scale;
    const y = v.y + b.y0 * v.scale;
    const w = (b.x1 - b.x0) * v.scale;
    const h = (b.y1 - b.y0) * v.scale;
    ctx.lineWidth = 4;
    ctx.strokeStyle = "rgba(0,0,0,0.8)";
    ctx.strokeRect(x, y, w, h);
    ctx.lineWidth = 2;
    ctx.strokeStyle = colourOf(b.cls);
    if (i === S.selectedBox) ctx.setLineDash([6, 4]);
    ctx.strokeRect(x, y, w, h);
    ctx.setLineDash([]);
  });
}
