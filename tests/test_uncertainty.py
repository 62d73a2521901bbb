import numpy as np
import pytest

from dipseg.labels import IGNORE
from dipseg.uncertainty import suggest_click, uncertainty


def _binary(p_object):
    p = np.asarray(p_object, np.float32)
    return np.stack([1 - p, p], -1)


def test_uncertainty_is_one_minus_the_top_two_margin():
    u = uncertainty(_binary([[0.0, 0.5, 0.75, 1.0]]))
    np.testing.assert_allclose(u, [[0.0, 1.0, 0.5, 0.0]], atol=1e-6)
    three = np.array([[[0.5, 0.3, 0.2]]], np.float32)
    assert uncertainty(three)[0, 0] == pytest.approx(0.8)
    assert np.all(uncertainty(np.ones((2, 2, 1))) == 0)


def test_suggestion_is_the_deepest_point_of_a_wide_uncertain_region_not_the_border_band():
    p = np.zeros((40, 60), np.float32)
    p[:, 30:] = 1.0
    p[:, 29:31] = 0.5  # the usual thin band along the mask's border
    p[5:16, 40:51] = 0.5  # a wide region the method cannot decide
    assert suggest_click(_binary(p)) == (10, 45)


def test_suggestion_avoids_labelled_pixels_and_falls_back_to_the_most_uncertain_pixel():
    p = np.full((10, 10), 0.1, np.float32)
    p[2, 7] = 0.3  # nothing is above the threshold: the most uncertain pixel
    assert suggest_click(_binary(p)) == (2, 7)
    labels = np.full((10, 10), IGNORE)
    labels[2, 7] = 0
    assert suggest_click(_binary(p), labels) != (2, 7)
    assert suggest_click(_binary(p), np.zeros((10, 10), int)) is None
    with pytest.raises(ValueError, match="shape"):
        suggest_click(_binary(p), np.zeros((9, 10), int))
