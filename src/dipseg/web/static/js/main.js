/* dipseg annotation page: paint labels on a canvas, stream a DIPSEG fit, save VOC masks.
 *
 * Plain JavaScript ES modules, no dependencies, no build step; this is the entry point the
 * page loads. Talks to the JSON API of dipseg.web.app (see docs/web.md). State the page
 * exposes for scripts:
 *   #app[data-state]  loading | empty | ready | error
 *   #app[data-fit]    idle | waiting | queued | running | done | cancelled | error
 *                     (waiting: the server is busy and the page retries by itself)
 *   #app[data-mask]   none | preview | final | proposed
 *                     (proposed: transferred from the previous image's network, not fitted yet)
 *   #app[data-proposal] none | loading | shown | skipped | error
 *                     ("start from previous image" for the image shown: none when not asked;
 *                     skipped: it has work of its own, or the image left has no fitted network)
 *   #app[data-start-from-previous] on | off
 *   #app[data-saved]  true | false   (false: labels or mask not saved in the output folder yet,
 *                     including work the server holds from before a reload)
 *   #app[data-server] up | down | restarted
 *   #app[data-hint]   on | off       ("label here next" shown)
 *   #app[data-suggestion] "x,y"       (the spot the last fit suggests labelling next, image pixels; "" if none)
 *   #app[data-tool]   brush | eraser | box | click
 *   window.dipseg     small scripting API (state(), imageToClient(x, y), ...)
 */
import * as api from "./api.js";
import { S, setData, onHistoryChange, resetHistory, markDirty, markMaskUnsaved, markSaved, markSent, resetSent, hasUnsent } from "./state.js";
import {
  resetLabels,
  encodeLabels,
  labelledCount,
  labelCounts,
  beginStroke,
  strokeTo,
  endStroke,
  labelsAreClicks,
  undo,
  redo,
  clearLabels,
  loadLabels,
} from "./labels.js";
import { resetBoxes, beginBox, dragBox, endBox, deleteSelectedBox, encodeBoxes } from "./boxes.js";
import {
  canvas,
  scheduleRender,
  resize,
  fitView,
  zoomAt,
  zoomCentre,
  toImage,
  imageToClient,
  clientToImage,
  resetMask,
  drawMask,
  setHint,
} from "./view.js";

const $ = (id) => document.getElementById(id);
const BACKGROUND = 0; // class of a right click with the Click tool, as of the server's click frame and boxes
const app = $("app");
const stage = $("stage");

// ------------------------------------------------------------------ small helpers

function status(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.dataset.kind = kind || "info";
}

// What went wrong, in the user's words: an unreachable server is not a full disk.
function explain(e, doing) {
  if (e.kind === "offline") return `${doing}: ${e.message}`;
  if (e.kind === "busy") return `${doing}: the server is busy; try again in a moment.`;
  return `${doing}: ${e.message}`;
}

// After "offline", "token" or "missing" errors: is the server back, and is it a new one?
// A restarted server has a new token and has forgotten uploads and unsaved work.
async function checkServer() {
  let cfg;
  try {
    cfg = await api.getConfig();
  } catch (e) {
    setData("server", "down");
    return "down";
  }
  if (S.config && cfg.token === S.config.token) {
    setData("server", "up");
    return "same";
  }
  S.config = cfg;
  api.setToken(cfg.token);
  setData("server", "restarted");
  try {
    await refreshList();
  } catch (e) {
    /* shown by the caller */
  }
  return "restarted";
}

const RESTARTED = "The server was restarted: the image list is reloaded, and work it had not saved is gone.";

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function index() {
  return S.images.findIndex((im) => im.id === S.id);
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
  $("tool-box").setAttribute("aria-pressed", String(t === "box"));
  $("tool-click").setAttribute("aria-pressed", String(t === "click"));
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
  $("delete-box").disabled = !ready || S.selectedBox < 0;
  $("box-count").textContent = `${S.boxes.length} box${S.boxes.length === 1 ? "" : "es"}`;
  setData("boxes", S.boxes.length);
  $("clear").disabled = !ready;
  const dl = $("download");
  if (ready && (S.maskKind === "final" || S.maskKind === "proposed")) {
    dl.href = api.maskDownloadUrl(S.id);
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

function toggleStartFromPrevious(on) {
  $("start-from-previous").checked = on;
  setData("startFromPrevious", on ? "on" : "off");
}

// The keys live in a panel over the canvas, so the sidebar keeps room for every class.
function toggleHint(on) {
  S.hintOn = on === undefined ? !S.hintOn : on;
  $("hint").checked = S.hintOn;
  setData("hint", S.hintOn ? "on" : "off");
  scheduleRender();
}

function toggleHelp(show) {
  const panel = $("help");
  const open = show === undefined ? panel.hidden : show;
  panel.hidden = !open;
  $("help-toggle").setAttribute("aria-expanded", String(open));
}

function buildClasses() {
  const list = $("classes");
  list.replaceChildren();
  S.rgb = S.config.classes.map((c) => hexToRgb(c.colour));
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

// The preset of the next Segment: the server's unless the annotator picks another (remembered
// in this browser), e.g. `clicks`, which needs fewer clicks per object (docs/interactive.md).
const PRESET_KEY = "dipseg-preset";

// "" in the Preset list: the server decides, with the click preset for labels made with the
// Click tool alone (POST .../segment with `clicks`, no `preset`).
function autoPresetInfo() {
  const clicks = S.config.click_preset;
  const description = clicks
    ? `${clicks} when every label was placed with the Click tool, the server's ${S.config.preset} otherwise.`
    : `The server's ${S.config.preset}.`;
  return { name: "auto", description };
}

function buildPresets() {
  const select = $("preset");
  select.replaceChildren();
  const auto = document.createElement("option");
  auto.value = "";
  auto.textContent = "auto";
  auto.title = autoPresetInfo().description;
  select.appendChild(auto);
  for (const p of S.config.presets) {
    const o = document.createElement("option");
    o.value = p.name;
    o.textContent = p.name;
    o.title = p.name === S.config.preset ? `The server's default. ${p.description}` : p.description;
    select.appendChild(o);
  }
  let saved = null;
  try {
    saved = localStorage.getItem(PRESET_KEY);
  } catch (e) {
    saved = null; // storage refused (private mode): the choice lasts for this page only
  }
  select.value = S.config.presets.some((p) => p.name === saved) ? saved : "";
  select.title = presetInfo().description;
}

function presetInfo() {
  const v = $("preset").value;
  return (v && S.config.presets.find((p) => p.name === v)) || autoPresetInfo();
}

function onPresetChange() {
  $("preset").title = presetInfo().description;
  try {
    localStorage.setItem(PRESET_KEY, $("preset").value);
  } catch (e) {
    // storage refused: the choice still holds for this page
  }
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
  showList(await api.listImages());
}

// ------------------------------------------------------------------ images

// "Start from previous image": the network fitted on image `from` proposes a mask and labels
// for `info`'s image, which has none of its own. Asked while the page is still loading the
// image, so nothing can be painted that the proposal would then replace.
async function propose(info, from) {
  let src;
  try {
    src = await api.getImageInfo(from);
  } catch (e) {
    return { kind: "skipped", note: "" };
  }
  if (!src.has_model) {
    const why = `${src.name} has no fitted network yet (segment it first to start the next image from it)`;
    return { kind: "skipped", note: ` Nothing proposed: ${why}.` };
  }
  setData("proposal", "loading");
  status(`Proposing a mask from ${src.name}…`);
  try {
    const p = await api.transfer(info.id, from);
    const bitmap = await api.fetchBitmap(p.mask_url);
    const fitted = S.images.find((im) => im.id === p.fitted_on);
    return { kind: "shown", p, bitmap, name: fitted ? fitted.name : p.fitted_on };
  } catch (e) {
    return { kind: "error", note: ` ${explain(e, "Nothing proposed")}` };
  }
}

async function openImage(id, from = null) {
  const token = ++S.loadToken;
  abortFit();
  S.stroke = null;
  setData("state", "loading");
  setData("proposal", "none");
  updateButtons();
  status("Loading…");
  try {
    const info = await api.getImageInfo(id);
    const img = await api.fetchBitmap(info.image_url);
    let labels = null;
    let mask = null;
    let note = "";
    let proposal = null;
    if (info.has_labels) {
      try {
        labels = await api.getLabels(info.labels_url);
      } catch (e) {
        note = ` (saved labels not loaded: ${e.message})`;
      }
    }
    if (info.has_mask) {
      try {
        mask = await api.fetchBitmap(info.mask_url);
      } catch (e) {
        note += ` (saved mask not loaded: ${e.message})`;
      }
    }
    if (token !== S.loadToken) return;
    if (from && from !== info.id && $("start-from-previous").checked) {
      if (info.has_labels || info.has_mask) proposal = { kind: "skipped", note: "" }; // never replace its own work
      else proposal = await propose(info, from);
      if (token !== S.loadToken) return;
    }
    S.id = info.id;
    S.info = info;
    S.W = info.width;
    S.H = info.height;
    S.img = img;
    if (!resetLabels(labels)) note += " (saved labels have another size; ignored)";
    // The boxes come back with the image (this session's, else the saved _boxes.csv), and
    // with them whether they were tight.
    resetBoxes((info.boxes || []).map(([cls, x0, y0, x1, y1]) => ({ cls, x0, y0, x1, y1 })));
    $("tight-boxes").checked = !!info.tight_boxes;
    if (info.boxes_note) note += ` (${info.boxes_note})`;
    resetMask();
    if (mask) drawMask(mask, info.proposed ? "proposed" : "final");
    setData("mask", S.maskKind);
    resetHistory();
    markSaved();
    const unsaved = info.unsaved || {};
    if (unsaved.labels) markDirty();
    if (unsaved.mask) markMaskUnsaved();
    const shown = proposal && proposal.kind === "shown";
    if (shown) {
      // the server holds them as this image's unsaved work, as after a fit; one undo takes the labels back
      if (!loadLabels(proposal.p.labels)) note += " (the proposed labels have another size; ignored)";
      drawMask(proposal.bitmap, "proposed");
      markDirty();
      markMaskUnsaved();
    }
    resetSent();
    setData("proposal", proposal ? proposal.kind : info.proposed ? "shown" : "none");
    if (!S.sizeChosen) setSize(Math.max(3, Math.round(Math.max(S.W, S.H) / 30)));
    setData("imageId", info.id);
    setData("imageName", info.name);
    setData("width", S.W);
    setData("height", S.H);
    setData("fit", "idle");
    setData("previewCount", 0);
    setProgress(0, 1);
    $("image-name").textContent = `${info.name} · ${S.W}×${S.H}`;
    $("image-select").value = info.id;
    $("drop-hint").hidden = true;
    setData("state", "ready");
    fitView();
    updateButtons();
    const what = (a, b) => [a && "labels", b && "mask"].filter(Boolean).join(" and ");
    const held = what(labels && unsaved.labels, mask && unsaved.mask);
    const saved = what(labels && !unsaved.labels, mask && !unsaved.mask);
    let loaded = "";
    if (held) loaded += `The ${held} from before are not saved yet: Save (Ctrl+S) writes them. `;
    if (saved) loaded += `Loaded ${saved} from the output folder. `;
    if (shown) {
      const p = proposal.p;
      const n = p.labelled;
      status(
        `Proposed by the network of ${proposal.name} (not fitted on this image): the mask, and ${n} confident ` +
          `pixel${n === 1 ? "" : "s"} as labels. Correct them and press Segment (Enter), or Save to keep the ` +
          `proposal.${p.message ? " Note: " + p.message : ""}${note}`,
        "ok"
      );
    } else {
      if (info.proposed && !held) loaded += "The mask shown was proposed from another image's network. ";
      const told = `${note}${proposal ? proposal.note : ""}`;
      status(`${loaded}Paint two or more classes, box objects (R) and press Enter; or click objects (K): each click segments.${told}`);
    }
    if (window.history && window.history.replaceState) window.history.replaceState(null, "", `#${encodeURIComponent(info.id)}`);
  } catch (e) {
    if (token !== S.loadToken) return;
    const server = e.kind === "missing" || e.kind === "token" || e.kind === "offline" ? await checkServer() : "same";
    if (token !== S.loadToken) return;
    if (server === "restarted") {
      const again = S.images.find((im) => im.id === id) || S.images.find((im) => !im.done) || S.images[0];
      if (again) {
        await openImage(again.id);
        if (app.dataset.state === "ready") status(`${RESTARTED} ${$("status").textContent}`, "info");
        return;
      }
    }
    setData("state", S.img ? "ready" : "error");
    updateButtons();
    status(server === "restarted" ? RESTARTED : explain(e, `Cannot open ${id}`), "error");
  }
}

// `from`: the image the person moves on from (Next / Previous), which "start from previous image" starts from.
async function switchTo(id, from = null) {
  if (!id || (id === S.id && S.img)) return;
  if (S.img && $("autosave").checked && (S.dirty || S.maskUnsaved)) {
    const ok = await save();
    if (!ok) return;
  } else if (S.img && hasUnsent() && !window.confirm(`Leave ${S.id}? Its labels and boxes since the last Segment or Save are kept nowhere else.`)) {
    return;
  }
  if (!S.images.some((im) => im.id === id) && (await checkServer()) === "restarted") {
    status(RESTARTED, "info");
    return;
  }
  await openImage(id, from);
}

async function go(delta) {
  const i = index();
  const j = i + delta;
  if (i < 0 || j < 0 || j >= S.images.length) return;
  await switchTo(S.images[j].id, S.id);
}

async function uploadFiles(files) {
  let first = null;
  for (const file of files) {
    if (S.config && file.size > S.config.max_upload_bytes) {
      status(`${file.name} is ${file.size} bytes, more than the limit of ${S.config.max_upload_bytes}`, "error");
      continue;
    }
    status(`Uploading ${file.name}…`);
    try {
      const info = await api.uploadImage(file);
      if (!first) first = info.id;
    } catch (e) {
      if (e.kind === "token" && (await checkServer()) === "restarted") {
        status(`${RESTARTED} Open ${file.name} again.`, "error");
      } else {
        status(explain(e, `Cannot open ${file.name}`), "error");
      }
    }
  }
  if (first) {
    await refreshList();
    await switchTo(first);
  }
}

// ------------------------------------------------------------------ segment, cancel, save

async function onFitEvent(job, ev, d) {
  if (S.job !== job || S.id !== job.id) return;
  markSent(job.edits); // any event means the server accepted the job, and recorded its labels and boxes
  if (ev === "queued") {
    job.jobId = d.job;
    setData("job", d.job);
    setData("fit", "queued");
    status(d.position > 0 ? `Queued: ${d.position} fit(s) ahead…` : "Starting…");
  } else if (ev === "start") {
    setData("fit", "running");
    setProgress(0, d.total);
    setData("preset", d.preset);
    const why = job.auto && job.clicks && d.preset === S.config.click_preset ? " (auto: every label is a click)" : "";
    status(d.warm_start ? `Fitting with ${d.preset}${why} (continuing the previous fit)…` : `Fitting with ${d.preset}${why}…`);
  } else if (ev === "progress") {
    setData("fit", "running");
    setProgress(d.iteration, d.total);
    status(`Fitting… step ${d.iteration} / ${d.total} · ${Number(d.elapsed).toFixed(1)} s`);
    if (d.preview) {
      const bm = await api.fetchBitmap(d.preview);
      if (S.job !== job) return;
      drawMask(bm, "preview");
      setData("previewCount", Number(app.dataset.previewCount || 0) + 1);
    }
  } else if (ev === "done") {
    job.done = true;
    if (d.mask_url) {
      const bm = await api.fetchBitmap(d.mask_url);
      if (S.job !== job) return;
      drawMask(bm, "final");
      markMaskUnsaved();
      if (d.uncertainty) {
        const hint = await api.fetchBitmap(d.uncertainty);
        if (S.job !== job) return;
        setHint({ bitmap: hint, suggestion: d.suggestion || null });
      }
    } else if (S.maskKind === "preview") {
      S.maskKind = "none";
      setData("mask", "none");
    }
    setProgress(d.iterations || 0, d.total || 0);
    const cancelled = d.stopped === "cancelled";
    const n = (d.classes || []).length;
    const time = d.seconds !== undefined ? ` in ${Number(d.seconds).toFixed(1)} s` : "";
    const warm = d.warm_start ? ", warm start" : "";
    const found = `${n} class${n === 1 ? "" : "es"}`;
    let text;
    if (cancelled && d.mask_url) {
      text = `Cancelled after ${d.iterations} of ${d.total} steps: the mask is the prediction at that point.`;
    } else if (cancelled) {
      text = "Cancelled before the fit started.";
    } else if (d.stopped === "early") {
      text = `Done${time}: converged after ${d.iterations} of ${d.total} steps${warm}, ${found}.`;
    } else {
      text = `Done${time} (${d.iterations} steps${warm}, ${found}).`;
    }
    status(`${text}${d.message ? " Note: " + d.message : ""}`, cancelled ? "info" : "ok");
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
  if (!labelledCount() && !S.boxes.length) {
    status("Paint some labels first (at least two classes), or draw a box around an object.", "error");
    return;
  }
  const job = { id: S.id, ctl: new AbortController(), jobId: null, done: false, auto: !$("preset").value,
    clicks: labelsAreClicks() };
  S.clickPending = false;
  S.job = job;
  setData("fit", "queued");
  setData("previewCount", 0);
  setProgress(0, 1);
  updateButtons();
  status("Sending labels…");
  try {
    const labels = encodeLabels();
    job.edits = S.edits;
    for (let attempt = 1; ; attempt++) {
      try {
        await api.segment(job.id, labels, job.ctl.signal, (ev, d) => onFitEvent(job, ev, d), encodeBoxes(),
          $("tight-boxes").checked, $("preset").value || null, job.clicks);
        break;
      } catch (e) {
        // every fit slot is taken: wait as long as the server asks, then try again by itself
        if (e.kind !== "busy" || attempt >= BUSY_RETRIES || S.job !== job) throw e;
        setData("fit", "waiting");
        await waitBusy(job, Math.max(1, e.retryAfter || 2));
      }
    }
    if (!job.done && S.job === job) throw new Error("the connection closed before the fit finished");
  } catch (e) {
    if (S.job === job && !job.done) {
      if (e.name === "AbortError") {
        setData("fit", "cancelled");
        status("Cancelled.");
      } else if (e.kind === "busy") {
        setData("fit", "error");
        status("The server stayed busy with other fits; press Segment to try again.", "error");
      } else {
        setData("fit", "error");
        const server = e.kind === "offline" || e.kind === "token" || e.kind === "missing" ? await checkServer() : "same";
        status(server === "restarted" ? RESTARTED : explain(e, "The fit did not run"), "error");
      }
    }
  } finally {
    if (S.job === job) {
      S.job = null;
      updateButtons();
      // clicks that came during this fit: fit them now, unless it was cancelled or failed
      if (S.clickPending && S.id === job.id && app.dataset.fit === "done") runSegment();
      else S.clickPending = false;
    }
  }
}

// The Click tool: one click labels a disk of the click protocol's radius with `cls` (the
// current class; background for a right click) and segments, as the robot of
// docs/interactive.md does; a click during a fit is fitted when that fit ends.
function placeClick(p, cls) {
  const x = Math.floor(p.x);
  const y = Math.floor(p.y);
  if (x < 0 || y < 0 || x >= S.W || y >= S.H) return;
  beginStroke({ x: x + 0.5, y: y + 0.5 }, { value: cls, radius: S.config.click_radius, kind: "click" });
  endStroke();
  scheduleRender();
  updateButtons();
  if (S.job) S.clickPending = true;
  else runSegment();
}

const BUSY_RETRIES = 30;

// Counts down the server's Retry-After in the status line; Cancel (Esc) ends the wait.
function waitBusy(job, seconds) {
  return new Promise((resolve, reject) => {
    let left = seconds;
    const tick = () => {
      if (job.ctl.signal.aborted) {
        clearInterval(timer);
        reject(new DOMException("cancelled", "AbortError"));
        return;
      }
      if (left <= 0) {
        clearInterval(timer);
        resolve();
        return;
      }
      status(`The server is busy with other fits; trying again in ${left} s… (Esc cancels)`);
      left -= 1;
    };
    const timer = setInterval(tick, 1000);
    tick();
  });
}

async function cancelFit() {
  const job = S.job;
  S.clickPending = false;
  if (!job) return;
  $("cancel").disabled = true;
  status("Stopping…");
  if (job.jobId) {
    try {
      await api.cancelJob(job.jobId);
      return; // the stream ends with a "done" event carrying the partial mask
    } catch (e) {
      /* already finished or unknown: fall through and drop the connection */
    }
  }
  job.ctl.abort();
}

function abortFit() {
  const job = S.job;
  S.clickPending = false;
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
  const edits = S.edits;
  try {
    let r;
    try {
      r = await api.saveImage(S.id, encodeLabels(), encodeBoxes(), $("tight-boxes").checked);
    } catch (e) {
      // a restarted server has a new token, and still has the folder's images: save there
      if (e.kind !== "token" || (await checkServer()) !== "restarted" || !S.images.some((im) => im.id === S.id)) throw e;
      r = await api.saveImage(S.id, encodeLabels(), encodeBoxes(), $("tight-boxes").checked);
    }
    markSaved();
    markSent(edits);
    status(`Wrote ${Object.values(r.files).join(", ")} to ${r.out_dir}`, "ok");
    $("done-count").textContent = `${r.progress.done} / ${r.progress.total} done`;
    await refreshList();
    return true;
  } catch (e) {
    if (e.kind === "offline") {
      await checkServer();
      status(`Not saved: ${e.message} Your labels are still here; save again once it runs.`, "error");
    } else if (e.kind === "missing" || e.kind === "token") {
      const server = await checkServer();
      status(server === "restarted" ? `Not saved. ${RESTARTED}` : explain(e, "Not saved"), "error");
    } else if (e.status >= 500) {
      status(`Could not write the files: ${e.message}`, "error");
    } else {
      status(explain(e, "Not saved"), "error");
    }
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
      // with the Click tool a right click that does not move is a background click
      const click = S.tool === "click" && e.button === 2 ? p : null;
      S.pan = { sx: e.clientX, sy: e.clientY, x: S.view.x, y: S.view.y, click };
      stage.classList.add("panning");
      e.preventDefault();
      return;
    }
    if (e.button !== 0) return;
    e.preventDefault();
    if (S.tool === "click") {
      placeClick(p, S.cls);
      return;
    }
    if (S.tool === "box") {
      beginBox(p);
      updateButtons();
    } else beginStroke(p);
    scheduleRender();
  });
  canvas.addEventListener("pointermove", (e) => {
    const p = toImage(e);
    S.pointer = p;
    if (S.pan) {
      S.view.x = S.pan.x + e.clientX - S.pan.sx;
      S.view.y = S.pan.y + e.clientY - S.pan.sy;
      S.fitted = false;
    } else if (S.boxDrag) {
      dragBox(p);
    } else if (S.stroke) {
      const evs = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
      for (const ce of evs.length ? evs : [e]) strokeTo(toImage(ce));
    }
    scheduleRender();
  });
  const up = (e) => {
    if (S.pan) {
      const pan = S.pan;
      S.pan = null;
      stage.classList.remove("panning");
      if (pan.click && e.type === "pointerup" && Math.hypot(e.clientX - pan.sx, e.clientY - pan.sy) < 4) {
        placeClick(pan.click, BACKGROUND);
      }
    }
    if (S.stroke) endStroke();
    if (S.boxDrag) {
      endBox();
      updateButtons();
    }
    scheduleRender();
  };
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  canvas.addEventListener("pointerleave", () => {
    if (!S.stroke && !S.pan && !S.boxDrag) {
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
  $("tool-box").addEventListener("click", () => setTool("box"));
  $("tool-click").addEventListener("click", () => setTool("click"));
  $("delete-box").addEventListener("click", () => {
    if (deleteSelectedBox()) scheduleRender();
    updateButtons();
  });
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
  $("help-toggle").addEventListener("click", () => toggleHelp());
  $("hint").addEventListener("change", (e) => toggleHint(e.target.checked));
  // whether the boxes are tight is saved with them (the image's meta), so it is an edit like them
  $("preset").addEventListener("change", onPresetChange);
  $("tight-boxes").addEventListener("change", () => {
    if (S.img && S.boxes.length) markDirty();
  });
  $("start-from-previous").addEventListener("change", (e) => toggleStartFromPrevious(e.target.checked));
  $("help-close").addEventListener("click", () => toggleHelp(false));
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
  // Labels and boxes reach the server with Segment and Save only: ask before a reload or a
  // closed tab throws away edits made since.
  window.addEventListener("beforeunload", (e) => {
    if (!hasUnsent()) return;
    e.preventDefault();
    e.returnValue = ""; // browsers before the preventDefault form
  });
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
    case "r":
    case "R":
      setTool("box");
      break;
    case "k":
    case "K":
      setTool("click");
      break;
    case "Delete":
    case "Backspace":
      if (deleteSelectedBox()) scheduleRender();
      else handled = false;
      updateButtons();
      break;
    case "Enter":
      runSegment();
      break;
    case "Escape":
      if (!$("help").hidden) toggleHelp(false);
      else cancelFit();
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
    case "l":
    case "L":
      toggleHint();
      break;
    case "o":
    case "O":
      $("file-input").click();
      break;
    case " ":
      S.space = true;
      break;
    case "?":
    case "h":
    case "H":
      toggleHelp();
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
    proposal: app.dataset.proposal,
    saved: app.dataset.saved === "true",
    unsent: hasUnsent(),
    image: S.id,
    width: S.W,
    height: S.H,
    cls: S.cls,
    tool: S.tool,
    brushSize: S.size,
    zoom: S.view.scale,
    labelled: labelledCount(),
    clicksOnly: labelsAreClicks(),
    boxes: S.boxes.map((b) => [b.cls, b.x0, b.y0, b.x1, b.y1]),
    selectedBox: S.selectedBox,
    undo: S.undo.length,
    redo: S.redo.length,
    job: S.job ? S.job.jobId : null,
  }),
  labelCounts,
  imageToClient,
  clientToImage,
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
  onHistoryChange(updateButtons);
  bind();
  setOpacity(50);
  try {
    S.config = await api.getConfig();
    api.setToken(S.config.token);
    setData("server", "up");
    buildClasses();
    buildPresets();
    await refreshList();
  } catch (e) {
    setData("state", "error");
    status(`Cannot start: ${e.message}`, "error");
    return;
  }
  setData("mode", S.mode);
  // a folder is walked image after image, which is what starting from the previous one is for
  $("start-from-previous-label").hidden = !(S.mode === "folder" && S.config.can_transfer);
  toggleStartFromPrevious($("start-from-previous").checked);
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
