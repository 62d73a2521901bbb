"""The fits: a bounded queue in front of a thread pool, streamed to each client as SSE.

Fits run in worker threads (torch releases the GIL) through :func:`dipseg.api.segment`, the
library's one entry point. At most ``workers + queue_size`` fits are admitted; one more is
refused with :class:`~dipseg.web.errors.Busy`. A fit stops when its client cancels or goes
away: the progress callback then returns False, which the library also checks during its
full-resolution stage. A waiting fit that is cancelled leaves the queue at once, so a
client that went away never holds a place. Images of more than ``max_fit_pixels`` are
fitted at a downscaled copy (:func:`fit_size`), which bounds a fit's memory. The last fit
state of each image is kept for a warm start of the next fit on it, reused when
:meth:`dipseg.dip.fit.FitState.can_continue` says so. Each finished fit is also handed to
``on_fit`` (the app passes :meth:`dipseg.web.transfer.Transfers.keep_fit`, which keeps its
network so that the next image can start from it).
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable
from urllib.parse import quote

import numpy as np

from ..api import segment
from ..clicks import FRAME_WIDTH, add_frame
from ..dip.presets import Preset
from ..io import InputError
from ..labels import downscale_labels, validate_image
from ..palette import encode_palette_png
from ..uncertainty import suggest_click, uncertainty
from .body import KEEP_ALIVE, data_url, sse
from .errors import Busy, NotFound, ShuttingDown
from .settings import Settings
from .store import UNLABELLED, ImageEntry, ImageStore, to_ignore

log = logging.getLogger("dipseg.web")

MAX_WARM_STATES = 8
"""Fit states kept for warm starts (least recently used are dropped)."""
PROGRESS_INTERVAL = 0.1
"""Seconds between progress events without a preview (more would only flood the stream)."""
PREVIEWS = 20
"""Previews sent over a fit."""


def _finite(x: Any) -> float | None:
    """``x`` as a rounded float, or None when it is not a finite number (JSON has no NaN)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return round(x, 6) if math.isfinite(x) else None


def fit_size(shape: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    """The ``(h, w)`` an image of ``shape`` is fitted at: itself, or scaled to at most ``max_pixels``."""
    H, W = shape
    if H * W <= max_pixels:
        return H, W
    s = math.sqrt(max_pixels / (H * W))
    return max(2, int(H * s)), max(2, int(W * s))


def fit_inputs(image: np.ndarray, labels8: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Image and library labels (``IGNORE``) at ``size``: area-averaged pixels, every painted seed kept."""
    import cv2

    labels = to_ignore(labels8)
    if size == image.shape[:2]:
        return image, labels
    small = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return small, downscale_labels(labels, size)


def click_fit_labels(labels8: np.ndarray) -> np.ndarray:
    """The labels a fit of clicks sees (uint8, 255 = unlabelled): the clicks, plus the click
    protocol's background frame while no pixel is labelled background (class 0).

    The same seeds the robot of docs/interactive.md gets, whose figures the preset
    ``clicks`` was chosen on; without them a first positive click has no second class.
    """
    return add_frame(labels8, 0, UNLABELLED, FRAME_WIDTH)


def class_summary(classes: np.ndarray, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """``[{"id", "name", "fraction"}]`` of the classes present in a uint8 mask."""
    counts = np.bincount(classes.ravel(), minlength=256)  # uint8: far faster than np.unique
    present = np.flatnonzero(counts)
    return [{"id": int(c), "name": names[int(c)], "fraction": round(float(counts[c]) / classes.size, 4)}
            for c in present]


def full_size_mask(classes: np.ndarray, labels8: np.ndarray) -> np.ndarray:
    """A mask fitted at a smaller size brought to the labels' size (nearest), painted pixels as painted."""
    import cv2

    H, W = labels8.shape
    if classes.shape != (H, W):
        classes = cv2.resize(classes, (W, H), interpolation=cv2.INTER_NEAREST)
    painted = labels8 != UNLABELLED
    classes[painted] = labels8[painted]
    return classes


class Job:
    """One fit: a cancel flag and an event queue read by the client's SSE stream.

    Parameters
    ----------
    job_id, image_id : str
    loop : asyncio.AbstractEventLoop
        The loop of the request, on which events are queued from the worker thread.
    position : int
        Fits ahead of this one when it was admitted.
    """

    def __init__(self, job_id: str, image_id: str, loop: asyncio.AbstractEventLoop, position: int):
        self.id = job_id
        self.image_id = image_id
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cancel = threading.Event()
        self.state = "queued"
        self.position = position
        self.iteration = 0
        self.total = 0
        self.created = time.time()

    def emit(self, event: str | None, data: Any = None) -> None:
        """Queue an event for the stream (thread-safe); dropped when the loop is gone."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (event, data))
        except RuntimeError:
            pass

    def describe(self) -> dict[str, Any]:
        """See :class:`dipseg.web.models.JobInfo`."""
        return {"id": self.id, "image": self.image_id, "state": self.state, "iteration": self.iteration,
                "total": self.total, "cancelled": self.cancel.is_set(), "age": round(time.time() - self.created, 2)}


class JobQueue:
    """Admits, runs, streams and cancels fits; keeps warm-start states.

    Parameters
    ----------
    settings : Settings
    store : ImageStore
        Where finished masks are recorded.
    on_fit : callable, optional
        Called in the worker thread with ``(entry, seg, image, labels, boxes)`` of each
        finished fit (image, labels and boxes as fitted), before its ``done`` event; must not raise.
    """

    def __init__(self, settings: Settings, store: ImageStore, on_fit: Callable[..., None] | None = None):
        self.settings = settings
        self.store = store
        self.on_fit = on_fit
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}
        self.states: OrderedDict[str, Any] = OrderedDict()
        self.closed = False
        self.pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="dipseg-fit")

    @property
    def threads(self) -> int | None:
        """torch threads per fit (see :attr:`Settings.threads`)."""
        return self.settings.threads

    def counts(self) -> tuple[int, int]:
        """Fits ``(running, queued)``."""
        with self.lock:
            running = sum(j.state == "running" for j in self.jobs.values())
            return running, len(self.jobs) - running

    def describe(self) -> list[dict[str, Any]]:
        """Every running or queued fit (see :class:`dipseg.web.models.JobInfo`)."""
        with self.lock:
            return [j.describe() for j in self.jobs.values()]

    def forget(self, image_id: str) -> None:
        """Drop the warm-start state of an image the store forgot."""
        with self.lock:
            self.states.pop(image_id, None)

    @staticmethod
    def check_fittable(image: np.ndarray) -> None:
        """Refuse an image the library cannot fit, by the library's own rule (at least 2x2).

        Raises
        ------
        InputError
        """
        try:
            validate_image(image)
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def submit(self, entry: ImageEntry, image: np.ndarray, labels: np.ndarray, warm: bool, boxes=None,
               tight_boxes: bool = False, preset: str | None = None, clicks: bool = False) -> Job:
        """Admit a fit of ``image`` from ``labels`` (uint8, 255 = unlabelled) and ``boxes``; call on the event loop.

        ``tight_boxes``: the boxes touch their objects on every side (:func:`dipseg.segment`).
        ``preset``: one of ``settings.preset_configs`` (None: the server's preset).
        ``clicks``: every label is a click; the fit adds the click protocol's background
        frame (:func:`click_fit_labels`).

        Raises
        ------
        Busy
            ``workers + queue_size`` fits are running or waiting.
        ShuttingDown
            The server stops.
        """
        loop = asyncio.get_running_loop()
        capacity = self.settings.capacity
        with self.lock:
            if self.closed:
                raise ShuttingDown("the server is shutting down")
            busy = len(self.jobs)
            if busy >= capacity:
                raise Busy(f"the server is busy: {busy} fits running or queued (limit {capacity}); "
                           "try again when one finishes")
            job = Job(secrets.token_hex(8), entry.id, loop, position=max(0, busy + 1 - self.settings.workers))
            self.jobs[job.id] = job
            try:
                self.pool.submit(self._run, job, entry, image, labels, warm, list(boxes or []), tight_boxes, preset,
                                 clicks)
            except RuntimeError:
                self.jobs.pop(job.id, None)
                raise ShuttingDown("the server is shutting down") from None
        return job

    def _warm_state(self, entry: ImageEntry, image: np.ndarray, labels: np.ndarray, warm: bool, boxes,
                    preset: Preset):
        """The image's last fit state if a fit with ``preset`` can continue from it, else None (the state is used up).

        With another preset than the last fit's, it goes on only if their networks and inputs
        match (``fast`` and ``clicks`` do; :meth:`dipseg.dip.fit.FitState.can_continue`).
        """
        if not warm:
            return None
        with self.lock:
            state = self.states.pop(entry.id, None)
        class_ids = None
        if boxes:
            from ..boxes import box_classes, box_labels
            from ..labels import labelled_classes

            class_ids = np.union1d(labelled_classes(box_labels(boxes, image.shape[:2], labels)), box_classes(boxes))
        if state is None or not state.can_continue(image.shape[:2], labels, preset.network, preset.fit, class_ids):
            return None
        return state

    def _keep_state(self, image_id: str, state: Any) -> None:
        if state is None:
            return
        # checked under this lock, which forget() takes too, so a state never outlives its image
        with self.lock:
            if not self.store.has(image_id):
                return
            self.states[image_id] = state
            self.states.move_to_end(image_id)
            while len(self.states) > MAX_WARM_STATES:
                self.states.popitem(last=False)

    def _run(self, job: Job, entry: ImageEntry, image: np.ndarray, labels8: np.ndarray, warm: bool,
             boxes: list | None = None, tight_boxes: bool = False, preset: str | None = None,
             clicks: bool = False) -> None:
        """Worker thread: one fit, reporting to ``job``; every exception goes to the client."""
        try:
            with self.lock:
                if job.state != "queued":  # cancelled while waiting: its stream has ended already
                    return
                job.state = "running"
            # what the fit sees; the image keeps the labels as painted
            seeds8 = click_fit_labels(labels8) if clicks else labels8
            size = fit_size(image.shape[:2], self.settings.max_fit_pixels)
            H, W = image.shape[:2]
            image, labels = fit_inputs(image, seeds8, size)
            # boxes come in image pixels; the fit may run on a smaller copy
            boxes = [b.scaled(size[0] / H, size[1] / W) for b in (boxes or [])]
            preset, config = self.settings.config_for(preset)
            state = self._warm_state(entry, image, labels, warm, boxes, config)
            iterations = config.fit.iterations
            if state is not None:
                iterations = max(1, math.ceil(iterations * self.settings.warm_fraction))
            job.total = iterations
            job.emit("start", {"job": job.id, "image": entry.id, "total": iterations,
                               "warm_start": state is not None, "preset": preset,
                               "fit_width": size[1], "fit_height": size[0]})
            seg = segment(image, labels, "dipseg", boxes=boxes or None, tight_boxes=tight_boxes,
                          preset=preset,
                          device=self.settings.device,
                          callback=self._callback(job), preview_every=max(1, iterations // PREVIEWS),
                          warm_start=state, threads=self.settings.threads,
                          **dict(self.settings.fit_overrides, iterations=iterations))
            classes = full_size_mask(np.asarray(seg.classes).astype(np.uint8), seeds8)
            meta = dict(seg.metadata(), fit_size=[size[1], size[0]], clicks=clicks)
            version = self.store.set_result(entry.id, classes, labels8, meta)
            self._keep_state(entry.id, seg.state)
            if self.on_fit is not None:
                # before "done", so a page that moves on at once finds what it left
                self.on_fit(entry, seg, image, labels, boxes)
            done = self._done_event(job, entry, seg, classes, iterations, state is not None, version)
            job.emit("done", done | next_label_hint(seg.probabilities, labels, classes.shape))
        except Exception as exc:  # a crash in one fit is that client's error, never the server's
            log.exception("fit %s on %s failed", job.id, entry.id)
            msg = str(exc).splitlines()[0] if str(exc) else ""
            job.emit("error", {"job": job.id, "image": entry.id,
                               "detail": f"the fit failed: {exc.__class__.__name__}" + (f": {msg}" if msg else "")})
        finally:
            with self.lock:
                was = job.state
                job.state = "finished"
                self.jobs.pop(job.id, None)
            if was == "running":
                job.emit(None)

    @staticmethod
    def _callback(job: Job):
        """The fit's progress callback: throttled progress events, previews, and the cancel check
        (also as ``should_stop``, see :func:`dipseg.dip.fit.fit`)."""
        last = [0.0]

        def callback(p) -> bool | None:
            job.iteration = p.iteration
            now = time.monotonic()
            if p.preview is not None or p.iteration >= p.total or now - last[0] >= PROGRESS_INTERVAL:
                last[0] = now
                data = {"iteration": p.iteration, "total": p.total, "elapsed": round(p.elapsed, 3),
                        "loss": _finite((p.losses or {}).get("total"))}
                if p.preview is not None:
                    data["preview"] = data_url(encode_palette_png(p.preview, compress_level=1))
                job.emit("progress", data)
            return False if job.cancel.is_set() else None

        # asked by the library during the full-resolution stage too, so cancel reaches every stage
        callback.should_stop = job.cancel.is_set
        return callback

    def _done_event(self, job: Job, entry: ImageEntry, seg, classes: np.ndarray, iterations: int,
                    warm: bool, version: int) -> dict[str, Any]:
        info = seg.info or {}
        return {
            "job": job.id, "image": entry.id, "stopped": info.get("stopped", "done"),
            "iterations": info.get("iterations", iterations), "total": iterations,
            "seconds": round(seg.seconds, 3), "warm_start": warm, "message": seg.message,
            "width": int(classes.shape[1]), "height": int(classes.shape[0]),
            "classes": class_summary(classes, self.settings.classes),
            "mask_url": f"/api/images/{quote(entry.id, safe='')}/mask.png?v={version}",
        }

    async def stream(self, job: Job) -> AsyncIterator[bytes]:
        """SSE events of one job; leaving early (client gone) cancels the fit."""
        try:
            yield sse("queued", {"job": job.id, "image": job.image_id, "position": job.position})
            while True:
                try:
                    event, data = await asyncio.wait_for(job.queue.get(), timeout=self.settings.heartbeat)
                except asyncio.TimeoutError:
                    yield KEEP_ALIVE
                    continue
                if event is None:
                    return
                yield sse(event, data)
        finally:
            # the client went away (or the stream ended): a waiting fit gives its place back now
            self._stop(job)

    def _stop(self, job: Job) -> None:
        """Cancel ``job``: a running fit stops at its next check; a waiting one leaves the queue at once."""
        job.cancel.set()
        with self.lock:
            if job.state != "queued":
                return
            job.state = "finished"
            self.jobs.pop(job.id, None)
        job.emit("done", {"job": job.id, "image": job.image_id, "stopped": "cancelled", "iterations": 0,
                          "total": 0, "mask_url": None, "message": "cancelled before it started"})
        job.emit(None)

    def cancel(self, job_id: str) -> Job:
        """Ask a running or queued fit to stop.

        Raises
        ------
        NotFound
            No such job (or it has finished).
        """
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no running or queued job {job_id!r}")
        self._stop(job)
        return job

    def shutdown(self) -> None:
        """Refuse new fits and cancel the others; each stream then ends with a "done" event."""
        with self.lock:
            self.closed = True
            jobs = list(self.jobs.values())
        for job in jobs:
            self._stop(job)
        self.pool.shutdown(wait=False, cancel_futures=True)


HINT_RGB = (255, 0, 255)
"""Colour of the "label here next" overlay; its opacity is the pixel's uncertainty."""


def next_label_hint(probabilities: np.ndarray | None, labels: np.ndarray, shape: tuple[int, int]) -> dict[str, Any]:
    """The "label here next" part of a done event: an uncertainty overlay and the suggested spot.

    Parameters
    ----------
    probabilities : ndarray (h, w, k) float or None
        The fit's probabilities at the resolution it ran at (None: no hint).
    labels : ndarray (h, w) int
        The labels of that fit (``IGNORE`` where unlabelled); labelled pixels are never suggested.
    shape : (H, W)
        The image's full size; the suggestion is given in its pixels.

    Returns
    -------
    dict
        ``uncertainty``: a PNG data URL of an RGBA overlay (:data:`HINT_RGB`, alpha = 0.8 x
        uncertainty) at the fit's resolution; ``suggestion``: ``{"x", "y"}`` in full-size
        pixels, or None. Empty without probabilities.
    """
    if probabilities is None:
        return {}
    from io import BytesIO

    from PIL import Image

    u = uncertainty(probabilities)
    rgba = np.empty(u.shape + (4,), np.uint8)
    rgba[..., :3] = HINT_RGB
    rgba[..., 3] = np.round(204 * u).astype(np.uint8)
    buf = BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG", compress_level=1)
    spot = suggest_click(probabilities, labels)
    suggestion = None
    if spot is not None:
        h, w = u.shape
        suggestion = {"x": int((spot[1] + 0.5) * shape[1] / w), "y": int((spot[0] + 0.5) * shape[0] / h)}
    return {"uncertainty": data_url(buf.getvalue()), "suggestion": suggestion}

