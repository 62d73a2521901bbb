"""Segmentation scores under the Pascal VOC protocol (official devkit, ``VOCevalseg.m``).

* One ``(K, K)`` confusion matrix per image (rows: ground truth, columns: prediction);
  pixels whose ground truth is ``void`` (255 in VOC) are not counted, whatever is
  predicted there.
* The dataset score sums the per-image matrices, then
  ``IoU_c = TP_c / (GT_c + Pred_c - TP_c)`` and ``mIoU`` = mean of ``IoU_c`` over the
  classes *present*.

**Classes present**: a class is present when it has at least one scored ground-truth
pixel *or* at least one predicted pixel on a scored pixel, i.e. when the denominator of
its IoU is positive. An absent class has IoU ``NaN`` and is left out of the mean. A class
that is predicted but not in the ground truth is present with IoU 0, so false positives
are penalised. On a confusion matrix summed over VOC val every class is present, and
this is exactly the devkit's mean over all 21 classes.

Everything is plain numpy (``np.bincount``).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..labels import VOID

__all__ = ["confusion_matrix", "mean_image_miou", "scores"]


def _check_int_map(a: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy integer array, got {type(a).__name__}")
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise ValueError(f"{name} must be an integer array, got dtype {a.dtype}")
    return a


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int, void: int | None = VOID) -> np.ndarray:
    """Count (ground-truth class, predicted class) pairs over the scored pixels.

    Parameters
    ----------
    gt : ndarray, shape (H, W) (any shape), integer
        Ground truth: class indices ``0 .. num_classes-1``, ``void`` where not scored.
    pred : ndarray, same shape as ``gt``, integer
        Predicted class per pixel.
    num_classes : int
        ``K``, the number of classes (21 for VOC).
    void : int or None
        Ground-truth value that is not scored (255 for VOC); ``None`` scores every pixel.

    Returns
    -------
    ndarray, shape (K, K), int64
        ``conf[i, j]`` = number of scored pixels of true class ``i`` predicted as ``j``.

    Raises
    ------
    ValueError
        Shapes differ; ``num_classes`` is not a positive integer; a ground-truth value
        is neither a class nor ``void``; or a prediction on a scored pixel is not a class
        in ``0 .. K-1`` (an out-of-range prediction is a bug upstream, so it is refused
        rather than silently counted as wrong). Predictions on void pixels are not checked.
    """
    gt = _check_int_map(gt, "gt")
    pred = _check_int_map(pred, "pred")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth has shape {gt.shape} but prediction has shape {pred.shape}")
    k = int(num_classes)
    g = gt.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    if void is not None:
        keep = g != void
        g, p = g[keep], p[keep]
    bad = (g < 0) | (g >= k)
    if bad.any():
        v = int(g[bad][0])
        raise ValueError(
            f"ground-truth value {v} is not a class (0..{k - 1}) nor the void value {void}"
        )
    bad = (p < 0) | (p >= k)
    if bad.any():
        v = int(p[bad][0])
        raise ValueError(f"predicted value {v} on a scored pixel is not a class (0..{k - 1})")
    return np.bincount(g * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def scores(conf: np.ndarray) -> dict:
    """IoU per class, mIoU and pixel accuracy from a confusion matrix.

    Parameters
    ----------
    conf : ndarray, shape (K, K), non-negative integer
        Rows ground truth, columns prediction (one image or summed over a dataset).

    Returns
    -------
    dict
        ``iou`` : ndarray (K,) float64
            ``TP / (GT + Pred - TP)``; ``NaN`` for classes not present.
        ``present`` : ndarray (K,) bool
            Classes with ground-truth or predicted pixels (see module docstring).
        ``miou`` : float
            Mean IoU over the present classes (``NaN`` if none).
        ``pixel_acc`` : float
            Correct / scored pixels (``NaN`` if no pixel is scored).
        ``class_acc`` : ndarray (K,) float64
            Recall ``TP / GT`` per class; ``NaN`` without ground-truth pixels.
        ``mean_class_acc`` : float
            Mean of ``class_acc`` over classes with ground-truth pixels.
        ``pixels`` : int
            Number of scored pixels.

    Raises
    ------
    ValueError
        ``conf`` is not a square 2-D array of non-negative integers.
    """
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1] or conf.shape[0] < 1:
        raise ValueError(f"confusion matrix must be square (K, K), got shape {conf.shape}")
    if not np.issubdtype(conf.dtype, np.integer):
        raise ValueError(f"confusion matrix must hold integer counts, got dtype {conf.dtype}")
    if (conf < 0).any():
        raise ValueError(f"confusion matrix has negative counts (min {int(conf.min())})")
    conf = conf.astype(np.int64)
    tp = np.diag(conf).astype(np.float64)
    gt_count = conf.sum(axis=1).astype(np.float64)
    pred_count = conf.sum(axis=0).astype(np.float64)
    union = gt_count + pred_count - tp
    present = union > 0
    iou = np.full(len(tp), np.nan)
    iou[present] = tp[present] / union[present]
    has_gt = gt_count > 0
    class_acc = np.full(len(tp), np.nan)
    class_acc[has_gt] = tp[has_gt] / gt_count[has_gt]
    total = int(conf.sum())
    return {
        "iou": iou,
        "present": present,
        "miou": float(iou[present].mean()) if present.any() else float("nan"),
        "pixel_acc": float(tp.sum() / total) if total else float("nan"),
        "class_acc": class_acc,
        "mean_class_acc": float(class_acc[has_gt].mean()) if has_gt.any() else float("nan"),
        "pixels": total,
    }


def mean_image_miou(confs: Iterable[np.ndarray]) -> float:
    """Mean over images of each image's own mIoU (not the VOC score; see :func:`scores`).

    Each image's mIoU is taken over the classes present in that image (its ground truth
    or its prediction). Images with no scored pixel (all void) have no mIoU and are left
    out.

    Parameters
    ----------
    confs : iterable of ndarray, each shape (K, K), integer
        Per-image confusion matrices.

    Returns
    -------
    float
        ``NaN`` if no image has a scored pixel.

    Raises
    ------
    ValueError
        No matrix given, or a matrix is invalid (see :func:`scores`).
    """
    values = [scores(c)["miou"] for c in confs]
    if not values:
        raise ValueError("mean_image_miou needs at least one confusion matrix, got none")
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")
