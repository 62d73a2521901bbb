"""The random walker (Grady, TPAMI 2006), scikit-image's implementation on smoothed CIELAB."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from ..features import RW_BETA, lab_features
from ..labels import IGNORE
from .seeds import prepare

BF_MAX_PIXELS = 500_000
"""Largest image (pixels) for which :func:`random_walker` picks the direct solver by default.

Measured here (one thread, a 2-class VOC image, beta 1e4 unsmoothed): 500x375 direct
('bf') 2.2 s against 4.9 s for 'cg_j' (with the defaults: 0.9 s against 3.1 s); 750x421
'bf' 2.5 s, 0.9 GB peak; 1000x562 'bf' 5.6 s, 1.4 GB peak. The direct
solver's memory grows faster than linearly (sparse LU fill-in), so above this size the
Jacobi-preconditioned conjugate gradient ('cg_j') is used instead.
"""



def random_walker(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int = 0,
    beta: float = RW_BETA,
    mode: str | None = None,
    tol: float = 1e-3,
    colorspace: str = "lab",
    smooth: float = 1.0,
    return_full_prob: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """scikit-image's random walker (Grady 2006), natively multi-class.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        RGB image.
    labels : ndarray, shape (H, W), integer
        Class index at labelled pixels, ``IGNORE`` (-1) elsewhere.
    seed : int
        Unused (the method is deterministic); accepted for a uniform signature.
    beta : float
        Edge penalty; scikit-image divides it by ``10 * std`` of the features. The
        default, :data:`RW_BETA`, was chosen on VOC train images (see there); the
        scikit-image default of 130 barely follows edges.
    mode : {None, "bf", "cg", "cg_j", "cg_mg"}
        Linear solver. ``None`` picks the direct solver ``"bf"`` for images of at most
        :data:`BF_MAX_PIXELS` pixels (faster there) and ``"cg_j"`` above (less
        memory). ``"cg_mg"`` needs pyamg.
    tol : float
        Tolerance of the conjugate-gradient solvers. Their approximate solution can
        stray slightly outside [0, 1]; the probabilities are clipped and renormalised
        (scikit-image's warning about it is silenced).
    colorspace : {"lab", "rgb"}
        Features: CIELAB / 100 (default) or RGB / 255 (the default ``beta`` was tuned
        for Lab).
    smooth : float
        Sigma (pixels) of a Gaussian applied to the features first, so that pixel
        noise does not read as edges at a large ``beta``; 0 disables it.
    return_full_prob : bool
        Also return the per-class probabilities.

    Returns
    -------
    classes : ndarray, shape (H, W), int64
        Class per pixel, only classes present in ``labels``.
    probabilities : ndarray, shape (H, W, k), float32
        Only with ``return_full_prob``: probability of each labelled class, in the order
        of :func:`dipseg.labels.labelled_classes` (sums to 1 per pixel).

    Raises
    ------
    ValueError
        Bad image, labels or options.
    """
    from skimage.segmentation import random_walker as _skimage_random_walker

    image, labels, classes = prepare(image, labels)
    if mode is None:
        mode = "bf" if labels.size <= BF_MAX_PIXELS else "cg_j"
    if mode not in ("bf", "cg", "cg_j", "cg_mg"):
        raise ValueError(f"mode must be one of None, 'bf', 'cg', 'cg_j', 'cg_mg', got {mode!r}")
    if colorspace not in ("lab", "rgb"):
        raise ValueError(f"colorspace must be 'lab' or 'rgb', got {colorspace!r}")
    if not np.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    if not np.isfinite(smooth) or smooth < 0:
        raise ValueError(f"smooth must be a finite number >= 0, got {smooth!r}")
    k = len(classes)

    def result(index: np.ndarray, prob: np.ndarray | None):
        out = classes[index].astype(np.int64)
        if not return_full_prob:
            return out
        if prob is None:
            prob = np.zeros(labels.shape + (k,), np.float32)
            prob[np.arange(labels.shape[0])[:, None], np.arange(labels.shape[1]), index] = 1
        return out, prob

    if k == 1 or np.all(labels != IGNORE):
        # Nothing to diffuse (one class, or every pixel labelled); scikit-image would
        # warn and hand the labels back.
        index = np.searchsorted(classes, labels)
        return result(index, None)

    if colorspace == "lab":
        data = lab_features(image, smooth)
    else:
        data = image.astype(np.float64) / 255.0
        if smooth > 0:
            data = ndimage.gaussian_filter(data, sigma=(smooth, smooth, 0))
    if np.all(image == image[0, 0]):
        # A constant image has no edges, so the walk is isotropic; scikit-image divides
        # beta by the data's std, so give it beta=0 and any non-constant dummy data.
        data = np.broadcast_to(np.arange(labels.shape[1], dtype=np.float64), labels.shape)[..., None]
        data = np.repeat(data, 3, axis=-1)
        beta = 0.0
    # skimage: 0 = unlabelled, 1..k = seeds (consecutive, in our class order)
    rw_labels = np.where(labels == IGNORE, 0, np.searchsorted(classes, labels) + 1)
    with warnings.catch_warnings():
        # Expected from the iterative solvers at a large beta; handled by clipping below.
        warnings.filterwarnings("ignore", message="The probability range is outside", category=UserWarning)
        prob = _skimage_random_walker(
            data, rw_labels, beta=beta, mode=mode, tol=tol, return_full_prob=True, channel_axis=-1
        )
    prob = np.clip(np.moveaxis(prob, 0, -1), 0.0, 1.0)
    total = prob.sum(axis=-1, keepdims=True)
    prob = np.divide(prob, total, out=np.full_like(prob, 1.0 / k), where=total > 0)
    index = np.argmax(prob, axis=-1)
    return result(index, prob.astype(np.float32) if return_full_prob else None)
