import numpy as np
import pytest

from dipseg.boxio import class_id
from dipseg.clicks import CLICK_RADIUS, FRAME_WIDTH, Point, add_frame, click_labels, paint_clicks, read_clicks_csv
from dipseg.labels import IGNORE
from dipseg.palette import VOC_CLASSES


def _voc(name, where):
    return class_id(name, VOC_CLASSES, where)


def test_a_click_labels_the_disk_of_its_radius_and_later_clicks_win():
    labels = np.full((30, 40), IGNORE, np.int64)
    before = labels.copy()
    out = paint_clicks(labels, [(20, 10, 15), Point(22, 10, 0)], radius=3)
    np.testing.assert_array_equal(labels, before)
    assert out[10, 17] == 15 and out[10, 22] == 0 and out[10, 20] == 0  # the second disk overlaps the first
    disk = sum(1 for y in range(-3, 4) for x in range(-3, 4) if x * x + y * y <= 9)
    assert (out == 0).sum() == disk and out[10, 16] == IGNORE
    assert paint_clicks(labels, [(0, 0, 4)], radius=0)[0, 0] == 4 and (paint_clicks(labels, [(0, 0, 4)], 0) == 4).sum() == 1


@pytest.mark.parametrize("clicks,radius,match", [([(40, 0, 1)], 2, "outside the 40x30"), ([(-1, 3, 1)], 2, "outside"),
                                                  ([(1, 1, 1)], -1, "radius"), ([(1, 1, 1)], 1.5, "radius")])
def test_bad_clicks_are_refused(clicks, radius, match):
    with pytest.raises(ValueError, match=match):
        paint_clicks(np.full((30, 40), IGNORE), clicks, radius)


def test_click_labels_add_the_frame_until_a_background_click():
    only = click_labels((30, 40), [(20, 15, 8)])
    assert (only[:FRAME_WIDTH] == 0).all() and (only[:, -FRAME_WIDTH:] == 0).all() and only[15, 20] == 8
    assert (only == 8).sum() == sum(1 for y in range(-CLICK_RADIUS, CLICK_RADIUS + 1)
                                    for x in range(-CLICK_RADIUS, CLICK_RADIUS + 1) if x * x + y * y <= CLICK_RADIUS**2)
    both = click_labels((30, 40), [(20, 15, 8), (5, 5, 0)])
    assert both[0, 20] == IGNORE and both[5, 5] == 0
    assert click_labels((30, 40), [(20, 15, 8)], background=8)[0, 0] == IGNORE  # the click is background itself


@pytest.mark.parametrize("unlabelled", [IGNORE, 255])
def test_add_frame_fills_only_unlabelled_border_pixels_of_a_copy(unlabelled):
    labels = np.full((10, 12), unlabelled, np.int64 if unlabelled < 0 else np.uint8)
    labels[0, 5] = 7
    before = labels.copy()
    out = add_frame(labels, 0, unlabelled, width=2)
    np.testing.assert_array_equal(labels, before)
    assert out.dtype == labels.dtype and out[0, 5] == 7 and out[1, 5] == 0 and out[9, 11] == 0
    assert out[2, 2] == unlabelled and (out[2:-2, 2:-2] == unlabelled).all()
    assert (out != unlabelled).sum() == 10 * 12 - 6 * 8
    np.testing.assert_array_equal(add_frame(labels, 0, unlabelled, width=0), labels)


def test_csv_clicks_by_name_or_id_with_header_and_comments():
    text = "class,x,y\n# the dog\ndog,10,5\n0, 3 ,4\n\nPerson,39,29.0\n"
    assert read_clicks_csv(text, _voc, (30, 40)) == [Point(10, 5, 12), Point(3, 4, 0), Point(39, 29, 15)]


@pytest.mark.parametrize("text,match", [
    ("dog,10\n", "line 1: expected class,x,y"),
    ("dog,ten,5\n", "'ten' is not a number"),
    ("dog,1.5,5\n", "is not a pixel"),
    ("unicorn,1,5\n", "unknown class 'unicorn'"),
    ("dog,40,5\n", r"click \(40, 5\) is outside the 40x30"),
    ("# nothing\n", "no clicks"),
])
def test_bad_click_files_are_refused_with_the_line(text, match):
    with pytest.raises(ValueError, match=match):
        read_clicks_csv(text, _voc, (30, 40), where="c.csv")
