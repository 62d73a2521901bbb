"""Full-resolution, edge-aware refinement of class probabilities, and spatial label priors.

DIPSEG fits its network at a small working resolution; these functions bring its class
probabilities back to the image's full resolution along the image's own edges:

* :func:`guided_filter` -- He, Sun, Tang (2010), a local linear model of the guide image;
* :func:`random_walk_refine` -- a random walker *with a prior* (Grady 2005): the seeds
  stay fixed and every other pixel trades off agreeing with its neighbours across weak
  edges against agreeing with the network's probabilities.

:func:`box_prior` is the spatial prior: a class is unlikely far outside the (enlarged)
bounding box of its own labels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import splu

from .labels import IGNORE

RW_BETA = 40_000.0
"""Edge sensitivity of the random-walk refinement (same scale as the random-walker baseline)."""


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Colour-guided filter (He, Sun, Tang 2010) of each channel of ``src``.

    Parameters
    ----------
    guide : (H, W, 3) float32 in [0, 1]
    src : (H, W, C) float32
    radius : int
        Window radius in pixels.
    eps : float
        Regulariser; larger smooths more across weak edges.

    Returns
    -------
    (H, W, C) float32
    """
    import cv2

    k = (2 * radius + 1, 2 * radius + 1)

    def box(x):
        return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT)

    h, w, _ = guide.shape
    mean_i = box(guide)
    cov = np.empty((h, w, 3, 3), np.float32)
    for a in range(3):
        for b in range(a, 3):
            cov[..., a, b] = cov[..., b, a] = box(guide[..., a] * guide[..., b]) - mean_i[..., a] * mean_i[..., b]
    cov += eps * np.eye(3, dtype=np.float32)
    inv = np.linalg.inv(cov)
    out = np.empty_like(src)
    for c in range(src.shape[2]):
        p = np.ascontiguousarray(src[..., c])
        mean_p = box(p)
        cov_ip = box(guide * p[..., None]) - mean_i * mean_p[..., None]
        a = np.einsum("hwij,hwj->hwi", inv, cov_ip)
        b = mean_p - (a * mean_i).sum(-1)
        out[..., c] = (box(a) * guide).sum(-1) + box(b)
    return out


def edge_weights(image: np.ndarray, beta: float = RW_BETA, smooth: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """4-neighbour edge weights ``exp(-beta' |dLab|^2)`` of the random walker.

    As in scikit-image, ``beta' = beta / (10 * std(features))`` with features CIELAB / 100,
    Gaussian-smoothed by ``smooth`` pixels so pixel noise does not read as edges.

    Returns
    -------
    wy : (H-1, W) float64
        Weights between vertical neighbours.
    wx : (H, W-1) float64
        Weights between horizontal neighbours.
    """
    from .baselines import lab_features

    feats = lab_features(image)
    if smooth > 0:
        feats = ndimage.gaussian_filter(feats, sigma=(smooth, smooth, 0))
    scale = beta / (10 * max(float(feats.std()), 1e-6))
    wy = np.exp(-scale * ((feats[1:] - feats[:-1]) ** 2).sum(-1)) + 1e-6
    wx = np.exp(-scale * ((feats[:, 1:] - feats[:, :-1]) ** 2).sum(-1)) + 1e-6
    return wy, wx


def random_walk_refine(
    image: np.ndarray,
    prior: np.ndarray,
    labels: np.ndarray,
    class_ids: np.ndarray,
    strength: float = 0.01,
    beta: float = RW_BETA,
    smooth: float = 1.0,
) -> np.ndarray:
    """Random walker with a prior: edge-aware diffusion of ``prior`` from fixed seeds.

    Minimises ``sum_ij w_ij |x_i - x_j|^2 + strength * sum_i |x_i - prior_i|^2`` over the
    unlabelled pixels, with labelled pixels fixed to their class (Grady 2005, "Multilabel
    random walker image segmentation using prior models"). One sparse LU factorisation
    serves all classes.

    Parameters
    ----------
    image : (H, W, 3) uint8
    prior : (H, W, k) float32
        Class probabilities to refine (sum to 1 per pixel), columns ordered as ``class_ids``.
    labels : (H, W) int
        ``IGNORE`` or a value of ``class_ids``.
    class_ids : (k,) int
    strength : float
        Trust in the prior relative to the edge weights (which are at most 1).
    beta, smooth : float
        See :func:`edge_weights`.

    Returns
    -------
    (H, W, k) float32
        Refined probabilities.
    """
    h, w, k = prior.shape
    n = h * w
    wy, wx = edge_weights(image, beta, smooth)
    idx = np.arange(n).reshape(h, w)
    rows = np.concatenate([idx[1:].ravel(), idx[:, 1:].ravel()])
    cols = np.concatenate([idx[:-1].ravel(), idx[:, :-1].ravel()])
    vals = np.concatenate([wy.ravel(), wx.ravel()])
    adj = sparse.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    adj = adj + adj.T
    degree = np.asarray(adj.sum(1)).ravel()
    lap = sparse.diags(degree + strength) - adj

    seeded = (labels != IGNORE).ravel()
    free = ~seeded
    q = prior.reshape(n, k).astype(np.float64)
    x_seed = np.zeros((int(seeded.sum()), k))
    pos = np.searchsorted(class_ids, labels.ravel()[seeded])
    x_seed[np.arange(len(pos)), pos] = 1.0
    lap = lap.tocsr()
    a = lap[free][:, free].tocsc()
    b = strength * q[free] + adj[free][:, seeded] @ x_seed
    x = np.empty((n, k))
    x[seeded] = x_seed
    x[free] = splu(a).solve(b)
    x = np.clip(x, 0, None)
    x /= np.maximum(x.sum(1, keepdims=True), 1e-12)
    return x.reshape(h, w, k).astype(np.float32)


def downscale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Move every labelled pixel to its cell of a coarser ``shape`` grid (no seed is lost).

    Where labels of several classes fall into one cell, the highest class id wins.
    """
    h0, w0 = labels.shape
    h, w = shape
    out = np.full(shape, IGNORE, dtype=np.int64)
    ys, xs = np.nonzero(labels != IGNORE)
    vals = labels[ys, xs]
    order = np.argsort(vals, kind="stable")
    out[(ys[order] * h) // h0, (xs[order] * w) // w0] = vals[order]
    return out


def box_prior(
    labels: np.ndarray,
    class_ids: np.ndarray,
    shape: tuple[int, int],
    margin: float = 0.15,
    strength: float = 3.0,
    falloff: float = 0.1,
) -> np.ndarray:
    """Log-prior that a class lies near the bounding box of its own labels.

    For class ``c`` with labels spanning a box enlarged by ``margin`` of its size on each
    side, the prior is ``-strength * d / (falloff * L)`` where ``d`` is the distance to that
    box (0 inside) and ``L`` the longest side of the image. The class whose box is largest
    (in VOC, the background) and any class whose box covers more than 60 % of the image get
    no penalty: they are expected anywhere. With one class the prior is zero.

    Parameters
    ----------
    labels : (H0, W0) int
        Sparse labels at any resolution; boxes are scaled to ``shape``.
    class_ids : (k,) int
    shape : (H, W)
        Resolution of the returned prior.
    margin, strength, falloff : float

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
    boxes = []
    for c in class_ids:
        ys, xs = np.nonzero(labels == c)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        my, mx = margin * (y1 - y0), margin * (x1 - x0)
        boxes.append(
            (max(0.0, y0 - my) * h / h0, min(h0, y1 + my) * h / h0, max(0.0, x0 - mx) * w / w0, min(w0, x1 + mx) * w / w0)
        )
    areas = [(b[1] - b[0]) * (b[3] - b[2]) for b in boxes]
    free_class = int(np.argmax(areas))
    yy = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xx = np.arange(w, dtype=np.float32)[None, :] + 0.5
    scale = falloff * max(h, w)
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        if i == free_class or areas[i] > 0.6 * h * w:
            continue
        dy = np.maximum(np.maximum(y0 - yy, yy - y1), 0)
        dx = np.maximum(np.maximum(x0 - xx, xx - x1), 0)
        prior[i] = -strength * np.hypot(dy, dx) / scale
    return prior
