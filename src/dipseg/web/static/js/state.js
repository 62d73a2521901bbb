// The page's one mutable state object, shared by every module, and the few changes to it
// that must always come with a side effect (undo history, the "saved" flag).

export const UNLABELLED = 255;
export const MAX_UNDO = 100;

export const S = {
  config: null,
  images: [],
  mode: "folder",
  id: null,
  info: null,
  W: 0,
  H: 0,
  img: null,
  rgb: [], // class id -> [r, g, b]
  labels: null, // Uint8Array W*H, 255 = unlabelled
  labelCanvas: null,
  labelCtx: null,
  labelData: null,
  maskCanvas: null,
  maskCtx: null,
  maskKind: "none",
  cls: 1,
  tool: "brush", // brush | eraser | box | click
  baseStrokes: false, // labels older than the undo history that were not clicks (see labelsAreClicks)
  clickPending: false, // a click came while a fit ran: segment again when it ends
  boxes: [], // [{cls, x0, y0, x1, y1}] in image pixels
  boxDrag: null,
  selectedBox: -1,
  size: 15,
  sizeChosen: false,
  opacity: 0.5,
  maskHidden: false,
  hintOn: false, // "label here next": show the uncertainty overlay and the suggested spot
  hint: null, // { bitmap, suggestion: {x, y} | null } of the last finished fit
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
  edits: 0, // label and box edits on this image ...
  sentEdits: 0, // ... of which the server holds the first `sentEdits` (sent with Segment or Save)
  maskUnsaved: false,
  saving: false,
  loadToken: 0,
  renderQueued: false,
};

const app = document.getElementById("app");

// #app[data-*] is what scripts and tests read, so every module publishes through here.
export function setData(key, value) {
  app.dataset[key] = String(value);
}

// The history lives here but its buttons live in main.js, which registers how to refresh them.
let historyListener = () => {};

export function onHistoryChange(fn) {
  historyListener = fn;
}

export function historyChanged() {
  historyListener();
}

export function pushUndo(entry) {
  S.undo.push(entry);
  if (S.undo.length > MAX_UNDO) {
    // what the dropped step did stays in the labels: remember whether it was more than clicks
    const k = S.undo.shift().kind;
    if (k === "clear") S.baseStrokes = false;
    else if (k !== "click" && k !== "eraser" && k !== "boxes") S.baseStrokes = true;
  }
  S.redo = [];
  historyChanged();
}

export function resetHistory() {
  S.undo = [];
  S.redo = [];
}

export function markDirty() {
  S.dirty = true;
  S.edits++;
  setData("saved", false);
}

// The server now holds the labels and boxes as they were after `n` edits (all of them by default).
export function markSent(n = S.edits) {
  S.sentEdits = Math.max(S.sentEdits, n);
}

// A newly opened image: what it opens with is on disk or held by the server.
export function resetSent() {
  S.edits = S.sentEdits = 0;
}

// Edits only this page holds: a reload or a closed tab would lose them.
export function hasUnsent() {
  return S.edits > S.sentEdits;
}

export function markMaskUnsaved() {
  S.maskUnsaved = true;
  setData("saved", false);
}

export function markSaved() {
  S.dirty = false;
  S.maskUnsaved = false;
  setData("saved", true);
}
