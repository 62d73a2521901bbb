"""Reading images and label files, writing masks and overlays.

Label files come in two formats:

* **index PNG** (palette mode ``P`` or grayscale ``L``): the pixel value is the class
  index, ``255`` means unlabelled. This is VOC's own format, so a VOC ground-truth map
  (whose 255 border band is void) is itself a valid label file.
* **colour scribbles** (``RGB`` or ``RGBA``): each painted pixel has the VOC palette
  colour of its class. In RGBA images a pixel with alpha below 128 is unlabelled
  (transparent, including black with alpha 0). In RGB images the VOC void colour
  ``(224, 224, 192)`` is unlabelled, and black is class 0 (background), as in VOC.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .labels import IGNORE, VOID, validate_labels

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

DEFAULT_MAX_PIXELS = 4096 * 4096
"""Largest image accepted by default (pixels); protects memory from huge or bomb files."""

UNLABELLED_RGB = (224, 224, 192)
"""VOC's void colour; unlabelled in RGB scribble files."""


class InputError(ValueError):
    """A user-supplied file or value cannot be used; the message says why and what to do."""


def voc_palette(n: int = 256) -> np.ndarray:
    """The Pascal VOC colour map (bit-interleaved), shape ``(n, 3)`` uint8."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


PALETTE = voc_palette()


def _open(path: str | os.PathLike, what: str, max_pixels: int | None) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} file not found: {path}")
    if path.is_dir():
        raise InputError(f"{what} path is a folder, not a file: {path}")
    try:
        with warnings.catch_warnings():
            # PIL warns (or raises) about huge images; we check the size ourselves below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read {what} {path}: not an image file PIL understands ({exc.__class__.__name__})") from None
    with img:
        w, h = img.size
        if max_pixels is not None and w * h > max_pixels:
            raise InputError(
                f"{what} {path} is {w}x{h} = {w * h} pixels, more than the limit of {max_pixels}; "
                "resize it or raise --max-pixels"
            )
        try:
            img.load()
            # a detached copy, so no file handle outlives this call
            return img.copy()
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise InputError(f"cannot read {what} {path}: the file is truncated or corrupt ({exc})") from None


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as ``(H, W, 3) uint8`` RGB (alpha dropped, gray expanded).

    Raises
    ------
    InputError
        Missing, unreadable or larger than ``max_pixels``.
    """
    img = _open(path, "image", max_pixels)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def colours_to_labels(rgb: np.ndarray, alpha: np.ndarray | None = None, num_classes: int = 256) -> np.ndarray:
    """Map VOC palette colours to class indices.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    alpha : ndarray, shape (H, W), uint8, optional
        Pixels with alpha < 128 are unlabelled.
    num_classes : int
        Only the first ``num_classes`` palette colours are classes.

    Returns
    -------
    ndarray, shape (H, W), int64 with ``IGNORE`` where unlabelled.

    Raises
    ------
    InputError
        A painted colour is not one of the class colours.
    """
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pal = PALETTE[:num_classes].astype(np.int64)
    pal_codes = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    lookup = {int(code): i for i, code in enumerate(pal_codes)}
    labels = np.full(codes.shape, IGNORE, dtype=np.int64)
    if alpha is not None:
        painted = alpha >= 128
    else:
        u = UNLABELLED_RGB
        painted = codes != ((u[0] << 16) | (u[1] << 8) | u[2])
    values, inverse = np.unique(codes[painted], return_inverse=True)
    mapped = np.empty(len(values), dtype=np.int64)
    for k, v in enumerate(values):
        if int(v) not in lookup:
            r, g, b = (int(v) >> 16) & 255, (int(v) >> 8) & 255, int(v) & 255
            yx = np.argwhere(painted & (codes == v))[0]
            raise InputError(
                f"label colour ({r}, {g}, {b}) at row {yx[0]}, column {yx[1]} is not a class colour; "
                f"paint with the VOC palette colours of classes 0..{num_classes - 1} (see `dipseg classes`)"
            )
        mapped[k] = lookup[int(v)]
    labels[painted] = mapped[inverse]
    return labels


def read_labels(
    path: str | os.PathLike,
    shape: tuple[int, int] | None = None,
    num_classes: int = len(VOC_CLASSES),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read a label file (index PNG or colour scribbles, see module doc) as ``(H, W) int64``.

    Parameters
    ----------
    path : path-like
    shape : (H, W), optional
        The image's shape; a label map of another size is an error.
    num_classes : int
        Valid classes are ``0 .. num_classes-1`` (21 for VOC).

    Returns
    -------
    ndarray, shape (H, W), int64
        Class index per pixel, ``IGNORE`` (-1) where unlabelled.

    Raises
    ------
    InputError
        Unreadable file, wrong size, a value or colour that is not a class, or nothing labelled.
    """
    img = _open(path, "label", max_pixels)
    if img.mode in ("P", "L", "I", "I;16"):
        values = np.asarray(img, dtype=np.int64)
        labels = np.where(values == VOID, IGNORE, values)
    elif img.mode in ("RGB", "RGBA", "LA", "PA"):
        if img.mode in ("LA", "PA"):
            img = img.convert("RGBA")
        arr = np.asarray(img)
        alpha = arr[..., 3] if img.mode == "RGBA" else None
        labels = colours_to_labels(arr[..., :3], alpha, num_classes)
    else:
        raise InputError(f"label file {path} has image mode {img.mode}; save it as a palette, grayscale or RGB(A) PNG")
    try:
        return validate_labels(labels, shape=shape, num_classes=num_classes)
    except ValueError as exc:
        msg = str(exc)
        if "is not a class" in msg:
            msg += "; in index PNGs 255 marks unlabelled pixels"
        raise InputError(f"label file {path}: {msg}") from None


def _palette_image(index: np.ndarray) -> Image.Image:
    img = Image.fromarray(index.astype(np.uint8), mode="P")
    img.putpalette(PALETTE.ravel().tolist())
    return img


def write_mask(path: str | os.PathLike, classes: np.ndarray) -> Path:
    """Write a class map ``(H, W)`` (values 0..254) as a VOC palette PNG."""
    classes = np.asarray(classes)
    if classes.ndim != 2 or classes.min(initial=0) < 0 or classes.max(initial=0) > 254:
        raise ValueError(f"class map must be (H, W) with values 0..254, got shape {classes.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _palette_image(classes).save(path)
    return path


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write sparse labels as an index PNG (VOC palette, 255 = unlabelled)."""
    labels = np.asarray(labels)
    out = np.where(labels == IGNORE, VOID, labels)
    if out.min(initial=0) < 0 or out.max(initial=0) > 255:
        raise ValueError("labels must be IGNORE or 0..254 to be written as a PNG")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _palette_image(out).save(path)
    return path


def colourize(index: np.ndarray) -> np.ndarray:
    """VOC colours for a class map ``(H, W)`` -> ``(H, W, 3) uint8`` (IGNORE shown as void colour)."""
    index = np.asarray(index)
    return PALETTE[np.where(index < 0, VOID, index).astype(np.int64) % 256]


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
