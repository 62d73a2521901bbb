"""Boxes from ground truth for the bench (box, box+clicks:N), and their rows and summary."""

from __future__ import annotations

import numpy as np
import pytest

from dipseg.boxes import Box
from dipseg.eval.boxlabels import MIN_COMPONENT, box_error, box_job_labels, boxes_are_tight, gt_boxes
from dipseg.eval.report import summarize, write_summary
from dipseg.eval.specs import parse_label_specs
from dipseg.labels import IGNORE


def test_label_specs():
    assert parse_label_specs(["box", "box+clicks:1,5"]) == [("box", 0), ("box+clicks", 1), ("box+clicks", 5)]
    with pytest.raises(ValueError, match="box takes no budget"):
        parse_label_specs(["box:3"])
    with pytest.raises(ValueError, match="give pixels per class"):
        parse_label_specs(["box+clicks"])


def test_one_object_box_is_enlarged_by_a_tenth():
    gt = np.zeros((100, 200), np.int64)
    gt[20:60, 50:150] = 1
    gt[19, 50:150] = 255  # the GrabCut set's unknown band counts as the object's extent
    (b,), _ = gt_boxes(gt, "grabcut")
    assert b.cls == 1 and np.allclose([b.x0, b.y0, b.x1, b.y1], [40, 14.9, 160, 64.1])
    (c,), _ = gt_boxes(gt, "coco-mval")
    assert c == Box(1, 40, 16, 160, 64)
    gt[:] = 0
    gt[0:10, 0:10] = 1
    (d,), _ = gt_boxes(gt, "coco-mval")
    assert (d.x0, d.y0, d.x1, d.y1) == (0, 0, 11, 11)  # clipped to the image


def test_voc_one_tight_box_per_component_small_ones_dropped():
    gt = np.zeros((60, 80), np.int64)
    gt[5:25, 5:25] = 15
    gt[30:50, 40:70] = 15  # a second person
    gt[5:15, 50:60] = 8  # 100 px: kept
    gt[55:58, 0:3] = 8  # 9 px: dropped
    gt[24:26, 5:25] = 255  # void is nobody's
    boxes, objects = gt_boxes(gt, "voc")
    assert sorted(b.as_list() for b in boxes) == sorted([[8, 50.0, 5.0, 60.0, 15.0], [15, 5.0, 5.0, 25.0, 24.0],
                                                         [15, 40.0, 30.0, 70.0, 50.0]])
    assert MIN_COMPONENT == 100 and all(o.sum() >= MIN_COMPONENT for o in objects)
    for b, o in zip(boxes, objects):  # tight: the component touches all four sides
        r0, r1, c0, c1 = b.pixels()
        crop = o[r0:r1, c0:c1]
        assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()
    assert boxes_are_tight("voc") and not boxes_are_tight("grabcut") and not boxes_are_tight("coco-mval")


def test_box_clicks_are_inside_the_object_and_seeded():
    gt = np.zeros((60, 80), np.int64)
    gt[5:25, 5:25] = 15
    gt[30:50, 40:70] = 3
    labels, boxes = box_job_labels(gt, "voc", "box+clicks", 4, seed=7)
    again, _ = box_job_labels(gt, "voc", "box+clicks", 4, seed=7)
    assert np.array_equal(labels, again) and len(boxes) == 2
    assert (labels != IGNORE).sum() == 8 and (labels[labels != IGNORE] == gt[labels != IGNORE]).all()
    only, _ = box_job_labels(gt, "voc", "box", 4, seed=7)
    assert (only == IGNORE).all()


def test_box_error_and_summary_column(tmp_path):
    gt = np.zeros((10, 10), np.int64)
    gt[2:6, 2:6] = 1
    gt[2, 2] = 255
    pred = (gt == 1).astype(np.int64)
    pred[5, 5] = 0
    assert box_error(gt, pred, [Box(1, 1, 1, 7, 7)]) == (1, 35)
    rows = [{"dataset": "grabcut", "method": "grabcut", "label": "grabcut", "sampler": "box", "budget": 0,
             "image": "a", "confusion": [[60, 0], [1, 14]], "seconds": 1.0, "labelled_pixels": 0,
             "labelled_classes": [], "box_errors": 1, "box_pixels": 35}]
    s = summarize(rows)
    assert s[0]["box_error"] == pytest.approx(100 / 35)
    csv_path, md_path = write_summary(tmp_path, s)
    assert csv_path.read_text().splitlines()[0].endswith(",box_error")
    assert "2.86" in md_path.read_text()
