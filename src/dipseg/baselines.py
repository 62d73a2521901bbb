"""Classical seeded segmenters used as baselines: GrabCut, random walker, a trainable pixel classifier.

Every baseline has the signature ``f(image, labels, *, seed=0, **options)``:

* ``image``: ``(H, W, 3) uint8`` RGB;
* ``labels``: ``(H, W)`` integer, class index at labelled pixels, ``IGNORE`` (-1) elsewhere;
* returns an ``(H, W) int64`` class map whose values are only classes that occur in
  ``labels``, with their original ids (no remapping).

If a single class is labelled every pixel gets that class. Inputs are never modified.
:data:`BASELINES` maps the method names used by :func:`dipseg.segment` to the functions.
"""

from __future__ import annotations

import warnings
from typing import Callable

import cv2
import numpy as np
from scipy import ndimage

from .labels import IGNORE, labelled_classes, validate_image, validate_labels

__all__ = [
    "BASELINES",
    "BF_MAX_PIXELS",
    "RW_BETA",
    "grabcut",
    "nearest_seed",
    "pixel_features",
    "random_walker",
    "trainable",
]

BF_MAX_PIXELS = 500_000
"""Largest image (pixels) for which :func:`random_walker` picks the direct solver by default.

Measured here (one thread, a 2-class VOC image, beta 1e4 unsmoothed): 500x375 direct
('bf') 2.2 s against 4.9 s for 'cg_j' (with the defaults: 0.9 s against 3.1 s); 750x421
'bf' 2.5 s, 0.9 GB peak; 1000x562 'bf' 5.6 s, 1.4 GB peak. The direct
solver's memory grows faster than linearly (sparse LU fill-in), so above this size the
Jacobi-preconditioned conjugate gradient ('cg_j') is used instead.
"""

RW_BETA = 40_000.0
"""Default random-walker ``beta`` for CIELAB / 100 features smoothed with a Gaussian of sigma 1.

scikit-image's own default (130) is far too weak an edge term for natural images. Chosen
with 100 labelled pixels per class (:func:`dipseg.labels.sample_blobs`, seed 0) on 10 VOC
2012 *train* images (every 33rd id of ``train.txt``), mean pixel accuracy:

* unsmoothed Lab: 0.46 at 130, 0.66 at 1000, 0.69 at 5000, 0.72 at 10000, 0.69 at
  20000, 0.62 at 50000 -- and at 10000 pixel noise (std 20 of 255) already breaks
  synthetic two-region images (0.86);
* Lab smoothed with sigma 1 (the default ``smooth``): 0.67 at 5000, 0.70 at 10000,
  0.75 at 20000, 0.79 at 40000, 0.79 at 80000; synthetic noisy images stay >= 0.99
  up to 40000.
"""


def _prepare(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate; return the image, an int64 copy of the labels and the labelled classes."""
    image = validate_image(image)
    labels = validate_labels(labels, shape=image.shape[:2])
    return image, labels, labelled_classes(labels)


def _seed_distances(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Euclidean distance from every pixel to the nearest seed of each class, shape ``(k, H, W)``."""
    return np.stack([ndimage.distance_transform_edt(labels != c) for c in classes])


def nearest_seed(labels: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """Give every pixel the class of its nearest labelled pixel (Euclidean; ties to the lower class).

    Parameters
    ----------
    labels : ndarray, shape (H, W), integer
        Class index at labelled pixels, ``IGNORE`` elsewhere (at least one labelled pixel).
    classes : ndarray, shape (k,), optional
        The labelled classes, sorted (computed when omitted).

    Returns
    -------
    ndarray, shape (H, W), int64
    """
    if classes is None:
        classes = labelled_classes(labels)
    dist = _seed_distances(labels, classes)
    return classes[np.argmin(dist, axis=0)].astype(np.int64)


# --------------------------------------------------------------------------- GrabCut


def _enlarged_box(seeds: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """Bounding box ``(y0, y1, x0, x1)`` (exclusive ends) of ``seeds`` grown by ``margin`` of its size per side."""
    ys, xs = np.nonzero(seeds)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    dy, dx = int(round(margin * (y1 - y0))), int(round(margin * (x1 - x0)))
    h, w = seeds.shape
    return max(0, y0 - dy), min(h, y1 + dy), max(0, x0 - dx), min(w, x1 + dx)


def _grabcut_claim(
    bgr: np.ndarray, labels: np.ndarray, fg: int, iterations: int, box_margin: float
) -> np.ndarray | None:
    """Run one binary GrabCut with class ``fg`` as foreground; ``None`` where OpenCV refuses.

    Returns the boolean ``(H, W)`` foreground mask (definite or probable foreground).
    """
    seeds = labels == fg
    y0, y1, x0, x1 = _enlarged_box(seeds, box_margin)
    mask = np.full(labels.shape, cv2.GC_PR_BGD, dtype=np.uint8)
    mask[y0:y1, x0:x1] = cv2.GC_PR_FGD
    mask[(labels != IGNORE) & ~seeds] = cv2.GC_BGD
    mask[seeds] = cv2.GC_FGD
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(bgr, mask, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        # OpenCV asserts when one side has no samples or fewer samples than GMM
        # components (opencv#14879, #13297), e.g. a single-pixel class whose box
        # is that pixel; the caller then uses the seeds-only rule for this class.
        return None
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def grabcut(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int = 0,
    iterations: int = 5,
    box_margin: float = 0.15,
) -> np.ndarray:
    """OpenCV GrabCut from seeds, extended to several classes one-vs-rest.

    For each labelled class ``c`` one binary GrabCut (``cv2.GC_INIT_WITH_MASK``) runs on
    the mask

    * ``GC_FGD`` at the seeds of ``c``, ``GC_BGD`` at the seeds of every other class;
    * ``GC_PR_FGD`` inside the bounding box of ``c``'s seeds, enlarged by ``box_margin``
      of the box's height / width on each side (clipped to the image);
    * ``GC_PR_BGD`` everywhere else.

    Its (definite or probable) foreground is the set of pixels *claimed* by ``c``. The
    claims are combined by the following rule, using the Euclidean distance ``d_c(p)``
    from pixel ``p`` to the nearest seed of class ``c``:

    1. a pixel claimed by one class gets that class;
    2. a pixel claimed by several classes gets the claiming class with the smallest
       ``d_c(p)``;
    3. a pixel claimed by no class gets the class with the smallest ``d_c(p)`` over
       all labelled classes.

    Ties go to the lower class id. Seeds always keep their own class (they are
    definite foreground of their class and definite background of every other).

    With exactly two classes a single GrabCut runs: the foreground is the class whose
    enlarged seed box is smaller (ties: the higher class id, so VOC's background, 0,
    is the GrabCut background), which gives a box prior on the object rather than a
    box covering the whole image.

    When OpenCV cannot run (too few samples on one side, see opencv#14879 / #13297),
    that class falls back to the *seeds-only rule*: it claims the pixels whose nearest
    seed is one of its own (a Voronoi partition of the seeds).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        RGB image (converted to BGR for OpenCV).
    labels : ndarray, shape (H, W), integer
        Class index at labelled pixels, ``IGNORE`` (-1) elsewhere.
    seed : int
        Seeds OpenCV's RNG (its k-means initialisation of the colour models), so the
        same call gives the same result.
    iterations : int
        GrabCut iterations per call (OpenCV's ``iterCount``), at least 1.
    box_margin : float
        Fraction of the seed box's size added on each side, at least 0.

    Returns
    -------
    ndarray, shape (H, W), int64
        Class per pixel, only classes present in ``labels``.

    Raises
    ------
    ValueError
        Bad image or labels (shape, dtype, no labelled pixel) or bad options.

    Notes
    -----
    About 1 s per GrabCut call on a 500x375 image (5 iterations): ``k`` labelled
    classes cost ``k`` calls (one when ``k == 2``).
    """
    image, labels, classes = _prepare(image, labels)
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if not np.isfinite(box_margin) or box_margin < 0:
        raise ValueError(f"box_margin must be a finite number >= 0, got {box_margin!r}")
    if len(classes) == 1:
        return np.full(labels.shape, classes[0], dtype=np.int64)

    bgr = np.ascontiguousarray(image[..., ::-1])
    cv2.setRNGSeed(int(seed))
    dist = _seed_distances(labels, classes)
    voronoi = np.argmin(dist, axis=0)

    if len(classes) == 2:
        areas = []
        for c in classes:
            y0, y1, x0, x1 = _enlarged_box(labels == c, box_margin)
            areas.append((y1 - y0) * (x1 - x0))
        fg = 1 if areas[1] <= areas[0] else 0
        claim = _grabcut_claim(bgr, labels, int(classes[fg]), int(iterations), float(box_margin))
        if claim is None:
            return classes[voronoi].astype(np.int64)
        return np.where(claim, classes[fg], classes[1 - fg]).astype(np.int64)

    claims = np.empty(dist.shape, dtype=bool)
    for i, c in enumerate(classes):
        claim = _grabcut_claim(bgr, labels, int(c), int(iterations), float(box_margin))
        claims[i] = claim if claim is not None else voronoi == i
    claimed_dist = np.where(claims, dist, np.inf)
    choice = np.where(claims.any(axis=0), np.argmin(claimed_dist, axis=0), voronoi)
    return classes[choice].astype(np.int64)


# --------------------------------------------------------------------------- random walker


def lab_features(image: np.ndarray) -> np.ndarray:
    """CIELAB with every channel divided by 100, shape ``(H, W, 3)`` float64.

    The random walker sums squared differences over channels, so the channels must
    share one scale; Lab / 100 puts L (0..100) and a, b (about -100..100) on
    comparable, perceptually meaningful scales.
    """
    from skimage.color import rgb2lab

    return rgb2lab(image) / 100.0


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

    image, labels, classes = _prepare(image, labels)
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

    data = lab_features(image) if colorspace == "lab" else image.astype(np.float64) / 255.0
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


# --------------------------------------------------------------------------- trainable classifier


def pixel_features(
    image: np.ndarray, sigma_min: float = 1.0, sigma_max: float = 16.0
) -> np.ndarray:
    """Per-pixel intensity, gradient and Hessian features over scales, shape ``(H, W, F)`` float32.

    :func:`skimage.feature.multiscale_basic_features` on each RGB channel (scaled to
    0..1), single-threaded; ``F = 3 channels x 4 features x number of scales``.
    """
    from skimage.feature import multiscale_basic_features

    image = validate_image(image)
    feats = multiscale_basic_features(
        image.astype(np.float32) / 255.0,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        workers=1,
        channel_axis=-1,
    )
    return np.asarray(feats, dtype=np.float32)


def trainable(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int = 0,
    n_estimators: int = 50,
    max_depth: int | None = 10,
    sigma_min: float = 1.0,
    sigma_max: float = 16.0,
    return_full_prob: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """A random forest on multi-scale pixel features, trained on the labelled pixels.

    The same recipe as scikit-image's (experimental) ``future.fit_segmenter``, written
    out with :func:`skimage.feature.multiscale_basic_features` and scikit-learn so that
    no experimental API is imported.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        RGB image.
    labels : ndarray, shape (H, W), integer
        Class index at labelled pixels, ``IGNORE`` (-1) elsewhere.
    seed : int
        ``random_state`` of the forest: same seed, same result.
    n_estimators, max_depth : int
        Forest size; 50 trees of depth 10 by default.
    sigma_min, sigma_max : float
        Range of the Gaussian scales of the features.
    return_full_prob : bool
        Also return the per-class probabilities.

    Returns
    -------
    classes : ndarray, shape (H, W), int64
        Class per pixel, only classes present in ``labels``.
    probabilities : ndarray, shape (H, W, k), float32
        Only with ``return_full_prob``: the forest's class probabilities in the order
        of :func:`dipseg.labels.labelled_classes`.

    Raises
    ------
    ValueError
        Bad image, labels or options.

    Notes
    -----
    The forest runs with ``n_jobs=1``: on small machines parallel workers contend with
    other processes and are slower, and one thread keeps results reproducible.
    """
    from sklearn.ensemble import RandomForestClassifier

    image, labels, classes = _prepare(image, labels)
    if isinstance(n_estimators, bool) or not isinstance(n_estimators, (int, np.integer)) or n_estimators < 1:
        raise ValueError(f"n_estimators must be a positive integer, got {n_estimators!r}")
    if not (0 < sigma_min <= sigma_max):
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    h, w = labels.shape
    if len(classes) == 1:
        out = np.full((h, w), classes[0], dtype=np.int64)
        return (out, np.ones((h, w, 1), np.float32)) if return_full_prob else out

    feats = pixel_features(image, sigma_min, sigma_max).reshape(h * w, -1)
    flat = labels.ravel()
    train = flat != IGNORE
    forest = RandomForestClassifier(
        n_estimators=int(n_estimators), max_depth=max_depth, n_jobs=1, random_state=seed
    )
    forest.fit(feats[train], flat[train])
    # forest.classes_ is sorted, i.e. equal to `classes`
    prob = forest.predict_proba(feats)
    out = forest.classes_[np.argmax(prob, axis=1)].astype(np.int64).reshape(h, w)
    if return_full_prob:
        return out, prob.astype(np.float32).reshape(h, w, -1)
    return out


BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "grabcut": grabcut,
    "random-walker": random_walker,
    "trainable": trainable,
}
"""Baseline name (as accepted by :func:`dipseg.segment`) -> function."""
