import numpy as np
import pytest

from dipseg.dip.priors import box_prior, few_points, point_count, spot_classes
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


def _spots_and_stroke():
    """Class 5: three separate 3x3 spots; class 7: one long stroke; class 0: two corners."""
    labels = np.full((200, 200), IGNORE)
    labels[0, 0] = labels[199, 199] = 0
    for y, x in [(36, 36), (36, 84), (84, 60)]:  # each inside one 8-px cell
        labels[y - 1:y + 2, x - 1:x + 2] = 5
    labels[150, 20:120] = 7
    return labels


def test_spot_classes_tells_spots_from_strokes():
    labels = _spots_and_stroke()
    before = labels.copy()
    ids = np.array([0, 5, 7])
    assert spot_classes(labels, ids).tolist() == [False, True, False]  # two corners are < 3 spots
    assert spot_classes(labels, ids, min_spots=4).tolist() == [False, False, False]
    assert spot_classes(labels, ids, min_spots=2).tolist() == [True, True, False]
    assert np.array_equal(labels, before)


def test_box_prior_gives_spot_classes_the_tighter_geometry_only():
    labels = _spots_and_stroke()
    ids = np.array([0, 5, 7])
    off = box_prior(labels, ids, (200, 200), margin=0.15, strength=3.0, falloff=0.1)
    on = box_prior(labels, ids, (200, 200), margin=0.15, strength=3.0, falloff=0.1, spot_min=3,
                   spot_margin=0.0, spot_falloff=0.05)
    assert np.array_equal(on[2], off[2])  # the stroke keeps the default geometry
    # the spots' label box is rows and columns 35..85: with margin 0 a pixel 3 px outside it
    # is penalised, with margin 0.15 (7.6 px) it is not; the steeper falloff doubles the slope
    assert on[1, 60, 88] < 0 and off[1, 60, 88] == 0
    assert on[1, 60, 150] < 1.9 * off[1, 60, 150] < 0
    assert on[1, 60, 60] == 0 and off[1, 60, 60] == 0


@pytest.mark.parametrize("size", [6, 60])
def test_spot_span_confines_a_small_spot_class_in_proportion_to_its_size(size):
    """With ``spot_span`` a spot class's falloff is at most that fraction of its own box: a
    small object's prior falls as steeply, in its own widths, as a large one's; a large
    object, whose box makes the bound looser than the image's falloff, is unchanged."""
    labels = np.full((200, 200), IGNORE)
    labels[::20, ::20] = 0                       # background points everywhere
    yy, xx = np.mgrid[:200, :200]
    obj = (yy >= 70) & (yy < 70 + size) & (xx >= 70) & (xx < 70 + size)
    pts = obj & (yy % 3 == 0) & (xx % 3 == 0)     # scattered single points over the object
    labels[pts] = 1
    ids = np.array([0, 1])
    before = labels.copy()
    kw = dict(margin=0.0, strength=3.0, falloff=0.1, spot_min=3, spot_margin=0.0, spot_falloff=0.05,
              background=0)
    off = box_prior(labels, ids, (200, 200), **kw)
    on = box_prior(labels, ids, (200, 200), spot_span=0.5, **kw)
    np.testing.assert_array_equal(labels, before)
    assert (on[0] == 0).all()                      # the background stays free
    beside = (70 + size // 2, 70 + size + 10)      # ten pixels right of the object
    if size == 6:
        # box side ~4 px: falloff 2 px instead of 10, five times steeper
        assert on[1][beside] < 4 * off[1][beside] < 0
    else:
        np.testing.assert_array_equal(on, off)     # 0.5 x 58 px > 10 px: the image's falloff
    inside = obj & (yy < 70 + size - 3) & (xx < 70 + size - 3) & (yy > 72) & (xx > 72)
    assert (on[1][inside] == 0).all()


def test_few_points_marks_classes_of_a_few_single_points_only():
    labels = np.full((40, 40), IGNORE)
    labels[5, 5] = labels[5, 30] = labels[30, 5] = 0           # three single points
    labels[::8, 20] = 1                                          # five single points
    labels[30:34, 30:34] = 2                                     # a 16-px blob
    labels[10, 10] = labels[12, 12] = 2
    ids = np.array([0, 1, 2, 3])                                 # class 3 unlabelled
    before = labels.copy()
    np.testing.assert_array_equal(few_points(labels, ids, 5), [True, False, False, False])
    np.testing.assert_array_equal(few_points(labels, ids, 6), [True, True, False, False])
    np.testing.assert_array_equal(few_points(labels, ids, 0), [False] * 4)
    np.testing.assert_array_equal(labels, before)


def test_spot_span_spares_a_class_of_a_few_single_points():
    """Three points rarely span their object, so ``span_min_points`` keeps the image's
    falloff for them; ten points over the same small object are bound by ``spot_span``."""
    yy, xx = np.mgrid[:200, :200]
    kw = dict(margin=0.0, strength=3.0, falloff=0.1, spot_min=3, spot_margin=0.0, spot_falloff=0.05,
              background=0, spot_span=0.5)
    ids = np.array([0, 1])
    three = ([70, 72, 70], [70, 74, 78])
    ten = (np.repeat([70, 72], 5), np.tile([70, 72, 74, 76, 78], 2))   # both span rows 70-72, columns 70-78
    for (rows, cols), exempt in ((three, True), (ten, False)):
        labels = np.full((200, 200), IGNORE)
        labels[::20, ::20] = 0
        labels[rows, cols] = 1
        assert point_count(labels == 1) == len(rows)
        plain = box_prior(labels, ids, (200, 200), **kw)
        spared = box_prior(labels, ids, (200, 200), span_min_points=5, **kw)
        unbound = box_prior(labels, ids, (200, 200), **{**kw, "spot_span": 0.0})
        beside = (71, 100)
        assert plain[1][beside] < unbound[1][beside] < 0      # the bound acts without the exemption
        if exempt:
            np.testing.assert_array_equal(spared, unbound)
        else:
            np.testing.assert_array_equal(spared, plain)


def test_box_prior_leaves_the_background_free_even_beside_a_larger_object():
    # the click loop after its first negative click: clicks spread over the object, one
    # background disk next to it
    labels = np.full((100, 100), IGNORE)
    labels[20:25, 20:25] = labels[20:25, 70:75] = labels[70:75, 20:25] = labels[70:75, 70:75] = 1
    labels[48:53, 80:85] = 0
    ids = np.array([0, 1])
    confined = box_prior(labels, ids, (50, 50), strength=3.0)
    assert confined[0, 0, 0] < -3 and np.all(confined[1] == 0)  # without: the object's box is the free one
    free = box_prior(labels, ids, (50, 50), strength=3.0, background=0)
    assert np.all(free[0] == 0)
    assert free[1, 25, 25] == 0 and free[1, 0, 0] < -3  # the object stays near its clicks' box
    other = box_prior(labels, ids, (50, 50), strength=3.0, background=7)  # a class that is not labelled
    np.testing.assert_array_equal(other, confined)


def test_label_box_prior_frees_the_background_only_when_the_config_says_so():
    from dipseg.dip.config import FitConfig
    from dipseg.dip.presets import get_preset
    from dipseg.dip.refine import label_box_prior

    labels = np.full((100, 100), IGNORE)
    labels[20:25, 20:25] = labels[70:75, 70:75] = labels[20:25, 70:75] = 1
    labels[48:53, 80:85] = 0
    ids = np.array([0, 1])
    off = label_box_prior(labels, ids, (50, 50), FitConfig(box_prior=3.0))
    on = label_box_prior(labels, ids, (50, 50), FitConfig(box_prior=3.0, box_free_background=True))
    assert off[0].min() < 0 and np.all(off[1] == 0)
    assert np.all(on[0] == 0) and on[1].min() < 0
    moved = label_box_prior(labels, ids, (50, 50), FitConfig(box_prior=3.0, box_free_background=True), background=1)
    np.testing.assert_array_equal(moved, off)  # class 1 named the background: it is the free one, as without
    assert get_preset("clicks").fit.box_free_background and not get_preset("fast").fit.box_free_background


def _points(n):
    """Class 5: ``n`` single pixels spread evenly from (50, 50) to (50 + 10 (n-1), 50 + 10 (n-1))."""
    labels = np.full((300, 300), IGNORE)
    labels[0, 0] = labels[299, 299] = 0
    for i in range(n):
        labels[50 + 10 * i, 50 + 10 * i] = 5
    return labels


def test_point_count_counts_single_points_only():
    assert point_count(_points(3) == 5) == 3
    labels = _points(4)
    labels[120:123, 120:123] = 5  # one 3x3 blob among the points: not points any more
    assert point_count(labels == 5) == 0
    assert point_count(_spots_and_stroke() == 5) == 0  # three 3x3 blobs
    assert point_count(np.zeros((4, 4), bool)) == 0


@pytest.mark.parametrize("n", [3, 5])
def test_point_gap_widens_the_box_of_few_points_by_their_count(n):
    labels = _points(n)
    before = labels.copy()
    ids = np.array([0, 5])
    kw = dict(margin=0.15, strength=3.0, falloff=0.1, spot_min=3, spot_margin=0.05, spot_falloff=0.05)
    off = box_prior(labels, ids, (300, 300), **kw)
    on = box_prior(labels, ids, (300, 300), point_gap=1.0, **kw)
    assert np.array_equal(labels, before)
    span = 10 * (n - 1) + 1
    inside = 50 + span - 1 + int(0.9 * span / (n - 1))  # within span / (n - 1) past the last point
    assert on[1, 60, inside] == 0 and off[1, 60, inside] < 0
    far = 50 + span - 1 + int(1.3 * span / (n - 1)) + 2
    assert on[1, 60, far] < 0
    assert np.array_equal(on[0], off[0])


def test_point_gap_leaves_blobs_and_many_points_alone():
    ids = np.array([0, 5, 7])
    kw = dict(margin=0.15, strength=3.0, falloff=0.1, spot_min=3, spot_margin=0.05, spot_falloff=0.05)
    blobs = _spots_and_stroke()
    np.testing.assert_array_equal(box_prior(blobs, ids, (200, 200), point_gap=1.0, **kw),
                                  box_prior(blobs, ids, (200, 200), **kw))
    many = _points(25)  # 1 / 24 < 0.05: the spot margin stands
    np.testing.assert_array_equal(box_prior(many, ids[:2], (300, 300), point_gap=1.0, **kw),
                                  box_prior(many, ids[:2], (300, 300), **kw))


def test_point_border_keeps_a_once_clicked_class_off_the_image_border_only():
    from dipseg.dip.config import FitConfig
    from dipseg.dip.presets import get_preset
    from dipseg.dip.refine import label_box_prior

    labels = np.full((100, 200), IGNORE)
    labels[50, 100] = 3  # one click on an object
    labels[20:60, 30] = 7  # a stroke: the box prior places it
    labels[90, 5] = 0
    before = labels.copy()
    ids = np.array([0, 3, 7])
    cfg = FitConfig(box_prior=3.0, point_border=2.0, point_border_band=0.1)
    prior = label_box_prior(labels, ids, (50, 100), cfg)
    plain = label_box_prior(labels, ids, (50, 100), FitConfig(box_prior=3.0))
    assert np.array_equal(labels, before)
    diff = prior - plain
    band = np.zeros((50, 100), bool)
    band[:5], band[-5:], band[:, :10], band[:, -10:] = True, True, True, True
    assert np.all(diff[1][band] == -2.0) and np.all(diff[1][~band] == 0)  # the clicked class, in the band only
    assert np.all(diff[0] == 0) and np.all(diff[2] == 0)  # not the background, not the stroke's class
    # without a labelled background nothing says the border is background
    no_bg = labels.copy()
    no_bg[90, 5] = 7
    assert np.array_equal(label_box_prior(no_bg, np.array([3, 7]), (50, 100), cfg),
                          label_box_prior(no_bg, np.array([3, 7]), (50, 100), FitConfig(box_prior=3.0)))
    assert get_preset("fast").fit.point_border > 0 and get_preset("clicks").fit.point_border == 0


def test_point_border_is_checked():
    from dipseg.dip.config import FitConfig

    for kw in ({"point_border": -1.0}, {"point_border": float("nan")}, {"point_border_band": 0.0},
               {"point_border_band": 0.5}):
        with pytest.raises(ValueError, match="point_border"):
            FitConfig(**kw)
