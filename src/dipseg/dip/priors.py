"""Spatial priors on where each class lies, added to the network's logits."""

from __future__ import annotations

import numpy as np

from ..features import enlarge_box, label_box


def box_prior(
    labels: np.ndarray,
    class_ids: np.ndarray,
    shape: tuple[int, int],
    margin: float = 0.15,
    strength: float = 3.0,
    falloff: float = 0.1,
    min_extent: float = 0.0,
) -> np.ndarray:
    """Log-prior that a class lies near the bounding box of its own labels.

    For class ``c`` with labels spanning a box enlarged by ``margin`` of its size on each
    side, the prior is ``-strength * d / (falloff * L)`` where ``d`` is the distance to that
    box (0 inside) and ``L`` the longest side of the image. The class whose box is largest
    (in VOC, the background) and any class whose box covers more than 60 % of the image get
    no penalty: they are expected anywhere. So does any class whose labels span less than
    ``min_extent`` of the image's longest side (one click or pixel: its box tells where the
    class is, not how far it reaches). With one class the prior is zero.

    Parameters
    ----------
    labels : (H0, W0) int
        Sparse labels at any resolution; boxes are scaled to ``shape``.
    class_ids : (k,) int
    shape : (H, W)
        Resolution of the returned prior.
    margin, strength, falloff, min_extent : float

    Returns
    -------
    (k, H, W) float32
        Additive log-prior per class (<= 0).
    """
    h0, w0 = labels.shape
    h, w = shape
    k = len(class_ids)
    prior = np.zeros((k, h, w), np.float32)
    if k < 2 or strength <= 0:
        return prior
    boxes, small = [], []
    for c in class_ids:
        raw = label_box(labels == c)
        small.append(max(raw[1] - raw[0], raw[3] - raw[2]) < min_extent * max(h0, w0))
        y0, y1, x0, x1 = enlarge_box(raw, margin, (h0, w0))
        boxes.append((y0 * h / h0, y1 * h / h0, x0 * w / w0, x1 * w / w0))
    areas = [(b[1] - b[0]) * (b[3] - b[2]) for b in boxes]
    free_class = int(np.argmax(areas))
    yy = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xx = np.arange(w, dtype=np.float32)[None, :] + 0.5
    scale = falloff * max(h, w)
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        if i == free_class or areas[i] > 0.6 * h * w or small[i]:
            continue
        dy = np.maximum(np.maximum(y0 - yy, yy - y1), 0)
        dx = np.maximum(np.maximum(x0 - xx, xx - x1), 0)
        prior[i] = -strength * np.hypot(dy, dx) / scale
    return prior
