"""Classical baselines on small synthetic images: accuracy, label semantics, robustness."""

from __future__ import annotations

import numpy as np
import pytest

from dipseg.api import METHODS as ALL_METHODS
from dipseg.baselines import grabcut, nearest_seed, random_walker, trainable
from dipseg.labels import IGNORE

BASELINES = {name: m.function() for name, m in ALL_METHODS.items() if not m.is_dipseg}
METHODS = sorted(BASELINES)

COLOURS = np.array([[40, 60, 170], [220, 190, 60], [60, 170, 70]], dtype=np.float64)


def _scene(n_classes: int, noise: float, seed: int = 0, ids=(0, 1, 2)) -> tuple[np.ndarray, np.ndarray]:
    """A 60x80 image: class ids[0] background, a disc (ids[1]) and, for 3 classes, a square (ids[2])."""
    h, w = 60, 80
    yy, xx = np.mgrid[:h, :w]
    gt = np.full((h, w), ids[0], dtype=np.int64)
    gt[(yy - 30) ** 2 + (xx - 25) ** 2 <= 15**2] = ids[1]
    if n_classes == 3:
        gt[15:45, 52:72] = ids[2]
    index = np.searchsorted(np.array(ids[:n_classes]), gt)
    rng = np.random.default_rng(seed)
    image = COLOURS[index] + rng.normal(0, noise, (h, w, 3))
    return np.clip(image, 0, 255).astype(np.uint8), gt


def _seeds(gt: np.ndarray, per_class: int = 12, seed: int = 0) -> np.ndarray:
    """A few random pixels of each class, away from the borders between classes."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    labels = np.full(gt.shape, IGNORE, dtype=np.int64)
    for c in np.unique(gt):
        inner = ndimage.binary_erosion(gt == c, iterations=3)
        idx = np.flatnonzero(inner)
        labels.flat[rng.choice(idx, size=per_class, replace=False)] = c
    return labels


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n_classes,noise", [(2, 0.0), (2, 20.0), (3, 0.0), (3, 20.0)])
def test_recovers_regions(method, n_classes, noise):
    image, gt = _scene(n_classes, noise)
    labels = _seeds(gt)
    out = BASELINES[method](image, labels, seed=0)
    assert out.shape == gt.shape and out.dtype == np.int64
    assert np.mean(out == gt) > 0.9


@pytest.mark.parametrize("method", METHODS)
def test_keeps_original_class_ids(method):
    ids = (3, 7, 12)
    image, gt = _scene(3, 10.0, ids=ids)
    out = BASELINES[method](image, _seeds(gt), seed=0)
    assert set(np.unique(out)) <= set(ids)
    assert np.mean(out == gt) > 0.9


@pytest.mark.parametrize("method", METHODS)
def test_output_only_labelled_classes(method):
    # The image has three regions but only two classes are labelled.
    image, gt = _scene(3, 10.0)
    labels = _seeds(gt)
    labels[labels == 2] = IGNORE
    out = BASELINES[method](image, labels, seed=0)
    assert set(np.unique(out)) <= {0, 1}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_one_seed_per_class_does_not_crash(method, n_classes):
    image, gt = _scene(n_classes, 10.0)
    labels = _seeds(gt, per_class=1)
    out = BASELINES[method](image, labels, seed=0)
    assert out.shape == gt.shape
    assert set(np.unique(out)) <= set(range(n_classes))
    # seeds keep their class
    assert np.all(out[labels != IGNORE] == labels[labels != IGNORE])


@pytest.mark.parametrize("method", METHODS)
def test_single_class_everywhere(method):
    image, gt = _scene(2, 10.0)
    labels = np.full(gt.shape, IGNORE)
    labels[5:8, 5:8] = 4
    out = BASELINES[method](image, labels, seed=0)
    assert out.dtype == np.int64
    assert np.all(out == 4)


@pytest.mark.parametrize("method", METHODS)
def test_inputs_unmodified(method):
    image, gt = _scene(3, 10.0)
    labels = _seeds(gt).astype(np.int32)
    image0, labels0 = image.copy(), labels.copy()
    BASELINES[method](image, labels, seed=0)
    np.testing.assert_array_equal(image, image0)
    np.testing.assert_array_equal(labels, labels0)
    assert labels.dtype == np.int32


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_with_seed(method):
    image, gt = _scene(3, 30.0)
    labels = _seeds(gt, per_class=5)
    a = BASELINES[method](image, labels, seed=3)
    b = BASELINES[method](image, labels, seed=3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "image_shape,labels_shape,match",
    [
        ((60, 80), (60, 80), "image must have shape"),
        ((60, 80, 4), (60, 80), "image must have shape"),
        ((60, 80, 3), (60, 81), "label map is 81x60"),
        ((60, 80, 3), (60, 80, 1), "labels must have shape"),
    ],
)
def test_bad_shapes_raise(method, image_shape, labels_shape, match):
    image = np.zeros(image_shape, np.uint8)
    labels = np.zeros(labels_shape, np.int64)
    with pytest.raises(ValueError, match=match):
        BASELINES[method](image, labels)


@pytest.mark.parametrize("method", METHODS)
def test_bad_labels_raise(method):
    image, gt = _scene(2, 0.0)
    with pytest.raises(ValueError, match="no labelled pixel"):
        BASELINES[method](image, np.full(gt.shape, IGNORE))
    with pytest.raises(ValueError, match="not a class"):
        BASELINES[method](image, np.full(gt.shape, -5))
    with pytest.raises(ValueError, match="dtype uint8"):
        BASELINES[method](image.astype(np.float32), gt)


def test_grabcut_options_validated():
    image, gt = _scene(2, 0.0)
    labels = _seeds(gt)
    with pytest.raises(ValueError, match="iterations"):
        grabcut(image, labels, iterations=0)
    with pytest.raises(ValueError, match="box_margin"):
        grabcut(image, labels, box_margin=-0.1)


def test_grabcut_without_background_samples_falls_back():
    # Class 1's box covers the whole image and class 0 has a single seed: the GrabCut
    # background model would have one sample, which OpenCV refuses (opencv#14879).
    image, gt = _scene(2, 10.0)
    labels = np.full(gt.shape, IGNORE)
    labels[0, :] = 1
    labels[-1, :] = 1
    labels[30, 25] = 0
    out = grabcut(image, labels)
    assert set(np.unique(out)) <= {0, 1}
    assert out[30, 25] == 0 and out[0, 0] == 1


def test_nearest_seed_rule():
    labels = np.full((5, 9), IGNORE)
    labels[2, 0] = 2
    labels[2, 8] = 5
    out = nearest_seed(labels)
    assert np.all(out[:, :4] == 2) and np.all(out[:, 5:] == 5)
    assert np.all(out[:, 4] == 2)  # equidistant: the lower class wins


@pytest.mark.parametrize("fn", [random_walker, trainable])
def test_full_probabilities(fn):
    image, gt = _scene(3, 10.0, ids=(1, 4, 9))
    labels = _seeds(gt)
    classes, prob = fn(image, labels, return_full_prob=True)
    assert prob.shape == gt.shape + (3,) and prob.dtype == np.float32
    np.testing.assert_allclose(prob.sum(axis=-1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(classes, np.array([1, 4, 9])[np.argmax(prob, axis=-1)])


def test_random_walker_constant_image():
    image = np.full((20, 30, 3), 128, np.uint8)
    labels = np.full((20, 30), IGNORE)
    labels[10, 2] = 0
    labels[10, 27] = 1
    out = random_walker(image, labels)
    assert np.all(out[:, :10] == 0) and np.all(out[:, 20:] == 1)


def test_random_walker_all_labelled_and_modes():
    image, gt = _scene(2, 10.0)
    out = random_walker(image, gt)
    np.testing.assert_array_equal(out, gt)
    labels = _seeds(gt)
    a = random_walker(image, labels, mode="bf")
    b = random_walker(image, labels, mode="cg_j", tol=1e-6)
    assert np.mean(a == b) > 0.99
    with pytest.raises(ValueError, match="mode"):
        random_walker(image, labels, mode="magic")
    with pytest.raises(ValueError, match="colorspace"):
        random_walker(image, labels, colorspace="hsv")
