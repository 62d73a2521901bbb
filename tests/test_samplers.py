import numpy as np
import pytest
from scipy import ndimage

from dipseg.labels import IGNORE
from dipseg.samplers import SAMPLERS, sample_blobs, sample_labels, sample_uniform


def _gt(h=60, w=80):
    gt = np.zeros((h, w), np.int64)
    gt[10:50, 10:40] = 1
    gt[5:25, 50:75] = 2
    gt[40:58, 55:78] = 2  # a class made of two components
    gt[9, :] = 255  # void band
    gt[0, 0] = 3  # a one-pixel class
    return gt


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("n", [1, 7, 60])
def test_samplers_count_inside_and_never_void(sampler, n):
    gt = _gt()
    before = gt.copy()
    labels = sample_labels(gt, sampler, n, seed=3)
    np.testing.assert_array_equal(gt, before)
    assert labels.shape == gt.shape and labels.dtype == np.int64
    assert not np.any(labels[gt == 255] != IGNORE)
    seeded = labels != IGNORE
    np.testing.assert_array_equal(labels[seeded], gt[seeded])  # every label inside its class region
    for c in (0, 1, 2, 3):
        assert (labels == c).sum() == min(n, (gt == c).sum())


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_samplers_deterministic(sampler):
    gt = _gt()
    a = sample_labels(gt, sampler, 30, seed=5)
    b = sample_labels(gt, sampler, 30, seed=5)
    c = sample_labels(gt, sampler, 30, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_blobs_are_three_spread_discs():
    gt = np.zeros((120, 160), np.int64)
    gt[20:100, 20:140] = 1
    labels = sample_blobs(gt, 90, seed=0)
    comp, n = ndimage.label(labels == 1)
    assert n == 3
    centres = np.array(ndimage.center_of_mass(labels == 1, comp, range(1, 4)))
    r = np.sqrt(30 / np.pi)
    d = np.hypot(*(centres[:, None] - centres[None]).transpose(2, 0, 1))
    assert d[np.triu_indices(3, 1)].min() > 4 * r  # well spread, not just disjoint
    for k in range(1, 4):  # fat: each blob is compact (area close to its bounding disc)
        ys, xs = np.nonzero(comp == k)
        rad = np.hypot(ys - ys.mean(), xs - xs.mean()).max()
        assert (comp == k).sum() > 0.6 * np.pi * rad**2


def test_blobs_small_region_gets_fewer_blobs():
    gt = np.zeros((40, 40), np.int64)
    gt[18:24, 5:35] = 1  # thin strip: 6 px tall
    labels = sample_blobs(gt, 120, seed=0)
    assert (labels == 1).sum() == 120
    _, n = ndimage.label(labels == 1)
    assert 1 <= n <= 3


def test_uniform_is_random_not_clustered():
    gt = np.zeros((100, 100), np.int64)
    labels = sample_uniform(gt, 50, seed=1)
    ys, xs = np.nonzero(labels == 0)
    assert ys.std() > 20 and xs.std() > 20


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_pixel_count(bad):
    with pytest.raises(ValueError, match="pixels per class"):
        sample_uniform(_gt(), bad)


def test_unknown_sampler():
    with pytest.raises(ValueError, match="unknown sampler 'grid'"):
        sample_labels(_gt(), "grid", 3)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_ground_truth_without_a_class_is_refused(sampler):
    # a label map with no labelled pixel is useless to every method: refuse it here
    gt = np.full((10, 12), 255, np.int64)
    with pytest.raises(ValueError, match="no pixel of any class .* nothing to sample"):
        sample_labels(gt, sampler, 5)
    with pytest.raises(ValueError, match="void = 0"):
        sample_labels(np.zeros((4, 4), np.int64), sampler, 5, void=0)


def test_importing_the_samplers_does_not_load_scipy():
    import subprocess
    import sys

    code = "import sys, dipseg.samplers; print('scipy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
