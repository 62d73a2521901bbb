import numpy as np

from dipseg.dip.priors import box_prior
from dipseg.labels import IGNORE


def test_box_prior_penalises_far_from_own_labels_only():
    labels = np.full((100, 100), IGNORE)
    labels[0, 0] = labels[99, 99] = 0  # background spans the image: no penalty
    labels[40:50, 40:50] = 5
    prior = box_prior(labels, np.array([0, 5]), (50, 50), margin=0.0, strength=3.0, falloff=0.1)
    assert prior.shape == (2, 50, 50)
    assert np.all(prior[0] == 0)
    assert prior[1, 22, 22] == 0 and prior[1, 0, 0] < -3  # inside the box vs far outside
    assert np.all(box_prior(labels, np.array([0, 5]), (50, 50), strength=0) == 0)


def test_box_prior_scales_the_label_box_to_the_prior_resolution():
    labels = np.full((100, 100), IGNORE)
    labels[0, 0] = labels[99, 99] = 0
    labels[40:50, 60:70] = 3
    small = box_prior(labels, np.array([0, 3]), (10, 10), margin=0.0, strength=3.0, falloff=0.1)
    assert small[1, 4, 6] == 0 and small[1, 4, 2] < 0 and small[1, 9, 6] < 0


def test_box_prior_skips_classes_whose_labels_span_too_little():
    labels = np.full((100, 100), IGNORE)
    labels[0, 0] = labels[99, 99] = 0
    labels[40:50, 40:50] = 5  # spans 10 % of the side
    labels[80, 20] = 7  # a single pixel
    ids = np.array([0, 5, 7])
    before = labels.copy()
    on = box_prior(labels, ids, (50, 50), margin=0.0, strength=3.0, falloff=0.1)
    off = box_prior(labels, ids, (50, 50), margin=0.0, strength=3.0, falloff=0.1, min_extent=0.05)
    assert np.array_equal(labels, before)
    assert on[2].min() < -3 and np.all(off[2] == 0)  # the pixel's "box" is dropped
    assert np.array_equal(on[1], off[1])  # the 10 % box stays
    wide = box_prior(labels, ids, (50, 50), margin=0.0, strength=3.0, falloff=0.1, min_extent=0.2)
    assert np.all(wide[1] == 0)
