"""Label samplers: sparse labels drawn from a ground-truth map, deterministic given a seed.

Ground-truth maps use the dataset convention (class indices plus a ``void`` value, 255 in
VOC, that is never sampled); the samplers return labels in the convention of
:mod:`dipseg.labels` (``IGNORE`` where unlabelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .labels import IGNORE, VOID

N_BLOBS = 3
"""Number of blobs per class drawn by :func:`sample_blobs` (the poster's "three fat blobs")."""


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _validate_gt(gt: np.ndarray, n: int, void: int) -> np.ndarray:
    if not isinstance(gt, np.ndarray) or gt.ndim != 2 or not np.issubdtype(gt.dtype, np.integer):
        raise ValueError(f"ground truth must be an (H, W) integer array, got {getattr(gt, 'shape', type(gt))}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"pixels per class must be a positive integer, got {n!r}")
    if not np.any((gt != void) & (gt >= 0)):
        # labels with no labelled pixel are useless to every method: say so here, not at the fit
        raise ValueError(f"ground truth has no pixel of any class (every pixel is void = {void}); nothing to sample")
    return gt


def sample_uniform(
    gt: np.ndarray, n: int, seed: int | np.random.Generator | None = 0, void: int = VOID
) -> np.ndarray:
    """Label ``n`` pixels per class, drawn uniformly at random from each class region.

    Parameters
    ----------
    gt : ndarray, shape (H, W), integer
        Ground truth: class indices, ``void`` where not scored.
    n : int
        Pixels per class; a class with fewer pixels gets all of them.
    seed : int or Generator
        Same seed, same labels.
    void : int
        Ground-truth value that is never sampled.

    Returns
    -------
    ndarray, shape (H, W), int64
        Class index at the sampled pixels, ``IGNORE`` elsewhere.
    """
    gt = _validate_gt(gt, n, void)
    rng = _rng(seed)
    labels = np.full(gt.shape, IGNORE, dtype=np.int64)
    flat = gt.ravel()
    for c in np.unique(flat):
        if c == void or c < 0:
            continue
        idx = np.flatnonzero(flat == c)
        take = idx if idx.size <= n else rng.choice(idx, size=n, replace=False)
        labels.flat[take] = c
    return labels


def _blob_centres(mask: np.ndarray, per_blob: int, n_blobs: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Pick up to ``n_blobs`` spread-out disc centres inside ``mask`` (see :func:`sample_blobs`)."""
    from scipy import ndimage  # imported here: ``import dipseg`` stays light for the command line

    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    radius = np.sqrt(per_blob / np.pi)
    candidates = np.argwhere(dist >= radius)
    if len(candidates) == 0:
        # The region is thinner than one disc: a single blob at its widest point.
        return [tuple(np.argwhere(dist == dist.max())[0])]
    first = candidates[rng.integers(len(candidates))]
    centres = [first]
    min_d = np.hypot(*(candidates - first).T)
    while len(centres) < n_blobs:
        j = int(np.argmax(min_d))
        if min_d[j] < 2 * radius:  # another disc would overlap one already placed
            break
        centres.append(candidates[j])
        min_d = np.minimum(min_d, np.hypot(*(candidates - candidates[j]).T))
    return [tuple(c) for c in centres]


def sample_blobs(
    gt: np.ndarray,
    n: int,
    seed: int | np.random.Generator | None = 0,
    void: int = VOID,
    n_blobs: int = N_BLOBS,
) -> np.ndarray:
    """Label ``n`` pixels per class as a few fat, spread-out discs inside the class region.

    The rule, per class ``c`` with region ``R`` (its pixels in ``gt``):

    1. If ``|R| <= n`` every pixel of ``R`` is labelled.
    2. Otherwise each blob should hold ``m = n / n_blobs`` pixels, a disc of radius
       ``r = sqrt(m / pi)``. Centres are pixels of ``R`` at least ``r`` from its border
       (so the disc fits). The first centre is drawn at random (seeded); each next one
       is the candidate farthest from the centres already placed (farthest-point
       sampling), accepted only if it is at least ``2 r`` away, so discs never overlap.
       A region too small or thin for ``n_blobs`` disjoint discs gets fewer blobs; one
       thinner than a disc gets a single blob at its widest point.
    3. The ``n`` pixels are shared evenly between the blobs; each blob takes the pixels
       of ``R`` nearest its centre that no earlier blob took. Exactly ``n`` pixels are
       labelled, all inside ``R``, never on ``void``.

    Parameters
    ----------
    gt : ndarray, shape (H, W), integer
        Ground truth: class indices, ``void`` where not scored.
    n : int
        Pixels per class.
    seed : int or Generator
        Same seed, same labels.
    void : int
        Ground-truth value that is never sampled.
    n_blobs : int
        Blobs per class (3 in the poster).

    Returns
    -------
    ndarray, shape (H, W), int64
        Class index inside the blobs, ``IGNORE`` elsewhere.
    """
    gt = _validate_gt(gt, n, void)
    if n_blobs < 1:
        raise ValueError(f"n_blobs must be >= 1, got {n_blobs}")
    rng = _rng(seed)
    labels = np.full(gt.shape, IGNORE, dtype=np.int64)
    for c in np.unique(gt):
        if c == void or c < 0:
            continue
        mask = gt == c
        count = int(mask.sum())
        if count <= n:
            labels[mask] = c
            continue
        centres = _blob_centres(mask, n / n_blobs, n_blobs, rng)
        shares = np.full(len(centres), n // len(centres))
        shares[: n % len(centres)] += 1
        coords = np.argwhere(mask)
        free = np.ones(len(coords), dtype=bool)
        for (cy, cx), share in zip(centres, shares):
            d = np.hypot(coords[:, 0] - cy, coords[:, 1] - cx)
            d[~free] = np.inf
            # stable sort: ties broken by raster order, so the result is deterministic
            pick = np.argsort(d, kind="stable")[:share]
            free[pick] = False
        taken = coords[~free]
        labels[taken[:, 0], taken[:, 1]] = c
    return labels


@dataclass(frozen=True)
class Sampler:
    """A named label sampler: ``fn(gt, n, seed, void) -> labels``."""

    name: str
    fn: Callable[..., np.ndarray]
    description: str


SAMPLERS: dict[str, Sampler] = {
    "uniform": Sampler("uniform", sample_uniform, "N random pixels per class"),
    "blobs": Sampler("blobs", sample_blobs, "N pixels per class as 3 fat, spread-out discs"),
}


def sample_labels(gt: np.ndarray, sampler: str, n: int, seed: int = 0, void: int = VOID) -> np.ndarray:
    """Draw sparse labels from ground truth with a sampler named in :data:`SAMPLERS`.

    Raises
    ------
    ValueError
        For an unknown sampler name.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[sampler].fn(gt, n, seed=seed, void=void)
