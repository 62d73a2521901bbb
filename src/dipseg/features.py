"""Pixel features and geometry shared by DIPSEG and the classical baselines.

* :func:`lab_features` -- CIELAB / 100, the colour space every edge and colour term uses;
* :func:`edge_weights` -- the random walker's 4-neighbour weights, with :data:`RW_BETA`;
* :func:`label_box` / :func:`enlarge_box` -- the bounding box of a class's labels and its
  enlargement (GrabCut's probable-foreground box, DIPSEG's box prior).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

RW_BETA = 40_000.0
"""Random-walker edge sensitivity ``beta`` for CIELAB / 100 features smoothed with sigma 1.

scikit-image's own default (130) is far too weak an edge term for natural images. Chosen
with 100 labelled pixels per class (:func:`dipseg.samplers.sample_blobs`, seed 0) on 10
VOC 2012 *train* images (every 33rd id of ``train.txt``), mean pixel accuracy:

* unsmoothed Lab: 0.46 at 130, 0.66 at 1000, 0.69 at 5000, 0.72 at 10000, 0.69 at
  20000, 0.62 at 50000 -- and at 10000 pixel noise (std 20 of 255) already breaks
  synthetic two-region images (0.86);
* Lab smoothed with sigma 1 (the default ``smooth``): 0.67 at 5000, 0.70 at 10000,
  0.75 at 20000, 0.79 at 40000, 0.79 at 80000; synthetic noisy images stay >= 0.99
  up to 40000.

Used by the random-walker baseline and the quick preview; DIPSEG's refinement has its own
``FitConfig.refine_beta``.
"""


def lab_features(image: np.ndarray, smooth: float = 0.0) -> np.ndarray:
    """CIELAB with every channel divided by 100, shape ``(H, W, 3)`` float64.

    Edge and colour terms sum squared differences over channels, so the channels must
    share one scale; Lab / 100 puts L (0..100) and a, b (about -100..100) on comparable,
    perceptually meaningful scales.

    Parameters
    ----------
    image : ndarray (H, W, 3) uint8
    smooth : float
        Sigma (pixels) of a Gaussian applied per channel, so that pixel noise does not
        read as edges; 0 for none.
    """
    from skimage.color import rgb2lab

    feats = rgb2lab(image) / 100.0
    if smooth > 0:
        feats = ndimage.gaussian_filter(feats, sigma=(smooth, smooth, 0))
    return feats


def edge_weights(image: np.ndarray, beta: float = RW_BETA, smooth: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """4-neighbour edge weights ``exp(-beta' |dLab|^2)`` of the random walker.

    As in scikit-image, ``beta' = beta / (10 * std(features))`` with features CIELAB / 100,
    Gaussian-smoothed by ``smooth`` pixels.

    Returns
    -------
    wy : (H-1, W) float64
        Weights between vertical neighbours.
    wx : (H, W-1) float64
        Weights between horizontal neighbours.
    """
    feats = lab_features(image, smooth)
    scale = beta / (10 * max(float(feats.std()), 1e-6))
    wy = np.exp(-scale * ((feats[1:] - feats[:-1]) ** 2).sum(-1)) + 1e-6
    wx = np.exp(-scale * ((feats[:, 1:] - feats[:, :-1]) ** 2).sum(-1)) + 1e-6
    return wy, wx


GRID_CELL = 0.04
"""Side of the grid cells of :func:`grid_cells`, as a fraction of the image's longest side (20 px of a VOC image)."""


def grid_cells(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int], cell: float = GRID_CELL) -> np.ndarray:
    """Grid-cell id of each pixel ``(ys[i], xs[i])``, on square cells of side ``cell`` times the longest side.

    Neighbouring pixels share their colour and place, so the number of distinct cells a
    class's labels touch says how many parts of it they sample (the labels' coverage,
    :func:`dipseg.dip.colour.coverage_weight`; spots against strokes,
    :func:`dipseg.dip.priors.spot_classes`).

    Returns
    -------
    (n,) int64
    """
    side = max(1.0, cell * max(shape))
    return (ys // side).astype(np.int64) * 100_000 + (xs // side).astype(np.int64)


def label_box(mask: np.ndarray) -> tuple[np.int64, np.int64, np.int64, np.int64]:
    """Bounding box ``(y0, y1, x0, x1)`` (exclusive ends) of the true pixels of ``mask``.

    The ends are NumPy integers, so an enlarged box is NumPy float64 and priors computed
    from it keep double precision (NumPy 2 would compute in float32 with Python floats).

    Raises
    ------
    ValueError
        ``mask`` has no true pixel.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ValueError("cannot take the box of an empty mask")
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


def enlarge_box(
    box: tuple[float, float, float, float], margin: float, shape: tuple[int, int], whole_pixels: bool = False
) -> tuple:
    """Grow ``(y0, y1, x0, x1)`` by ``margin`` of its height / width per side, clipped to ``shape``.

    ``whole_pixels`` rounds the growth to whole pixels (integer boxes, as OpenCV needs).
    """
    y0, y1, x0, x1 = box
    my, mx = margin * (y1 - y0), margin * (x1 - x0)
    if whole_pixels:
        my, mx = int(round(my)), int(round(mx))
    h, w = shape
    return max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx)
