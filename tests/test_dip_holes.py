"""Small background holes filled by the class that encloses them (dipseg.dip.holes)."""

from __future__ import annotations

import numpy as np
import pytest

import dipseg
from dipseg.boxes import Box
from dipseg.dip.config import FitConfig
from dipseg.dip.holes import fill_box_holes, fill_class_holes
from dipseg.labels import IGNORE

FAST = {"iterations": 15, "working_size": 32}


def _object_with_holes():
    classes = np.zeros((20, 30), np.int64)
    classes[2:18, 2:22] = 5  # the object: 320 pixels before its holes
    classes[5:7, 5:7] = 0  # a 4-pixel enclave
    classes[9:15, 8:14] = 0  # a 36-pixel one
    classes[5:7, 14:16] = 7  # another object in front
    classes[10:18, 18:20] = 0  # background reaching the object's edge: not enclosed
    classes[3, 17] = 0  # a 1-pixel enclave holding a user's label
    labels = np.full(classes.shape, IGNORE)
    labels[3, 17] = 0
    return classes, labels


def test_small_background_enclaves_of_a_tight_box_go_to_its_class():
    classes, labels = _object_with_holes()
    before = classes.copy()
    boxes = [Box(5, 2, 2, 22, 18)]  # 320 pixels
    out = fill_box_holes(classes, boxes, 0.02, labels=labels)
    assert np.array_equal(classes, before)
    assert (out[5:7, 5:7] == 5).all() and (out[9:15, 8:14] == 0).all()  # 36 px > 2 % of 320
    assert (out[5:7, 14:16] == 7).all() and (out[10:18, 18:20] == 0).all() and out[3, 17] == 0
    assert np.array_equal(out[out != before], np.full(4, 5))
    assert (fill_box_holes(classes, boxes, 0.2)[9:15, 8:14] == 5).all()
    assert np.array_equal(fill_box_holes(classes, boxes, 0.0), classes)


def test_small_background_enclaves_of_a_class_go_to_it():
    classes, labels = _object_with_holes()
    before = classes.copy()
    area = int((classes == 5).sum())  # 255
    out = fill_class_holes(classes, 20 / area, labels=labels)  # enclaves up to 20 pixels
    assert np.array_equal(classes, before)
    assert np.array_equal(out[out != before], np.full(4, 5)) and (out[5:7, 5:7] == 5).all()
    assert (fill_class_holes(classes, 40 / area)[9:15, 8:14] == 5).all()
    assert fill_class_holes(classes, 1.0, labels=labels)[3, 17] == 0  # the user's label stays
    assert np.array_equal(fill_class_holes(classes, 0.0), classes)
    # without the background class nothing is an enclave; another background id is honoured
    assert np.array_equal(fill_class_holes(np.where(classes == 0, 3, classes), 1.0), np.where(classes == 0, 3, classes))
    moved = fill_class_holes(np.where(classes == 0, 3, classes), 1.0, background=3)
    assert (moved[9:15, 8:14] == 5).all() and (moved[10:18, 18:20] == 3).all()


@pytest.mark.parametrize("name", ["hole_fill", "box_hole_fill"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_shares_are_checked(name, value):
    with pytest.raises(ValueError, match=f"{name} must be in \\[0, 1\\]"):
        FitConfig(**{name: value})


def test_sparse_labels_fill_a_background_coloured_speck_of_an_object():
    rng = np.random.default_rng(0)
    img = np.full((48, 64, 3), (40, 150, 60), float)
    img[10:38, 16:48] = (220, 60, 50)
    img[22:25, 30:33] = (40, 150, 60)  # a speck of the background's colour on the object
    img = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    before = img.copy()
    labels = np.full((48, 64), IGNORE)
    labels[12:16, 18:22] = labels[32:36, 42:46] = 8
    labels[2:5, 2:5] = labels[42:45, 56:60] = 0
    off = dipseg.segment(img, labels, seed=1, hole_fill=0.0, **FAST)
    on = dipseg.segment(img, labels, seed=1, **FAST)
    assert np.array_equal(img, before)
    assert (off.classes[22:25, 30:33] == 0).any()  # the walk follows the colour
    assert (on.classes[22:25, 30:33] == 8).all() and (on.classes[on.classes != off.classes] == 8).all()
    labels[23, 31] = 0  # the user says the speck is background: it stays
    kept = dipseg.segment(img, labels, seed=1, **FAST)
    assert kept.classes[23, 31] == 0
