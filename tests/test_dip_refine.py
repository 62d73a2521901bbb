import numpy as np
import pytest

from conftest import seeds_from, three_regions
from dipseg.labels import IGNORE
from dipseg.dip.refine import guided_filter, random_walk_refine


def test_guided_filter_snaps_to_guide_edges_and_keeps_constants():
    guide = np.zeros((20, 20, 3), np.float32)
    guide[:, 10:] = 1
    src = np.zeros((20, 20, 1), np.float32)
    src[:, 9:] = 1  # an edge one pixel off the image's edge
    out = guided_filter(guide, src, 3, 1e-4)[..., 0]
    np.testing.assert_array_equal(out > 0.5, guide[..., 0] > 0.5)
    flat = guided_filter(guide, np.full((20, 20, 2), 0.3, np.float32), 3, 1e-3)
    np.testing.assert_allclose(flat, 0.3, atol=1e-4)


def test_random_walk_follows_edges_from_seeds():
    img, gt = three_regions(48, noise=4)
    labels = seeds_from(gt, 2)
    ids = np.array([0, 1, 2])
    flat_prior = np.full((48, 48, 3), 1 / 3, np.float32)
    before = labels.copy()
    prob = random_walk_refine(img, flat_prior, labels, ids, strength=1e-6)
    np.testing.assert_array_equal(labels, before)
    assert prob.shape == (48, 48, 3) and prob.dtype == np.float32
    np.testing.assert_allclose(prob.sum(-1), 1, atol=1e-5)
    assert (ids[prob.argmax(-1)] == gt).mean() > 0.97


def test_random_walk_strong_prior_wins():
    img, gt = three_regions(32, noise=4)
    labels = seeds_from(gt, 2)
    prior = np.zeros((32, 32, 3), np.float32)
    prior[..., 1] = 1  # the prior says "class 1" everywhere
    prob = random_walk_refine(img, prior, labels, np.array([0, 1, 2]), strength=10.0)
    assert (prob.argmax(-1) == 1).mean() > 0.9
    seeded = labels != IGNORE
    np.testing.assert_array_equal(prob.argmax(-1)[seeded], labels[seeded])  # seeds stay fixed


@pytest.mark.parametrize("strength", [1e-6, 1e-2])
def test_random_walk_single_seed_per_class(strength):
    img, gt = three_regions(24)
    labels = np.full(gt.shape, IGNORE)
    labels[2, 2], labels[20, 20], labels[7, 7] = 0, 1, 2
    prob = random_walk_refine(img, np.full((24, 24, 3), 1 / 3, np.float32), labels, np.array([0, 1, 2]), strength)
    assert np.isfinite(prob).all()
