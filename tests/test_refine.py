import numpy as np
import pytest

from conftest import seeds_from, three_regions
from dipseg.labels import IGNORE
from dipseg.refine import box_prior, downscale_labels, guided_filter, random_walk_refine


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


def test_box_prior_penalises_far_from_own_labels_only():
    labels = np.full((100, 100), IGNORE)
    labels[0, 0] = labels[99, 99] = 0  # background spans the image: no penalty
    labels[40:50, 40:50] = 5
    prior = box_prior(labels, np.array([0, 5]), (50, 50), margin=0.0, strength=3.0, falloff=0.1)
    assert prior.shape == (2, 50, 50)
    assert np.all(prior[0] == 0)
    assert prior[1, 22, 22] == 0 and prior[1, 0, 0] < -3  # inside the box vs far outside
    assert np.all(box_prior(labels, np.array([0, 5]), (50, 50), strength=0) == 0)


def test_downscale_labels_keeps_every_class():
    labels = np.full((100, 80), IGNORE)
    labels[3, 3] = 2
    labels[97, 77] = 7
    small = downscale_labels(labels, (10, 8))
    assert small[0, 0] == 2 and small[9, 7] == 7 and (small != IGNORE).sum() == 2


@pytest.mark.parametrize("strength", [1e-6, 1e-2])
def test_random_walk_single_seed_per_class(strength):
    img, gt = three_regions(24)
    labels = np.full(gt.shape, IGNORE)
    labels[2, 2], labels[20, 20], labels[7, 7] = 0, 1, 2
    prob = random_walk_refine(img, np.full((24, 24, 3), 1 / 3, np.float32), labels, np.array([0, 1, 2]), strength)
    assert np.isfinite(prob).all()
