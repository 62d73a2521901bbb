"""The robot annotator on synthetic masks with known answers."""

import numpy as np
import pytest

from dipseg.eval.clicker import BACKGROUND, OBJECT, Click, click_labels, iou, next_click, noc
from dipseg.labels import IGNORE


def _square(h=40, w=60, y0=10, y1=31, x0=20, x1=41):
    gt = np.zeros((h, w), bool)
    gt[y0:y1, x0:x1] = True
    return gt


def test_first_click_is_positive_at_the_most_interior_point():
    gt = _square()  # rows 10..30, columns 20..40: centre (20, 30)
    c = next_click(gt)
    assert c == Click(20, 30, True)


def test_first_click_respects_the_image_border_padding():
    gt = np.zeros((20, 20), bool)
    gt[:, :8] = True  # touches the left, top and bottom borders
    c = next_click(gt)
    # the padding makes the border count as "not an error": the deepest point is 4 px in
    assert c.positive and c.x == 3 and 3 <= c.y <= 16


def test_next_click_goes_to_the_larger_error_with_its_sign():
    gt = _square()
    pred = gt.copy()
    pred[10:31, 20:26] = False  # a 21x6 strip missed: false negatives of depth 3
    pred[0:9, 0:9] = True  # a 9x9 false-positive block away from the object: depth 5
    c = next_click(gt, pred)
    assert not c.positive and c == Click(4, 4, False)
    pred[0:9, 0:9] = False
    c = next_click(gt, pred)
    assert c.positive and 20 <= c.x <= 25


def test_ignored_pixels_are_never_errors_or_clicks():
    gt = _square()
    ignore = np.zeros_like(gt)
    ignore[15:26, 25:36] = True  # the object's core is "unknown"
    c = next_click(gt, None, ignore)
    assert not ignore[c.y, c.x]
    assert next_click(gt, gt.copy(), ignore) is None  # nothing left to fix


def test_clicked_pixels_are_not_clicked_again():
    gt = _square()
    first = next_click(gt)
    second = next_click(gt, None, None, [first])
    assert (second.y, second.x) != (first.y, first.x) and second.positive


def test_click_labels_draw_disks_and_the_frame_until_the_first_negative_click():
    labels = click_labels((40, 60), [Click(20, 30, True)], radius=5, frame=3)
    assert (labels == OBJECT).sum() == sum(1 for y in range(-5, 6) for x in range(-5, 6) if y * y + x * x <= 25)
    assert np.all(labels[:3] == BACKGROUND) and np.all(labels[:, -3:] == BACKGROUND)
    assert labels[10, 10] == IGNORE
    labels = click_labels((40, 60), [Click(20, 30, True), Click(5, 5, False)], radius=2, frame=3)
    assert labels[0, 30] == IGNORE  # the frame is gone ...
    assert labels[5, 5] == BACKGROUND and labels[20, 30] == OBJECT  # ... the clicks stay


def test_a_click_on_the_border_keeps_its_class_over_the_frame():
    labels = click_labels((20, 20), [Click(0, 10, True)], radius=2, frame=3)
    assert labels[0, 10] == OBJECT and labels[0, 0] == BACKGROUND


def test_later_clicks_overwrite_earlier_disks():
    labels = click_labels((20, 20), [Click(10, 10, True), Click(10, 12, False)], radius=3, frame=0)
    assert labels[10, 12] == BACKGROUND and labels[10, 8] == OBJECT


def test_iou_excludes_ignored_pixels():
    gt = np.array([[1, 1, 0, 0]], bool)
    pred = np.array([[1, 0, 1, 0]], bool)
    assert iou(gt, pred) == pytest.approx(1 / 3)
    assert iou(gt, pred, np.array([[0, 1, 0, 0]], bool)) == pytest.approx(1 / 2)
    assert iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0


@pytest.mark.parametrize("ious, t, expected", [
    ([0.5, 0.86, 0.91], 0.85, 2), ([0.5, 0.86, 0.91], 0.90, 3), ([0.5, 0.6], 0.90, 20), ([0.95], 0.85, 1),
])
def test_noc_counts_the_first_click_at_the_target(ious, t, expected):
    assert noc(ious, t, 20) == expected


def test_bad_masks_are_refused():
    with pytest.raises(ValueError, match="bool object mask"):
        next_click(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="shape of gt"):
        next_click(np.zeros((4, 4), bool), np.zeros((4, 5), bool))
