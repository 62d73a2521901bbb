import numpy as np
import pytest

from dipseg.dip.colour import colour_logits, coverage_weight
from dipseg.features import lab_features
from dipseg.labels import IGNORE


def _two_colours(size=40, seed=0):
    """Left half red, right half blue, with noise; gt 0 = red, 1 = blue."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.float64)
    img[:, : size // 2] = (200, 30, 30)
    img[:, size // 2 :] = (30, 30, 200)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    gt = np.zeros((size, size), np.int64)
    gt[:, size // 2 :] = 1
    return img, gt


def test_each_pixel_prefers_the_class_of_its_colour():
    img, gt = _two_colours()
    labels = np.full(gt.shape, IGNORE, np.int64)
    labels[5, 3:8] = 0  # one short stroke per class, far from most pixels
    labels[30, 30:35] = 1
    feats, lab0 = lab_features(img), labels.copy()
    out = colour_logits(feats, labels, np.array([0, 1]), clip=10.0, floor=None)
    assert out.shape == (2, 40, 40) and out.dtype == np.float32
    assert ((out[1] > out[0]) == (gt == 1)).mean() > 0.99
    assert np.abs(out).max() <= 10.0 + 1e-5
    np.testing.assert_allclose(out.sum(0), 0, atol=1e-4)  # centred per pixel
    np.testing.assert_array_equal(labels, lab0)


def test_floor_silences_colours_no_class_has():
    img, gt = _two_colours()
    img[:, 17:23] = (30, 200, 30)  # a green band nobody labelled
    labels = np.full(gt.shape, IGNORE, np.int64)
    labels[5, 3:8] = 0
    labels[30, 30:35] = 1
    feats = lab_features(img)
    free = colour_logits(feats, labels, np.array([0, 1]), clip=50.0, floor=None)
    floored = colour_logits(feats, labels, np.array([0, 1]), clip=50.0, floor=-4.0)
    band = np.s_[:, 17:23]
    assert np.abs(floored[0][band]).mean() < 0.1 * np.abs(free[0][band]).mean()
    # Colours a class does explain keep a clear margin.
    assert np.abs(floored[0][:, :10]).mean() > 3.0


def test_same_seed_same_models():
    img, gt = _two_colours()
    labels = np.where(np.random.default_rng(1).random(gt.shape) < 0.05, gt, IGNORE)
    a = colour_logits(lab_features(img), labels, np.array([0, 1]), seed=3)
    b = colour_logits(lab_features(img), labels, np.array([0, 1]), seed=3)
    np.testing.assert_array_equal(a, b)


def test_coverage_counts_spread_not_pixels():
    labels = np.full((100, 100), IGNORE, np.int64)
    blob = labels.copy()
    blob[10:20, 10:20] = 0  # 100 pixels in one place
    blob[80:90, 80:90] = 1
    spread = labels.copy()
    spread[10:90:8, 10] = 0  # 10 pixels, far apart
    spread[10:90:8, 90] = 1
    wb = coverage_weight(blob, np.array([0, 1]))
    ws = coverage_weight(spread, np.array([0, 1]))
    assert 0 < wb < ws < 1


@pytest.mark.parametrize("n", [1, 3])
def test_few_labelled_pixels_still_give_a_model(n):
    img, gt = _two_colours()
    labels = np.full(gt.shape, IGNORE, np.int64)
    labels[5, 3 : 3 + n] = 0
    labels[30, 30 : 30 + n] = 1
    out = colour_logits(lab_features(img), labels, np.array([0, 1]))
    assert np.isfinite(out).all()
    assert ((out[1] > out[0]) == (gt == 1)).mean() > 0.95


@pytest.mark.parametrize("floor", [None, -4.0])
def test_a_class_without_labelled_pixels_is_neutral(floor):
    """Boxes that cover the whole image leave the background no pixel to fit a model to
    (VOC val 2007_007498 crashed the fit): that class gets the known classes' mean, so it
    neither wins nor loses any colour, and the known classes keep their order."""
    img, gt = _two_colours()
    labels = np.full(gt.shape, IGNORE, np.int64)
    labels[5, 3:8] = 0
    labels[30, 30:35] = 1
    out = colour_logits(lab_features(img), labels, np.array([0, 1, 2]), floor=floor)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[2], (out[0] + out[1]) / 2, atol=1e-4)
    assert ((out[1] > out[0]) == (gt == 1)).mean() > 0.99
    nothing = colour_logits(lab_features(img), np.full(gt.shape, IGNORE, np.int64), np.array([0, 1]), floor=floor)
    np.testing.assert_array_equal(nothing, 0)
