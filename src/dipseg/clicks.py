"""Clicks as labels: the disk one click labels, and the background seed of labels that are clicks only.

The convention of the field's click protocol (docs/interactive.md), kept in one place for
everything that turns clicks into labels: the robot annotator of
:mod:`dipseg.eval.clicker`, the web page's Click tool and ``dipseg segment --clicks``.

* **A click** at pixel ``(x, y)`` labels the pixels within :data:`CLICK_RADIUS` of it with
  its class; a later click overwrites an earlier one where their disks overlap.
* **Background seed**: labels made of clicks need a second class before the first
  background click, so until a pixel is labelled background a frame of
  :data:`FRAME_WIDTH` pixels along the image border is (:func:`add_frame`).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from .io import csv_rows
from .labels import IGNORE

CLICK_RADIUS = 5
"""Radius (pixels) of the disk a click labels."""

FRAME_WIDTH = 3
"""Width (pixels) of the border frame that seeds the background until the first background click."""


class Point(NamedTuple):
    """One click: column ``x``, row ``y`` (the clicked pixel) and its class ``cls``."""

    x: int
    y: int
    cls: int


def paint_clicks(labels: np.ndarray, clicks: Sequence[Point | tuple], radius: int = CLICK_RADIUS) -> np.ndarray:
    """``labels`` with a disk of each click's class painted in order (a copy).

    Parameters
    ----------
    labels : (H, W) int
        Labels to paint on (``IGNORE`` where unlabelled, or any other convention).
    clicks : sequence of (x, y, cls)
        Pixel column and row of each click, inside the image; later clicks overwrite
        earlier ones.
    radius : int
        Disk radius in pixels, ``>= 0`` (0: the clicked pixel only).

    Returns
    -------
    (H, W) array of ``labels``' dtype

    Raises
    ------
    ValueError
        A click outside the image, a negative radius.
    """
    out = np.array(labels, copy=True)
    if out.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {out.shape}")
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be a whole number >= 0, got {radius!r}")
    h, w = out.shape
    for x, y, cls in clicks:
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"click ({x}, {y}) is outside the {w}x{h} (WxH) image")
        y0, y1, x0, x1 = max(0, y - radius), min(h, y + radius + 1), max(0, x - radius), min(w, x + radius + 1)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        out[y0:y1, x0:x1][(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = cls
    return out


def add_frame(labels: np.ndarray, background: int, unlabelled: int = IGNORE, width: int = FRAME_WIDTH) -> np.ndarray:
    """``labels`` with the unlabelled pixels of a ``width``-pixel border frame set to ``background`` (a copy),
    while no pixel is labelled ``background``: once one is, the labels say where it is themselves.

    Parameters
    ----------
    labels : (H, W) int
    background, unlabelled : int
        The background class, and the value of unlabelled pixels (``IGNORE``, or the
        web's 255).
    width : int
        0 leaves the labels as they are.

    Returns
    -------
    (H, W) array of ``labels``' dtype
    """
    out = np.array(labels, copy=True)
    if width > 0 and not (out == background).any():
        border = np.zeros(out.shape, bool)
        border[:width] = border[-width:] = True
        border[:, :width] = border[:, -width:] = True
        out[border & (out == unlabelled)] = background
    return out


def click_labels(shape: tuple[int, int], clicks: Sequence[Point | tuple], background: int = 0,
                 radius: int = CLICK_RADIUS, frame: int = FRAME_WIDTH) -> np.ndarray:
    """The sparse labels a fit sees for clicks alone: their disks, plus the frame while none is background.

    Parameters
    ----------
    shape : (H, W)
    clicks : sequence of (x, y, cls)
    background : int
        The background class.
    radius, frame : int

    Returns
    -------
    (H, W) int64
        Classes of the clicks and the frame, ``IGNORE`` elsewhere.
    """
    return add_frame(paint_clicks(np.full(shape, IGNORE, np.int64), clicks, radius), background, IGNORE, frame)


def read_clicks_csv(text: str, class_of, shape: tuple[int, int] | None = None, where: str = "click CSV") -> list[Point]:
    """Clicks of a ``class,x,y`` file: one click per line, an optional ``class,x,y`` header, ``#`` comments.

    Parameters
    ----------
    text : str
    class_of : callable ``(name, where) -> int``
        Resolves a class name or id (the box files' rule, :func:`dipseg.boxio.class_id`).
    shape : (H, W), optional
        Clicks outside it are refused.
    where : str
        Named in error messages.

    Raises
    ------
    ValueError
        A line without 3 fields, a coordinate that is not a whole number, an unknown
        class, a click outside the image.
    """
    out = []
    for here, row in csv_rows(text, ("class", "x", "y"), where):
        xy = []
        for f in row[1:]:
            try:
                v = float(f)
            except ValueError:
                raise ValueError(f"{here}: {f.strip()!r} is not a number") from None
            if not v.is_integer():
                raise ValueError(f"{here}: {f.strip()!r} is not a pixel (a click is a whole column and row)")
            xy.append(int(v))
        if shape is not None and not (0 <= xy[0] < shape[1] and 0 <= xy[1] < shape[0]):
            raise ValueError(f"{here}: click ({xy[0]}, {xy[1]}) is outside the {shape[1]}x{shape[0]} (WxH) image")
        out.append(Point(xy[0], xy[1], class_of(row[0], here)))
    if not out:
        raise ValueError(f"{where}: no clicks (one class,x,y line per click)")
    return out
