"""Boxes drawn from ground truth for the benchmark: the ``box`` and ``box+clicks:N`` label modes.

The rules (also in docs/boxes.md):

* **one object per image** (the GrabCut set, COCO MVal; ``dataset`` ``grabcut`` or
  ``coco-mval``): the box of the object, enlarged by :data:`ENLARGE` (10 %) of its width
  and height on each side, clipped to the image. On the GrabCut set the object is its
  foreground together with the unscored band along its border (the true outline lies in
  that band), so the box surely holds the whole object;
* **VOC** (instance masks are not in ``../shared``): one box per 8-connected component of
  each object class, the component's tight box; components of fewer than
  :data:`MIN_COMPONENT` pixels are dropped (their pixels then lie outside every box and
  count as errors unless another box covers them). Void (255) pixels belong to no component.
  These boxes are **tight** (each touches its component on all four sides, as a detection
  data set's boxes do) and are given to the methods as such (``segment(...,
  tight_boxes=True)``; :func:`boxes_are_tight`); the enlarged boxes above are not;
* ``box+clicks:N`` adds ``N`` pixels drawn uniformly (seeded by
  :func:`dipseg.eval.specs.label_seed`) from the object's scored pixels *inside each box*:
  the object's pixels (one-object sets) or the box's component (VOC).

An image without any box (every component too small) gets no box: all its pixels are
outside every box, i.e. background.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..boxes import Box
from ..labels import IGNORE

ENLARGE = 0.10
"""Enlargement of a one-object box per side, as a fraction of its width / height."""

MIN_COMPONENT = 100
"""VOC: connected components with fewer pixels get no box."""

BOX = "box"
BOX_CLICKS = "box+clicks"
BOX_SAMPLERS = (BOX, BOX_CLICKS)
ONE_OBJECT = ("grabcut", "coco-mval")


def _box_of(mask: np.ndarray, cls: int, enlarge: float) -> Box:
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h, w = mask.shape
    my, mx = enlarge * (y1 - y0), enlarge * (x1 - x0)
    return Box(int(cls), float(max(0.0, x0 - mx)), float(max(0.0, y0 - my)), float(min(w, x1 + mx)),
               float(min(h, y1 + my)))


def gt_boxes(gt: np.ndarray, dataset: str, void: int = 255) -> tuple[list[Box], list[np.ndarray]]:
    """Boxes from a ground-truth map by the dataset's rule, and the object pixels of each.

    Returns
    -------
    boxes : list of Box
    objects : list of (H, W) bool
        The scored object pixels each box was drawn around (clicks are drawn from them).
    """
    if dataset in ONE_OBJECT:
        fg = gt == 1
        if not fg.any():
            return [], []
        extent = fg | (gt == void) if dataset == "grabcut" else fg
        return [_box_of(extent, 1, ENLARGE)], [fg]
    boxes, objects = [], []
    eight = np.ones((3, 3), bool)
    for c in np.unique(gt):
        if c == 0 or c == void:
            continue
        comp, n = ndimage.label(gt == c, structure=eight)
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        for i in range(1, n + 1):
            if sizes[i] < MIN_COMPONENT:
                continue
            m = comp == i
            boxes.append(_box_of(m, int(c), 0.0))
            objects.append(m)
    return boxes, objects


def boxes_are_tight(dataset: str) -> bool:
    """Whether the boxes :func:`gt_boxes` draws for ``dataset`` touch their objects on every side."""
    return dataset not in ONE_OBJECT


def box_job_labels(gt: np.ndarray, dataset: str, sampler: str, clicks: int, seed: int,
                   void: int = 255) -> tuple[np.ndarray, list[Box]]:
    """Labels (clicks, or none) and boxes of one ``box`` / ``box+clicks`` job.

    Parameters
    ----------
    gt : (H, W) int
    dataset : str
    sampler : {"box", "box+clicks"}
    clicks : int
        Pixels per box for ``box+clicks`` (ignored for ``box``).
    seed : int
        The job's label seed.

    Returns
    -------
    labels : (H, W) int64
        ``IGNORE`` but at the clicks.
    boxes : list of Box
    """
    boxes, objects = gt_boxes(gt, dataset, void)
    labels = np.full(gt.shape, IGNORE, np.int64)
    if sampler == BOX_CLICKS:
        rng = np.random.default_rng(seed)
        for b, m in zip(boxes, objects):
            idx = np.flatnonzero(m.ravel())
            pick = rng.choice(idx, min(int(clicks), len(idx)), replace=False)
            labels.ravel()[pick] = b.cls
    return labels, boxes


def box_error(gt: np.ndarray, pred: np.ndarray, boxes: list[Box], void: int = 255) -> tuple[int, int]:
    """GrabCut-literature error: ``(misclassified, scored)`` pixels inside the boxes (void not scored)."""
    inside = np.zeros(gt.shape, bool)
    for b in boxes:
        r0, r1, c0, c1 = b.pixels()
        inside[r0:r1, c0:c1] = True
    scored = inside & (gt != void)
    return int((scored & (pred != gt)).sum()), int(scored.sum())
