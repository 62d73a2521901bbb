"""Reading images and label files, writing masks and overlays.

Label files come in two formats:

* **index PNG** (palette mode ``P`` or grayscale ``L``): the pixel value is the class
  index, ``255`` means unlabelled. This is VOC's own format, so a VOC ground-truth map
  (whose 255 border band is void) is itself a valid label file.
* **colour scribbles** (``RGB`` or ``RGBA``): each painted pixel has the VOC palette
  colour of its class. In RGBA images a pixel with alpha below 128 is unlabelled
  (transparent, including black with alpha 0). In RGB images the VOC void colour
  ``(224, 224, 192)`` is unlabelled, and black is class 0 (background), as in VOC.

Every decoder here is bomb-safe: the pixel count is checked against ``max_pixels`` from
the header, before any pixel is decoded.
"""

from __future__ import annotations

import os
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .labels import IGNORE, VOID, validate_labels
from .palette import PALETTE, UNLABELLED_RGB, VOC_CLASSES, colourize, save_palette_png

__all__ = [
    "DEFAULT_MAX_PIXELS", "InputError", "TooLargeError", "UnsupportedFormatError", "PALETTE", "VOC_CLASSES",
    "colourize", "colours_to_labels", "decode_image", "labels_from_image", "open_image", "overlay",
    "read_image", "read_index_png", "read_labels", "write_labels", "write_mask", "write_rgb",
]

DEFAULT_MAX_PIXELS = 4096 * 4096
"""Largest image accepted by default (pixels); protects memory from huge or bomb files."""


class InputError(ValueError):
    """A user-supplied file or value cannot be used; the message says why and what to do."""


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
    except Image.DecompressionBombError:
        raise TooLargeError(f"{name} has more pixels than the limit of {max_pixels}; resize it or raise --max-pixels") from None
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


def to_rgb(img: Image.Image) -> np.ndarray:
    """A decoded PIL image as ``(H, W, 3) uint8`` RGB (alpha dropped, gray expanded)."""
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


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


def read_index_png(path: str | os.PathLike, what: str = "ground truth", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Pixel values (palette indices, not colours) of a palette or grayscale image, ``(H, W) int64``.

    Raises
    ------
    InputError
        Missing or unreadable file, or an image that is not palette (``P``) or grayscale (``L``).
    """
    img = open_image(path, what, max_pixels)
    if img.mode not in ("P", "L"):
        raise InputError(f"{what} {path} has image mode {img.mode}; expected an index image (palette P or grayscale L)")
    return np.asarray(img, dtype=np.int64).copy()


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


def labels_from_image(img: Image.Image, num_classes: int = len(VOC_CLASSES), where: str = "label file") -> np.ndarray:
    """Sparse labels from a decoded label image (index PNG or colour scribbles, see module doc).

    Parameters
    ----------
    img : PIL.Image.Image
        Mode ``P``, ``L``, ``I`` or ``I;16`` (index: value = class, 255 = unlabelled), or
        ``RGB``, ``RGBA``, ``LA``, ``PA`` (VOC colours; transparent or void colour = unlabelled).
    num_classes : int
        Valid classes are ``0 .. num_classes-1``.
    where : str
        Names the source in messages.

    Returns
    -------
    ndarray (H, W) int64
        Class index per pixel, ``IGNORE`` where unlabelled (not validated: see :func:`read_labels`).

    Raises
    ------
    InputError
        An unsupported image mode, or a colour that is not a class colour.
    """
    if img.mode in ("P", "L", "I", "I;16"):
        values = np.asarray(img, dtype=np.int64)
        return np.where(values == VOID, IGNORE, values)
    if img.mode in ("RGB", "RGBA", "LA", "PA"):
        if img.mode in ("LA", "PA"):
            img = img.convert("RGBA")
        arr = np.asarray(img)
        alpha = arr[..., 3] if img.mode == "RGBA" else None
        return colours_to_labels(arr[..., :3], alpha, num_classes)
    raise InputError(f"{where} has image mode {img.mode}; save it as a palette, grayscale or RGB(A) PNG")


def check_labels(labels: np.ndarray, shape: tuple[int, int] | None, num_classes: int, where: str) -> np.ndarray:
    """:func:`dipseg.labels.validate_labels` with the file named and the unlabelled value explained."""
    try:
        return validate_labels(labels, shape=shape, num_classes=num_classes)
    except ValueError as exc:
        msg = str(exc)
        if "is not a class" in msg:
            msg += "; in index PNGs 255 marks unlabelled pixels"
        raise InputError(f"{where}: {msg}") from None


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
    max_pixels : int or None

    Returns
    -------
    ndarray, shape (H, W), int64
        Class index per pixel, ``IGNORE`` (-1) where unlabelled.

    Raises
    ------
    InputError
        Unreadable file, wrong size, a value or colour that is not a class, or nothing labelled.
    """
    where = f"label file {path}"
    labels = labels_from_image(open_image(path, "label", max_pixels), num_classes, where)
    return check_labels(labels, shape, num_classes, where)


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
    if out.min(initial=0) < 0 or out.max(initial=0) > 255:
        raise ValueError("labels must be IGNORE or 0..254 to be written as a PNG")
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
