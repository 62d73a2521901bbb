"""Small background holes of the final answer go to the class that encloses them.

The random walk follows the image's colours, so specks of the background's colours on an
object (a window of a bus, a patch of sky between an arm and a back) come out as
background holes in it, mostly wrong in the ground truth. Two rules fill them, each
leaving an enclave that holds a label of the user's, and enclaves of another class (an
object in front), as they are:

* **tight boxes** (:func:`fill_box_holes`, ``FitConfig.box_hole_fill``): one object fills
  its tight box without small holes; enclaves are measured against the box's area;
* **sparse labels** (:func:`fill_class_holes`, ``FitConfig.hole_fill``): enclaves are
  measured against the enclosing class's area.

An enclave is a 4-connected region of background pixels that a class surrounds
(``scipy.ndimage.binary_fill_holes``): background touching the image's edge, or a box's,
is never enclosed. Measured in docs/boxes.md ("Small holes") and docs/study.md.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from ..boxes import Box
from ..labels import IGNORE


def _fill(out: np.ndarray, cls: int, background: int, most: float, labels: np.ndarray | None) -> None:
    """Give ``cls`` the background enclaves it surrounds in ``out`` (in place), each of at most ``most`` pixels."""
    holes = ndimage.binary_fill_holes(out == cls) & (out == background)
    if not holes.any():
        return
    regions, n = ndimage.label(holes)
    small = np.bincount(regions.ravel(), minlength=n + 1) <= most
    small[0] = False
    if labels is not None:
        small[np.unique(regions[labels != IGNORE])] = False
    out[small[regions]] = cls


def fill_box_holes(classes: np.ndarray, boxes: Sequence[Box], largest: float, background: int = 0,
                   labels: np.ndarray | None = None) -> np.ndarray:
    """Give each box's class the small background enclaves it encloses inside that box.

    Parameters
    ----------
    classes : (H, W) int
        A class map (not modified).
    boxes : sequence of Box
        Tight boxes, in ``classes``' pixels; filled one after another, in order.
    largest : float in [0, 1]
        An enclave is filled when it covers at most this share of its box's area; 0 fills none.
    background : int
        Only pixels of this class are filled.
    labels : (H, W) int, optional
        The user's labels; an enclave holding one of them (``!= IGNORE``) stays.

    Returns
    -------
    (H, W) int64
        A new class map.
    """
    out = np.asarray(classes, dtype=np.int64).copy()
    if largest <= 0:
        return out
    for b in boxes:
        r0, r1, c0, c1 = b.pixels()
        crop = out[r0:r1, c0:c1]
        _fill(crop, int(b.cls), background, largest * crop.size, None if labels is None else labels[r0:r1, c0:c1])
    return out


def fill_class_holes(classes: np.ndarray, largest: float, background: int = 0,
                     labels: np.ndarray | None = None) -> np.ndarray:
    """Give every class but ``background`` the small background enclaves it encloses.

    Returns a new ``(H, W) int64`` class map.

    Parameters
    ----------
    classes : (H, W) int
        A class map (not modified).
    largest : float in [0, 1]
        An enclave is filled when it covers at most this share of the enclosing class's
        area (as the class stands when its turn comes: classes in increasing order); 0
        fills none.
    background, labels
        As for :func:`fill_box_holes`; without ``background`` in ``classes`` nothing changes.
    """
    out = np.asarray(classes, dtype=np.int64).copy()
    if largest <= 0:
        return out
    for c in np.unique(out):
        if c != background:
            _fill(out, int(c), background, largest * np.count_nonzero(out == c), labels)
    return out
