"""Reading images and label files, writing masks and overlays.

Label files come in two kinds (every accepted encoding, with examples: ``docs/labels.md``):

* **index images** (palette ``P``, grayscale ``L``, 16-bit ``I;16``, 32-bit ``I``): the
  pixel value is the class index and one value means unlabelled: ``255`` by default
  (VOC's own format, so a VOC ground-truth map is itself a valid label file), any other with
  ``unlabelled=VALUE`` (``0`` for napari, ilastik and most annotation tools). The GrabCut
  scribbles of Andrade & Carrera 2015 (0 unlabelled, 1 foreground, 2 background) are
  recognised by their palette (:data:`LABEL_FORMATS`).
* **colour scribbles** (``RGB`` or ``RGBA``): each painted pixel has the VOC palette
  colour of its class. In RGBA images a pixel with alpha below 128 is unlabelled
  (transparent, including black with alpha 0). In RGB images the VOC void colour
  ``(224, 224, 192)`` is unlabelled, and black is class 0 (background), as in VOC;
  ``unlabelled=(R, G, B)`` names another unlabelled colour (e.g. black).

A label file in which more than half of the pixels are labelled is almost always read with
the wrong unlabelled value: :func:`read_labels` warns (:class:`LabelWarning`).

Images with more than 8 bits per channel are scaled to 0..255, never clipped
(:func:`to_rgb`). Every decoder here is bomb-safe: the pixel count is checked against
``max_pixels`` from the header, before any pixel is decoded.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from dataclasses import dataclass
from io import BytesIO, StringIO
from pathlib import Path
from types import MappingProxyType
from typing import Iterator, Mapping, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .labels import IGNORE, VOID, validate_labels
from .palette import PALETTE, UNLABELLED_RGB, VOC_CLASSES, colourize, save_palette_png

__all__ = [
    "DEFAULT_MAX_PIXELS", "LABEL_FORMATS", "InputError", "LabelFile", "LabelFormat", "LabelWarning", "GroundTruth",
    "TooLargeError", "UnsupportedFormatError", "PALETTE", "VOC_CLASSES", "colourize", "colours_to_labels",
    "decode_image", "decode_label_image", "labels_from_image", "load_label_file", "open_image", "overlay",
    "read_ground_truth", "read_image", "read_index_png", "read_labels", "write_labels", "write_mask", "write_rgb",
]

DEFAULT_MAX_PIXELS = 4096 * 4096
"""Largest image accepted by default (pixels); protects memory from huge or bomb files."""

PIL_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
"""Pillow refuses images above this many pixels (its decompression-bomb error), whatever ``max_pixels`` says."""


class InputError(ValueError):
    """A user-supplied file or value cannot be used; the message says why and what to do."""


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
"""Files of a folder of images that are taken (case-insensitive): ``dipseg serve --images``,
``dipseg segment FOLDER``, ``dipseg transfer``."""


def natural_key(name: str) -> list:
    """Sort key of a file name with its numbers as numbers (``img2`` before ``img10``)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files at the top of ``folder`` (:data:`IMAGE_SUFFIXES`, not hidden), in natural order."""
    return sorted((p for p in Path(folder).iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()),
                  key=lambda p: natural_key(p.name))


def read_text(path: str | os.PathLike, what: str) -> str:
    """The text of a user's file (UTF-8, a byte-order mark dropped), or an :class:`InputError` naming ``what`` it is.

    Raises
    ------
    InputError
        Missing, unreadable or not UTF-8: "box file not found: PATH" and the like.
    """
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from None


def csv_rows(text: str, fields: Sequence[str], where: str) -> Iterator[tuple[str, list[str]]]:
    """The data lines of a small CSV file as ``("WHERE, line N", fields)``: blank lines, ``#``
    comments and a first-line header (its second field is ``fields[1]``) skipped.

    Raises
    ------
    InputError
        A line with another number of fields than ``fields``.
    """
    for n, row in enumerate(csv.reader(StringIO(text)), start=1):
        if not row or all(not f.strip() for f in row) or row[0].lstrip().startswith("#"):
            continue
        here = f"{where}, line {n}"
        if len(row) != len(fields):
            raise InputError(f"{here}: expected {','.join(fields)} ({len(fields)} fields), got {len(row)}")
        if n == 1 and row[1].strip().lower() == fields[1]:
            continue  # header
        yield here, row


class TooLargeError(InputError):
    """An image has more pixels (or bytes) than the configured limit."""


class UnsupportedFormatError(InputError):
    """The data is not an image in a format that is read here."""


def open_image(
    source: str | os.PathLike | bytes,
    what: str = "image",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: list[str] | None = None,
    orient: bool = False,
) -> Image.Image:
    """Open and fully decode an image file or bytes, refusing pixel bombs before decoding.

    Parameters
    ----------
    source : path-like or bytes
        A file, or the encoded bytes of one (an upload).
    what : str
        What the image is, for messages (``"image"``, ``"label"``, ...).
    max_pixels : int or None
        Largest accepted ``width * height``; checked from the header.
    formats : list of str, optional
        PIL format names to try (all of PIL's when None).
    orient : bool
        Apply the EXIF orientation tag (phone photos store their pixels sideways and say
        so there), so the pixels are the picture as viewers show it; label files keep
        their stored pixels.

    Returns
    -------
    PIL.Image.Image
        A detached, loaded copy (no file handle stays open).

    Raises
    ------
    InputError
        Missing file or folder (:class:`InputError`), not an image
        (:class:`UnsupportedFormatError`), more than ``max_pixels`` (:class:`TooLargeError`),
        truncated or corrupt (:class:`InputError`).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, fp = f"the uploaded {what}", BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"{what} file not found: {path}")
        if path.is_dir():
            raise InputError(f"{what} path is a folder, not a file: {path}")
        name, fp = f"{what} {path}", path
    try:
        with warnings.catch_warnings():
            # PIL warns (or raises) about huge images; the size is checked here, below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp, formats=formats)
    except Image.DecompressionBombError as exc:
        raise TooLargeError(_bomb_message(name, str(exc), max_pixels)) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnsupportedFormatError(
            f"cannot read {name}: not an image file PIL understands ({exc.__class__.__name__})") from None
    with img:
        w, h = img.size
        if max_pixels is not None and w * h > max_pixels:
            raise TooLargeError(
                f"{name} is {w}x{h} = {w * h} pixels, more than the limit of {max_pixels}; "
                "resize it or raise --max-pixels"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.load()
                if orient:
                    # a transposed copy when the tag asks for one, else None (then copy below)
                    turned = ImageOps.exif_transpose(img, in_place=False)
                    if turned is not None and turned is not img:
                        return turned
                # a detached copy, so no file handle outlives this call
                return img.copy()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise InputError(f"cannot read {name}: the file is truncated or corrupt ({exc})") from None


def _bomb_message(name: str, pil_message: str, max_pixels: int | None) -> str:
    """The message for an image Pillow refused as a decompression bomb, with its real size when known."""
    found = re.search(r"\((\d+) pixels\)", pil_message)
    size = f" is {int(found.group(1))} pixels," if found else " has"
    if max_pixels is not None and (found is None or int(found.group(1)) > max_pixels):
        return f"{name}{size} more than the limit of {max_pixels}; resize it or raise --max-pixels"
    return f"{name}{size} more than Pillow's limit of {PIL_MAX_PIXELS} pixels, which --max-pixels cannot raise; resize it"


HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
"""Single-channel PIL modes with more than 8 bits, which ``Image.convert("RGB")`` would clip at 255."""


def to_rgb(img: Image.Image) -> np.ndarray:
    """A decoded PIL image as ``(H, W, 3) uint8`` RGB (alpha dropped, gray expanded).

    16-bit gray (``I;16``) is scaled from 0..65535 to 0..255, as Pillow itself does for
    16-bit colour; 32-bit integer (``I``) and float (``F``) images have no fixed range and
    are stretched from their minimum to their maximum. ``convert("RGB")`` would clip all of
    them at 255, turning a 16-bit photo white.
    """
    if img.mode not in HIGH_DEPTH_MODES:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    values = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16"):
        lo, span = 0.0, 65535.0
    else:
        finite = values[np.isfinite(values)]
        lo = float(finite.min()) if finite.size else 0.0
        span = (float(finite.max()) - lo) if finite.size else 0.0
    scaled = np.nan_to_num((values - lo) * (255.0 / span) if span > 0 else np.zeros_like(values))
    gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def decode_image(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS, formats: list[str] | None = None) -> np.ndarray:
    """Decode the bytes of an image file (an upload) to ``(H, W, 3) uint8`` RGB, EXIF orientation applied.

    Raises
    ------
    InputError
        See :func:`open_image`; also an image smaller than 2x2.
    """
    img = open_image(data, "image", max_pixels, formats, orient=True)
    if min(img.size) < 2:
        raise InputError(f"the image is {img.size[0]}x{img.size[1]} pixels; it must be at least 2x2")
    return to_rgb(img)


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as ``(H, W, 3) uint8`` RGB (alpha dropped, gray expanded, EXIF orientation applied).

    Raises
    ------
    InputError
        Missing, unreadable or larger than ``max_pixels``.
    """
    return to_rgb(open_image(path, "image", max_pixels, orient=True))


def _index_values(img: Image.Image, what: str, path) -> np.ndarray:
    if img.mode not in ("P", "L"):
        raise InputError(f"{what} {path} has image mode {img.mode}; expected an index image (palette P or grayscale L)")
    return np.asarray(img, dtype=np.int64).copy()


def read_index_png(path: str | os.PathLike, what: str = "ground truth", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Pixel values (palette indices, not colours) of a palette or grayscale image, ``(H, W) int64``.

    Raises
    ------
    InputError
        Missing or unreadable file, or an image that is not palette (``P``) or grayscale (``L``).
    """
    return _index_values(open_image(path, what, max_pixels), what, path)


# ----------------------------------------------------------------------------- label files


class LabelWarning(UserWarning):
    """A label file that reads, but probably not as its author meant (e.g. mostly labelled)."""


Unlabelled = Union[int, tuple[int, int, int], None]
"""What marks an unlabelled pixel: a value (index files), an ``(R, G, B)`` colour (colour
files), or None for the default (255; transparent or VOC's void colour)."""

INDEX_MODES = ("P", "L", "I", "I;16", "I;16B", "I;16L", "I;16N")
"""PIL modes read as index label files (the value is the class)."""

COLOUR_MODES = ("RGB", "RGBA", "LA", "PA")
"""PIL modes read as colour scribbles (VOC palette colours)."""

DENSE_FRACTION = 0.5
"""A label file with more than this fraction of its pixels labelled gets a :class:`LabelWarning`."""


@dataclass(frozen=True)
class LabelFormat:
    """A convention of index label files: which value is unlabelled, and which value is which class.

    Attributes
    ----------
    name : str
    unlabelled : int
        Value of unlabelled pixels.
    classes : mapping of int to int, or None
        Value -> class index; any other value is an error. None: the value is the class.
    class_names : tuple of str or None
        Names of the classes, where the format defines them.
    palette : tuple of (r, g, b) or None
        The first palette colours of a palette PNG in this format; ``label_format="auto"``
        recognises the format by them.
    description : str
    """

    name: str
    unlabelled: int
    classes: Mapping[int, int] | None
    class_names: tuple[str, ...] | None
    palette: tuple[tuple[int, int, int], ...] | None
    description: str


LABEL_FORMATS: Mapping[str, LabelFormat] = MappingProxyType({
    "voc": LabelFormat(
        "voc", VOID, None, None, None,
        "value = class, 255 = unlabelled (Pascal VOC; what dipseg writes); another unlabelled value with --unlabelled",
    ),
    "grabcut": LabelFormat(
        "grabcut", 0, MappingProxyType({1: 1, 2: 0}), ("background", "foreground"),
        ((0, 0, 0), (255, 255, 207), (219, 0, 0), (0, 0, 219)),
        "GrabCut scribbles of Andrade & Carrera 2015: 0 = unlabelled, 1 = foreground (class 1), "
        "2 = background (class 0); recognised by their palette",
    ),
})
"""Index label-file conventions by name; ``label_format="auto"`` picks one by the file's palette."""

LABEL_FORMAT_CHOICES = ("auto", *LABEL_FORMATS)


@dataclass(frozen=True)
class LabelFile:
    """A decoded label file and how it was read.

    Attributes
    ----------
    labels : ndarray (H, W) int64
        Class index per pixel, ``IGNORE`` where unlabelled.
    kind : {"index", "colour"}
    format : LabelFormat or None
        Index files: the convention used.
    unlabelled : int or (r, g, b) or None
        The value (index) or colour (colour files) read as unlabelled; None: transparent or
        VOC's void colour.
    class_names : tuple of str or None
        Class names the file implies (its format's, or VOC's for VOC colours and palettes).
    note : str or None
        How the file was read, when it was recognised as something other than VOC.
    warning : str or None
        Set when more than half of the pixels are labelled (see :data:`DENSE_FRACTION`).
    """

    labels: np.ndarray
    kind: str
    format: LabelFormat | None
    unlabelled: Unlabelled
    class_names: tuple[str, ...] | None
    note: str | None = None
    warning: str | None = None


def _colour_text(rgb) -> str:
    return ",".join(str(int(v)) for v in rgb)


def colours_to_labels(
    rgb: np.ndarray, alpha: np.ndarray | None = None, num_classes: int = 256,
    unlabelled: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Map VOC palette colours to class indices.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    alpha : ndarray, shape (H, W), uint8, optional
        Pixels with alpha < 128 are unlabelled.
    num_classes : int
        Only the first ``num_classes`` palette colours are classes.
    unlabelled : (r, g, b), optional
        Pixels of this colour are unlabelled. Default: VOC's void colour ``(224, 224, 192)``
        without ``alpha``, none with it.

    Returns
    -------
    ndarray, shape (H, W), int64 with ``IGNORE`` where unlabelled.

    Raises
    ------
    InputError
        A painted colour is not one of the class colours; the message says how unlabelled
        pixels are marked and that JPEG or a soft brush changes colours.
    """
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pal = PALETTE[:num_classes].astype(np.int64)
    pal_codes = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    lookup = {int(code): i for i, code in enumerate(pal_codes)}
    labels = np.full(codes.shape, IGNORE, dtype=np.int64)
    painted = alpha >= 128 if alpha is not None else np.ones(codes.shape, bool)
    u = unlabelled if unlabelled is not None else (None if alpha is not None else UNLABELLED_RGB)
    if u is not None:
        painted &= codes != ((u[0] << 16) | (u[1] << 8) | u[2])
    values, inverse = np.unique(codes[painted], return_inverse=True)
    known = np.array([int(v) in lookup for v in values], dtype=bool)
    if not known.all():
        v = int(values[~known][0])
        r, g, b = (v >> 16) & 255, (v >> 8) & 255, v & 255
        yx = np.argwhere(painted & (codes == v))[0]
        bad_pixels = int(np.isin(inverse, np.flatnonzero(~known)).sum())
        how = "transparent (alpha < 128) or the void colour (224, 224, 192)" if unlabelled is None else (
            f"transparent (alpha < 128) or the colour ({_colour_text(unlabelled)})")
        raise InputError(
            f"label colour ({r}, {g}, {b}) at row {yx[0]}, column {yx[1]} is not a class colour "
            f"({bad_pixels} pixels in {int((~known).sum())} such colours); paint with the VOC palette colours "
            f"of classes 0..{num_classes - 1} (see `dipseg classes`), leave unlabelled pixels {how} "
            "(another unlabelled colour: --unlabelled R,G,B), and save as PNG with a hard brush: "
            "JPEG compression and soft (anti-aliased) brushes change colours"
        )
    mapped = np.array([lookup[int(v)] for v in values], dtype=np.int64)
    labels[painted] = mapped[inverse]
    return labels


VOC_CLASS_COLOURS = tuple(tuple(int(v) for v in c) for c in PALETTE[: len(VOC_CLASSES)])
"""The first palette colours of a VOC palette PNG: its class names are VOC's."""


def _palette(img: Image.Image, n: int) -> tuple[tuple[int, int, int], ...]:
    pal = img.getpalette() or []
    return tuple(tuple(pal[3 * i : 3 * i + 3]) for i in range(min(n, len(pal) // 3)))


def _pick_format(img: Image.Image, label_format: str, unlabelled: Unlabelled) -> LabelFormat:
    if label_format not in LABEL_FORMAT_CHOICES:
        raise ValueError(f"unknown label format {label_format!r}; choose one of: {', '.join(LABEL_FORMAT_CHOICES)}")
    if label_format != "auto":
        if unlabelled is not None and label_format != "voc":
            raise ValueError(f"label format {label_format!r} fixes its unlabelled value; do not also give --unlabelled")
        return LABEL_FORMATS[label_format]
    if unlabelled is None and img.mode == "P":
        for fmt in LABEL_FORMATS.values():
            if fmt.palette is not None and _palette(img, len(fmt.palette)) == fmt.palette:
                return fmt
    return LABEL_FORMATS["voc"]


def _dense_warning(labels: np.ndarray, keys: np.ndarray, where: str, word: str, spell) -> str | None:
    """A warning when more than :data:`DENSE_FRACTION` of the pixels are labelled.

    ``keys`` holds each pixel's raw value or colour code; ``spell(key)`` writes the most
    common labelled one as an ``--unlabelled`` argument; ``word`` is "value" or "colour".
    """
    labelled = labels != IGNORE
    fraction = float(labelled.mean())
    if fraction <= DENSE_FRACTION:
        return None
    values, counts = np.unique(keys[labelled], return_counts=True)
    top = spell(int(values[np.argmax(counts)]))
    share = float(counts.max()) / labels.size
    return (
        f"{where}: {fraction:.0%} of the pixels are labelled, {share:.0%} with the {word} {top}; scribbles usually "
        f"cover a few percent, so {top} probably marks unlabelled pixels: if so, pass --unlabelled {top} "
        f"(read_labels(..., unlabelled=...)); see docs/labels.md"
    )


def decode_label_image(
    img: Image.Image,
    num_classes: int = len(VOC_CLASSES),
    where: str = "label file",
    unlabelled: Unlabelled = None,
    label_format: str = "auto",
) -> LabelFile:
    """Sparse labels from a decoded label image, and how it was read (see module doc).

    Parameters
    ----------
    img : PIL.Image.Image
        Index modes (:data:`INDEX_MODES`) or colour modes (:data:`COLOUR_MODES`).
    num_classes : int
        Valid classes are ``0 .. num_classes-1`` (the colours of colour files).
    where : str
        Names the source in messages.
    unlabelled : int or (r, g, b), optional
        The value (index files) or colour (colour files) of unlabelled pixels.
    label_format : {"auto", "voc", "grabcut"}
        Convention of index files (:data:`LABEL_FORMATS`); ``auto`` recognises a format by
        its palette and reads anything else as ``voc``.

    Returns
    -------
    LabelFile
        Its labels are not validated yet (see :func:`load_label_file`).

    Raises
    ------
    InputError
        An unsupported image mode, a colour that is not a class colour, a value the format
        does not define, or an ``unlabelled`` of the wrong kind for the file.
    ValueError
        Unknown ``label_format``, or ``unlabelled`` given with a format that fixes it.
    """
    fmt = _pick_format(img, label_format, unlabelled)
    if img.mode in INDEX_MODES:
        if isinstance(unlabelled, tuple):
            raise InputError(f"{where} is an index image (mode {img.mode}): its unlabelled pixels are a value, "
                             f"not a colour; give --unlabelled VALUE")
        values = np.asarray(img, dtype=np.int64)
        u = fmt.unlabelled if unlabelled is None else int(unlabelled)
        if fmt.classes is None:
            labels = np.where(values == u, IGNORE, values)
        else:
            allowed = {u, *fmt.classes}
            bad = ~np.isin(values, list(allowed))
            if bad.any():
                yx = np.argwhere(bad)[0]
                raise InputError(f"{where}: value {int(values[tuple(yx)])} at row {yx[0]}, column {yx[1]} is not "
                                 f"one of the {fmt.name} format's values ({fmt.description})")
            lut = np.full(max(allowed) + 1, IGNORE, dtype=np.int64)
            for value, cls in fmt.classes.items():
                lut[value] = cls
            labels = lut[values]
        voc_palette = img.mode == "P" and _palette(img, len(VOC_CLASSES)) == VOC_CLASS_COLOURS
        names = fmt.class_names or (VOC_CLASSES if voc_palette else None)
        note = f"{where} read as {fmt.description}" if fmt.name != "voc" else None
        warning = _dense_warning(labels, values, where, "value", str)
        return LabelFile(labels, "index", fmt, u, names, note, warning)
    if img.mode in COLOUR_MODES:
        if unlabelled is not None and not isinstance(unlabelled, tuple):
            raise InputError(f"{where} is a colour image (mode {img.mode}): its unlabelled pixels are a colour, "
                             f"not a value; give --unlabelled R,G,B (e.g. 0,0,0 for black)")
        if img.mode in ("LA", "PA"):
            img = img.convert("RGBA")
        arr = np.asarray(img)
        alpha = arr[..., 3] if img.mode == "RGBA" else None
        labels = colours_to_labels(arr[..., :3], alpha, num_classes, unlabelled)
        codes = (arr[..., 0].astype(np.int64) << 16) | (arr[..., 1].astype(np.int64) << 8) | arr[..., 2]
        warning = _dense_warning(labels, codes, where, "colour",
                                 lambda c: _colour_text(((c >> 16) & 255, (c >> 8) & 255, c & 255)))
        return LabelFile(labels, "colour", None, unlabelled, VOC_CLASSES, None, warning)
    raise InputError(f"{where} has image mode {img.mode}; save it as a palette, grayscale or RGB(A) PNG")


def labels_from_image(img: Image.Image, num_classes: int = len(VOC_CLASSES), where: str = "label file",
                      unlabelled: Unlabelled = None, label_format: str = "auto") -> np.ndarray:
    """Sparse labels ``(H, W) int64`` from a decoded label image (see :func:`decode_label_image`).

    Returns
    -------
    ndarray (H, W) int64
        Class index per pixel, ``IGNORE`` where unlabelled (not validated: see :func:`read_labels`).
    """
    return decode_label_image(img, num_classes, where, unlabelled, label_format).labels


def check_labels(labels: np.ndarray, shape: tuple[int, int] | None, num_classes: int, where: str,
                 unlabelled: Unlabelled = None) -> np.ndarray:
    """:func:`dipseg.labels.validate_labels` with the file named and the unlabelled value explained."""
    try:
        return validate_labels(labels, shape=shape, num_classes=num_classes)
    except ValueError as exc:
        msg = str(exc)
        if "is not a class" in msg:
            value = VOID if unlabelled is None else unlabelled
            msg += f"; {value} marks unlabelled pixels in this file (another value: --unlabelled VALUE)"
        raise InputError(f"{where}: {msg}") from None


def load_label_file(
    path: str | os.PathLike,
    shape: tuple[int, int] | None = None,
    num_classes: int = len(VOC_CLASSES),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    unlabelled: Unlabelled = None,
    label_format: str = "auto",
) -> LabelFile:
    """Read and validate a label file; see :func:`read_labels`, which returns only the labels.

    Returns
    -------
    LabelFile
        ``labels`` validated (shape, classes, at least one labelled pixel); ``warning`` set
        when more than half of the pixels are labelled.
    """
    where = f"label file {path}"
    lf = decode_label_image(open_image(path, "label", max_pixels), num_classes, where, unlabelled, label_format)
    labels = check_labels(lf.labels, shape, num_classes, where, lf.unlabelled if lf.kind == "index" else None)
    return LabelFile(labels, lf.kind, lf.format, lf.unlabelled, lf.class_names, lf.note, lf.warning)


def read_labels(
    path: str | os.PathLike,
    shape: tuple[int, int] | None = None,
    num_classes: int = len(VOC_CLASSES),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    unlabelled: Unlabelled = None,
    label_format: str = "auto",
) -> np.ndarray:
    """Read a label file (index image or colour scribbles, see module doc) as ``(H, W) int64``.

    Parameters
    ----------
    path : path-like
    shape : (H, W), optional
        The image's shape; a label map of another size is an error.
    num_classes : int
        Valid classes are ``0 .. num_classes-1`` (21 for VOC).
    max_pixels : int or None
    unlabelled : int or (r, g, b), optional
        Index files: the value of unlabelled pixels (default 255; 0 for napari, ilastik
        and most annotation tools). Colour files: an unlabelled colour besides transparency
        (default VOC's void colour ``(224, 224, 192)``).
    label_format : {"auto", "voc", "grabcut"}
        Index files' convention (:data:`LABEL_FORMATS`); ``auto`` recognises the GrabCut
        scribbles of Andrade & Carrera 2015 by their palette.

    Returns
    -------
    ndarray, shape (H, W), int64
        Class index per pixel, ``IGNORE`` (-1) where unlabelled.

    Raises
    ------
    InputError
        Unreadable file, wrong size, a value or colour that is not a class, or nothing labelled.

    Warns
    -----
    LabelWarning
        More than half of the pixels are labelled: probably the wrong ``unlabelled``.
    """
    lf = load_label_file(path, shape, num_classes, max_pixels, unlabelled, label_format)
    if lf.warning:
        warnings.warn(lf.warning, LabelWarning, stacklevel=2)
    return lf.labels


# ----------------------------------------------------------------------------- ground truth


BINARY_MASK_VALUES = (0, 128, 255)
"""Values of a grayscale binary mask: background, GrabCut's unknown band (void), foreground."""


@dataclass(frozen=True)
class GroundTruth:
    """A ground-truth map as :func:`dipseg.samplers.sample_labels` takes it.

    Attributes
    ----------
    values : ndarray (H, W) int64
        Class per pixel, ``void`` where not scored.
    void : int
    note : str or None
        How the file was read, when not the VOC way.
    """

    values: np.ndarray
    void: int
    note: str | None = None


def read_ground_truth(
    path: str | os.PathLike, void: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> GroundTruth:
    """Read a ground-truth map: an index image, or a grayscale binary mask.

    Parameters
    ----------
    path : path-like
        Palette or grayscale image.
    void : int, optional
        The value never sampled. Default: a grayscale image whose values are all in
        :data:`BINARY_MASK_VALUES` and include 0 and 255 is a binary mask (GrabCut's masks, COCO
        and most tools' object masks): 0 -> class 0, 255 -> class 1, 128 -> void; anything
        else is read the VOC way, 255 = void.

    Returns
    -------
    GroundTruth

    Raises
    ------
    InputError
        Unreadable, or not a palette or grayscale image.
    """
    img = open_image(path, "ground truth", max_pixels)
    values = _index_values(img, "ground truth", path)
    if void is None:
        present = np.unique(values)
        if img.mode == "L" and {0, VOID} <= set(present.tolist()) and np.isin(present, BINARY_MASK_VALUES).all():
            gt = np.select([values == 255, values == 0], [1, 0], VOID).astype(np.int64)
            return GroundTruth(gt, VOID, f"{path} read as a binary mask: 0 = class 0 (background), "
                                         "255 = class 1 (foreground), 128 = void; --void 255 reads it the VOC way")
        void = VOID
    return GroundTruth(values, int(void))


def write_mask(path: str | os.PathLike, classes: np.ndarray) -> Path:
    """Write a class map ``(H, W)`` (values 0..254) as a VOC palette PNG."""
    classes = np.asarray(classes)
    if classes.ndim != 2 or classes.min(initial=0) < 0 or classes.max(initial=0) > 254:
        raise ValueError(f"class map must be (H, W) with values 0..254, got shape {classes.shape}")
    return save_palette_png(path, classes)


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write sparse labels as an index PNG (VOC palette, 255 = unlabelled)."""
    labels = np.asarray(labels)
    out = np.where(labels == IGNORE, VOID, labels)
    if out.min(initial=0) < 0 or out.max(initial=0) > 255 or np.any(labels == VOID):
        raise ValueError(f"labels must be IGNORE ({IGNORE}) or classes 0..254 to be written as a label PNG, "
                         f"where {VOID} marks unlabelled pixels; got values {int(np.min(labels, initial=0))}..{int(np.max(labels, initial=0))}")
    return save_palette_png(path, out)


def overlay(
    image: np.ndarray, classes: np.ndarray, labels: np.ndarray | None = None, alpha: float = 0.5
) -> np.ndarray:
    """Blend the mask over the image, outline class borders and draw the labelled pixels.

    Parameters
    ----------
    image : (H, W, 3) uint8
    classes : (H, W) int
    labels : (H, W) int, optional
        Labelled pixels are drawn in their class colour with a white rim so seeds stay visible.
    alpha : float in [0, 1]
        Mask opacity.

    Returns
    -------
    (H, W, 3) uint8
    """
    from scipy import ndimage

    colour = colourize(classes).astype(np.float32)
    out = (1 - alpha) * image.astype(np.float32) + alpha * colour
    edge = np.zeros(classes.shape, bool)
    edge[:-1] |= classes[:-1] != classes[1:]
    edge[:, :-1] |= classes[:, :-1] != classes[:, 1:]
    out[edge] = colour[edge] * 0.6
    if labels is not None:
        seeds = labels != IGNORE
        grown = ndimage.binary_dilation(seeds, iterations=1)
        out[grown & ~seeds] = 255
        out[seeds] = colourize(labels)[seeds]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def write_rgb(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an ``(H, W, 3) uint8`` array as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path)
    return path
