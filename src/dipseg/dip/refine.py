"""From working-resolution logits to full-resolution probabilities, along the image's edges.

DIPSEG fits its network at a small working resolution; these functions bring its class
probabilities back to the image's full resolution along the image's own edges:

* :func:`guided_filter` -- He, Sun, Tang (2010), a local linear model of the guide image;
* :func:`random_walk_refine` -- a random walker *with a prior* (Grady 2005): the seeds
  stay fixed and every other pixel trades off agreeing with its neighbours across weak
  edges against agreeing with the network's probabilities;
* with two classes, optionally a graph cut (:func:`dipseg.graphcut.binary_graph_cut`) that
  decides each pixel's class from those probabilities and the walk's
  (``FitConfig.refine_cut``), and an object kept to its labelled regions
  (``FitConfig.refine_connected``); with dense labels, every class kept to its labelled
  regions (``FitConfig.refine_dense_connected``);
* with tight boxes, two rules on where the walk trusts its prior more: at the pixels the
  prior is sure of a box's class (:class:`SureRule`), and inside a box the walk has left
  nearly empty of its class or has cut rows or columns of it off (:class:`FillRule`).

:func:`full_resolution` is the whole stage as a fit runs it (priors, colour models,
refinement) in two halves: :func:`prepare_full_resolution` needs the image and labels only
(a fit runs it while the network trains), :func:`finish_full_resolution` adds the network's
logits. :func:`quick_preview` is the network-free answer sent before the first step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import splu

import torch
from torch.nn import functional as F

from ..features import RW_BETA, edge_weights, lab_features
from ..graphcut import binary_graph_cut
from ..labels import IGNORE, downscale_labels
from .colour import colour_logits, coverage_weight
from .config import FitConfig, working_shape
from .priors import border_prior, box_prior, few_points, spot_classes
from .boxterm import box_class_prior, colour_labels, work_slices


class Stopped(Exception):
    """Raised by the full-resolution stage when its ``should_stop`` check says so."""


def _check(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Stopped


def _inv_sym3(a: np.ndarray) -> np.ndarray:
    """Inverse of a field of symmetric positive-definite 3x3 matrices, ``(..., 3, 3)``, in closed form.

    The adjugate over the determinant: several times faster than :func:`numpy.linalg.inv`
    on millions of tiny matrices, and as exact for the well-conditioned (``+ eps I``)
    covariances of the guided filter.
    """
    a00, a01, a02 = a[..., 0, 0], a[..., 0, 1], a[..., 0, 2]
    a11, a12, a22 = a[..., 1, 1], a[..., 1, 2], a[..., 2, 2]
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    inv_det = 1.0 / (a00 * c00 + a01 * c01 + a02 * c02)
    out = np.empty_like(a)
    out[..., 0, 0], out[..., 1, 1], out[..., 2, 2] = c00 * inv_det, c11 * inv_det, c22 * inv_det
    out[..., 0, 1] = out[..., 1, 0] = c01 * inv_det
    out[..., 0, 2] = out[..., 2, 0] = c02 * inv_det
    out[..., 1, 2] = out[..., 2, 1] = c12 * inv_det
    return out


class GuidedFilter:
    """Colour-guided filter (He, Sun, Tang 2010) with its guide-only part computed once.

    Parameters
    ----------
    guide : (H, W, 3) float32 in [0, 1]
    radius : int
        Window radius in pixels.
    eps : float
        Regulariser; larger smooths more across weak edges.

    Notes
    -----
    The window means and the inverse covariances of the guide depend on the image only,
    so a fit computes them while its network trains (:func:`prepare_full_resolution`);
    :meth:`__call__` then filters any number of channels.
    """

    def __init__(self, guide: np.ndarray, radius: int, eps: float):
        self.guide = guide
        self.size = (2 * radius + 1, 2 * radius + 1)
        h, w, _ = guide.shape
        self.mean_i = self._box(guide)
        cov = np.empty((h, w, 3, 3), np.float32)
        for a in range(3):
            for b in range(a, 3):
                cov[..., a, b] = cov[..., b, a] = self._box(guide[..., a] * guide[..., b]) - self.mean_i[..., a] * self.mean_i[..., b]
        cov += eps * np.eye(3, dtype=np.float32)
        self.inv = _inv_sym3(cov)

    def _box(self, x: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.boxFilter(x, -1, self.size, borderType=cv2.BORDER_REFLECT)

    def __call__(self, src: np.ndarray, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Filter each channel of ``src`` ``(H, W, C)`` float32; ``should_stop`` is asked before each channel."""
        out = np.empty_like(src)
        for c in range(src.shape[2]):
            _check(should_stop)
            p = np.ascontiguousarray(src[..., c])
            mean_p = self._box(p)
            cov_ip = self._box(self.guide * p[..., None]) - self.mean_i * mean_p[..., None]
            a = np.einsum("hwij,hwj->hwi", self.inv, cov_ip)
            b = mean_p - (a * self.mean_i).sum(-1)
            out[..., c] = (self._box(a) * self.guide).sum(-1) + self._box(b)
        return out


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
    return GuidedFilter(guide, radius, eps)(src, should_stop)


CUT_FLOOR = 1e-6
"""Probabilities are floored here before the graph cut's ``-log``: no pixel's cost exceeds ~13.8 nats."""


class RandomWalk:
    """A random walker with a prior (Grady 2005), factorised once for any number of priors.

    Minimises ``sum_ij w_ij |x_i - x_j|^2 + strength * sum_i |x_i - prior_i|^2`` over the
    unlabelled pixels, with labelled pixels fixed to their class. The system matrix
    depends on the image, the seeds and ``strength`` only, not on the prior: it is
    factorised here (one sparse LU for all classes), and :meth:`solve` costs a
    back-substitution.

    Parameters
    ----------
    image : (H, W, 3) uint8
    labels : (H, W) int
        ``IGNORE`` or a value of ``class_ids``.
    class_ids : (k,) int
    strength : float
        Trust in the prior relative to the edge weights (which are at most 1).
    beta, smooth : float
        See :func:`edge_weights`.
    """

    def __init__(self, image: np.ndarray, labels: np.ndarray, class_ids: np.ndarray, strength: float = 0.01,
                 beta: float = RW_BETA, smooth: float = 1.0):
        h, w = labels.shape
        n = h * w
        k = len(class_ids)
        wy, wx = edge_weights(image, beta, smooth)
        self.wy, self.wx = wy, wx
        idx = np.arange(n).reshape(h, w)
        rows = np.concatenate([idx[1:].ravel(), idx[:, 1:].ravel()])
        cols = np.concatenate([idx[:-1].ravel(), idx[:, :-1].ravel()])
        vals = np.concatenate([wy.ravel(), wx.ravel()])
        adj = sparse.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
        adj = adj + adj.T
        degree = np.asarray(adj.sum(1)).ravel()
        lap = (sparse.diags(degree + strength) - adj).tocsr()
        seeded = (labels != IGNORE).ravel()
        self.free = ~seeded
        self.seeded = seeded
        self.shape, self.k, self.strength = (h, w), k, strength
        x_seed = np.zeros((int(seeded.sum()), k))
        pos = np.searchsorted(class_ids, labels.ravel()[seeded])
        x_seed[np.arange(len(pos)), pos] = 1.0
        fixed = np.full(n, -1, np.int64)
        fixed[seeded] = pos
        self.fixed = fixed.reshape(h, w)
        self.x_seed = x_seed
        self.b_seeds = adj[self.free][:, seeded] @ x_seed
        self.lu = splu(lap[self.free][:, self.free].tocsc())
        self.adj, self.degree = adj, degree

    def solve(self, prior: np.ndarray, strength: np.ndarray | None = None) -> np.ndarray:
        """Refined probabilities ``(H, W, k)`` float32 for a prior ``(H, W, k)`` (columns as ``class_ids``).

        ``strength``, optional ``(H, W)``: the trust in the prior per pixel instead of the
        walk's own; it needs a new factorisation (tens of milliseconds at 256 px).
        """
        h, w = self.shape
        n, k = h * w, self.k
        q = prior.reshape(n, k).astype(np.float64)
        x = np.empty((n, k))
        x[self.seeded] = self.x_seed
        if strength is None:
            x[self.free] = self.lu.solve(self.strength * q[self.free] + self.b_seeds)
        else:
            s = np.broadcast_to(np.asarray(strength, np.float64), (h, w)).reshape(n)
            lu = splu((sparse.diags(self.degree + s) - self.adj).tocsr()[self.free][:, self.free].tocsc())
            x[self.free] = lu.solve(s[self.free, None] * q[self.free] + self.b_seeds)
        x = np.clip(x, 0, None)
        x /= np.maximum(x.sum(1, keepdims=True), 1e-12)
        return x.reshape(h, w, k).astype(np.float32)

    def cut(self, prob: np.ndarray, weight: float) -> np.ndarray:
        """The two-class minimum graph cut ``(H, W, 2)`` one-hot float32 of ``-log prob`` with these edges and seeds.

        ``prob`` is ``(H, W, 2)`` (columns as ``class_ids``); ``weight`` multiplies the edge
        weights (:func:`dipseg.graphcut.binary_graph_cut`).
        """
        if self.k != 2 or prob.shape != (*self.shape, 2):
            raise ValueError(f"the graph cut needs two classes of probabilities {(*self.shape, 2)}, got {prob.shape}")
        cost = -np.log(np.clip(prob.astype(np.float64), CUT_FLOOR, 1.0))
        one = binary_graph_cut(cost[..., 0], cost[..., 1], self.wy, self.wx, weight, self.fixed)
        return np.stack([~one, one], -1).astype(np.float32)


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

    See :class:`RandomWalk` (this is ``RandomWalk(...).solve(prior)``).

    Parameters
    ----------
    image : (H, W, 3) uint8
    prior : (H, W, k) float32
        Class probabilities to refine (sum to 1 per pixel), columns ordered as ``class_ids``.
    labels : (H, W) int
        ``IGNORE`` or a value of ``class_ids``.
    class_ids : (k,) int
    strength, beta, smooth : float
        See :class:`RandomWalk`.

    Returns
    -------
    (H, W, k) float32
        Refined probabilities.
    """
    return RandomWalk(image, labels, class_ids, strength, beta, smooth).solve(prior)


def spatial_prior(labels: np.ndarray, class_ids: np.ndarray, shape: tuple[int, int], cfg: FitConfig,
                  boxes=(), strength: float | None = None, background: int = 0, tight: bool = False) -> np.ndarray:
    """The fit's spatial log-prior ``(k, h, w)`` at ``shape``: from the user's boxes if any, else the label-box prior.

    With boxes, :func:`dipseg.dip.boxterm.box_class_prior` (``cfg.box_outside`` nats, or
    ``strength``; with ``tight`` boxes also ``cfg.box_inside`` nats inside them); without,
    :func:`dipseg.dip.priors.box_prior` (``cfg.box_prior``, or ``strength``).
    """
    if boxes:
        return box_class_prior(boxes, class_ids, labels.shape, shape, cfg.box_outside if strength is None else strength,
                               cfg.box_inside if tight else 0.0)
    return label_box_prior(labels, class_ids, shape, cfg, strength, background)


def label_box_prior(labels: np.ndarray, class_ids: np.ndarray, shape: tuple[int, int], cfg: FitConfig,
                    strength: float | None = None, background: int = 0) -> np.ndarray:
    """:func:`dipseg.dip.priors.box_prior` with ``cfg``'s geometry (``cfg.box_prior``, or ``strength``).

    ``background`` is left free if ``cfg.box_free_background``. With ``cfg.point_border``,
    plus :func:`dipseg.dip.priors.border_prior`: a class known by one point keeps off the
    image's border.
    """
    prior = box_prior(labels, class_ids, shape, cfg.box_margin, cfg.box_prior if strength is None else strength,
                      cfg.box_falloff, cfg.box_min_extent, cfg.box_spot_min, cfg.box_spot_margin,
                      cfg.box_spot_falloff, background if cfg.box_free_background else None, cfg.box_point_gap,
                      cfg.box_spot_span, cfg.spot_rules_min_points)
    if cfg.point_border > 0:
        prior += border_prior(labels, class_ids, shape, background, cfg.point_border, cfg.point_border_band,
                              cfg.box_min_extent)
    return prior


def quick_preview(small: np.ndarray, labels: np.ndarray, class_ids: np.ndarray, cfg: FitConfig,
                  boxes=(), background: int = 0, tight: bool = False) -> np.ndarray:
    """Class map from the box prior and a random walk alone, no network: milliseconds.

    Parameters
    ----------
    small : (h, w, 3) uint8
        The image at working resolution.
    labels : (H, W) int
        Full-resolution labels.
    class_ids : (k,) int
    cfg : FitConfig
    boxes : list of Box, optional
        The user's boxes (full-resolution pixels); then ``labels`` already holds the
        background outside them.
    background : int
        The background class (free under the label-box prior).
    tight : bool
        The boxes are tight (:func:`spatial_prior`).

    Returns
    -------
    (h, w) int64
        Class ids.
    """
    h, w = small.shape[:2]
    strength = max(cfg.box_outside, 1.0) if boxes else max(cfg.box_prior, 1.0)
    prior = spatial_prior(labels, class_ids, (h, w), cfg, boxes, strength, background, tight)
    prior = np.exp(prior - prior.max(0, keepdims=True))
    prior /= prior.sum(0, keepdims=True)
    prob = random_walk_refine(small, np.moveaxis(prior, 0, -1), downscale_labels(labels, (h, w)), class_ids,
                              walk_strength(labels, class_ids, cfg, boxes), cfg.refine_beta)
    return class_ids[prob.argmax(-1)]


def _priors_and_rounds(image: np.ndarray, labels: np.ndarray, class_ids: np.ndarray, cfg: FitConfig, seed: int,
                       boxes=(), background: int = 0, tight: bool = False) -> tuple[np.ndarray | None, "BoxRounds | None"]:
    """The log-prior at ``image``'s size and what the colour rounds need, sharing their parts.

    Returns
    -------
    prior : (k, h, w) float32 or None
        Spatial prior plus weighted colour log-likelihoods; None if neither is on. With
        ``boxes`` the spatial prior is the user's boxes' (:func:`spatial_prior`) and, with
        ``cfg.box_colour``, the colour models are fitted to the boxes' pixels too.
    rounds : BoxRounds or None
        ``cfg.box_colour_rounds`` rounds with boxes, else ``cfg.colour_rounds``; None
        without colour models or rounds.
    """
    shape = image.shape[:2]
    spatial = None
    if (cfg.box_outside > 0) if boxes else (cfg.box_prior > 0):
        spatial = spatial_prior(labels, class_ids, shape, cfg, boxes, background=background, tight=tight)
    if cfg.colour_weight <= 0:
        return spatial, None
    features = lab_features(image)
    source = colour_labels(boxes, labels) if boxes and cfg.box_colour else labels
    weight = cfg.colour_weight * (coverage_weight(source, class_ids) if cfg.colour_coverage else 1.0)
    if not boxes:
        weight *= colour_spot_factor(labels, class_ids, cfg)
    colour = weight * colour_logits(features, downscale_labels(source, shape), class_ids,
                                    cfg.colour_components, cfg.colour_clip, cfg.colour_floor, seed)
    prior = colour if spatial is None else spatial + colour
    n = cfg.box_colour_rounds if boxes else cfg.colour_rounds
    if n < 1:
        return prior, None
    # Without boxes the rounds' models come from every pixel of the answer, not from the
    # labels whose coverage discounts the first models: the full colour weight.
    return prior, BoxRounds(n, spatial, features, weight if boxes else cfg.colour_weight, class_ids, cfg, seed)


def colour_spot_factor(labels: np.ndarray, class_ids: np.ndarray, cfg: FitConfig) -> float:
    """``cfg.colour_spot_scale`` weighted by the share of spot-labelled classes, in ``[0, 1]``.

    1 when no labelled class is scattered spots (:func:`dipseg.dip.priors.spot_classes`
    with ``cfg.box_spot_min``; 0 turns the rule off), ``colour_spot_scale`` when all are.
    Classes of fewer than ``cfg.spot_rules_min_points`` single points do not count as
    spots here (:func:`dipseg.dip.priors.few_points`): with so few seeds the walk leans on
    the colour models.
    """
    if cfg.colour_spot_scale == 1.0 or cfg.box_spot_min <= 0:
        return 1.0
    spots = spot_classes(labels, class_ids, cfg.box_spot_min) & ~few_points(labels, class_ids,
                                                                          cfg.spot_rules_min_points)
    share = float(spots.mean())
    return 1.0 - share * (1.0 - cfg.colour_spot_scale)


def walk_strength(labels: np.ndarray, class_ids: np.ndarray, cfg: FitConfig, boxes=()) -> float:
    """The random walk's trust in its prior for these labels (``FitConfig.refine_*strength``).

    With boxes ``cfg.box_refine_strength`` (tight boxes add :class:`SureRule`); else
    ``cfg.refine_strength``, moved towards
    ``cfg.refine_dense_strength`` (if set) as the labels' coverage rises through
    ``[refine_dense_from, refine_dense_to]``: dense labels are trusted further from themselves.
    """
    if boxes:
        return cfg.box_refine_strength
    if cfg.refine_dense_strength is None:
        return cfg.refine_strength
    c = coverage_weight(labels, class_ids)
    t = float(np.clip((c - cfg.refine_dense_from) / (cfg.refine_dense_to - cfg.refine_dense_from), 0.0, 1.0))
    return float(np.exp((1 - t) * np.log(cfg.refine_strength) + t * np.log(cfg.refine_dense_strength)))


def network_scale(labels: np.ndarray, class_ids: np.ndarray, cfg: FitConfig, boxes=()) -> float:
    """The factor on the network's logits, in ``[0, 1]``.

    With boxes ``cfg.box_network_scale`` (a box class has no labels, so the coverage rule
    would count it as uncovered and mute the network on images of several boxes); else
    ``FitConfig.network_coverage``'s rule.
    """
    if boxes:
        return cfg.box_network_scale
    if cfg.network_coverage <= 0:
        return 1.0
    return min(1.0, coverage_weight(labels, class_ids) / cfg.network_coverage) ** cfg.network_coverage_power


def _probs(logits: "torch.Tensor", shape: tuple[int, int], prior: np.ndarray | None, scale: float = 1.0) -> np.ndarray:
    """Softmax of ``scale`` times the logits resized to ``shape`` plus an additive log-prior, ``(h, w, k)`` float32."""
    up = F.interpolate(logits, size=shape, mode="bilinear", align_corners=False) if logits.shape[-2:] != shape else logits
    up = up[0].cpu().numpy()
    if scale != 1.0:
        up = up * np.float32(scale)
    if prior is not None:
        up = up + prior
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


@dataclass
class Prepared:
    """The part of the full-resolution stage that needs no network output (:func:`prepare_full_resolution`).

    Attributes
    ----------
    shape : (H, W)
        The image's size.
    stage_shape : (h, w)
        Where the network's probabilities meet the priors: the random walk's size, or (H, W).
    prior : (k, h, w) float32 or None
        Box prior plus weighted colour log-likelihoods at ``stage_shape``.
    walk : RandomWalk or None
        The factorised random walk at ``stage_shape`` (``refine="random-walk"``).
    guide : GuidedFilter or None
        The full-resolution guided filter (``refine="guided"``, or after a smaller random walk).
    scale : float
        Factor on the network's logits (:func:`network_scale`).
    rounds : BoxRounds or None
        What the GrabCut-like re-estimation of the colour models needs.
    cut : float
        ``FitConfig.refine_cut``: the pairwise weight of the final two-class graph cut of
        the random walk's answer; 0 for none (also with more than two classes).
    cut_walk : float
        ``FitConfig.refine_cut_walk``.
    connected : int or None
        ``FitConfig.refine_connected`` with two classes: the column of the object class, whose
        regions without one of its labels go to the background; None for no such rule.
    sure : SureRule or None
        Tight boxes: the walk's stronger trust in its prior where the prior is sure of a box's class.
    fill : FillRule or None
        Tight boxes: the walk's stronger trust in its prior inside a box it leaves nearly empty or cut short.
    dense_connected : bool
        ``FitConfig.refine_dense_connected`` with dense labels: every class's regions without
        one of its labels go to the next most likely class.
    """

    shape: tuple[int, int]
    stage_shape: tuple[int, int]
    prior: np.ndarray | None
    walk: RandomWalk | None
    guide: GuidedFilter | None
    scale: float = 1.0
    rounds: "BoxRounds | None" = None
    cut: float = 0.0
    cut_walk: float = 0.0
    connected: int | None = None
    sure: "SureRule | None" = None
    fill: "FillRule | None" = None
    dense_connected: bool = False


@dataclass
class FillRule:
    """Tight boxes: where the walk leaves a box nearly empty of its class, it trusts its prior there (``FitConfig.box_fill_*``, ``box_cover_*``).

    A tight box's object touches all four of its sides, so it seldom covers less than a
    tenth of it (1 % of VOC's boxes). When the walk's answer gives a box's class less than
    ``least`` of the box, the seeds around it have flooded it (an object of even colour
    beside seeds of that colour); the walk is solved again with ``strength`` inside that box,
    so there the prior decides. Where the prior too says the box is mostly background, the
    answer stays so. Likewise, at ``cover_strength``, a box whose class wins less than
    ``cover_below`` of it and reaches fewer than ``cover`` of its rows or of its columns:
    one connected object spans every row and column of its tight box, so the walk has cut
    part of it off.
    """

    least: float
    strength: float
    boxes: list[tuple[int, int, int, int, int]]
    """``(column, r0, r1, c0, c1)`` per box: its class's column and its rows and columns at the walk's size."""
    cover: float = 0.0
    cover_below: float = 0.0
    cover_strength: float = 0.0

    def short(self, prob: np.ndarray) -> list[tuple[int, int, int, int, int, float]]:
        """The boxes to solve again for ``prob`` ``(h, w, k)``, each ``(column, r0, r1, c0, c1, strength)``."""
        won = prob.argmax(-1)
        out = []
        for b in self.boxes:
            inside = won[b[1]:b[2], b[3]:b[4]] == b[0]
            share = inside.mean()
            if share < self.least:
                out.append((*b, self.strength))
            elif share < self.cover_below and _reach(inside) < self.cover:
                out.append((*b, self.cover_strength))
        return out

    def strength_map(self, short: list, otherwise: np.ndarray | float, shape: tuple[int, int]) -> np.ndarray:
        """The walk's strength ``(h, w)``: ``otherwise`` (a number or a map), raised inside each of ``short`` to its strength."""
        s = np.array(np.broadcast_to(np.asarray(otherwise, np.float64), shape))
        for _, r0, r1, c0, c1, strength in short:
            s[r0:r1, c0:c1] = np.maximum(s[r0:r1, c0:c1], strength)
        return s


def _reach(inside: np.ndarray) -> float:
    """The smaller of the shares of rows and of columns of ``inside`` ``(h, w)`` bool that hold a True.

    The outermost row and column on each side are left out when there are more than two:
    a box's slices at the walk's size are rounded outwards, so those are partly outside it.
    """
    core = inside[1:-1] if inside.shape[0] > 2 else inside
    core = core[:, 1:-1] if core.shape[1] > 2 else core
    return float(min(core.any(1).mean(), core.any(0).mean()))


@dataclass
class SureRule:
    """Tight boxes: the walk trusts its prior more where it is sure of a box's class (``FitConfig.box_sure_*``)."""

    at: float
    strength: float
    background: int
    """Column of the background class (never "sure"), or -1 without one."""

    def strength_map(self, prior: np.ndarray, otherwise: float) -> np.ndarray | None:
        """The walk's strength ``(h, w)`` for a prior ``(h, w, k)``; None where no pixel is sure."""
        sure = prior.max(-1) >= self.at
        if self.background >= 0:
            sure &= prior.argmax(-1) != self.background
        return np.where(sure, self.strength, otherwise) if sure.any() else None


@dataclass
class BoxRounds:
    """Re-fit the colour models to the current answer, ``n`` times (GrabCut's iteration).

    A box's first colour model is fitted to every pixel of the box, background included, and
    without boxes the first models know only the labelled pixels; re-fitting each class's
    model to the pixels the current answer gives it, then solving again, removes that
    contamination as GrabCut's iterations do (``FitConfig.box_colour_rounds``,
    ``FitConfig.colour_rounds``).
    """

    n: int
    spatial: np.ndarray | None
    features: np.ndarray
    weight: float
    class_ids: np.ndarray
    cfg: FitConfig
    seed: int


def prepare_full_resolution(image: np.ndarray, labels: np.ndarray, class_ids: np.ndarray, cfg: FitConfig,
                            seed: int, should_stop: Callable[[], bool] | None = None, boxes=(),
                            background: int = 0, tight_boxes: bool = False) -> Prepared:
    """Everything of the full-resolution stage that depends on the image and labels only.

    A fit runs this while its network trains, on a second thread when it has one
    (:func:`dipseg.dip.fit.fit` with ``threads >= 2``): priors, colour models, the random
    walk's factorisation and the guided filter's guide statistics.

    Parameters
    ----------
    image : (H, W, 3) uint8
    labels : (H, W) int
        The user's labels (``IGNORE`` where unlabelled).
    class_ids : (k,) int
    cfg : FitConfig
        ``box_prior``, ``colour_*`` and ``refine*`` fields are used.
    seed : int
        Seeds the colour mixtures.
    should_stop : callable, optional
        Asked between the parts; True raises :class:`Stopped`.
    boxes : list of Box, optional
        The user's boxes; ``labels`` then already holds the background outside them.
    background : int
        The background class, which the label-box prior leaves free (``cfg.box_free_background``).
    tight_boxes : bool
        The boxes touch their objects on every side: ``cfg.box_inside`` favours each box's
        class inside its boxes (:func:`spatial_prior`), and the walk trusts its prior at
        ``cfg.box_sure_strength`` where it is sure of a box's class (:class:`SureRule`).

    Returns
    -------
    Prepared
    """
    H, W = image.shape[:2]
    radius_eps = (cfg.refine_radius, cfg.refine_eps)
    if cfg.refine == "random-walk":
        import cv2

        rs = working_shape((H, W), cfg.refine_size)
        small = cv2.resize(image, (rs[1], rs[0]), interpolation=cv2.INTER_AREA) if rs != (H, W) else image
        _check(should_stop)
        prior, rounds = _priors_and_rounds(small, labels, class_ids, cfg, seed, boxes, background, tight_boxes)
        _check(should_stop)
        strength = walk_strength(labels, class_ids, cfg, boxes)
        walk = RandomWalk(small, downscale_labels(labels, rs), class_ids, strength, cfg.refine_beta)
        _check(should_stop)
        guide = GuidedFilter(image.astype(np.float32) / 255.0, *radius_eps) if rs != (H, W) else None
        # Both rules are two-class only; with more classes the walk's answer stands.
        two = len(class_ids) == 2
        connected = sure = None
        if boxes and tight_boxes and cfg.box_sure_strength > 0:
            bg = np.flatnonzero(class_ids == background)
            sure = SureRule(cfg.box_sure_at, cfg.box_sure_strength, int(bg[0]) if len(bg) else -1)
        if cfg.refine_connected and two and background in class_ids and not boxes:
            connected = int(np.flatnonzero(class_ids != background)[0])
        dense_connected = (cfg.refine_dense_connected and not boxes and len(class_ids) >= 2
                           and coverage_weight(labels, class_ids) >= cfg.refine_dense_from)
        fill = None
        fill_on = cfg.box_fill_least > 0 and cfg.box_fill_strength > 0
        cover_on = cfg.box_cover_least > 0 and cfg.box_cover_below > 0 and cfg.box_cover_strength > 0
        if boxes and tight_boxes and (fill_on or cover_on):
            fill = FillRule(cfg.box_fill_least if fill_on else 0.0, cfg.box_fill_strength,
                            [(int(np.searchsorted(class_ids, b.cls)), *work_slices(b, (H, W), rs)) for b in boxes],
                            cfg.box_cover_least if cover_on else 0.0, cfg.box_cover_below, cfg.box_cover_strength)
        return Prepared((H, W), rs, prior, walk, guide, network_scale(labels, class_ids, cfg, boxes), rounds,
                        cfg.refine_cut if two else 0.0, cfg.refine_cut_walk, connected, sure, fill, dense_connected)
    _check(should_stop)
    prior, rounds = _priors_and_rounds(image, labels, class_ids, cfg, seed, boxes, background, tight_boxes)
    guide = GuidedFilter(image.astype(np.float32) / 255.0, *radius_eps) if cfg.refine == "guided" else None
    return Prepared((H, W), (H, W), prior, None, guide, network_scale(labels, class_ids, cfg, boxes), rounds)


def _unseeded(won: np.ndarray, fixed: np.ndarray, column: int) -> np.ndarray:
    """The pixels ``(h, w)`` bool of the 4-connected regions where ``won == column`` that hold none of its seeds."""
    mine = won == column
    regions, _ = ndimage.label(mine)
    seeded = np.unique(regions[mine & (fixed == column)])
    return mine & ~np.isin(regions, seeded[seeded > 0])


def _drop_unseeded(prob: np.ndarray, fixed: np.ndarray, column: int) -> np.ndarray:
    """``prob`` with the regions of class ``column`` that hold none of its seeds handed to the other class.

    Two classes only: where ``column`` wins a 4-connected region without one of its seeds
    (``fixed == column``), the two probabilities swap, so the other class wins by the same margin.
    """
    drop = _unseeded(prob.argmax(-1), fixed, column)
    if drop.any():
        prob = prob.copy()
        prob[drop] = prob[drop][:, ::-1]
    return prob


def _drop_unseeded_all(prob: np.ndarray, fixed: np.ndarray, rounds: int = 3) -> np.ndarray:
    """``prob`` ``(h, w, k)`` with every class's regions that hold none of its seeds handed to the next class.

    There the class's probability becomes 0 (the rest renormalised), so the next most likely
    class takes over; that class's new regions are checked in turn, ``rounds`` times at most.
    """
    for _ in range(rounds):
        won = prob.argmax(-1)
        drop = np.zeros(won.shape + (prob.shape[-1],), bool)
        for c in np.unique(won):
            drop[..., c] = _unseeded(won, fixed, int(c))
        if not drop.any():
            break
        prob = np.where(drop, 0.0, prob).astype(prob.dtype)
        prob /= np.maximum(prob.sum(-1, keepdims=True), 1e-12)
    return prob


def finish_full_resolution(prepared: Prepared, logits: "torch.Tensor",
                           should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Full-resolution class probabilities from the network's logits and a :class:`Prepared` stage.

    Parameters
    ----------
    prepared : Prepared
    logits : Tensor (1, k, h, w)
        The network's class logits at working resolution.
    should_stop : callable, optional
        Asked between the parts (and between the guided filter's channels); True raises
        :class:`Stopped`, so a cancelled fit does not wait for the refinement.

    Returns
    -------
    (H, W, k) float32
        Probabilities in the order of the class ids.
    """
    import cv2

    H, W = prepared.shape
    _check(should_stop)
    unary = prob = _probs(logits, prepared.stage_shape, prepared.prior, prepared.scale)
    fill = prepared.fill

    def walk(prior: np.ndarray, strength: np.ndarray | None = None) -> np.ndarray:
        # Every solve, the colour rounds' included: a round re-fitted to a flooded box would
        # learn its object's colours as background's.
        out = prepared.walk.solve(prior, strength)
        short = fill.short(out) if fill is not None else []
        if short:
            out = prepared.walk.solve(prior, fill.strength_map(short, prepared.walk.strength if strength is None
                                                               else strength, out.shape[:2]))
        return out

    if prepared.walk is not None:
        _check(should_stop)
        prob = walk(prob)
    r = prepared.rounds
    for _ in range(r.n if r is not None else 0):
        _check(should_stop)
        current = r.class_ids[prob.argmax(-1)]
        least = max(2.0, r.cfg.colour_rounds_min_share * current.size)
        if any((current == c).sum() < least for c in r.class_ids):
            break  # a class has (nearly) vanished: its colour model cannot be re-fitted, keep this answer
        colour = r.weight * colour_logits(r.features, current, r.class_ids, r.cfg.colour_components, r.cfg.colour_clip,
                                          r.cfg.colour_floor, r.seed)
        unary = prob = _probs(logits, prepared.stage_shape, colour if r.spatial is None else r.spatial + colour,
                              prepared.scale)
        if prepared.walk is not None:
            prob = walk(prob)
    if prepared.sure is not None and prepared.walk is not None:
        # Solved once more (the last plain solve is then wasted, tens of milliseconds): the
        # colour rounds above re-fit to plain walks' answers, as measured.
        strength = prepared.sure.strength_map(unary, prepared.walk.strength)
        if strength is not None:
            prob = walk(unary, strength)
    if prepared.cut > 0:
        # The walk's answer falls off with the distance to the seeds (a long border frame
        # outweighs a few clicks); the cut pays once for its boundary: it decides the class,
        # and the mean keeps the walk's doubt where the two disagree.
        _check(should_stop)
        a = prepared.cut_walk
        blend = np.exp((1 - a) * np.log(np.clip(unary, CUT_FLOOR, 1)) + a * np.log(np.clip(prob, CUT_FLOOR, 1)))
        prob = 0.5 * (prob + prepared.walk.cut(blend, prepared.cut))
    if prepared.connected is not None:
        prob = _drop_unseeded(prob, prepared.walk.fixed, prepared.connected)
    elif prepared.dense_connected:
        prob = _drop_unseeded_all(prob, prepared.walk.fixed)
    if prepared.walk is not None:
        if prepared.stage_shape != (H, W):
            prob = cv2.resize(prob, (W, H), interpolation=cv2.INTER_LINEAR)
            prob = prob[..., None] if prob.ndim == 2 else prob
    if prepared.guide is not None:
        _check(should_stop)
        prob = prepared.guide(np.ascontiguousarray(prob), should_stop)
        prob = np.clip(prob, 0, None)
        prob /= np.maximum(prob.sum(-1, keepdims=True), 1e-8)
    return prob


def full_resolution(
    image: np.ndarray, labels: np.ndarray, class_ids: np.ndarray, logits: "torch.Tensor", cfg: FitConfig, seed: int,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Class probabilities at the image's resolution: priors, colour models, refinement.

    :func:`prepare_full_resolution` then :func:`finish_full_resolution`.

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
        Asked between the parts of the stage; True raises :class:`Stopped`.

    Returns
    -------
    (H, W, k) float32
        Probabilities in the order of ``class_ids``.

    Raises
    ------
    Stopped
        ``should_stop`` said so.
    """
    return finish_full_resolution(prepare_full_resolution(image, labels, class_ids, cfg, seed, should_stop),
                                  logits, should_stop)
