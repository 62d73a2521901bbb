"""Bounding boxes as labels: one box per object, a class and ``(x0, y0, x1, y1)`` in pixels.

A box is the cheapest annotation there is and what detection data sets hold. Every method
of :func:`dipseg.segment` takes ``boxes=`` beside (or instead of) the sparse ``labels``;
this module is the one place that checks boxes and turns them into arrays.

**Coordinates.** ``x`` runs along columns, ``y`` along rows, both in pixel *edges*: pixel
``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)``, so ``(0, 0, W, H)`` is the whole
image and a box covers the pixels whose square it touches: columns ``floor(x0) ..
ceil(x1) - 1`` and rows ``floor(y0) .. ceil(y1) - 1`` (:meth:`Box.pixels`). Coordinates may be fractional (COCO's
are). A Pascal VOC ``<bndbox>`` (1-based, inclusive ends) is ``(xmin - 1, ymin - 1, xmax,
ymax)`` here, a COCO ``bbox`` ``[x, y, w, h]`` is ``(x, y, x + w, y + h)``
(:mod:`dipseg.boxio`).

**What a box means** (the rules every method shares, :func:`box_labels`):

* every pixel outside all boxes is ``background`` (class 0 unless told otherwise), unless
  the user labelled it otherwise;
* a pixel inside boxes of class ``c`` only may be ``c`` or ``background``; inside
  overlapping boxes of several classes, any of them (or background);
* inside its box the object touches every row and column of it (the *tightness* prior of
  box-supervised segmentation, used by DIPSEG's box term, :mod:`dipseg.dip.boxterm`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from .labels import IGNORE

__all__ = ["Box", "box_classes", "box_labels", "box_seeds", "box_union", "restrict_to_boxes", "validate_boxes"]


@dataclass(frozen=True)
class Box:
    """One object's bounding box.

    Attributes
    ----------
    cls : int
        Class id of the object (>= 0, not the background class).
    x0, y0, x1, y1 : float
        Left, top, right, bottom edge in pixels (``x1 > x0``, ``y1 > y0``), ``0 <= x <= W``,
        ``0 <= y <= H``.
    """

    cls: int
    x0: float
    y0: float
    x1: float
    y1: float

    def pixels(self) -> tuple[int, int, int, int]:
        """Row and column slices of the pixels the box touches: ``(r0, r1, c0, c1)``, exclusive ends."""
        return (int(math.floor(self.y0)), int(math.ceil(self.y1)), int(math.floor(self.x0)), int(math.ceil(self.x1)))

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def scaled(self, sy: float, sx: float) -> "Box":
        """The box on an image resized by ``sy`` (rows) and ``sx`` (columns)."""
        return Box(self.cls, self.x0 * sx, self.y0 * sy, self.x1 * sx, self.y1 * sy)

    def as_list(self) -> list:
        """``[cls, x0, y0, x1, y1]`` (JSON-friendly)."""
        return [int(self.cls), float(self.x0), float(self.y0), float(self.x1), float(self.y1)]


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {v!r}")
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{what} must be finite, got {v!r}")
    return f


def _as_box(item: Any, i: int) -> Box:
    if isinstance(item, Box):
        cls, coords = item.cls, (item.x0, item.y0, item.x1, item.y1)
    elif isinstance(item, dict):
        missing = {"cls", "x0", "y0", "x1", "y1"} - set(item)
        if "class" in item and "cls" in missing:
            missing.discard("cls")
            item = {**item, "cls": item["class"]}
        if missing:
            raise ValueError(f"box {i}: missing key(s) {sorted(missing)}; give cls, x0, y0, x1, y1")
        cls, coords = item["cls"], (item["x0"], item["y0"], item["x1"], item["y1"])
    else:
        try:
            seq = list(item)
        except TypeError:
            raise ValueError(f"box {i} must be (class, x0, y0, x1, y1), got {item!r}") from None
        if len(seq) != 5:
            raise ValueError(f"box {i} must be (class, x0, y0, x1, y1): 5 values, got {len(seq)}")
        cls, coords = seq[0], seq[1:]
    if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) or int(cls) < 0:
        raise ValueError(f"box {i}: class must be a whole number >= 0, got {cls!r}")
    x0, y0, x1, y1 = (_number(v, f"box {i} {n}") for v, n in zip(coords, ("x0", "y0", "x1", "y1")))
    return Box(int(cls), x0, y0, x1, y1)


def validate_boxes(
    boxes: Iterable[Any] | None,
    shape: tuple[int, int],
    *,
    background: int = 0,
    num_classes: int | None = None,
) -> list[Box]:
    """Check boxes against an image of ``shape`` and return them as :class:`Box` objects.

    Parameters
    ----------
    boxes : iterable of Box, (class, x0, y0, x1, y1) or dict, or None
        None or an empty list: no boxes.
    shape : (H, W)
        The image's size.
    background : int
        The background class; no box may have it.
    num_classes : int, optional
        If given, every class must be below it.

    Returns
    -------
    list of Box

    Raises
    ------
    ValueError
        A box that is not 5 numbers, an empty or inverted box (``x1 <= x0`` or ``y1 <= y0``),
        a box (partly) outside the image, a negative, background or unknown class.
    """
    if boxes is None:
        return []
    if isinstance(boxes, (str, bytes, np.ndarray)) and not (isinstance(boxes, np.ndarray) and boxes.ndim == 2):
        raise ValueError(f"boxes must be a list of (class, x0, y0, x1, y1), got {type(boxes).__name__}")
    h, w = int(shape[0]), int(shape[1])
    out = []
    for i, item in enumerate(boxes):
        b = _as_box(item, i)
        where = f"box {i} (class {b.cls}, x0={b.x0:g}, y0={b.y0:g}, x1={b.x1:g}, y1={b.y1:g})"
        if b.x1 <= b.x0 or b.y1 <= b.y0:
            raise ValueError(f"{where} is empty or inverted: need x1 > x0 and y1 > y0")
        if b.x0 < 0 or b.y0 < 0 or b.x1 > w or b.y1 > h:
            raise ValueError(f"{where} is outside the {w}x{h} (WxH) image: need 0 <= x0 < x1 <= {w} and "
                             f"0 <= y0 < y1 <= {h}")
        if b.cls == background:
            raise ValueError(f"{where} has the background class {background}; a box marks an object")
        if num_classes is not None and b.cls >= num_classes:
            raise ValueError(f"{where}: class {b.cls} is not a class (classes are 0..{num_classes - 1})")
        out.append(b)
    return out


def box_classes(boxes: Sequence[Box]) -> np.ndarray:
    """Sorted distinct classes of ``boxes``, ``(n,) int64``."""
    return np.unique(np.array([b.cls for b in boxes], dtype=np.int64))


def box_union(boxes: Sequence[Box], shape: tuple[int, int], cls: int | None = None) -> np.ndarray:
    """``(H, W) bool``: pixels touched by any box (of class ``cls`` only, if given)."""
    mask = np.zeros(shape, dtype=bool)
    for b in boxes:
        if cls is None or b.cls == cls:
            r0, r1, c0, c1 = b.pixels()
            mask[r0:r1, c0:c1] = True
    return mask


def box_labels(boxes: Sequence[Box], shape: tuple[int, int], labels: np.ndarray | None = None,
               background: int = 0) -> np.ndarray:
    """The labels that boxes imply: ``background`` outside every box, the user's labels on top.

    Parameters
    ----------
    boxes : list of Box
        Checked boxes (:func:`validate_boxes`).
    shape : (H, W)
    labels : (H, W) int, optional
        The user's own labels (clicks, strokes); they win wherever they are set.
    background : int

    Returns
    -------
    (H, W) int64
        ``IGNORE`` inside the boxes (where the user labelled nothing).
    """
    out = np.full(shape, IGNORE, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64).copy()
    if boxes:
        outside = ~box_union(boxes, shape)
        out[outside & (out == IGNORE)] = background
    return out


def box_seeds(boxes: Sequence[Box], shape: tuple[int, int], labels: np.ndarray | None = None,
              background: int = 0, core: float = 0.2) -> np.ndarray:
    """Seeds for methods that need labels of every class: :func:`box_labels` plus each box's core.

    The core of a box is the box shrunk to ``core`` of its width and height about its
    centre; it is labelled with the box's class where nothing else (the user, a smaller
    box's core) labelled it. Smaller boxes are drawn last, so they win where cores overlap.
    This is how the random walker and the trainable baseline are seeded from boxes
    (documented in docs/boxes.md); it is wrong for objects that miss their box's centre.

    Returns
    -------
    (H, W) int64
    """
    out = box_labels(boxes, shape, labels, background)
    user = np.zeros(shape, bool) if labels is None else np.asarray(labels) != IGNORE
    for b in sorted(boxes, key=lambda b: -b.area):
        cx, cy = (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2
        hw, hh = (b.x1 - b.x0) * core / 2, (b.y1 - b.y0) * core / 2
        r0, r1 = int(math.floor(cy - hh)), max(int(math.ceil(cy + hh)), int(math.floor(cy - hh)) + 1)
        c0, c1 = int(math.floor(cx - hw)), max(int(math.ceil(cx + hw)), int(math.floor(cx - hw)) + 1)
        r0, c0 = max(r0, 0), max(c0, 0)
        r1, c1 = min(r1, shape[0]), min(c1, shape[1])
        region = out[r0:r1, c0:c1]
        region[~user[r0:r1, c0:c1]] = b.cls
    return out


def restrict_to_boxes(classes: np.ndarray, boxes: Sequence[Box], background: int = 0,
                      labels: np.ndarray | None = None) -> np.ndarray:
    """A class map with every pixel of a box class outside that class's boxes set to ``background``.

    Pixels the user labelled keep their label. Returns a new ``(H, W) int64`` array.
    """
    out = np.asarray(classes, dtype=np.int64).copy()
    for c in box_classes(boxes):
        stray = (out == c) & ~box_union(boxes, out.shape, int(c))
        out[stray] = background
    if labels is not None:
        seeded = labels != IGNORE
        out[seeded] = labels[seeded]
    return out
