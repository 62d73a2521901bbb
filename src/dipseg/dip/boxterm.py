"""DIPSEG's use of bounding boxes: where a box's class may lie, and the box tightness term.

What a box tells the fit (the rules themselves are in :mod:`dipseg.boxes`):

* **outside every box is background**: those pixels become background labels
  (:func:`dipseg.boxes.box_labels`); the cross-entropy sees a seeded subset of them
  (``FitConfig.box_points``), the random walk and the final map all of them;
* **a box's class stays inside its boxes**: :func:`box_class_prior` subtracts
  ``FitConfig.box_outside`` nats from class ``c``'s logits outside the boxes of class ``c``
  (so overlapping boxes of different classes each keep their own class to their own box);
* **the object touches every row and column of its box** (the tightness prior of
  box-supervised segmentation, Hsu et al., NeurIPS 2019; Tian et al.'s BoxInst, CVPR
  2021): :class:`BoxTightness`, a multiple-instance loss: each row and each column of a box
  is a bag that holds at least one pixel of the box's class, so the largest probability of
  that class along it should be 1;
* **the object's colours are those of its box**: with ``FitConfig.box_colour`` each box
  class's colour model (:mod:`dipseg.dip.colour`) is fitted to its boxes' pixels, the
  background's to the pixels outside every box, GrabCut's initialisation in rectangle mode;
* **a tight box holds its object without small holes**: :func:`dipseg.dip.holes.fill_box_holes`
  gives the box's class the small background enclaves it encloses there (``FitConfig.box_hole_fill``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..boxes import Box
from ..labels import IGNORE


def work_slices(box: Box, full_shape: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The rows and columns ``(r0, r1, c0, c1)`` a box touches on a grid of ``shape`` (at least one each)."""
    H, W = full_shape
    h, w = shape
    r0 = int(np.floor(box.y0 * h / H))
    r1 = max(int(np.ceil(box.y1 * h / H)), r0 + 1)
    c0 = int(np.floor(box.x0 * w / W))
    c1 = max(int(np.ceil(box.x1 * w / W)), c0 + 1)
    return min(r0, h - 1), min(r1, h), min(c0, w - 1), min(c1, w)


def box_class_prior(boxes: Sequence[Box], class_ids: np.ndarray, full_shape: tuple[int, int],
                    shape: tuple[int, int], strength: float, inside: float = 0.0) -> np.ndarray:
    """Log-prior ``(k, h, w)`` float32: ``-strength`` for a box class outside all of its boxes, ``+inside`` inside them.

    Classes without boxes (the background, a class given by clicks only) get neither.
    ``inside`` is for tight boxes (``FitConfig.box_inside``): the object fills most of such
    a box, so its class is favoured there over the background, whose colours may recur
    inside the object.
    """
    k = len(class_ids)
    prior = np.zeros((k, *shape), np.float32)
    if strength <= 0 and inside <= 0:
        return prior
    for i, c in enumerate(class_ids):
        own = [b for b in boxes if b.cls == int(c)]
        if not own:
            continue
        within = np.zeros(shape, bool)
        for b in own:
            r0, r1, c0, c1 = work_slices(b, full_shape, shape)
            within[r0:r1, c0:c1] = True
        prior[i][~within] = -strength
        prior[i][within] = inside
    return prior


def colour_labels(boxes: Sequence[Box], labels: np.ndarray) -> np.ndarray:
    """Labels to fit the colour models to: ``labels`` plus every box's pixels as its class.

    ``labels`` already holds the background outside the boxes (and the user's own labels,
    which stay). Where boxes overlap, the smaller box's class wins (drawn last).
    """
    out = labels.copy()
    free = labels == IGNORE
    for b in sorted(boxes, key=lambda b: -b.area):
        r0, r1, c0, c1 = b.pixels()
        region = out[r0:r1, c0:c1]
        region[free[r0:r1, c0:c1]] = b.cls
    return out


def background_points(boxes: Sequence[Box], user: np.ndarray, outside_labels: np.ndarray, limit: int,
                      seed: int) -> np.ndarray:
    """Boolean ``(H, W)``: the pixels whose labels the cross-entropy sees.

    Every pixel the user labelled, plus at most ``limit`` pixels drawn (seeded) from the
    background that lies outside every box: they are many, alike, and a fit step costs
    per point.
    """
    keep = user.copy()
    outside = (outside_labels != IGNORE) & ~user
    idx = np.flatnonzero(outside.ravel())
    if len(idx) > limit:
        idx = np.random.default_rng(seed).choice(idx, limit, replace=False)
    keep.ravel()[idx] = True
    return keep


class BoxTightness:
    """Multiple-instance tightness loss of boxes on class probabilities at working resolution.

    For a box of class ``c`` covering rows ``R`` and columns ``C`` of the grid, the loss is
    ``-(mean_{r in R} log max_{x in C} p_c(r, x) + mean_{x in C} log max_{r in R} p_c(r, x)) / 2``,
    averaged over the boxes: every row and column crossing the box must hold the object
    somewhere (Hsu et al. 2019's positive bags; the negative bags, rows and columns outside
    every box, are the background labels).

    Parameters
    ----------
    boxes : list of Box
        In full-resolution pixels.
    class_ids : (k,) int
        The fit's classes (columns of the probabilities).
    full_shape, shape : (H, W), (h, w)
        The image's and the grid's size.
    slack : float
        Fraction of a box's height (width) at its top and bottom (left and right) whose rows
        (columns) are not bags: a drawn box is rarely tight to the pixel, and a loose one
        (the GrabCut set's 10 % margin) has empty rows along its edges.
    """

    def __init__(self, boxes: Sequence[Box], class_ids: np.ndarray, full_shape: tuple[int, int],
                 shape: tuple[int, int], slack: float = 0.0):
        index = {int(c): i for i, c in enumerate(class_ids)}
        self.items = []
        for b in boxes:
            if b.cls not in index:
                continue
            r0, r1, c0, c1 = work_slices(b, full_shape, shape)
            dr, dc = int(round(slack * (r1 - r0))), int(round(slack * (c1 - c0)))
            rows = (r0 + dr, max(r1 - dr, r0 + dr + 1))
            cols = (c0 + dc, max(c1 - dc, c0 + dc + 1))
            self.items.append((index[b.cls], (r0, r1, c0, c1), rows, cols))

    def __call__(self, prob: torch.Tensor) -> torch.Tensor:
        """The loss for probabilities ``prob`` (1, k, h, w); a scalar tensor."""
        total = prob.new_zeros(())
        if not self.items:
            return total
        for i, (r0, r1, c0, c1), (br0, br1), (bc0, bc1) in self.items:
            rows = prob[0, i, br0:br1, c0:c1].amax(1).clamp_min(1e-6).log().mean()
            cols = prob[0, i, r0:r1, bc0:bc1].amax(0).clamp_min(1e-6).log().mean()
            total = total - (rows + cols) / 2
        return total / len(self.items)
