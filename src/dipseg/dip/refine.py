"""From working-resolution logits to full-resolution probabilities, along the image's edges.

DIPSEG fits its network at a small working resolution; these functions bring its class
probabilities back to the image's full resolution along the image's own edges:

* :func:`guided_filter` -- He, Sun, Tang (2010), a local linear model of the guide image;
* :func:`random_walk_refine` -- a random walker *with a prior* (Grady 2005): the seeds
  stay fixed and every other pixel trades off agreeing with its neighbours across weak
  edges against agreeing with the network's probabilities.

:func:`full_resolution` is the whole stage as a fit runs it (priors, colour models,
refinement), and :func:`quick_preview` the network-free answer sent before the first step.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

import torch
from torch.nn import functional as F

from ..features import RW_BETA, edge_weights, lab_features
from ..labels import IGNORE, downscale_labels
from .colour import colour_logits, coverage_weight
from .config import FitConfig, working_shape
from .priors import box_prior


class Stopped(Exception):
    """Raised by the full-resolution stage when its ``should_stop`` check says so."""


def _check(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Stopped


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float,
                  should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Colour-guided filter (He, Sun, Tang 2010) of each channel of ``src``.

    Parameters
    ----------
    guide : (H, W, 3) float32 in [0, 1]
    src : (H, W, C) float32
    radius : int
        Window radius in pixels.
    eps : float
        Regulariser; larger smooths more across weak edges.
    should_stop : callable, optional
        Asked before each channel; True raises :class:`Stopped` (a cancelled fit).

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
        _check(should_stop)
        p = np.ascontiguousarray(src[..., c])
        mean_p = box(p)
        cov_ip = box(guide * p[..., None]) - mean_i * mean_p[..., None]
        a = np.einsum("hwij,hwj->hwi", inv, cov_ip)
        b = mean_p - (a * mean_i).sum(-1)
        out[..., c] = (box(a) * guide).sum(-1) + box(b)
    return out


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


def quick_preview(small: np.ndarray, labels: np.ndarray, class_ids: np.ndarray, cfg: FitConfig) -> np.ndarray:
    """Class map from the box prior and a random walk alone, no network: milliseconds.

    Parameters
    ----------
    small : (h, w, 3) uint8
        The image at working resolution.
    labels : (H, W) int
        Full-resolution labels.
    class_ids : (k,) int
    cfg : FitConfig

    Returns
    -------
    (h, w) int64
        Class ids.
    """
    h, w = small.shape[:2]
    prior = box_prior(labels, class_ids, (h, w), cfg.box_margin, max(cfg.box_prior, 1.0), cfg.box_falloff)
    prior = np.exp(prior - prior.max(0, keepdims=True))
    prior /= prior.sum(0, keepdims=True)
    prob = random_walk_refine(small, np.moveaxis(prior, 0, -1), downscale_labels(labels, (h, w)), class_ids,
                              cfg.refine_strength, cfg.refine_beta)
    return class_ids[prob.argmax(-1)]


def _probs_at(logits: "torch.Tensor", image: np.ndarray, labels, class_ids, cfg: FitConfig, seed: int) -> np.ndarray:
    """Softmax of the logits resized to ``image``'s size plus the box and colour priors, (h, w, k)."""
    shape = image.shape[:2]
    up = F.interpolate(logits, size=shape, mode="bilinear", align_corners=False) if logits.shape[-2:] != shape else logits
    up = up[0].cpu().numpy()
    if cfg.box_prior > 0:
        up = up + box_prior(labels, class_ids, shape, cfg.box_margin, cfg.box_prior, cfg.box_falloff)
    if cfg.colour_weight > 0:
        weight = cfg.colour_weight * (coverage_weight(labels, class_ids) if cfg.colour_coverage else 1.0)
        up = up + weight * colour_logits(lab_features(image), downscale_labels(labels, shape), class_ids,
                                         cfg.colour_components, cfg.colour_clip, cfg.colour_floor, seed)
    return torch.softmax(torch.from_numpy(up), 0).permute(1, 2, 0).numpy().astype(np.float32)


def coarse_resolution(image_shape: tuple[int, int], logits: "torch.Tensor") -> np.ndarray:
    """Softmax of the logits resized to ``image_shape``, no priors or refinement: a cancelled fit's answer.

    Returns
    -------
    (H, W, k) float32
    """
    up = F.interpolate(logits, size=tuple(image_shape), mode="bilinear", align_corners=False) \
        if logits.shape[-2:] != tuple(image_shape) else logits
    return torch.softmax(up[0], 0).permute(1, 2, 0).cpu().numpy().astype(np.float32)


def full_resolution(
    image: np.ndarray, labels: np.ndarray, class_ids: np.ndarray, logits: "torch.Tensor", cfg: FitConfig, seed: int,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Class probabilities at the image's resolution: priors, colour models, refinement.

    Parameters
    ----------
    image : (H, W, 3) uint8
    labels : (H, W) int
        The user's labels (``IGNORE`` where unlabelled).
    class_ids : (k,) int
    logits : Tensor (1, k, h, w)
        The network's class logits at working resolution.
    cfg : FitConfig
        ``box_prior``, ``colour_*`` and ``refine*`` fields are used.
    seed : int
        Seeds the colour mixtures.
    should_stop : callable, optional
        Asked between the parts of the stage (and between the guided filter's channels);
        True raises :class:`Stopped`, so a cancelled fit does not wait for the refinement.

    Returns
    -------
    (H, W, k) float32
        Probabilities in the order of ``class_ids``.

    Raises
    ------
    Stopped
        ``should_stop`` said so.
    """
    H, W = image.shape[:2]
    guide = None
    if cfg.refine == "random-walk":
        import cv2

        rs = working_shape((H, W), cfg.refine_size)
        small = cv2.resize(image, (rs[1], rs[0]), interpolation=cv2.INTER_AREA) if rs != (H, W) else image
        _check(should_stop)
        prob = _probs_at(logits, small, labels, class_ids, cfg, seed)
        _check(should_stop)
        prob = random_walk_refine(small, prob, downscale_labels(labels, rs), class_ids,
                                  cfg.refine_strength, cfg.refine_beta)
        if rs == (H, W):
            return prob
        prob = cv2.resize(prob, (W, H), interpolation=cv2.INTER_LINEAR)
        prob = prob[..., None] if prob.ndim == 2 else prob
        guide = True
    else:
        _check(should_stop)
        prob = _probs_at(logits, image, labels, class_ids, cfg, seed)
    if cfg.refine == "guided" or guide:
        _check(should_stop)
        prob = guided_filter(image.astype(np.float32) / 255.0, np.ascontiguousarray(prob), cfg.refine_radius,
                             cfg.refine_eps, should_stop)
        prob = np.clip(prob, 0, None)
        prob /= np.maximum(prob.sum(-1, keepdims=True), 1e-8)
    return prob
