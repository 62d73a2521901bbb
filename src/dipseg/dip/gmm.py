"""Gaussian mixtures with full covariances, fitted by EM from a k-means++ start, in NumPy.

The algorithm is scikit-learn's ``GaussianMixture(covariance_type="full", n_init=1,
init_params="kmeans")`` step for step (k-means++ seeding with the same draws from a
``numpy.random.RandomState``, Lloyd's iterations, EM until the mean log-likelihood moves
by less than ``tol``), so the colour models match the ones dipseg fitted with
scikit-learn to rounding (``tests/test_dip_gmm.py`` compares them). It lives here because
importing ``sklearn.mixture`` (and with it ``scipy.stats``) took 0.9 s of every fresh
process, more than a whole fit, and the colour models of a VOC image took 0.28 s with it
against 0.08 s here (docs/performance.md, fifth round).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianMixture", "fit_gmm", "kmeans_labels"]


@dataclass(frozen=True)
class GaussianMixture:
    """A fitted mixture.

    Attributes
    ----------
    weights : (k,) float64
        Mixing weights, summing to 1.
    means : (k, d) float64
    precisions_cholesky : (k, d, d) float64
        Upper-triangular factors ``P`` with ``P @ P.T`` the inverse covariance.
    n_iter : int
        EM iterations run.
    converged : bool
        Whether EM stopped on its tolerance rather than its iteration limit.
    """

    weights: np.ndarray
    means: np.ndarray
    precisions_cholesky: np.ndarray
    n_iter: int
    converged: bool

    def weighted_log_prob(self, x: np.ndarray) -> np.ndarray:
        """``log(weight_k) + log N(x | mean_k, cov_k)`` for every sample and component, ``(n, k)``."""
        return _log_gaussian(x, self.means, self.precisions_cholesky) + np.log(self.weights)

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        """Log-density of every sample under the mixture.

        Parameters
        ----------
        x : (n, d) float

        Returns
        -------
        (n,) float64
        """
        return _logsumexp(self.weighted_log_prob(np.asarray(x, np.float64)))


def _log_gaussian(x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    k, d = means.shape
    # One matrix product for all components: (n, d) @ (d, k*d).
    y = x @ prec_chol.transpose(1, 0, 2).reshape(d, k * d)
    y = y.reshape(len(x), k, d) - np.einsum("kd,kde->ke", means, prec_chol)
    mahalanobis = np.einsum("nkd,nkd->nk", y, y)
    log_det = np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(1)
    return -0.5 * (d * math.log(2 * math.pi) + mahalanobis) + log_det


def _logsumexp(a: np.ndarray) -> np.ndarray:
    m = a.max(1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.log(np.exp(a - m).sum(1)) + m[:, 0]


def _gaussian_parameters(x: np.ndarray, resp: np.ndarray, reg_covar: float):
    nk = resp.sum(0) + 10 * np.finfo(resp.dtype).eps
    means = (resp.T @ x) / nk[:, None]
    d = x.shape[1]
    cov = np.empty((len(nk), d, d))
    for j in range(len(nk)):
        diff = x - means[j]
        cov[j] = ((resp[:, j] * diff.T) @ diff) / nk[j]
        cov[j].flat[:: d + 1] += reg_covar
    # Cholesky of the covariance, inverted and transposed: the precision's factor.
    chol = np.linalg.cholesky(cov)
    prec_chol = np.linalg.inv(chol).transpose(0, 2, 1)
    return nk, means, prec_chol


def _sq_distances(x: np.ndarray, x_sq: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(len(centres), n)``, clipped at 0."""
    d = -2.0 * (centres @ x.T)
    d += (centres * centres).sum(1)[:, None]
    d += x_sq[None]
    return np.maximum(d, 0.0, out=d)


def _kmeans_plusplus(x: np.ndarray, x_sq: np.ndarray, k: int, rng: np.random.RandomState) -> np.ndarray:
    n = len(x)
    trials = 2 + int(np.log(k))
    centres = np.empty((k, x.shape[1]))
    weights = np.ones(n)
    first = rng.choice(n, p=weights / weights.sum())
    centres[0] = x[first]
    closest = _sq_distances(x, x_sq, centres[:1])
    potential = closest @ weights
    for c in range(1, k):
        draws = rng.uniform(size=trials) * potential
        candidates = np.searchsorted(np.cumsum(weights * closest), draws)
        np.clip(candidates, None, closest.size - 1, out=candidates)
        dist = np.minimum(closest, _sq_distances(x, x_sq, x[candidates]))
        pots = dist @ weights.reshape(-1, 1)
        best = int(np.argmin(pots))
        potential = pots[best]
        closest = dist[best]
        centres[c] = x[candidates[best]]
    return centres


def _lloyd_step(x: np.ndarray, centres: np.ndarray, update: bool = True):
    dist = (centres * centres).sum(1)[None] - 2.0 * (x @ centres.T)
    labels = np.argmin(dist, 1).astype(np.int32)
    if not update:
        return labels, centres
    k = len(centres)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros_like(centres)
    np.add.at(sums, labels, x)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        # As scikit-learn: an empty cluster takes the point farthest from its centre.
        far = ((x - centres[labels]) ** 2).sum(1)
        far_ids = np.argpartition(far, -len(empty))[: -len(empty) - 1 : -1]
        for e, f in zip(empty, far_ids):
            old = labels[f]
            sums[old] -= x[f]
            sums[e] = x[f]
            counts[e] = 1.0
            counts[old] -= 1.0
    new = sums.copy()
    nonzero = counts > 0
    new[nonzero] *= (1.0 / counts[nonzero])[:, None]
    return labels, new


def kmeans_labels(x: np.ndarray, k: int, rng: np.random.RandomState, tol: float = 1e-4, max_iter: int = 300) -> np.ndarray:
    """Cluster labels of k-means (k-means++ seeding, then Lloyd's iterations).

    Parameters
    ----------
    x : (n, d) float64
    k : int
        Clusters, ``1 <= k <= n``.
    rng : numpy.random.RandomState
        Draws the seeding (advanced in place, as scikit-learn does).
    tol : float
        Stop when the centres' total squared shift is at most ``tol`` times the data's
        mean per-feature variance.
    max_iter : int

    Returns
    -------
    (n,) int32 in ``[0, k)``
    """
    tol = float(np.mean(np.var(x, axis=0))) * tol
    x = x - x.mean(0)
    x_sq = (x * x).sum(1)
    centres = _kmeans_plusplus(x, x_sq, k, rng)
    labels_old = np.full(len(x), -1, np.int32)
    strict = False
    for _ in range(max_iter):
        labels, new = _lloyd_step(x, centres)
        shift = ((new - centres) ** 2).sum()
        centres = new
        if np.array_equal(labels, labels_old):
            strict = True
            break
        if shift <= tol:
            break
        labels_old = labels
    if not strict:
        labels, _ = _lloyd_step(x, centres, update=False)
    return labels


def fit_gmm(
    x: np.ndarray, components: int, seed: int = 0, reg_covar: float = 1e-3, max_iter: int = 50, tol: float = 1e-3
) -> GaussianMixture:
    """Fit a full-covariance Gaussian mixture by EM from a k-means start.

    Parameters
    ----------
    x : (n, d) float
        Samples, ``n >= components``.
    components : int
        Mixture components, ``>= 1``.
    seed : int
        Seeds the k-means++ start.
    reg_covar : float
        Added to every covariance's diagonal: a floor that keeps nearly identical colours
        (a handful of labelled pixels) from collapsing a component.
    max_iter : int
        EM iterations at most.
    tol : float
        EM stops when the mean log-likelihood changes by less than this.

    Returns
    -------
    GaussianMixture
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < max(components, 1) or components < 1:
        raise ValueError(f"fit_gmm needs (n, d) samples with n >= components >= 1, got shape {x.shape} and components={components}")
    n = len(x)
    labels = kmeans_labels(x, components, np.random.RandomState(seed)) if components > 1 else np.zeros(n, np.int32)
    resp = np.zeros((n, components))
    resp[np.arange(n), labels] = 1.0
    nk, means, prec_chol = _gaussian_parameters(x, resp, reg_covar)
    weights = nk / n
    lower_bound = -np.inf
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        previous = lower_bound
        wlp = _log_gaussian(x, means, prec_chol) + np.log(weights)
        norm = _logsumexp(wlp)
        with np.errstate(under="ignore"):
            resp = np.exp(wlp - norm[:, None])
        nk, means, prec_chol = _gaussian_parameters(x, resp, reg_covar)
        weights = nk / nk.sum()
        lower_bound = float(norm.mean())
        if abs(lower_bound - previous) < tol:
            converged = True
            break
    return GaussianMixture(weights, means, prec_chol, n_iter, converged)
