"""The Pascal VOC palette: class colours, class names, and palette-PNG encoding.

Class ``i`` is drawn in colour ``PALETTE[i]`` everywhere: masks, overlays, label files,
the web page. Palette PNGs store the class index per pixel, so they are masks and label
files at the same time.
"""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path

import numpy as np

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

VOID_INDEX = 255
"""Index of VOC's void colour; unlabelled in index label files."""


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

UNLABELLED_RGB = tuple(int(v) for v in PALETTE[VOID_INDEX])
"""VOC's void colour ``(224, 224, 192)``; unlabelled in RGB scribble files."""


def colourize(index: np.ndarray) -> np.ndarray:
    """VOC colours for a class map ``(H, W)`` -> ``(H, W, 3) uint8`` (negative values shown as void)."""
    index = np.asarray(index)
    return PALETTE[np.where(index < 0, VOID_INDEX, index).astype(np.int64) % 256]


def palette_image(index: np.ndarray):
    """A class map ``(H, W)`` with values 0..255 as a PIL palette (``P``) image.

    Raises
    ------
    ValueError
        Not 2-D, or values outside 0..255.
    """
    from PIL import Image

    index = np.asarray(index)
    if index.ndim != 2:
        raise ValueError(f"class map must have shape (H, W), got {index.shape}")
    if index.size and (index.min() < 0 or index.max() > 255):
        raise ValueError(f"class map values must be 0..255, got {index.min()}..{index.max()}")
    img = Image.new("P", (index.shape[1], index.shape[0]))
    img.frombytes(np.ascontiguousarray(index, dtype=np.uint8).tobytes())
    img.putpalette(PALETTE.ravel().tolist())
    return img


def encode_palette_png(index: np.ndarray, compress_level: int = 6) -> bytes:
    """A class map ``(H, W)`` (0..255) as VOC palette PNG bytes."""
    buf = BytesIO()
    palette_image(index).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def save_palette_png(path: str | os.PathLike, index: np.ndarray) -> Path:
    """Write a class map ``(H, W)`` (0..255) as a VOC palette PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    palette_image(index).save(path)
    return path
