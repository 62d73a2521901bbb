import numpy as np
import pytest

from dipseg.dip.gmm import fit_gmm, kmeans_labels


def _blobs(n=600, seed=0):
    """Three well-separated 3-D clusters of known centres."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 3.0, 1.0]])
    truth = rng.integers(0, 3, n)
    return centres[truth] + rng.normal(0, 0.2, (n, 3)), truth, centres


def test_mixture_finds_the_clusters_and_is_a_density():
    x, truth, centres = _blobs()
    x0 = x.copy()
    g = fit_gmm(x, 3, seed=0)
    np.testing.assert_array_equal(x, x0)
    assert g.converged and 1 <= g.n_iter <= 50
    np.testing.assert_allclose(g.weights.sum(), 1.0)
    found = g.means[np.argsort(g.means @ [1.0, 10.0, 0.0])]
    np.testing.assert_allclose(found, centres[np.argsort(centres @ [1.0, 10.0, 0.0])], atol=0.1)
    # A density: its integral over a box holding nearly all the mass is close to 1.
    grid = np.stack(np.meshgrid(*[np.linspace(-1.5, 4.5, 61)] * 2, np.linspace(-1.5, 2.5, 41), indexing="ij"), -1)
    cell = 0.1**3
    assert np.exp(g.score_samples(grid.reshape(-1, 3))).sum() * cell == pytest.approx(1.0, abs=0.02)
    # Points are likelier near a centre than between centres.
    assert g.score_samples(centres).min() > g.score_samples(np.array([[1.5, 1.5, 0.5]]))[0] + 5


def test_kmeans_labels_recover_the_partition():
    x, truth, _ = _blobs(seed=1)
    labels = kmeans_labels(x, 3, np.random.RandomState(0))
    assert labels.dtype == np.int32 and set(np.unique(labels)) == {0, 1, 2}
    # The same partition up to renaming.
    pairs = set(zip(labels.tolist(), truth.tolist()))
    assert len(pairs) == 3


def test_same_seed_same_model_and_seed_matters_on_ambiguous_data():
    rng = np.random.default_rng(3)
    x = rng.random((300, 3))  # one uniform cloud: no clear clusters, so the start decides
    a, b = fit_gmm(x, 5, seed=7), fit_gmm(x, 5, seed=7)
    np.testing.assert_array_equal(a.means, b.means)
    assert not np.allclose(fit_gmm(x, 5, seed=8).means, a.means)


@pytest.mark.parametrize("distinct", [1, 2, 5])
def test_repeated_colours_keep_a_usable_model(distinct):
    """Few distinct colours (a synthetic image's stroke): empty clusters are re-seeded and
    the covariance floor keeps every component finite."""
    rng = np.random.default_rng(distinct)
    x = rng.random((distinct, 3))[rng.integers(0, distinct, 80)]
    g = fit_gmm(x, 5, seed=0)
    s = g.score_samples(np.vstack([x, rng.random((10, 3))]))
    assert np.isfinite(s).all()
    assert s[: len(x)].min() > s[len(x) :].max() - 1e-9 or distinct == 5


def test_matches_scikit_learn():
    """The algorithm is scikit-learn's GaussianMixture step for step (its k-means++ draws
    included): same log-densities to rounding, same number of EM iterations."""
    import warnings

    mixture = pytest.importorskip("sklearn.mixture")
    rng = np.random.default_rng(0)
    for case in range(40):
        n = int(rng.integers(2, 400))
        distinct = int(rng.integers(1, 7))
        x = rng.random((distinct, 3))[rng.integers(0, distinct, n)] + rng.normal(0, 0.02 * (case % 2), (n, 3))
        k = min(5, max(1, n // 10))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = mixture.GaussianMixture(k, covariance_type="full", reg_covar=1e-3, max_iter=50, random_state=case).fit(x)
        ours = fit_gmm(x, k, seed=case)
        q = rng.random((200, 3))
        np.testing.assert_allclose(ours.score_samples(q), ref.score_samples(q), rtol=0, atol=1e-8)
        assert ours.n_iter == ref.n_iter_


@pytest.mark.parametrize("shape,k", [((10,), 2), ((3, 3), 5), ((10, 3), 0)])
def test_bad_input_is_refused(shape, k):
    with pytest.raises(ValueError, match="fit_gmm needs"):
        fit_gmm(np.zeros(shape), k)
