"""Binary graph cut: the exact minimum of a two-label energy on the pixel grid (Boykov & Jolly 2001).

Minimises

``E(x) = sum_i cost[x_i](i) + weight * sum_(i,j) w_ij [x_i != x_j]``

over ``x`` in {0, 1} per pixel, with some pixels fixed, by a minimum s-t cut of the grid
graph (4-neighbours; scipy's Dinic maximum flow). This is the decision GrabCut makes at
every iteration, here with any per-pixel costs.

Why not only a random walk: a random walk (:class:`dipseg.dip.refine.RandomWalk`) is a
quadratic energy, so in a region of uniform colour its answer falls off with the distance to
the seeds, and a long seed line (a border frame, a long stroke) outweighs a few click disks
however strongly the costs favour the clicks' class. A cut has no such bias: it pays once
for its boundary, wherever it lies, and follows the costs everywhere else.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

SCALE = 1000.0
"""Capacities are integers: costs and weights are multiplied by this and rounded (1e-3 resolution),
or by less where the total flow could otherwise pass 2**31 (very large images or weights)."""

_INT_MAX = 2**31 - 1


def binary_graph_cut(cost0: np.ndarray, cost1: np.ndarray, wy: np.ndarray, wx: np.ndarray, weight: float,
                     fixed: np.ndarray | None = None) -> np.ndarray:
    """The labelling ``(H, W)`` bool (True = label 1) of least energy.

    Parameters
    ----------
    cost0, cost1 : ndarray (H, W) float, finite, >= 0
        Cost of giving each pixel label 0 / label 1 (e.g. ``-log p``).
    wy : ndarray (H-1, W) float >= 0
        Weights between vertical neighbours (:func:`dipseg.features.edge_weights`).
    wx : ndarray (H, W-1) float >= 0
        Weights between horizontal neighbours.
    weight : float > 0
        Factor on the pairwise term.
    fixed : ndarray (H, W) int, optional
        -1 where free, 0 or 1 where the label is imposed.

    Returns
    -------
    ndarray (H, W) bool
        Ties between equal-energy labellings go to label 0 (the pixels the source cannot
        reach after the maximum flow).

    Raises
    ------
    ValueError
        Shapes that do not match, negative or non-finite costs or weights.
    """
    cost0 = np.asarray(cost0, np.float64)
    cost1 = np.asarray(cost1, np.float64)
    if cost0.ndim != 2 or cost1.shape != cost0.shape:
        raise ValueError(f"cost0 and cost1 must be (H, W) arrays of one shape, got {cost0.shape} and {cost1.shape}")
    h, w = cost0.shape
    wy = np.asarray(wy, np.float64)
    wx = np.asarray(wx, np.float64)
    if wy.shape != (h - 1, w) or wx.shape != (h, w - 1):
        raise ValueError(f"wy must be {(h - 1, w)} and wx {(h, w - 1)} for costs of shape {(h, w)}, "
                         f"got {wy.shape} and {wx.shape}")
    for name, a in (("cost0", cost0), ("cost1", cost1), ("wy", wy), ("wx", wx)):
        if a.size and (not np.all(np.isfinite(a)) or a.min() < 0):
            raise ValueError(f"{name} must be finite and >= 0")
    if not np.isfinite(weight) or weight <= 0:
        raise ValueError(f"weight must be a finite number > 0, got {weight!r}")
    n = h * w
    c0, c1 = cost0.ravel(), cost1.ravel()
    if fixed is not None:
        fixed = np.asarray(fixed).ravel()
        if fixed.shape != (n,):
            raise ValueError(f"fixed must have shape {(h, w)}, got {np.shape(fixed)}")
    # Once each pixel keeps one terminal edge (below), every unit of flow crosses a neighbour
    # edge, so the flow is at most the neighbour capacities' sum: keep that under int32.
    pair_sum = 2.0 * weight * (wy.sum() + wx.sum())
    scale = min(SCALE, 0.5 * _INT_MAX / max(pair_sum, 1e-12))
    pair_y = np.round(weight * wy.ravel() * scale)
    pair_x = np.round(weight * wx.ravel() * scale)
    # Source side = label 1. The edge source -> i is cut when i takes label 0 (pays cost0),
    # i -> sink when i takes label 1 (pays cost1); only the difference matters per pixel.
    src = np.round(c0 * scale)
    snk = np.round(c1 * scale)
    low = np.minimum(src, snk)
    src, snk = src - low, snk - low
    if fixed is not None:
        # A terminal edge dearer than all four of a pixel's neighbour edges together is never cut.
        hard = 4.0 * max(pair_y.max(initial=0.0), pair_x.max(initial=0.0)) + max(src.max(), snk.max()) + 1.0
        src = np.where(fixed == 1, hard, np.where(fixed == 0, 0.0, src))
        snk = np.where(fixed == 0, hard, np.where(fixed == 1, 0.0, snk))
    if max(src.max(initial=0.0), snk.max(initial=0.0)) > _INT_MAX:
        raise ValueError("costs too large for integer capacities; rescale them")
    idx = np.arange(n).reshape(h, w)
    s, t = n, n + 1
    up, down = idx[:-1].ravel(), idx[1:].ravel()
    left, right = idx[:, :-1].ravel(), idx[:, 1:].ravel()
    pix = idx.ravel()
    rows = np.concatenate([down, up, right, left, np.full(n, s), pix])
    cols = np.concatenate([up, down, left, right, pix, np.full(n, t)])
    cap = np.concatenate([pair_y, pair_y, pair_x, pair_x, src, snk]).astype(np.int32)
    keep = cap > 0
    graph = sparse.csr_matrix((cap[keep], (rows[keep], cols[keep])), shape=(n + 2, n + 2))
    flow = maximum_flow(graph, s, t, method="dinic").flow
    residual = (graph - flow).tocsr()
    residual.data[residual.data < 0] = 0
    residual.eliminate_zeros()
    side = np.zeros(n + 2, bool)
    side[breadth_first_order(residual, s, directed=True, return_predecessors=False)] = True
    return side[:n].reshape(h, w)
