"""The images a server annotates, their painted labels and latest masks, and saving them.

Images come from a ``--images`` folder (addressed by file name) or from uploads (addressed
by ``upload-<random>``); client-given names never become paths. Output files are named
after sanitised stems inside ``--out`` and written atomically (temporary file, fsync,
rename), one save of an image at a time. Labels are ``(H, W) uint8`` with
:data:`UNLABELLED` (255) for unlabelled pixels, the wire's and the label PNG's convention;
fits get the library's ``IGNORE`` convention (:func:`to_ignore`).

Memory is bounded by design (docs/web.md): uploads are spooled to a temporary folder, not
kept decoded; at most :data:`IMAGE_CACHE` decoded images (and :data:`CACHE_PIXELS` pixels)
stay in memory, and at most :data:`DECODERS` are decoded at once; painted labels and masks
are kept compressed (:class:`Packed`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import unicodedata
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import __version__
from ..io import (
    InputError,
    TooLargeError,
    UnsupportedFormatError,
    check_labels,
    decode_image,
    labels_from_image,
    list_images,
    open_image,
    read_image,
)
from ..labels import IGNORE, VOID
from ..palette import encode_palette_png
from .body import decode_data_url, decode_rle
from .errors import BadRequest, Conflict, NotFound, StorageError
from .settings import Settings


UPLOAD_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
"""PIL decoders tried on uploads (nothing that shells out, such as EPS)."""

MAX_UPLOADS = 64
"""Uploaded images kept (spooled on disk); the oldest is forgotten beyond this."""
IMAGE_CACHE = 4
"""Decoded images kept in memory."""
CACHE_PIXELS = 32 * 1024 * 1024
"""Pixels of the decoded images kept in memory, all together (96 MiB of RGB)."""
DECODERS = 2
"""Images decoded at once: a 4096x4096 decode briefly takes ~150 MB, so this bounds that memory."""
TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp\.(png|json)$")
"""Names of the temporary files a save writes before its rename; left over only by a killed
server, and removed from ``--out`` when the next one starts."""
UNLABELLED = VOID
"""Label value of an unlabelled pixel on the wire and in label PNGs (255)."""


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


COCO_FILE = "annotations.json"
"""The COCO results file of the whole output folder (every saved image's masks, RLE, and boxes)."""


def outputs_for(stem: str) -> dict[str, str]:
    """File names written into ``--out`` for an image with output stem ``stem``."""
    return {"mask": f"{stem}.png", "labels": f"{stem}_labels.png", "meta": f"{stem}_meta.json",
            "boxes": f"{stem}_boxes.csv"}


def to_ignore(labels8: np.ndarray) -> np.ndarray:
    """uint8 labels with 255 = unlabelled -> the library's int64 labels with ``IGNORE``."""
    labels = labels8.astype(np.int64)
    labels[labels == UNLABELLED] = IGNORE
    return labels


@dataclass
class ImageEntry:
    """One image of the server's listing.

    Attributes
    ----------
    id : str
        The id in URLs: the file name (folder) or ``upload-<hex>``.
    name : str
        Shown to the user.
    stem : str
        Output file stem, unique among the listing (see :func:`outputs_for`).
    source : {"folder", "upload"}
    path : Path
        The file, decoded on demand: the folder's image, or the upload spooled to disk.
    sha256 : str or None
        Uploads: digest of the uploaded bytes.
    """

    id: str
    name: str
    stem: str
    source: str
    path: Path
    sha256: str | None = None

    def outputs(self) -> dict[str, str]:
        return outputs_for(self.stem)


@dataclass(frozen=True)
class Packed:
    """An ``(H, W) uint8`` map kept compressed.

    Painted labels and masks are long runs of one value, so an image's state takes
    kilobytes instead of ``H * W`` bytes (16 MiB at 4096x4096).

    Attributes
    ----------
    shape : (H, W)
    data : bytes
        zlib of the raw bytes.
    digest : str
        sha1 of the raw bytes: tells whether two maps are equal without unpacking.
    """

    shape: tuple[int, int]
    data: bytes = field(repr=False)
    digest: str

    @classmethod
    def of(cls, array: np.ndarray) -> "Packed":
        raw = np.ascontiguousarray(array, dtype=np.uint8)
        return cls(tuple(raw.shape), zlib.compress(raw.tobytes(), 1), hashlib.sha1(raw.tobytes()).hexdigest())

    def unpack(self) -> np.ndarray:
        """The map as a new ``(H, W) uint8`` array."""
        return np.frombuffer(zlib.decompress(self.data), np.uint8).reshape(self.shape).copy()


@dataclass
class Result:
    """The latest fit of one image.

    Attributes
    ----------
    classes : Packed
        The mask, class per pixel.
    labels : Packed
        The labels that fit used (255 = unlabelled).
    meta : dict
        :meth:`dipseg.Segmentation.metadata` of the fit.
    version : int
        Increases with every fit on the server; makes mask URLs unique.
    """

    classes: Packed
    labels: Packed
    meta: dict
    version: int


class ImageStore:
    """The image listing with its labels, results and decoded-image cache (thread-safe).

    Parameters
    ----------
    settings : Settings
    on_forget : callable, optional
        Called with an image id when an upload is dropped (so other caches drop it too).
    """

    def __init__(self, settings: Settings, on_forget: Callable[[str], None] | None = None):
        self.settings = settings
        self.out_dir = settings.out_dir
        self.class_names = settings.classes
        self.on_forget = on_forget
        self.lock = threading.RLock()
        self.entries: dict[str, ImageEntry] = {}
        self.order: list[str] = []
        self.reserved: dict[str, str] = {}  # output file name -> image id
        self.labels: dict[str, Packed] = {}
        self.boxes: dict[str, list] = {}
        self.tight: dict[str, bool] = {}
        self.results: dict[str, Result] = {}
        # what this server last wrote for each image: (labels digest, mask version)
        self.written: dict[str, tuple[str | None, int | None]] = {}
        self.save_locks: dict[str, threading.Lock] = {}
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.decoders = threading.BoundedSemaphore(DECODERS)
        self.spool: Path | None = None
        self.version = 0
        self.box_source = None
        if settings.boxes is not None:
            from ..boxio import BoxSource

            self.box_source = BoxSource(settings.boxes, self.class_names)
        if settings.images_dir is not None:
            self._scan(settings.images_dir)
        self._remove_temporaries()

    def _remove_temporaries(self) -> None:
        """Delete the temporary files of saves that a killed server left in ``--out``."""
        try:
            names = [p for p in self.out_dir.iterdir() if TEMPORARY.match(p.name) and p.is_file()]
        except OSError:
            return
        for p in names:
            try:
                p.unlink()
            except OSError:
                pass

    def close(self) -> None:
        """Delete the spooled uploads (the server stops)."""
        with self.lock:
            spool, self.spool = self.spool, None
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)

    # ---- listing

    def _scan(self, folder: Path) -> None:
        for p in list_images(folder):
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
        """The image with id ``image_id``.

        Raises
        ------
        NotFound
        """
        with self.lock:
            entry = self.entries.get(image_id)
        if entry is None:
            raise NotFound(f"no image with id {image_id!r}; GET /api/images lists the ids")
        return entry

    def __len__(self) -> int:
        """Images in the listing."""
        with self.lock:
            return len(self.order)

    def has(self, image_id: str) -> bool:
        with self.lock:
            return image_id in self.entries

    def is_done(self, entry: ImageEntry) -> bool:
        """Whether a mask of the image is saved in ``--out``."""
        return (self.out_dir / entry.outputs()["mask"]).is_file()

    def has_labels(self, entry: ImageEntry) -> bool:
        """Labels painted in this session or saved in ``--out``."""
        with self.lock:
            if entry.id in self.labels:
                return True
        return (self.out_dir / entry.outputs()["labels"]).is_file()

    def has_mask(self, entry: ImageEntry) -> bool:
        """A mask fitted in this session or saved in ``--out``."""
        with self.lock:
            if entry.id in self.results:
                return True
        return self.is_done(entry)

    def position(self, entry: ImageEntry) -> tuple[int, list[str]]:
        """The image's index in the listing (-1 once forgotten) and a copy of the listing's ids."""
        with self.lock:
            order = list(self.order)
        return (order.index(entry.id) if entry.id in order else -1), order

    def listing(self) -> dict[str, Any]:
        """Mode, counts and a summary of every image (see :class:`dipseg.web.models.ImageListing`)."""
        with self.lock:
            entries = [self.entries[i] for i in self.order]
        images = [{"id": e.id, "name": e.name, "source": e.source, "done": self.is_done(e),
                   "has_labels": self.has_labels(e)} for e in entries]
        return {"mode": self.settings.mode, "total": len(images), "done": sum(i["done"] for i in images),
                "images": images}

    def progress(self) -> dict[str, int]:
        """``{"done", "total"}``: saved masks and images."""
        listing = self.listing()
        return {"done": listing["done"], "total": listing["total"]}

    # ---- uploads

    def decode_upload(self, data: bytes) -> np.ndarray:
        """Decode uploaded bytes to ``(H, W, 3) uint8``, refusing non-images and pixel bombs.

        At most :data:`DECODERS` images are decoded at once (the others wait).

        Raises
        ------
        InputError
            :class:`~dipseg.io.TooLargeError` beyond ``max_pixels``,
            :class:`~dipseg.io.UnsupportedFormatError` for anything but the upload formats,
            plain ``InputError`` for a corrupt image or one smaller than 2x2.
        """
        try:
            with self.decoders:
                return decode_image(data, max_pixels=self.settings.max_pixels, formats=list(UPLOAD_FORMATS))
        except UnsupportedFormatError as exc:
            raise UnsupportedFormatError(f"{exc}; this server reads {', '.join(UPLOAD_FORMATS)}") from None

    def add_upload(self, name: str, data: bytes, array: np.ndarray) -> tuple[ImageEntry, bool]:
        """Add a decoded upload; the same bytes under the same name give back the earlier entry.

        The bytes are spooled to a temporary folder (removed by :meth:`close`); ``array``
        only enters the decoded-image cache.

        Returns
        -------
        entry : ImageEntry
        new : bool
            False when the image was already uploaded.
        """
        shown = display_name(name)
        sha = hashlib.sha256(data).hexdigest()
        forgotten: list[str] = []
        with self.lock:
            for e in self.entries.values():
                if e.source == "upload" and e.sha256 == sha and e.name == shown:
                    return e, False
            stem = self._free_stem(safe_stem(shown), sha=sha, check_disk=True)
            image_id = f"upload-{secrets.token_hex(6)}"
            if self.spool is None:
                self.spool = Path(tempfile.mkdtemp(prefix="dipseg-uploads-"))
            path = self.spool / image_id
            try:
                path.write_bytes(data)
            except OSError as exc:
                raise StorageError(f"cannot keep the upload in {self.spool}: {exc.strerror or exc}") from None
            entry = ImageEntry(id=image_id, name=shown, stem=stem, source="upload", path=path, sha256=sha)
            self._register(entry)
            self._cache(entry.id, array)
            uploads = [i for i in self.order if self.entries[i].source == "upload"]
            for old in uploads[: max(0, len(uploads) - MAX_UPLOADS)]:
                self._forget(old)
                forgotten.append(old)
        if self.on_forget is not None:
            for old in forgotten:
                self.on_forget(old)
        return entry, True

    def _forget(self, image_id: str) -> None:
        entry = self.entries.pop(image_id)
        self.order.remove(image_id)
        for f in entry.outputs().values():
            self.reserved.pop(f, None)
        for d in (self.labels, self.boxes, self.tight, self.results, self.cache, self.written, self.save_locks):
            d.pop(image_id, None)
        try:
            entry.path.unlink()
        except OSError:
            pass

    # ---- images and labels

    def load_image(self, entry: ImageEntry) -> np.ndarray:
        """The image as ``(H, W, 3) uint8``, decoded from its file and cached.

        Raises
        ------
        NotFound
            An upload forgotten meanwhile.
        InputError
            A folder file that cannot be read.
        """
        with self.lock:
            if entry.id in self.cache:
                self.cache.move_to_end(entry.id)
                return self.cache[entry.id]
        if entry.source == "upload":
            try:
                data = entry.path.read_bytes()
            except OSError:
                raise NotFound(f"the upload {entry.name} is no longer kept; upload it again") from None
            array = self.decode_upload(data)
        else:
            with self.decoders:
                array = read_image(entry.path, max_pixels=self.settings.max_pixels)
        self._cache(entry.id, array)
        return array

    def _cache(self, image_id: str, array: np.ndarray) -> None:
        with self.lock:
            if image_id not in self.entries:
                return
            self.cache[image_id] = array
            self.cache.move_to_end(image_id)
            pixels = sum(a.shape[0] * a.shape[1] for a in self.cache.values())
            while len(self.cache) > 1 and (len(self.cache) > IMAGE_CACHE or pixels > CACHE_PIXELS):
                _, old = self.cache.popitem(last=False)
                pixels -= old.shape[0] * old.shape[1]

    def _classes_only(self, labels: np.ndarray, where: str) -> np.ndarray:
        """int64 labels with ``IGNORE`` -> uint8 with :data:`UNLABELLED`, refusing values that are no class."""
        k = len(self.class_names)
        bad = (labels != IGNORE) & ((labels < 0) | (labels >= k))
        if bad.any():
            raise InputError(
                f"{where}: label value {int(labels[bad][0])} is not a class (0..{k - 1}; {UNLABELLED} = unlabelled)")
        return np.where(labels == IGNORE, UNLABELLED, labels).astype(np.uint8)

    def parse_labels(self, value: Any, shape: tuple[int, int]) -> np.ndarray:
        """Labels from a request: ``{"width", "height", "rle"}`` or a PNG (data URL / base64).

        Returns
        -------
        ndarray (H, W) uint8
            255 = unlabelled; may have no labelled pixel.

        Raises
        ------
        InputError
            Anything invalid (wrong size, a value or colour that is not a class, a bad PNG).
        """
        if isinstance(value, dict):
            wire = decode_rle(value, shape)
            return self._classes_only(to_ignore(wire), "labels")
        if isinstance(value, str):
            return self._labels_from_png(decode_data_url(value, "labels"), shape)
        raise InputError("labels must be an object {width, height, rle} or a PNG data URL")

    def _labels_from_png(self, data: bytes, shape: tuple[int, int]) -> np.ndarray:
        H, W = shape
        try:
            img = open_image(data, "labels", max_pixels=self.settings.max_pixels, formats=["PNG"])
        except (TooLargeError, UnsupportedFormatError) as exc:
            # the image was accepted, so a label PNG that is no PNG or too big is an invalid field
            raise InputError(f"labels: {exc}") from None
        if img.size != (W, H):
            raise InputError(f"label PNG is {img.size[0]}x{img.size[1]} but the image is {W}x{H}")
        labels = labels_from_image(img, len(self.class_names), where="label PNG")
        return self._classes_only(labels, "label PNG")

    def parse_boxes(self, value: Any, shape: tuple[int, int]) -> list:
        """Boxes from a request, ``[[class, x0, y0, x1, y1], ...]`` in image pixels (None or [] for none).

        Raises
        ------
        InputError
            Not a list of 5 numbers each, a box outside the image, empty or inverted, the
            background or an unknown class.
        """
        if value is None:
            return []
        if not isinstance(value, list):
            raise InputError("boxes must be a list of [class, x0, y0, x1, y1]")
        from ..boxes import validate_boxes

        try:
            return validate_boxes(value, shape, num_classes=len(self.class_names))
        except ValueError as exc:
            raise InputError(f"boxes: {exc}") from None

    @staticmethod
    def parse_tight(value: Any) -> bool:
        """``tight_boxes`` from a request (False when absent).

        Raises
        ------
        InputError
            Not true or false.
        """
        if value is None:
            return False
        if not isinstance(value, bool):
            raise InputError("tight_boxes must be true or false")
        return value

    def set_boxes(self, entry: ImageEntry, boxes: list | None, tight: bool | None = None) -> None:
        """Keep ``boxes`` (a list of :class:`dipseg.boxes.Box`) as the image's current boxes.

        ``tight``: whether they touch their objects on every side (kept with them). None
        keeps the current boxes or the current choice.
        """
        with self.lock:
            if entry.id in self.entries:
                if boxes is not None:
                    self.boxes[entry.id] = list(boxes)
                if tight is not None:
                    self.tight[entry.id] = bool(tight)

    def current_boxes(self, entry: ImageEntry, shape: tuple[int, int]) -> tuple[list, bool, str | None]:
        """The image's boxes and their tightness: this session's, else those saved in ``--out``, else imported.

        Returns
        -------
        boxes : list of Box
        tight : bool
            As last sent with a Segment or Save (from the saved metadata after a restart);
            imported boxes (``Settings.boxes``) are as tight as ``Settings.tight_boxes`` says.
        note : str or None
            Why saved or imported boxes could not be read (then ``boxes`` is empty): shown,
            never raised, so the image still opens.
        """
        with self.lock:
            if entry.id in self.boxes:
                return list(self.boxes[entry.id]), self.tight.get(entry.id, False), None
        names = entry.outputs()
        path = self.out_dir / names["boxes"]
        if not path.is_file():
            return self._imported_boxes(entry, shape)
        from ..boxio import read_boxes

        try:
            boxes = read_boxes(path, shape, fmt="csv", classes=self.class_names, num_classes=len(self.class_names))
        except InputError as exc:
            return [], False, f"the saved boxes cannot be used: {exc}"
        return boxes, self._saved_meta(entry).get("tight_boxes") is True, None

    def _imported_boxes(self, entry: ImageEntry, shape: tuple[int, int]) -> tuple[list, bool, str | None]:
        """:meth:`current_boxes` from ``Settings.boxes``, for a folder image never saved (saving decides its boxes)."""
        if self.box_source is None or entry.source != "folder" or (self.out_dir / entry.outputs()["meta"]).is_file():
            return [], False, None
        try:
            boxes = self.box_source.boxes_for(entry.name, shape, num_classes=len(self.class_names))
        except InputError as exc:
            return [], False, f"the imported boxes cannot be used: {exc}"
        return boxes, bool(boxes) and self.settings.tight_boxes, None

    def _saved_meta(self, entry: ImageEntry) -> dict:
        """The image's saved ``<stem>_meta.json``; ``{}`` when missing or unreadable."""
        try:
            meta = json.loads((self.out_dir / entry.outputs()["meta"]).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _write_coco(self, entry: ImageEntry, classes: np.ndarray, boxes: list) -> str:
        """Put this image's result into ``--out/annotations.json`` (COCO, RLE masks), replacing its old one."""
        from ..boxio import coco_annotations

        path = self.out_dir / COCO_FILE
        data = {"images": [], "annotations": [], "categories": []}
        if path.is_file():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(old, dict) and isinstance(old.get("images"), list):
                    data = old
            except (OSError, ValueError):
                pass  # an unreadable file is rewritten from this image on
        keep = [im for im in data["images"] if isinstance(im, dict) and im.get("file_name") != entry.name]
        kept_ids = {im.get("id") for im in keep}
        anns = [a for a in data.get("annotations", []) if isinstance(a, dict) and a.get("image_id") in kept_ids]
        image_id = max([int(i) for i in kept_ids if isinstance(i, int)] + [0]) + 1
        keep.append({"id": image_id, "file_name": entry.name, "height": int(classes.shape[0]),
                     "width": int(classes.shape[1])})
        new = coco_annotations(classes, boxes or None, image_id=image_id,
                               start_id=max([int(a.get("id", 0)) for a in anns] + [0]) + 1)
        anns += new
        used = sorted({a["category_id"] for a in anns})
        names = self.class_names
        cats = [{"id": c, "name": names[c] if c < len(names) else str(c)} for c in used]
        text = json.dumps({"images": keep, "annotations": anns, "categories": cats})
        return self._atomic(COCO_FILE, text.encode("utf-8"))

    def set_labels(self, entry: ImageEntry, labels: np.ndarray) -> None:
        """Keep ``labels`` (uint8, 255 = unlabelled) as the image's current labels."""
        packed = Packed.of(labels)
        with self.lock:
            if entry.id in self.entries:
                self.labels[entry.id] = packed

    def unsaved(self, entry: ImageEntry) -> dict[str, bool]:
        """Whether this session's labels / mask of ``entry`` differ from what this server saved.

        Returns
        -------
        dict
            ``{"labels": bool, "mask": bool}``; True means held only in this server's
            memory (lost when it stops) until saved.
        """
        with self.lock:
            labels, result = self.labels.get(entry.id), self.results.get(entry.id)
            written_labels, written_mask = self.written.get(entry.id, (None, None))
        return {"labels": labels is not None and labels.digest != written_labels,
                "mask": result is not None and result.version != written_mask}

    def current_labels(self, entry: ImageEntry, shape: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
        """The labels painted in this session (``"memory"``) or saved in ``--out`` (``"file"``).

        Raises
        ------
        Conflict
            The saved label file cannot be read for this image.
        """
        with self.lock:
            packed = self.labels.get(entry.id)
        if packed is not None:
            return packed.unpack(), "memory"
        path = self.out_dir / entry.outputs()["labels"]
        if not path.is_file():
            return None, None
        try:
            return self._read_label_file(path, shape), "file"
        except InputError as exc:
            raise Conflict(f"the saved labels {path.name} cannot be used: {exc}") from None

    def labels_are_clicks(self, entry: ImageEntry, source: str | None) -> bool:
        """Whether the current labels are exactly those of a fit of clicks (a Segment with ``clicks``).

        Parameters
        ----------
        entry : ImageEntry
        source : {"memory", "file"} or None
            Where :meth:`current_labels` found them: this session's last fit, or the saved
            metadata (``mask_from_these_labels`` and ``fit.clicks``). Labels changed after
            such a fit are not clicks, as far as the server knows.
        """
        if source == "memory":
            with self.lock:
                result, packed = self.results.get(entry.id), self.labels.get(entry.id)
            return bool(result is not None and packed is not None and result.meta.get("clicks") is True
                        and result.labels.digest == packed.digest)
        if source == "file":
            meta = self._saved_meta(entry)
            fit = meta.get("fit")
            return meta.get("mask_from_these_labels") is True and isinstance(fit, dict) and fit.get("clicks") is True
        return False

    def _read_label_file(self, path: Path, shape: tuple[int, int]) -> np.ndarray:
        where = f"label file {path}"
        k = len(self.class_names)
        labels = labels_from_image(open_image(path, "label", self.settings.max_pixels), k, where)
        # a saved file may hold no labelled pixel (the user cleared them); check_labels
        # would refuse that, so it only checks what has something to check
        if labels.shape != tuple(shape) or (labels != IGNORE).any():
            labels = check_labels(labels, shape, k, where)
        return np.where(labels == IGNORE, UNLABELLED, labels).astype(np.uint8)

    # ---- results

    def set_result(self, image_id: str, classes: np.ndarray, labels: np.ndarray, meta: dict) -> int:
        """Record a finished fit (dropped if the image was forgotten meanwhile); returns its version."""
        result = Result(Packed.of(classes), Packed.of(labels), meta, 0)
        with self.lock:
            self.version += 1
            if image_id in self.entries:
                self.results[image_id] = Result(result.classes, result.labels, meta, self.version)
            return self.version

    def set_proposal(self, entry: ImageEntry, classes: np.ndarray, labels: np.ndarray, meta: dict) -> int:
        """Record a proposed mask and its labels as the image's current, unsaved work; returns its version.

        The check and both records happen under one lock, so a proposal never replaces
        labels or a mask that arrived while it was computed (the caller checks the files).

        Raises
        ------
        Conflict
            The image has labels or a mask in this session.
        """
        packed_labels, packed_classes = Packed.of(labels), Packed.of(classes)
        with self.lock:
            if entry.id in self.labels or entry.id in self.results:
                raise Conflict(f"{entry.name} got labels or a mask of its own meanwhile; the proposal is dropped")
            self.version += 1
            if entry.id in self.entries:
                self.labels[entry.id] = packed_labels
                self.results[entry.id] = Result(packed_classes, packed_labels, meta, self.version)
            return self.version

    def proposed(self, entry: ImageEntry) -> bool:
        """Whether the image's current mask is a proposal (a transfer from another image), not a fit."""
        with self.lock:
            result = self.results.get(entry.id)
        # a proposal's metadata names its source under "transfer" (dipseg.web.transfer)
        return result is not None and "transfer" in result.meta

    def mask_png(self, entry: ImageEntry) -> bytes | None:
        """The latest mask (this session's fit, else the saved file) as palette PNG bytes, or None."""
        with self.lock:
            result = self.results.get(entry.id)
        if result is not None:
            return encode_palette_png(result.classes.unpack())
        path = self.out_dir / entry.outputs()["mask"]
        try:
            return path.read_bytes() if path.is_file() else None
        except OSError:
            return None

    # ---- saving

    def _target(self, name: str) -> Path:
        path = (self.out_dir / name).resolve()
        if path.parent != self.out_dir:  # cannot happen with safe stems; belt and braces
            raise BadRequest("refusing to write outside the output folder")
        return path

    def _atomic(self, name: str, data: bytes) -> str:
        """Write ``data`` as ``name`` into ``--out``: temporary file, fsync, rename, fsync of the folder.

        A crash leaves the old file or the new one, never a part; a killed server may leave
        the temporary file, removed when the next one starts (:data:`TEMPORARY`).
        """
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the output folder {self.out_dir}: {exc.strerror or exc}") from None
        final = self._target(name)
        tmp = final.with_name(f".{final.stem}.{secrets.token_hex(4)}.tmp{final.suffix}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_folder(self.out_dir)
        except OSError as exc:
            raise StorageError(f"cannot write {name} into the output folder: {exc.strerror or exc}") from None
        finally:
            if tmp.exists():
                tmp.unlink()
        return final.name

    def save(self, entry: ImageEntry, image: np.ndarray, labels: np.ndarray | None = None,
             boxes: list | None = None, tight: bool | None = None) -> dict[str, Any]:
        """Write the mask, the labels and the metadata of ``entry`` into ``--out``.

        Saves of one image run one at a time, from taking the labels to the last file, so
        its files always come from one request.

        Parameters
        ----------
        entry : ImageEntry
        image : ndarray (H, W, 3) uint8
        labels : ndarray (H, W) uint8, optional
            New current labels (255 = unlabelled), set first; else the current ones.
        boxes : list of Box, optional
            New current boxes, set first. With a mask, the result also goes into
            ``annotations.json`` (COCO, RLE masks and boxes), and boxes into ``<stem>_boxes.csv``.
        tight : bool, optional
            Whether the boxes are tight (kept in the metadata as ``tight_boxes``); None keeps
            the current choice.

        Returns
        -------
        dict
            See :class:`dipseg.web.models.SaveResult`.

        Raises
        ------
        Conflict
            Neither labels nor a mask yet.
        StorageError
            The output folder cannot be written.
        """
        with self.lock:
            lock = self.save_locks.setdefault(entry.id, threading.Lock())
        with lock:
            if labels is not None:
                self.set_labels(entry, labels)
            if boxes is not None or tight is not None:
                self.set_boxes(entry, boxes, tight)
            with self.lock:
                result = self.results.get(entry.id)
                packed = self.labels.get(entry.id)
                current_boxes = list(self.boxes.get(entry.id, []))
                tight_boxes = bool(current_boxes) and self.tight.get(entry.id, False)
            if result is None and packed is None:
                raise Conflict("nothing to save yet: paint labels and press Segment first")
            labels = packed.unpack() if packed is not None else None
            names = entry.outputs()
            files: dict[str, str] = {}
            if result is not None:
                files["mask"] = self._atomic(names["mask"], encode_palette_png(result.classes.unpack()))
            if labels is not None:
                files["labels"] = self._atomic(names["labels"], encode_palette_png(labels))
            if current_boxes:
                from ..boxio import csv_boxes_text

                files["boxes"] = self._atomic(names["boxes"],
                                              csv_boxes_text(current_boxes, self.class_names).encode("utf-8"))
            if result is not None:
                files["coco"] = self._write_coco(entry, result.classes.unpack(), current_boxes)
            meta = {
                "image": entry.name,
                "image_path": str(entry.path) if entry.source == "folder" else None,
                "image_sha256": entry.sha256 or _file_sha256(entry.path),
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "classes": list(self.class_names),
                "files": dict(files, meta=names["meta"]),
                "labelled_pixels": int((labels != UNLABELLED).sum()) if labels is not None else None,
                "boxes": [b.as_list() for b in current_boxes],
                "tight_boxes": tight_boxes,
                "mask_from_these_labels": bool(result is not None and packed is not None
                                               and result.labels.digest == packed.digest),
                "fit": result.meta if result is not None else None,
                "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "dipseg_version": __version__,
            }
            text = json.dumps(meta, indent=2, default=str)
            files["meta"] = self._atomic(names["meta"], text.encode("utf-8"))
            with self.lock:
                if entry.id in self.entries:
                    self.written[entry.id] = (packed.digest if packed is not None else None,
                                              result.version if result is not None else None)
        return {"id": entry.id, "saved": True, "out_dir": str(self.out_dir), "files": files,
                "done": self.is_done(entry), "progress": self.progress()}


def _file_sha256(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform can open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
