"""The robot annotator of interactive segmentation: where the next click goes, and what it labels.

The field's protocol (Xu et al. 2016; the evaluation code of RITM, f-BRS and their
successors), one object per image, object vs background:

* **Errors.** False negatives are object pixels predicted as background, false positives
  background pixels predicted as object; ignored pixels (the GrabCut set's unknown band)
  are in neither.
* **Next click.** Each error mask is padded by one pixel (so the image border counts as
  "not an error"), given an exact Euclidean distance transform, and zeroed at the pixels
  already clicked. The click goes to the maximum of the map with the larger maximum
  (positive if that is the false negatives, negative otherwise), at the first such pixel in
  row-major order. With an empty prediction the first click is therefore positive, at the
  object's most interior point.
* **A click** is a disk of radius :data:`CLICK_RADIUS` pixels of its class; a later click
  overwrites an earlier one where their disks overlap.
* **Background seeds** (:func:`click_labels`): every method needs both classes seeded, so
  until the robot's first negative click a frame of :data:`FRAME_WIDTH` pixels along the
  image border is background. It is the same for every method, and it is dropped once a
  negative click exists (the robot then says itself where the background is).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..clicks import CLICK_RADIUS, FRAME_WIDTH, add_frame, paint_clicks
from ..labels import IGNORE

BACKGROUND, OBJECT = 0, 1
"""Class ids of the binary problem."""


@dataclass(frozen=True)
class Click:
    """One click: pixel ``(y, x)`` and whether it marks the object (``positive``) or the background."""

    y: int
    x: int
    positive: bool

    def as_json(self) -> list:
        return [int(self.y), int(self.x), bool(self.positive)]


def _check_masks(gt: np.ndarray, pred: np.ndarray | None, ignore: np.ndarray | None) -> tuple:
    gt = np.asarray(gt)
    if gt.ndim != 2 or gt.dtype != bool:
        raise ValueError(f"gt must be an (H, W) bool object mask, got {gt.dtype} {gt.shape}")
    pred = np.zeros_like(gt) if pred is None else np.asarray(pred)
    ignore = np.zeros_like(gt) if ignore is None else np.asarray(ignore)
    for name, m in (("pred", pred), ("ignore", ignore)):
        if m.shape != gt.shape or m.dtype != bool:
            raise ValueError(f"{name} must be a bool mask of the shape of gt {gt.shape}, got {m.dtype} {m.shape}")
    return gt, pred, ignore


def _padded_distance(mask: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]


def next_click(
    gt: np.ndarray, pred: np.ndarray | None = None, ignore: np.ndarray | None = None, clicks: list[Click] = ()
) -> Click | None:
    """The robot's next click, or None when the prediction has no error left.

    Parameters
    ----------
    gt : ndarray (H, W) bool
        The object.
    pred : ndarray (H, W) bool, optional
        The current prediction (None: nothing predicted yet, as before the first click).
    ignore : ndarray (H, W) bool, optional
        Pixels that are neither object nor background (never errors, never clicked).
    clicks : list of Click
        Clicks so far; their pixels are never clicked again.

    Returns
    -------
    Click or None
    """
    gt, pred, ignore = _check_masks(gt, pred, ignore)
    fn = gt & ~pred & ~ignore
    fp = ~gt & pred & ~ignore
    fn_dt, fp_dt = _padded_distance(fn), _padded_distance(fp)
    for c in clicks:
        fn_dt[c.y, c.x] = fp_dt[c.y, c.x] = 0
    fn_max, fp_max = float(fn_dt.max()), float(fp_dt.max())
    if max(fn_max, fp_max) <= 0:
        return None
    positive = fn_max > fp_max
    dt = fn_dt if positive else fp_dt
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)  # argmax: first maximum in row-major order
    return Click(int(y), int(x), bool(positive))


def click_labels(shape: tuple[int, int], clicks: list[Click], radius: int = CLICK_RADIUS,
                 frame: int = FRAME_WIDTH) -> np.ndarray:
    """The sparse labels a method sees after ``clicks``: disks, plus the border frame (see module doc).

    Parameters
    ----------
    shape : (H, W)
    clicks : list of Click
        In order; later disks overwrite earlier ones.
    radius : int
        Disk radius in pixels (0: the click's pixel only).
    frame : int
        Width of the background frame used until the first negative click (0: none).

    Returns
    -------
    ndarray (H, W) int64
        ``OBJECT`` (1), ``BACKGROUND`` (0) or ``IGNORE``.
    """
    labels = paint_clicks(np.full(shape, IGNORE, np.int64),
                          [(c.x, c.y, OBJECT if c.positive else BACKGROUND) for c in clicks], radius)
    # a negative click's disk is never wholly painted over (clicked pixels are not clicked
    # again), so "no background pixel" is "no negative click"
    return add_frame(labels, BACKGROUND, IGNORE, frame)


def iou(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Intersection over union of the object, ignored pixels excluded (1.0 when both are empty)."""
    gt, pred, ignore = _check_masks(gt, pred, ignore)
    keep = ~ignore
    union = int((keep & (gt | pred)).sum())
    return 1.0 if union == 0 else int((keep & gt & pred).sum()) / union


def noc(ious: list[float], threshold: float, max_clicks: int) -> int:
    """Number of clicks to reach ``threshold``: the 1-based index of the first IoU >= it, else ``max_clicks``."""
    for k, v in enumerate(ious[:max_clicks], start=1):
        if v >= threshold:
            return k
    return max_clicks
