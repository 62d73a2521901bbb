// Drawing the stage: image, mask overlay, label layer and brush cursor, under one zoom/pan
// transform. view = screen position of image pixel (0, 0) and CSS pixels per image pixel.

import { S, setData } from "./state.js";
import { drawBoxes } from "./boxes.js";

const app = document.getElementById("app");
const stage = document.getElementById("stage");
export const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");

export function makeCanvas(w, h) {
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  return c;
}

export function colourOf(c) {
  const rgb = S.rgb[c] || [255, 255, 255];
  return `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
}

export function scheduleRender() {
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
  if (S.hintOn && S.hint) {
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(S.hint.bitmap, 0, 0, S.W, S.H);
    ctx.imageSmoothingEnabled = false;
  }
  ctx.globalAlpha = 0.9;
  ctx.drawImage(S.labelCanvas, 0, 0);
  ctx.globalAlpha = 1;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  drawBoxes(ctx, colourOf);
  if (S.hintOn && S.hint && S.hint.suggestion) {
    // a ring the size of a click, drawn in screen pixels so it stays visible at any zoom
    const p = { x: v.x + (S.hint.suggestion.x + 0.5) * v.scale, y: v.y + (S.hint.suggestion.y + 0.5) * v.scale };
    const r = Math.max(8, 6 * v.scale);
    for (const [colour, width] of [["rgba(0,0,0,0.9)", 4], ["#ffffff", 2]]) {
      ctx.beginPath();
      ctx.arc(p.x, p.y, r, 0, 2 * Math.PI);
      ctx.moveTo(p.x - r - 6, p.y);
      ctx.lineTo(p.x - r + 3, p.y);
      ctx.moveTo(p.x + r - 3, p.y);
      ctx.lineTo(p.x + r + 6, p.y);
      ctx.strokeStyle = colour;
      ctx.lineWidth = width;
      ctx.stroke();
    }
  }
  ctx.strokeStyle = "rgba(255,255,255,0.3)";
  ctx.lineWidth = 1;
  ctx.strokeRect(v.x - 0.5, v.y - 0.5, S.W * v.scale + 1, S.H * v.scale + 1);
  if (S.pointer && !S.pan && app.dataset.state === "ready" && S.tool === "box") {
    // a crosshair in the class colour: where the box's corner goes
    const { sx, sy } = S.pointer;
    for (const [colour, width] of [["rgba(0,0,0,0.8)", 3], [colourOf(S.cls), 1.5]]) {
      ctx.beginPath();
      ctx.moveTo(sx - 10, sy);
      ctx.lineTo(sx + 10, sy);
      ctx.moveTo(sx, sy - 10);
      ctx.lineTo(sx, sy + 10);
      ctx.strokeStyle = colour;
      ctx.lineWidth = width;
      ctx.stroke();
    }
  } else if (S.pointer && !S.pan && app.dataset.state === "ready") {
    // the Click tool's disk is the click protocol's, whatever the brush size
    const radius = S.tool === "click" ? (S.config.click_radius + 0.5) : S.size / 2;
    const r = Math.max(1.5, radius * v.scale);
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

export function resize() {
  const r = stage.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(r.width * dpr));
  canvas.height = Math.max(1, Math.round(r.height * dpr));
  if (S.fitted) fitView();
  else scheduleRender();
}

// ------------------------------------------------------------------ zoom and pan

function updateZoom() {
  document.getElementById("zoom-value").textContent = `${Math.round(S.view.scale * 100)}%`;
  setData("zoom", S.view.scale.toFixed(4));
}

export function fitView() {
  if (!S.img) return;
  const r = canvas.getBoundingClientRect();
  const m = 16;
  const s = Math.max(0.01, Math.min((r.width - 2 * m) / S.W, (r.height - 2 * m) / S.H));
  S.view = { scale: s, x: (r.width - S.W * s) / 2, y: (r.height - S.H * s) / 2 };
  S.fitted = true;
  updateZoom();
  scheduleRender();
}

export function zoomAt(factor, sx, sy) {
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

export function zoomCentre(factor) {
  const r = canvas.getBoundingClientRect();
  zoomAt(factor, r.width / 2, r.height / 2);
}

// Image coordinates of a pointer event, with its canvas (CSS pixel) position as sx, sy.
export function toImage(ev) {
  const r = canvas.getBoundingClientRect();
  const sx = ev.clientX - r.left;
  const sy = ev.clientY - r.top;
  return { x: (sx - S.view.x) / S.view.scale, y: (sy - S.view.y) / S.view.scale, sx, sy };
}

export function imageToClient(x, y) {
  const r = canvas.getBoundingClientRect();
  return { x: r.left + S.view.x + x * S.view.scale, y: r.top + S.view.y + y * S.view.scale };
}

export function clientToImage(x, y) {
  return toImage({ clientX: x, clientY: y });
}

// ------------------------------------------------------------------ mask overlay

export function resetMask() {
  S.maskCanvas = makeCanvas(S.W, S.H);
  S.maskCtx = S.maskCanvas.getContext("2d");
  S.maskKind = "none";
  setHint(null);
}

// ------------------------------------------------------------------ "label here next"

/** The last fit's uncertainty overlay (an ImageBitmap) and suggested spot, or null. */
export function setHint(hint) {
  S.hint = hint;
  const s = hint && hint.suggestion;
  setData("suggestion", s ? `${s.x},${s.y}` : "");
  scheduleRender();
}

export function drawMask(bitmap, kind) {
  S.maskCtx.clearRect(0, 0, S.W, S.H);
  S.maskCtx.imageSmoothingEnabled = false;
  S.maskCtx.drawImage(bitmap, 0, 0, S.W, S.H);
  S.maskKind = kind;
  setData("mask", kind);
  scheduleRender();
}
