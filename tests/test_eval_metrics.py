"""VOC-protocol metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dipseg.eval.metrics import confusion_matrix, mean_image_miou, scores


def test_confusion_matrix_by_hand():
    gt = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    conf = confusion_matrix(gt, pred, 3)
    expected = np.array(
        [
            [1, 1, 0],  # gt 0: one right, one predicted 1
            [0, 2, 0],  # gt 1: both right
            [1, 0, 1],  # gt 2: one right, one predicted 0
        ]
    )
    np.testing.assert_array_equal(conf, expected)
    assert conf.dtype == np.int64 and conf.shape == (3, 3)


def test_void_pixels_ignored_whatever_is_predicted():
    gt = np.array([[0, 255, 1], [255, 1, 1]])
    pred = np.array([[0, 1, 1], [0, 0, 1]])
    conf = confusion_matrix(gt, pred, 2)
    np.testing.assert_array_equal(conf, [[1, 0], [1, 2]])
    # a prediction outside 0..K-1 on a void pixel is not checked either
    pred2 = pred.copy()
    pred2[0, 1] = 99
    np.testing.assert_array_equal(confusion_matrix(gt, pred2, 2), conf)
    # a custom void value; None scores everything
    np.testing.assert_array_equal(confusion_matrix(np.array([5, 0]), np.array([1, 0]), 2, void=5), [[1, 0], [0, 0]])
    np.testing.assert_array_equal(confusion_matrix(np.array([1, 0]), np.array([1, 0]), 2, void=None), [[1, 0], [0, 1]])


def test_confusion_matrix_sums_over_images():
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 4, (7, 9)) for _ in range(3)]
    preds = [rng.integers(0, 4, (7, 9)) for _ in range(3)]
    total = sum(confusion_matrix(g, p, 4) for g, p in zip(gts, preds))
    together = confusion_matrix(np.stack(gts), np.stack(preds), 4)
    np.testing.assert_array_equal(total, together)
    assert total.sum() == 3 * 7 * 9


@pytest.mark.parametrize(
    "gt,pred,k,match",
    [
        (np.zeros((2, 2), int), np.zeros((2, 3), int), 2, r"shape \(2, 2\).*shape \(2, 3\)"),
        (np.array([[0, 3]]), np.array([[0, 0]]), 2, "ground-truth value 3"),
        (np.array([[0, 1]]), np.array([[0, 2]]), 2, "predicted value 2"),
        (np.array([[0, 1]]), np.array([[0, -1]]), 2, "predicted value -1"),
        (np.array([[0, 1]]), np.array([[0.0, 1.0]]), 2, "integer"),
        (np.array([[0, 1]]), np.array([[0, 1]]), 0, "num_classes"),
    ],
)
def test_confusion_matrix_errors(gt, pred, k, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(gt, pred, k)


def test_scores_by_hand():
    conf = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    s = scores(conf)
    # IoU_c = TP / (GT + Pred - TP)
    np.testing.assert_allclose(s["iou"], [1 / (2 + 2 - 1), 2 / (2 + 3 - 2), 1 / (2 + 1 - 1)])
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert s["pixel_acc"] == pytest.approx(4 / 6)
    np.testing.assert_allclose(s["class_acc"], [1 / 2, 1, 1 / 2])
    assert s["mean_class_acc"] == pytest.approx(2 / 3)
    assert s["pixels"] == 6
    assert s["present"].all()


def test_absent_classes_excluded_false_positives_count():
    # class 1: absent from gt and prediction -> NaN, not averaged
    # class 2: predicted but absent from gt -> IoU 0, averaged
    conf = np.array([[3, 0, 1], [0, 0, 0], [0, 0, 0]])
    s = scores(conf)
    assert s["iou"][0] == pytest.approx(3 / 4)
    assert math.isnan(s["iou"][1])
    assert s["iou"][2] == 0
    np.testing.assert_array_equal(s["present"], [True, False, True])
    assert s["miou"] == pytest.approx((3 / 4 + 0) / 2)
    assert math.isnan(s["class_acc"][2]) and s["mean_class_acc"] == pytest.approx(3 / 4)


def test_scores_empty_and_invalid():
    s = scores(np.zeros((3, 3), np.int64))
    assert math.isnan(s["miou"]) and math.isnan(s["pixel_acc"]) and s["pixels"] == 0
    with pytest.raises(ValueError, match=r"square.*\(2, 3\)"):
        scores(np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="integer"):
        scores(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="negative"):
        scores(np.array([[1, -1], [0, 0]]))


def test_dataset_miou_differs_from_mean_image_miou():
    # image A: 2 classes, perfect; image B: class 0 only, half of it predicted as 1
    a = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), 2)
    b = confusion_matrix(np.array([0, 0, 0, 0]), np.array([0, 0, 1, 1]), 2)
    # per image: A mIoU 1; B: IoU_0 = 2/4, IoU_1 = 0/2 -> 0.25
    assert mean_image_miou([a, b]) == pytest.approx((1 + 0.25) / 2)
    # summed: conf [[4, 2], [0, 2]] -> IoU_0 = 4/6, IoU_1 = 2/4
    assert scores(a + b)["miou"] == pytest.approx((4 / 6 + 2 / 4) / 2)


def test_mean_image_miou_skips_all_void_images():
    a = confusion_matrix(np.array([0, 1]), np.array([0, 1]), 2)
    empty = confusion_matrix(np.array([255, 255]), np.array([0, 1]), 2)
    assert mean_image_miou([a, empty]) == pytest.approx(1.0)
    assert math.isnan(mean_image_miou([empty]))
    assert mean_image_miou(iter([a])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one"):
        mean_image_miou([])


def test_inputs_unmodified():
    gt = np.array([[0, 255], [1, 1]], dtype=np.uint8)
    pred = np.array([[0, 1], [1, 0]], dtype=np.int32)
    g0, p0 = gt.copy(), pred.copy()
    conf = confusion_matrix(gt, pred, 2)
    c0 = conf.copy()
    scores(conf)
    np.testing.assert_array_equal(gt, g0)
    np.testing.assert_array_equal(pred, p0)
    np.testing.assert_array_equal(conf, c0)
