"""A trainable pixel classifier: a random forest on multi-scale features of the labelled pixels."""

from __future__ import annotations

import numpy as np

from ..labels import IGNORE, validate_image
from .seeds import prepare



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

    image, labels, classes = prepare(image, labels)
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


def fit_forest(image: np.ndarray, labels: np.ndarray, *, seed: int = 0, n_estimators: int = 50,
               max_depth: int | None = 10, sigma_min: float = 1.0, sigma_max: float = 16.0):
    """Train :func:`trainable`'s random forest on one image's labelled pixels and return it.

    The forest of :func:`trainable`, kept so it can classify other images
    (:func:`apply_forest`), as scikit-image's ``future.fit_segmenter`` /
    ``future.predict_segmenter`` pair does.

    Returns
    -------
    sklearn.ensemble.RandomForestClassifier
        Its ``classes_`` are the labelled classes; the feature scales travel as
        ``forest.dipseg_sigmas``.

    Raises
    ------
    ValueError
        Bad image, labels or options, or fewer than two labelled classes.
    """
    from sklearn.ensemble import RandomForestClassifier

    image, labels, classes = prepare(image, labels)
    if len(classes) < 2:
        raise ValueError("label at least two classes to train a forest")
    if not (0 < sigma_min <= sigma_max):
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    h, w = labels.shape
    feats = pixel_features(image, sigma_min, sigma_max).reshape(h * w, -1)
    flat = labels.ravel()
    train = flat != IGNORE
    forest = RandomForestClassifier(n_estimators=int(n_estimators), max_depth=max_depth, n_jobs=1, random_state=seed)
    forest.fit(feats[train], flat[train])
    forest.dipseg_sigmas = (sigma_min, sigma_max)
    return forest


def apply_forest(forest, image: np.ndarray) -> np.ndarray:
    """Classify every pixel of ``image`` (any size) with a forest from :func:`fit_forest`.

    Returns
    -------
    ndarray (H, W) int64
    """
    image = validate_image(image)
    h, w = image.shape[:2]
    feats = pixel_features(image, *forest.dipseg_sigmas).reshape(h * w, -1)
    return forest.predict(feats).astype(np.int64).reshape(h, w)
