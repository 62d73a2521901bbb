"""FastAPI app of the annotation page: images, labels, streamed fits, saved masks.

Everything the page does goes through the JSON API below (documented in ``docs/web.md``):

* ``GET  /api/config``                 classes, limits, mode (folder or upload)
* ``GET  /api/images``                 the server's own image listing (ids) and "done" counts
* ``POST /api/upload``                 add an image (multipart field ``file`` or raw body)
* ``GET  /api/images/{id}``            size, neighbours, saved state of one image
* ``GET  /api/images/{id}/image``      the image as PNG
* ``GET  /api/images/{id}/labels``     painted labels (run-length JSON), from memory or ``--out``
* ``GET  /api/images/{id}/mask.png``   current mask (VOC palette PNG); ``?download=1`` as attachment
* ``POST /api/images/{id}/segment``    run DIPSEG; answers a Server-Sent Events stream
* ``POST /api/images/{id}/save``       write mask, labels and metadata into ``--out``
* ``GET  /api/jobs``, ``POST /api/jobs/{job}/cancel``, ``GET /api/health``

Fits run in a thread pool (torch releases the GIL) behind a bounded queue; a full queue
answers 429. A fit stops when its client cancels or disconnects (the progress callback
returns False). Client-supplied names never become paths: images are addressed by the ids
of the server's listing, and output files are named after sanitised stems inside ``--out``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import math
import os
import re
import secrets
import threading
import time
import unicodedata
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image

from .. import __version__
from ..fitting import working_shape
from ..io import DEFAULT_MAX_PIXELS, PALETTE, VOC_CLASSES, InputError, colours_to_labels, read_image, write_labels, write_mask
from ..labels import IGNORE, VOID, labelled_classes
from ..methods import segment
from ..presets import DEFAULT_PRESET, get_preset

log = logging.getLogger("dipseg.web")

STATIC_DIR = Path(__file__).resolve().parent / "static"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
"""Files of a ``--images`` folder that are listed (case-insensitive)."""

UPLOAD_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
"""PIL decoders tried on uploads (nothing that shells out, such as EPS)."""

DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024
DEFAULT_QUEUE_SIZE = 8
MAX_UPLOADS = 64
"""Uploaded images kept in memory; the oldest is forgotten beyond this."""
MAX_WARM_STATES = 8
"""Fit states kept for warm starts (least recently used are dropped)."""
IMAGE_CACHE = 4
"""Decoded folder images kept in memory."""
UNLABELLED = VOID
DRAIN_LIMIT = 1 << 30
"""Bytes of an oversized body read and discarded before answering 413 (beyond: connection dropped)."""
"""Label value of an unlabelled pixel on the wire and in label PNGs (255)."""


# --------------------------------------------------------------------------- helpers


def load_classes(path: str | os.PathLike) -> list[str]:
    """Class names from a text file, one per line (blank lines and ``#`` comments skipped).

    Raises
    ------
    InputError
        Unreadable file, fewer than 2 or more than 255 names, duplicates or overlong names.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"classes file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"classes path is a folder, not a file: {path}") from None
    except UnicodeDecodeError:
        raise InputError(f"classes file {path} is not UTF-8 text; write one class name per line") from None
    except OSError as exc:
        raise InputError(f"cannot read classes file {path}: {exc.strerror or exc}") from None
    names = [line.strip() for line in text.splitlines()]
    return check_classes([n for n in names if n and not n.startswith("#")], where=f"classes file {path}")


def check_classes(names: list[str], where: str = "classes") -> list[str]:
    """Validate a list of class names (2..255, unique, at most 64 characters each)."""
    names = [str(n).strip() for n in names]
    if len(names) < 2:
        raise InputError(f"{where}: need at least 2 class names (one per line), got {len(names)}")
    if len(names) > 255:
        raise InputError(f"{where}: at most 255 classes (label value 255 means unlabelled), got {len(names)}")
    for n in names:
        if not n or len(n) > 64:
            raise InputError(f"{where}: class names must be 1..64 characters, got {n!r}")
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise InputError(f"{where}: class name {n!r} appears twice")
        seen.add(n)
    return names


def safe_stem(name: str) -> str:
    """A file-name stem made only of ``A-Z a-z 0-9 . _ -`` from a client-given name.

    Directories, drive letters, ``..`` and other characters are dropped, so the result can
    never name a path outside the output folder.
    """
    name = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    name = name.split(":")[-1]
    body = name.lstrip(".")
    stem = name[: len(name) - len(body)] + body.rsplit(".", 1)[0] if "." in body else name
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:100]
    return stem or "image"


def display_name(name: str) -> str:
    """The last component of a client-given name with control characters removed (for display)."""
    name = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:200]
    return name or "image"


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return round(x, 6) if math.isfinite(x) else None


def _palette_png(index: np.ndarray, compress_level: int = 6) -> bytes:
    """Class map ``(H, W)`` (0..255) as VOC palette PNG bytes."""
    img = Image.new("P", (index.shape[1], index.shape[0]))
    img.frombytes(np.ascontiguousarray(index, dtype=np.uint8).tobytes())
    img.putpalette(PALETTE.ravel().tolist())
    buf = BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _rgb_png(rgb: np.ndarray) -> bytes:
    buf = BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def encode_rle(labels: np.ndarray) -> list[int]:
    """Row-major run-length code ``[value, count, value, count, ...]`` of a uint8 label map."""
    flat = np.ascontiguousarray(labels, dtype=np.uint8).ravel()
    if flat.size == 0:
        return []
    starts = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1])
    counts = np.diff(np.concatenate([starts, [flat.size]]))
    out = np.empty(2 * len(starts), dtype=np.int64)
    out[0::2] = flat[starts]
    out[1::2] = counts
    return out.tolist()


async def read_body(request: Request, limit: int, what: str = "request body") -> bytes:
    """The request body, or 413 when it is more than ``limit`` bytes.

    An oversized body is still read (and thrown away, up to :data:`DRAIN_LIMIT`) so that the
    client, which is busy sending it, gets to read the 413 instead of a reset connection.
    A client that asked ``Expect: 100-continue`` is answered at once.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_n = int(declared)
        except ValueError:
            raise HTTPException(400, "malformed Content-Length header") from None
        if declared_n > limit and request.headers.get("expect", "").lower() == "100-continue":
            raise HTTPException(413, f"{what} is {declared_n} bytes, more than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            chunks = []
            if size > DRAIN_LIMIT:
                break
            continue
        chunks.append(chunk)
    if size > limit:
        raise HTTPException(413, f"{what} is {size if size <= DRAIN_LIMIT else 'over ' + str(DRAIN_LIMIT)} bytes, "
                                 f"more than the limit of {limit} bytes")
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> dict:
    """A JSON object body (Content-Type application/json); empty body reads as ``{}``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    if ctype != "application/json":
        raise HTTPException(415, "send the request body as JSON with Content-Type: application/json")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise HTTPException(400, f"malformed JSON body: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise HTTPException(422, f"the JSON body must be an object, got {type(data).__name__}")
    return data


# --------------------------------------------------------------------------- state


@dataclass
class ImageEntry:
    """One image of the server's listing."""

    id: str
    name: str
    stem: str
    source: str  # "folder" or "upload"
    path: Path | None = None
    array: np.ndarray | None = field(default=None, repr=False)
    sha256: str | None = None

    def outputs(self) -> dict[str, str]:
        return outputs_for(self.stem)


def outputs_for(stem: str) -> dict[str, str]:
    """File names written into ``--out`` for an image with output stem ``stem``."""
    return {"mask": f"{stem}.png", "labels": f"{stem}_labels.png", "meta": f"{stem}_meta.json"}


@dataclass
class Result:
    """The latest fit of one image."""

    classes: np.ndarray  # (H, W) uint8
    labels: np.ndarray  # (H, W) uint8, the labels that fit used (255 = unlabelled)
    meta: dict
    version: int


class Job:
    """One fit: a cancel flag and an event queue read by the client's SSE stream."""

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

    def describe(self) -> dict:
        return {"id": self.id, "image": self.image_id, "state": self.state, "iteration": self.iteration,
                "total": self.total, "cancelled": self.cancel.is_set(), "age": round(time.time() - self.created, 2)}


class Annotator:
    """Server state: the image listing, labels, results, warm-start states and the fit pool."""

    def __init__(
        self,
        images_dir: str | os.PathLike | None,
        out_dir: str | os.PathLike,
        classes: list[str] | None,
        preset: str | None,
        fit_overrides: dict[str, Any] | None,
        max_upload_bytes: int,
        max_pixels: int,
        queue_size: int,
        workers: int,
        device: str,
        warm_fraction: float,
        heartbeat: float,
    ):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        if max_upload_bytes < 1 or max_pixels < 4:
            raise ValueError("max_upload_bytes and max_pixels must be positive")
        if not 0 < warm_fraction <= 1:
            raise ValueError(f"warm_fraction must be in (0, 1], got {warm_fraction}")
        self.preset = get_preset(preset or DEFAULT_PRESET)
        self.fit_overrides = {k: v for k, v in (fit_overrides or {}).items() if v is not None}
        try:
            self.fit_config = self.preset.with_fit(**self.fit_overrides).fit
        except TypeError as exc:
            raise ValueError(f"unknown fit option in {sorted(self.fit_overrides)}: {exc}") from None
        self.class_names = check_classes(list(classes)) if classes is not None else list(VOC_CLASSES)
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_json_bytes = 2 * self.max_upload_bytes
        self.max_pixels = int(max_pixels)
        self.queue_size = int(queue_size)
        self.workers = int(workers)
        self.capacity = self.workers + self.queue_size
        self.device = device
        self.warm_fraction = warm_fraction
        self.heartbeat = heartbeat
        self.threads = 1 if self.workers > 1 else None

        self.out_dir = Path(out_dir).expanduser().resolve()
        self.images_dir = Path(images_dir).expanduser().resolve() if images_dir is not None else None
        if self.images_dir is not None:
            if not self.images_dir.is_dir():
                raise InputError(f"images folder not found: {images_dir}")
            if self.images_dir == self.out_dir:
                raise InputError("--out must differ from --images: masks are named after the images and would overwrite them")
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise InputError(f"--out must be a folder, got the file {out_dir}")

        self.lock = threading.RLock()
        self.entries: dict[str, ImageEntry] = {}
        self.order: list[str] = []
        self.reserved: dict[str, str] = {}  # output file name -> image id
        self.labels: dict[str, np.ndarray] = {}
        self.results: dict[str, Result] = {}
        self.states: OrderedDict[str, Any] = OrderedDict()
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.jobs: dict[str, Job] = {}
        self.version = 0
        self.closed = False
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="dipseg-fit")
        if self.images_dir is not None:
            self._scan()

    # ---- listing

    @property
    def mode(self) -> str:
        return "folder" if self.images_dir is not None else "upload"

    def _scan(self) -> None:
        files = sorted(
            (p for p in self.images_dir.iterdir()
             if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()),
            key=lambda p: _natural_key(p.name),
        )
        for p in files:
            stem = self._free_stem(safe_stem(p.name), sha=None, check_disk=False)
            self._register(ImageEntry(id=p.name, name=p.name, stem=stem, source="folder", path=p))

    def _register(self, entry: ImageEntry) -> None:
        self.entries[entry.id] = entry
        self.order.append(entry.id)
        for f in entry.outputs().values():
            self.reserved[f] = entry.id

    def _free_stem(self, base: str, sha: str | None, check_disk: bool) -> str:
        """First of ``base``, ``base_2``, ... whose output names are free.

        With ``check_disk`` (uploads), existing outputs on disk are reused only when their
        metadata records the same image (sha256); otherwise the stem is skipped, so an upload
        never overwrites another image's saved mask.
        """
        for i in range(1, 100000):
            stem = base if i == 1 else f"{base}_{i}"
            names = outputs_for(stem)
            if any(n in self.reserved for n in names.values()):
                continue
            if check_disk and any((self.out_dir / n).exists() for n in names.values()):
                try:
                    meta = json.loads((self.out_dir / names["meta"]).read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if not isinstance(meta, dict) or meta.get("image_sha256") != sha:
                    continue
            return stem
        raise InputError(f"no free output name for {base!r}")  # pragma: no cover

    def entry(self, image_id: str) -> ImageEntry:
        with self.lock:
            entry = self.entries.get(image_id)
        if entry is None:
            raise HTTPException(404, f"no image with id {image_id!r}; GET /api/images lists the ids")
        return entry

    def is_done(self, entry: ImageEntry) -> bool:
        return (self.out_dir / entry.outputs()["mask"]).is_file()

    def listing(self) -> dict:
        with self.lock:
            entries = [self.entries[i] for i in self.order]
        images = []
        for e in entries:
            images.append({"id": e.id, "name": e.name, "source": e.source, "done": self.is_done(e),
                           "has_labels": e.id in self.labels or (self.out_dir / e.outputs()["labels"]).is_file()})
        return {"mode": self.mode, "total": len(images), "done": sum(i["done"] for i in images), "images": images}

    def progress(self) -> dict:
        listing = self.listing()
        return {"done": listing["done"], "total": listing["total"]}

    def add_upload(self, name: str, array: np.ndarray, sha: str) -> tuple[ImageEntry, bool]:
        shown = display_name(name)
        with self.lock:
            for e in self.entries.values():
                if e.source == "upload" and e.sha256 == sha and e.name == shown:
                    return e, False
            stem = self._free_stem(safe_stem(shown), sha=sha, check_disk=True)
            entry = ImageEntry(id=f"upload-{secrets.token_hex(6)}", name=shown, stem=stem, source="upload",
                               array=array, sha256=sha)
            self._register(entry)
            uploads = [i for i in self.order if self.entries[i].source == "upload"]
            for old in uploads[: max(0, len(uploads) - MAX_UPLOADS)]:
                self._forget(old)
        return entry, True

    def _forget(self, image_id: str) -> None:
        entry = self.entries.pop(image_id)
        self.order.remove(image_id)
        for f in entry.outputs().values():
            self.reserved.pop(f, None)
        for d in (self.labels, self.results, self.states, self.cache):
            d.pop(image_id, None)

    # ---- images and labels

    def load_image(self, entry: ImageEntry) -> np.ndarray:
        if entry.array is not None:
            return entry.array
        with self.lock:
            if entry.id in self.cache:
                self.cache.move_to_end(entry.id)
                return self.cache[entry.id]
        array = read_image(entry.path, max_pixels=self.max_pixels)
        with self.lock:
            self.cache[entry.id] = array
            while len(self.cache) > IMAGE_CACHE:
                self.cache.popitem(last=False)
        return array

    def check_fit_size(self, shape: tuple[int, int]) -> None:
        """Refuse images the network cannot fit (every scale needs at least 2 pixels a side)."""
        h, w = working_shape(shape, self.fit_config.working_size)
        depth = len(self.preset.network.channels_down)
        hh, ww = h, w
        for _ in range(depth):
            hh, ww = -(-hh // 2), -(-ww // 2)
        if min(hh, ww) < 2:
            need = 2**depth + 1
            raise InputError(
                f"the image is {shape[1]}x{shape[0]} pixels: too small or too elongated for the network, "
                f"which fits it at {w}x{h} and needs both sides of that to be at least {need} px"
            )

    def decode_upload(self, data: bytes) -> np.ndarray:
        """Decode uploaded bytes to ``(H, W, 3) uint8``, refusing non-images and pixel bombs."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(BytesIO(data), formats=list(UPLOAD_FORMATS))
        except Image.DecompressionBombError as exc:
            raise HTTPException(413, f"the image has too many pixels ({exc})") from None
        except Exception:
            raise HTTPException(
                415, f"the upload is not an image this server reads ({', '.join(UPLOAD_FORMATS)})"
            ) from None
        with img:
            w, h = img.size
            if w * h > self.max_pixels:
                raise HTTPException(
                    413, f"the image is {w}x{h} = {w * h} pixels, more than the limit of {self.max_pixels} pixels"
                )
            if w < 2 or h < 2:
                raise HTTPException(422, f"the image is {w}x{h} pixels; it must be at least 2x2")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    img.load()
                    rgb = img.convert("RGB")
            except Exception as exc:
                raise HTTPException(422, f"the image is truncated or corrupt ({exc.__class__.__name__})") from None
        array = np.asarray(rgb, dtype=np.uint8).copy()
        self.check_fit_size(array.shape[:2])
        return array

    def parse_labels(self, value: Any, shape: tuple[int, int]) -> np.ndarray:
        """Labels from a request: ``{"width", "height", "rle"}`` or a PNG (data URL / base64).

        Returns ``(H, W) uint8`` with 255 = unlabelled. Raises HTTP 422 on anything invalid.
        """
        H, W = shape
        k = len(self.class_names)
        if isinstance(value, dict):
            w, h, rle = value.get("width"), value.get("height"), value.get("rle")
            if type(w) is not int or type(h) is not int:
                raise HTTPException(422, "labels.width and labels.height must be integers")
            if (h, w) != (H, W):
                raise HTTPException(422, f"labels are {w}x{h} but the image is {W}x{H}")
            if not isinstance(rle, list) or not rle or len(rle) % 2:
                raise HTTPException(422, "labels.rle must be a non-empty flat list [value, count, value, count, ...]")
            try:
                if any(type(x) is not int for x in rle):
                    raise TypeError
                arr = np.asarray(rle, dtype=np.int64)
            except (ValueError, TypeError, OverflowError):
                raise HTTPException(422, "labels.rle must be a flat list of integers [value, count, ...]") from None
            values, counts = arr[0::2], arr[1::2]
            if counts.min() < 1 or counts.max() > H * W:
                raise HTTPException(422, "labels.rle run lengths must be between 1 and width*height")
            total = int(counts.sum())
            if total != H * W:
                raise HTTPException(422, f"labels.rle runs cover {total} pixels, not width*height = {H * W}")
            bad = ~(((values >= 0) & (values < k)) | (values == UNLABELLED))
            if bad.any():
                raise HTTPException(
                    422, f"label value {int(values[bad][0])} is not a class (0..{k - 1}; {UNLABELLED} = unlabelled)"
                )
            return np.repeat(values.astype(np.uint8), counts).reshape(H, W)
        if isinstance(value, str):
            return self._labels_from_png(value, shape)
        raise HTTPException(422, "labels must be an object {width, height, rle} or a PNG data URL")

    def _labels_from_png(self, text: str, shape: tuple[int, int]) -> np.ndarray:
        H, W = shape
        k = len(self.class_names)
        if text.startswith("data:"):
            head, _, text = text.partition(",")
            if not head.endswith(";base64"):
                raise HTTPException(422, "a labels data URL must be base64-encoded (data:image/png;base64,...)")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPException(422, "labels: not valid base64") from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(BytesIO(data), formats=["PNG"])
        except Exception:
            raise HTTPException(422, "labels: not a PNG image") from None
        with img:
            if img.size != (W, H):
                raise HTTPException(422, f"label PNG is {img.size[0]}x{img.size[1]} but the image is {W}x{H}")
            try:
                if img.mode in ("P", "L"):
                    values = np.asarray(img, dtype=np.int64)
                elif img.mode in ("RGB", "RGBA", "LA", "PA"):
                    rgba = img.convert("RGBA") if img.mode in ("LA", "PA") else img
                    arr = np.asarray(rgba)
                    alpha = arr[..., 3] if rgba.mode == "RGBA" else None
                    lab = colours_to_labels(arr[..., :3], alpha, k)
                    values = np.where(lab == IGNORE, UNLABELLED, lab)
                else:
                    raise HTTPException(422, f"label PNG has mode {img.mode}; use a palette, grayscale or RGBA PNG")
            except InputError as exc:
                raise HTTPException(422, f"labels: {exc}") from None
            except HTTPException:
                raise
            except Exception as exc:
                raise HTTPException(422, f"labels: the PNG is truncated or corrupt ({exc.__class__.__name__})") from None
        bad = (values != UNLABELLED) & ((values < 0) | (values >= k))
        if bad.any():
            raise HTTPException(422, f"label value {int(values[bad][0])} is not a class (0..{k - 1}; 255 = unlabelled)")
        return values.astype(np.uint8)

    def current_labels(self, entry: ImageEntry, shape: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
        with self.lock:
            if entry.id in self.labels:
                return self.labels[entry.id], "memory"
        path = self.out_dir / entry.outputs()["labels"]
        if not path.is_file():
            return None, None
        try:
            lab = _read_label_file(path, shape, len(self.class_names))
        except InputError as exc:
            raise HTTPException(409, f"the saved labels {path.name} cannot be used: {exc}") from None
        return lab, "file"

    # ---- fits

    def submit(self, entry: ImageEntry, image: np.ndarray, labels: np.ndarray, warm: bool) -> Job:
        loop = asyncio.get_running_loop()
        with self.lock:
            if self.closed:
                raise HTTPException(503, "the server is shutting down")
            busy = len(self.jobs)
            if busy >= self.capacity:
                raise HTTPException(
                    429,
                    f"the server is busy: {busy} fits running or queued (limit {self.capacity}); "
                    "try again when one finishes",
                    headers={"Retry-After": "2"},
                )
            job = Job(secrets.token_hex(8), entry.id, loop, position=max(0, busy + 1 - self.workers))
            self.jobs[job.id] = job
            try:
                self.pool.submit(self._run, job, entry, image, labels, warm)
            except RuntimeError:
                self.jobs.pop(job.id, None)
                raise HTTPException(503, "the server is shutting down") from None
        return job

    def _reusable(self, state: Any, labels: np.ndarray, shape: tuple[int, int]) -> bool:
        try:
            return (
                state is not None
                and tuple(state.class_ids) == tuple(int(c) for c in labelled_classes(labels))
                and tuple(state.work_shape) == tuple(working_shape(shape, self.fit_config.working_size))
                and state.network == self.preset.network
                and state.config.input == self.fit_config.input
            )
        except AttributeError:
            return False

    def _run(self, job: Job, entry: ImageEntry, image: np.ndarray, labels8: np.ndarray, warm: bool) -> None:
        """Worker thread: one fit, reporting to ``job``; every exception goes to the client."""
        try:
            if job.cancel.is_set():
                job.emit("done", {"job": job.id, "image": entry.id, "stopped": "cancelled", "iterations": 0,
                                  "total": 0, "mask_url": None, "message": "cancelled before it started"})
                return
            job.state = "running"
            labels = _to_ignore(labels8)
            with self.lock:
                state = self.states.pop(entry.id, None) if warm else None
            reuse = self._reusable(state, labels, image.shape[:2])
            iterations = self.fit_config.iterations
            if reuse:
                iterations = max(1, math.ceil(iterations * self.warm_fraction))
            job.total = iterations
            preview_every = max(1, iterations // 20)
            job.emit("start", {"job": job.id, "image": entry.id, "total": iterations, "warm_start": reuse,
                               "preset": self.preset.name})
            last = [0.0]

            def callback(p) -> bool | None:
                job.iteration = p.iteration
                now = time.monotonic()
                if p.preview is not None or p.iteration >= p.total or now - last[0] >= 0.1:
                    last[0] = now
                    data = {"iteration": p.iteration, "total": p.total, "elapsed": round(p.elapsed, 3),
                            "loss": _finite((p.losses or {}).get("total"))}
                    if p.preview is not None:
                        data["preview"] = "data:image/png;base64," + base64.b64encode(
                            _palette_png(p.preview, compress_level=1)).decode("ascii")
                    job.emit("progress", data)
                return False if job.cancel.is_set() else None

            overrides = dict(self.fit_overrides, iterations=iterations)
            seg = segment(image, labels, "dipseg", preset=self.preset.name, device=self.device,
                          callback=callback, preview_every=preview_every,
                          warm_start=state if reuse else None, threads=self.threads, **overrides)
            classes = np.asarray(seg.classes).astype(np.uint8)
            meta = seg.metadata()
            with self.lock:
                self.version += 1
                version = self.version
                if entry.id in self.entries:
                    self.results[entry.id] = Result(classes, labels8, meta, version)
                    if seg.state is not None:
                        self.states[entry.id] = seg.state
                        self.states.move_to_end(entry.id)
                        while len(self.states) > MAX_WARM_STATES:
                            self.states.popitem(last=False)
            present, counts = np.unique(classes, return_counts=True)
            info = meta.get("info") or {}
            job.emit("done", {
                "job": job.id, "image": entry.id, "stopped": info.get("stopped", "done"),
                "iterations": info.get("iterations", iterations), "total": iterations,
                "seconds": round(seg.seconds, 3), "warm_start": reuse, "message": seg.message,
                "width": int(classes.shape[1]), "height": int(classes.shape[0]),
                "classes": [{"id": int(c), "name": self.class_names[int(c)], "fraction": round(float(n) / classes.size, 4)}
                            for c, n in zip(present, counts)],
                "mask_url": f"/api/images/{quote(entry.id, safe='')}/mask.png?v={version}",
            })
        except Exception as exc:  # a crash in one fit is that client's error, never the server's
            log.exception("fit %s on %s failed", job.id, entry.id)
            msg = str(exc).splitlines()[0] if str(exc) else ""
            job.emit("error", {"job": job.id, "image": entry.id,
                               "detail": f"the fit failed: {exc.__class__.__name__}" + (f": {msg}" if msg else "")})
        finally:
            job.state = "finished"
            with self.lock:
                self.jobs.pop(job.id, None)
            job.emit(None)

    async def stream(self, job: Job) -> AsyncIterator[bytes]:
        """SSE events of one job; leaving early (client gone) cancels the fit."""
        try:
            yield _sse("queued", {"job": job.id, "image": job.image_id, "position": job.position})
            while True:
                try:
                    event, data = await asyncio.wait_for(job.queue.get(), timeout=self.heartbeat)
                except asyncio.TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if event is None:
                    return
                yield _sse(event, data)
        finally:
            job.cancel.set()

    def cancel(self, job_id: str) -> Job:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no running or queued job {job_id!r}")
        job.cancel.set()
        return job

    def shutdown(self) -> None:
        """Refuse new fits and cancel the others; each stream then ends with a "done" event."""
        with self.lock:
            self.closed = True
            for job in self.jobs.values():
                job.cancel.set()
        # queued jobs still run, see their cancel flag and end their streams at once
        self.pool.shutdown(wait=False)

    # ---- saving

    def mask_png(self, entry: ImageEntry) -> bytes | None:
        with self.lock:
            result = self.results.get(entry.id)
        if result is not None:
            return _palette_png(result.classes)
        path = self.out_dir / entry.outputs()["mask"]
        try:
            return path.read_bytes() if path.is_file() else None
        except OSError:
            return None

    def _target(self, name: str) -> Path:
        path = (self.out_dir / name).resolve()
        if path.parent != self.out_dir:  # cannot happen with safe stems; belt and braces
            raise HTTPException(400, "refusing to write outside the output folder")
        return path

    def _atomic(self, name: str, write) -> str:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HTTPException(500, f"cannot create the output folder {self.out_dir}: {exc.strerror or exc}") from None
        final = self._target(name)
        tmp = final.with_name(f".{final.stem}.{secrets.token_hex(4)}.tmp{final.suffix}")
        try:
            write(tmp)
            os.replace(tmp, final)
        except OSError as exc:
            raise HTTPException(500, f"cannot write {name} into the output folder: {exc.strerror or exc}") from None
        finally:
            if tmp.exists():
                tmp.unlink()
        return final.name

    def save(self, entry: ImageEntry, image: np.ndarray) -> dict:
        with self.lock:
            result = self.results.get(entry.id)
            labels = self.labels.get(entry.id)
        if result is None and labels is None:
            raise HTTPException(409, "nothing to save yet: paint labels and press Segment first")
        names = entry.outputs()
        files: dict[str, str] = {}
        if result is not None:
            files["mask"] = self._atomic(names["mask"], lambda p: write_mask(p, result.classes))
        if labels is not None:
            lab = _to_ignore(labels)
            files["labels"] = self._atomic(names["labels"], lambda p: write_labels(p, lab))
        sha = entry.sha256
        if sha is None and entry.path is not None:
            try:
                sha = hashlib.sha256(entry.path.read_bytes()).hexdigest()
            except OSError:
                sha = None
        meta = {
            "image": entry.name,
            "image_path": str(entry.path) if entry.path is not None else None,
            "image_sha256": sha,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "classes": self.class_names,
            "files": dict(files, meta=names["meta"]),
            "labelled_pixels": int((labels != UNLABELLED).sum()) if labels is not None else None,
            "mask_from_these_labels": bool(result is not None and labels is not None
                                           and np.array_equal(result.labels, labels)),
            "fit": result.meta if result is not None else None,
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dipseg_version": __version__,
        }
        text = json.dumps(meta, indent=2, default=str)
        files["meta"] = self._atomic(names["meta"], lambda p: p.write_text(text, encoding="utf-8"))
        return {"id": entry.id, "saved": True, "out_dir": str(self.out_dir), "files": files,
                "done": self.is_done(entry), "progress": self.progress()}


def _to_ignore(labels8: np.ndarray) -> np.ndarray:
    """uint8 labels with 255 = unlabelled -> int64 labels with ``IGNORE``."""
    labels = labels8.astype(np.int64)
    labels[labels == UNLABELLED] = IGNORE
    return labels


def _read_label_file(path: Path, shape: tuple[int, int], num_classes: int) -> np.ndarray:
    from ..io import read_labels

    try:
        lab = read_labels(path, shape=shape, num_classes=num_classes)
    except InputError as exc:
        if "no labelled pixel" in str(exc):
            return np.full(shape, UNLABELLED, dtype=np.uint8)
        raise
    return np.where(lab == IGNORE, UNLABELLED, lab).astype(np.uint8)


# --------------------------------------------------------------------------- app


class _HostCheck:
    """Answer 400 to requests whose Host header is not an allowed name (DNS-rebinding guard)."""

    def __init__(self, app, allowed: set[str]):
        self.app = app
        self.allowed = {h.lower() for h in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = ""
            for k, v in scope.get("headers", []):
                if k == b"host":
                    host = v.decode("latin-1")
                    break
            name = host.lower()
            name = name[1:].split("]")[0] if name.startswith("[") else name.rsplit(":", 1)[0]
            if name not in self.allowed:
                response = JSONResponse({"detail": f"unexpected Host header {host!r}; open the URL the server printed"},
                                        status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    images_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike = "dipseg-out",
    classes: list[str] | None = None,
    preset: str | None = None,
    fit_overrides: dict[str, Any] | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    workers: int = 1,
    *,
    device: str = "auto",
    warm_fraction: float = 0.5,
    allowed_hosts: list[str] | None = None,
    heartbeat: float = 2.0,
) -> FastAPI:
    """Build the annotation app.

    Parameters
    ----------
    images_dir : path, optional
        Folder of images to annotate (top level, natural sort). Without it the page asks the
        user to open or drop an image.
    out_dir : path
        Where masks (``<stem>.png``, VOC palette), painted labels (``<stem>_labels.png``, index
        PNG with 255 = unlabelled) and metadata (``<stem>_meta.json``) are saved.
    classes : list of str, optional
        Class names (default the 21 VOC classes); class ``i`` has VOC palette colour ``i``.
    preset : str, optional
        DIPSEG preset (default :data:`dipseg.presets.DEFAULT_PRESET`).
    fit_overrides : dict, optional
        :class:`dipseg.fitting.FitConfig` fields, e.g. ``{"iterations": 100}``.
    max_upload_bytes, max_pixels : int
        Upload limits (413 beyond them).
    queue_size : int
        Fits that may wait for a worker; beyond ``workers + queue_size`` a request gets 429.
    workers : int
        Fits running at once (each with one torch thread when more than one).
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    warm_fraction : float
        A fit warm-started from the previous one on the same image runs this fraction of
        the preset's steps.
    allowed_hosts : list of str, optional
        Accepted Host header names (None accepts any); ``dipseg serve`` passes the loopback
        names when bound to localhost.
    heartbeat : float
        Seconds between SSE keep-alive comments while nothing happens.

    Raises
    ------
    ValueError
        Bad folder, classes, preset or limits (:class:`dipseg.io.InputError` for user input).
    """
    ann = Annotator(images_dir, out_dir, classes, preset, fit_overrides, max_upload_bytes, max_pixels,
                    queue_size, workers, device, warm_fraction, heartbeat)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        ann.shutdown()

    app = FastAPI(title="dipseg annotate", version=__version__, lifespan=lifespan, docs_url="/api/docs",
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.annotator = ann
    if allowed_hosts is not None:
        app.add_middleware(_HostCheck, allowed=set(allowed_hosts))

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal server error ({exc.__class__.__name__})"}, status_code=500)

    def image_info(entry: ImageEntry, image: np.ndarray) -> dict:
        with ann.lock:
            order = list(ann.order)
            in_memory_labels = entry.id in ann.labels
            has_result = entry.id in ann.results
        i = order.index(entry.id) if entry.id in order else -1
        q = quote(entry.id, safe="")
        names = entry.outputs()
        has_labels = in_memory_labels or (ann.out_dir / names["labels"]).is_file()
        has_mask = has_result or (ann.out_dir / names["mask"]).is_file()
        return {
            "id": entry.id, "name": entry.name, "source": entry.source, "index": i, "total": len(order),
            "prev": order[i - 1] if i > 0 else None, "next": order[i + 1] if 0 <= i < len(order) - 1 else None,
            "width": int(image.shape[1]), "height": int(image.shape[0]),
            "done": ann.is_done(entry), "has_labels": has_labels, "has_mask": has_mask,
            "files": names,
            "image_url": f"/api/images/{q}/image",
            "labels_url": f"/api/images/{q}/labels",
            "mask_url": f"/api/images/{q}/mask.png",
        }

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/health")
    async def health():
        with ann.lock:
            running = sum(j.state == "running" for j in ann.jobs.values())
            queued = len(ann.jobs) - running
        return {"status": "ok", "version": __version__, "running": running, "queued": queued}

    @app.get("/api/config")
    async def config():
        return {
            "version": __version__,
            "mode": ann.mode,
            "classes": [{"id": i, "name": n, "colour": "#%02x%02x%02x" % tuple(int(c) for c in PALETTE[i])}
                        for i, n in enumerate(ann.class_names)],
            "unlabelled": UNLABELLED,
            "preset": ann.preset.name,
            "iterations": ann.fit_config.iterations,
            "working_size": ann.fit_config.working_size,
            "warm_fraction": ann.warm_fraction,
            "max_upload_bytes": ann.max_upload_bytes,
            "max_pixels": ann.max_pixels,
            "workers": ann.workers,
            "queue_size": ann.queue_size,
            "images_dir": str(ann.images_dir) if ann.images_dir else None,
            "out_dir": str(ann.out_dir),
        }

    @app.get("/api/images")
    async def list_images():
        return await run_in_threadpool(ann.listing)

    @app.post("/api/upload", status_code=201)
    async def upload(request: Request):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        limit = ann.max_upload_bytes
        if ctype == "multipart/form-data":
            body = await read_body(request, limit + 64 * 1024, "upload")

            async def receive():
                return {"type": "http.request", "body": body, "more_body": False}

            form = await Request(request.scope, receive).form(max_files=1, max_fields=16)
            try:
                file = form.get("file")
                if file is None or isinstance(file, str):
                    raise HTTPException(422, "send the image in the multipart form field 'file'")
                data = await file.read()
                name = file.filename or "image"
            finally:
                await form.close()
        elif ctype.startswith("image/") or ctype == "application/octet-stream":
            data = await read_body(request, limit, "upload")
            name = request.query_params.get("name") or request.headers.get("x-filename") or "image"
        else:
            raise HTTPException(
                415, "upload the image as multipart/form-data (field 'file') or as the raw body with an image/* Content-Type"
            )
        if len(data) > limit:
            raise HTTPException(413, f"the upload is {len(data)} bytes, more than the limit of {limit} bytes")
        if not data:
            raise HTTPException(400, "the uploaded file is empty")
        array = await run_in_threadpool(ann.decode_upload, data)
        entry, new = ann.add_upload(name, array, hashlib.sha256(data).hexdigest())
        info = image_info(entry, array)
        info["new"] = new
        return JSONResponse(info, status_code=201 if new else 200)

    @app.get("/api/images/{image_id}")
    async def get_image_info(image_id: str):
        entry = ann.entry(image_id)
        image = await run_in_threadpool(ann.load_image, entry)
        return image_info(entry, image)

    @app.get("/api/images/{image_id}/image")
    async def get_image(image_id: str):
        entry = ann.entry(image_id)
        image = await run_in_threadpool(ann.load_image, entry)
        png = await run_in_threadpool(_rgb_png, image)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/images/{image_id}/labels")
    async def get_labels(image_id: str):
        entry = ann.entry(image_id)
        image = await run_in_threadpool(ann.load_image, entry)
        labels, source = await run_in_threadpool(ann.current_labels, entry, image.shape[:2])
        if labels is None:
            raise HTTPException(404, f"no labels painted or saved for {entry.name} yet")
        rle = await run_in_threadpool(encode_rle, labels)
        return {"width": int(labels.shape[1]), "height": int(labels.shape[0]), "rle": rle,
                "labelled": int((labels != UNLABELLED).sum()), "source": source}

    @app.get("/api/images/{image_id}/mask.png")
    async def get_mask(image_id: str, download: bool = False):
        entry = ann.entry(image_id)
        png = await run_in_threadpool(ann.mask_png, entry)
        if png is None:
            raise HTTPException(404, f"no mask for {entry.name} yet: press Segment first")
        headers = {"Cache-Control": "no-store"}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{entry.outputs()["mask"]}"'
        return Response(png, media_type="image/png", headers=headers)

    @app.post("/api/images/{image_id}/segment")
    async def segment_image(image_id: str, request: Request):
        entry = ann.entry(image_id)
        body = await read_json(request, ann.max_json_bytes)
        if "labels" not in body:
            raise HTTPException(422, "the JSON body needs 'labels': {width, height, rle} or a PNG data URL")
        warm = body.get("warm_start", True)
        if not isinstance(warm, bool):
            raise HTTPException(422, "warm_start must be true or false")
        image = await run_in_threadpool(ann.load_image, entry)
        labels = await run_in_threadpool(ann.parse_labels, body["labels"], image.shape[:2])
        if not (labels != UNLABELLED).any():
            raise HTTPException(422, "no pixel is labelled: paint at least two classes before segmenting")
        ann.check_fit_size(image.shape[:2])
        with ann.lock:
            ann.labels[entry.id] = labels
        job = ann.submit(entry, image, labels, warm)
        return StreamingResponse(ann.stream(job), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/api/images/{image_id}/save")
    async def save_image(image_id: str, request: Request):
        entry = ann.entry(image_id)
        body = await read_json(request, ann.max_json_bytes)
        image = await run_in_threadpool(ann.load_image, entry)
        if body.get("labels") is not None:
            labels = await run_in_threadpool(ann.parse_labels, body["labels"], image.shape[:2])
            with ann.lock:
                ann.labels[entry.id] = labels
        return await run_in_threadpool(ann.save, entry, image)

    @app.get("/api/jobs")
    async def list_jobs():
        with ann.lock:
            jobs = [j.describe() for j in ann.jobs.values()]
        return {"jobs": jobs, "capacity": ann.capacity, "workers": ann.workers}

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str):
        job = ann.cancel(job_id)
        return {"job": job.id, "cancelled": True, "state": job.state}

    return app
