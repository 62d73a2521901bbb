"""Where a segmentation is least certain, and where the next label would help most ("label here next").

:func:`uncertainty` is one minus the margin between the two most likely classes of a pixel:
0 where one class is certain, 1 where the two best classes tie. Every segmentation has a thin
band of uncertainty along its class borders, which a click rarely fixes; what a click fixes
is a *wide* uncertain region. :func:`suggest_click` therefore points at the deepest point of
the uncertain region (the pixel farthest from any confident or labelled pixel), the same rule
the robot annotator applies to the true error region (:mod:`dipseg.eval.clicker`), but
without ground truth.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .labels import IGNORE

UNCERTAIN = 0.5
"""Pixels whose :func:`uncertainty` exceeds this are uncertain (binary: object probability in (0.25, 0.75))."""


def uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """One minus the margin between the two most likely classes.

    Parameters
    ----------
    probabilities : ndarray (H, W, k) float, k >= 1
        Class probabilities (summing to 1 per pixel).

    Returns
    -------
    ndarray (H, W) float32 in [0, 1]
        0 for a certain pixel (or a single class), 1 where the two best classes tie.
    """
    p = np.asarray(probabilities, dtype=np.float32)
    if p.ndim != 3 or p.shape[2] < 1:
        raise ValueError(f"probabilities must have shape (H, W, k), got {p.shape}")
    if p.shape[2] == 1:
        return np.zeros(p.shape[:2], np.float32)
    top2 = np.partition(p, p.shape[2] - 2, axis=2)[..., -2:]
    return np.clip(1.0 - (top2[..., 1] - top2[..., 0]), 0.0, 1.0)


def suggest_click(probabilities: np.ndarray, labels: np.ndarray | None = None,
                  threshold: float = UNCERTAIN) -> tuple[int, int] | None:
    """The pixel ``(y, x)`` where a label would remove the most uncertainty, or None.

    The deepest point (largest distance to a certain or labelled pixel, the image border
    counting as certain) of the region whose :func:`uncertainty` exceeds ``threshold``; if
    nothing is that uncertain, the most uncertain unlabelled pixel. Ties go to the first pixel
    in row-major order.

    Parameters
    ----------
    probabilities : ndarray (H, W, k) float
    labels : ndarray (H, W) int, optional
        Labelled pixels (not ``IGNORE``) are never suggested.
    threshold : float in [0, 1)

    Returns
    -------
    (int, int) or None
        None when every pixel is labelled.
    """
    u = uncertainty(probabilities)
    free = np.ones(u.shape, bool) if labels is None else np.asarray(labels) == IGNORE
    if labels is not None and np.asarray(labels).shape != u.shape:
        raise ValueError(f"labels {np.asarray(labels).shape} and probabilities {u.shape} differ in shape")
    if not free.any():
        return None
    region = (u > threshold) & free
    if region.any():
        depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    else:
        y, x = np.unravel_index(int(np.argmax(np.where(free, u, -1.0))), u.shape)
    return int(y), int(x)
