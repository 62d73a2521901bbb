"""Per-class colour models: the global appearance term GrabCut relies on, for any number of classes.

DIPSEG's network and the random walker both propagate labels *locally*, along the image's
edges. A stroke in the middle of an object says nothing local about the object's far end,
but its colours do: :func:`colour_logits` fits a Gaussian mixture to each class's colours
(CIELAB) and returns per-pixel log-likelihoods, which the fit adds to its logits.
GrabCut (Rother et al. 2004) re-estimates its models from its current segmentation;
re-estimating from DIPSEG's prediction made results worse on VOC here (docs/performance.md),
so the models are fitted to the labelled pixels only, except in the rounds that
``FitConfig.box_colour_rounds`` (boxes) and ``FitConfig.colour_rounds`` (the preset
``clicks``: one round saves half a click on the GrabCut set, docs/interactive.md) ask for.
"""

from __future__ import annotations

import numpy as np

from ..features import GRID_CELL, grid_cells
from ..labels import IGNORE
from .gmm import GaussianMixture, fit_gmm

MAX_SAMPLES = 4000
"""Pixels per class used to fit its mixture (a random subset beyond this)."""


def _fit_gmm(x: np.ndarray, components: int, seed: int) -> GaussianMixture:
    if len(x) < 2:
        # One labelled pixel (e.g. ``uniform:1``): a single Gaussian at its colour, whose
        # spread is the covariance floor.
        x = np.repeat(x, 2, axis=0)
    # Few, nearly identical colours (a handful of labelled pixels) may collapse a
    # component; the covariance floor keeps the model usable.
    return fit_gmm(x, min(components, max(1, len(x) // 10)), seed, reg_covar=1e-3, max_iter=50)


def colour_logits(
    features: np.ndarray,
    labels: np.ndarray,
    class_ids: np.ndarray,
    components: int = 5,
    clip: float = 10.0,
    floor: float | None = -4.0,
    seed: int = 0,
) -> np.ndarray:
    """Log-likelihood of every pixel's colour under each class's Gaussian mixture.

    Parameters
    ----------
    features : (H, W, 3) float
        Per-pixel colour features, e.g. CIELAB / 100 from :func:`dipseg.features.lab_features`.
    labels : (H, W) int
        Sparse labels at the same resolution: ``IGNORE`` or a value of ``class_ids``.
    class_ids : (k,) int
        A class with no labelled pixel gets the other classes' mean log-likelihood
        (neutral, zero after centring when it is the only unknown one of two).
    components : int
        Mixture components per class (fewer when a class has few pixels).
    clip : float
        Log-likelihoods are centred per pixel and clipped to ``[-clip, clip]`` nats, so
        no colour overrules everything else.
    floor : float or None
        Every class's log-density is at least ``floor`` (a uniform outlier component): a
        colour that none of the labels show is equally likely under every class, instead
        of going to whichever model's tail happens to be widest. None for no floor.
    seed : int
        Seeds the subsampling and the mixtures' initialisation.

    Returns
    -------
    (k, H, W) float32
        Centred, clipped log-likelihoods, in the order of ``class_ids``.
    """
    h, w = labels.shape
    k = len(class_ids)
    x = features.reshape(-1, features.shape[-1])
    rng = np.random.default_rng(seed)
    out = np.empty((k, h * w), np.float64)
    known = np.zeros(k, bool)
    for i, c in enumerate(class_ids):
        idx = np.flatnonzero(labels.ravel() == c)
        if len(idx) == 0:
            continue
        if len(idx) > MAX_SAMPLES:
            idx = rng.choice(idx, MAX_SAMPLES, replace=False)
        out[i] = _fit_gmm(x[idx], components, seed).score_samples(x)
        known[i] = True
    if floor is not None:
        out[known] = np.logaddexp(out[known], floor)
    # A class without a single labelled pixel here (boxes that cover the whole image leave
    # the background none) knows nothing of its colours: neutral, the known classes' mean.
    out[~known] = out[known].mean(0) if known.any() else 0.0
    out -= out.mean(0, keepdims=True)
    return np.clip(out, -clip, clip).reshape(k, h, w).astype(np.float32)


def coverage_weight(labels: np.ndarray, class_ids: np.ndarray, cell: float = GRID_CELL, half: float = 8.0, power: float = 2.0) -> float:
    """How much a colour model built from these labels can be trusted, in ``[0, 1)``.

    Neighbouring pixels share their colour, so a compact blob of a hundred pixels tells
    about as much as one pixel about a class's colours, while a long stroke or scattered
    clicks sample many parts of it. Per class, ``n`` counts the grid cells (of side
    ``cell`` times the image's longest side) that hold its labels; the weight is
    ``mean_c(n / (n + half)) ** power``. Typical values: 0.12 for VOC ``blobs:100``,
    0.3 for ``uniform:10``, 0.4 and 0.7 for the GrabCut set's scribble sets 1 and 2.

    Parameters
    ----------
    labels : (H, W) int
    class_ids : (k,) int
        The labelled classes.
    cell, half, power : float

    Returns
    -------
    float in [0, 1)
    """
    ys, xs = np.nonzero(labels != IGNORE)
    vals = labels[ys, xs]
    cells = grid_cells(ys, xs, labels.shape, cell)
    weights = []
    for c in class_ids:
        n = len(np.unique(cells[vals == c]))
        weights.append(n / (n + half))
    return float(np.mean(weights)) ** power
