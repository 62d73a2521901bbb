import numpy as np
import pytest

from conftest import seeds_from, three_regions
from dipseg.labels import IGNORE
from dipseg.dip.refine import guided_filter, random_walk_refine


def test_guided_filter_snaps_to_guide_edges_and_keeps_constants():
    guide = np.zeros((20, 20, 3), np.float32)
    guide[:, 10:] = 1
    src = np.zeros((20, 20, 1), np.float32)
    src[:, 9:] = 1  # an edge one pixel off the image's edge
    out = guided_filter(guide, src, 3, 1e-4)[..., 0]
    np.testing.assert_array_equal(out > 0.5, guide[..., 0] > 0.5)
    flat = guided_filter(guide, np.full((20, 20, 2), 0.3, np.float32), 3, 1e-3)
    np.testing.assert_allclose(flat, 0.3, atol=1e-4)


def test_random_walk_follows_edges_from_seeds():
    img, gt = three_regions(48, noise=4)
    labels = seeds_from(gt, 2)
    ids = np.array([0, 1, 2])
    flat_prior = np.full((48, 48, 3), 1 / 3, np.float32)
    before = labels.copy()
    prob = random_walk_refine(img, flat_prior, labels, ids, strength=1e-6)
    np.testing.assert_array_equal(labels, before)
    assert prob.shape == (48, 48, 3) and prob.dtype == np.float32
    np.testing.assert_allclose(prob.sum(-1), 1, atol=1e-5)
    assert (ids[prob.argmax(-1)] == gt).mean() > 0.97


def test_random_walk_strong_prior_wins():
    img, gt = three_regions(32, noise=4)
    labels = seeds_from(gt, 2)
    prior = np.zeros((32, 32, 3), np.float32)
    prior[..., 1] = 1  # the prior says "class 1" everywhere
    prob = random_walk_refine(img, prior, labels, np.array([0, 1, 2]), strength=10.0)
    assert (prob.argmax(-1) == 1).mean() > 0.9
    seeded = labels != IGNORE
    np.testing.assert_array_equal(prob.argmax(-1)[seeded], labels[seeded])  # seeds stay fixed


@pytest.mark.parametrize("strength", [1e-6, 1e-2])
def test_random_walk_single_seed_per_class(strength):
    img, gt = three_regions(24)
    labels = np.full(gt.shape, IGNORE)
    labels[2, 2], labels[20, 20], labels[7, 7] = 0, 1, 2
    prob = random_walk_refine(img, np.full((24, 24, 3), 1 / 3, np.float32), labels, np.array([0, 1, 2]), strength)
    assert np.isfinite(prob).all()


def test_closed_form_inverse_matches_numpy():
    from dipseg.dip.refine import _inv_sym3

    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3, 3)).astype(np.float32)
    spd = a @ np.swapaxes(a, 1, 2) + 1e-2 * np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(_inv_sym3(spd) @ spd, np.broadcast_to(np.eye(3), spd.shape), atol=1e-3)


def test_factorised_walk_serves_several_priors():
    from dipseg.dip.refine import RandomWalk

    img, gt = three_regions(32, noise=4)
    labels = seeds_from(gt, 2)
    ids = np.array([0, 1, 2])
    walk = RandomWalk(img, labels, ids, strength=1e-3)
    rng = np.random.default_rng(1)
    for _ in range(2):
        prior = rng.dirichlet(np.ones(3), size=(32, 32)).astype(np.float32)
        np.testing.assert_allclose(walk.solve(prior), random_walk_refine(img, prior, labels, ids, strength=1e-3),
                                   atol=1e-6)


def test_walk_with_a_strength_per_pixel():
    from dipseg.dip.refine import RandomWalk

    img, gt = three_regions(32, noise=4)
    labels = seeds_from(gt, 2)
    ids = np.array([0, 1, 2])
    walk = RandomWalk(img, labels, ids, strength=1e-4)
    prior = np.zeros((32, 32, 3), np.float32)
    prior[..., 1] = 1  # the prior says "class 1" everywhere
    before = prior.copy()
    # the same strength everywhere is the walk's own factorised solve
    np.testing.assert_allclose(walk.solve(prior, np.full((32, 32), 1e-4)), walk.solve(prior), atol=1e-6)
    plain = walk.solve(prior)
    trusted = np.zeros((32, 32), bool)
    trusted[gt == 0] = True  # the prior is trusted on region 0 only
    prob = walk.solve(prior, np.where(trusted, 10.0, 1e-4))
    np.testing.assert_array_equal(prior, before)
    assert (prob.argmax(-1)[trusted & (labels == IGNORE)] == 1).mean() > 0.9 > (plain.argmax(-1)[gt == 0] == 1).mean()
    np.testing.assert_allclose(prob[~trusted], plain[~trusted], atol=0.2)  # elsewhere little changes
    seeded = labels != IGNORE
    np.testing.assert_array_equal(prob.argmax(-1)[seeded], labels[seeded])  # seeds stay fixed


def test_sure_rule_trusts_the_prior_where_it_is_sure_of_an_object_only():
    from dipseg.dip.refine import SureRule

    prior = np.full((4, 4, 3), 1 / 3, np.float32)
    prior[0, 0] = (0.001, 0.998, 0.001)  # sure of class column 1
    prior[1, 1] = (0.998, 0.001, 0.001)  # sure of the background (column 0)
    prior[2, 2] = (0.02, 0.96, 0.02)  # fairly sure, below the threshold
    rule = SureRule(at=0.99, strength=1e-3, background=0)
    strength = rule.strength_map(prior, otherwise=3e-4)
    expected = np.full((4, 4), 3e-4)
    expected[0, 0] = 1e-3
    np.testing.assert_array_equal(strength, expected)
    assert SureRule(0.99, 1e-3, background=-1).strength_map(prior, 3e-4)[1, 1] == 1e-3  # no background class
    assert rule.strength_map(np.full((4, 4, 3), 1 / 3, np.float32), 3e-4) is None  # nothing sure: no new solve


@pytest.mark.parametrize("tight", [False, True])
def test_the_sure_rule_is_for_tight_boxes_only(tight):
    from dipseg.boxes import Box, box_labels
    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import prepare_full_resolution

    img, _ = three_regions(40, noise=4)
    boxes = [Box(1, 4, 4, 20, 20)]
    labels = box_labels(boxes, (40, 40))
    ids = np.array([0, 1])
    cfg = FitConfig(refine="random-walk", refine_size=24)
    prepared = prepare_full_resolution(img, labels, ids, cfg, seed=0, boxes=boxes, tight_boxes=tight)
    assert (prepared.sure is not None) == tight
    assert (prepared.fill is not None) == tight
    if tight:
        assert (prepared.sure.at, prepared.sure.strength, prepared.sure.background) == (0.99, 1e-3, 0)
        # the box at the walk's 24 px: rows and columns 4..20 of 40 become 2..12
        assert (prepared.fill.least, prepared.fill.strength, prepared.fill.boxes) == (0.1, 1e-2, [(1, 2, 12, 2, 12)])
        assert (prepared.fill.cover, prepared.fill.cover_below, prepared.fill.cover_strength) == (0.95, 0.4, 1e-3)
    off = prepare_full_resolution(img, labels, ids, FitConfig(refine="random-walk", box_sure_strength=0.0,
                                                              box_fill_least=0.0, box_cover_least=0.0),
                                  seed=0, boxes=boxes, tight_boxes=True)
    assert off.sure is None and off.fill is None
    cover_only = prepare_full_resolution(img, labels, ids, FitConfig(refine="random-walk", box_fill_least=0.0),
                                         seed=0, boxes=boxes, tight_boxes=True)
    assert cover_only.fill.least == 0.0 and cover_only.fill.cover == 0.95
    fill_only = prepare_full_resolution(img, labels, ids, FitConfig(refine="random-walk", box_cover_strength=0.0),
                                        seed=0, boxes=boxes, tight_boxes=True)
    assert fill_only.fill.least == 0.1 and fill_only.fill.cover == 0.0


def test_fill_rule_finds_nearly_empty_boxes_and_trusts_the_prior_there_only():
    from dipseg.dip.refine import FillRule

    rule = FillRule(least=0.1, strength=1e-2, boxes=[(1, 0, 4, 0, 4), (2, 4, 8, 4, 8)])
    prob = np.zeros((8, 8, 3), np.float32)
    prob[..., 0] = 1  # background everywhere ...
    prob[0:2, 0:2] = (0, 1, 0)  # ... but a quarter of the first box
    prob[4, 4] = (0, 0, 1)  # one pixel (1/16) of the second
    assert rule.short(prob) == [(2, 4, 8, 4, 8, 1e-2)]
    base = np.full((8, 8), 1e-4)
    base[5, 5] = 0.5  # a stronger trust already there is kept
    strength = rule.strength_map(rule.short(prob), base, (8, 8))
    expected = np.full((8, 8), 1e-4)
    expected[4:8, 4:8] = 1e-2
    expected[5, 5] = 0.5
    np.testing.assert_array_equal(strength, expected)
    np.testing.assert_array_equal(rule.strength_map([], 1e-4, (8, 8)), np.full((8, 8), 1e-4))
    assert base[5, 5] == 0.5 and base[0, 0] == 1e-4  # not modified


def test_cover_rule_finds_boxes_whose_class_misses_rows_or_columns():
    from dipseg.dip.refine import FillRule

    rule = FillRule(least=0.1, strength=1e-2, boxes=[(1, 0, 10, 0, 10)], cover=0.95, cover_below=0.4,
                    cover_strength=1e-3)

    def short(mask):
        prob = np.zeros((10, 10, 2), np.float32)
        prob[..., 0] = 1
        prob[mask] = (0, 1)
        return rule.short(prob)

    def block(rows, cols):
        m = np.zeros((10, 10), bool)
        m[rows, cols] = True
        return m

    band = np.abs(np.subtract.outer(np.arange(10), np.arange(10))) <= 1  # 28 % of the box, every row and column
    # a third of the box, in its left columns only: the object's right part was cut off
    assert short(block(slice(0, 10), slice(0, 3))) == [(1, 0, 10, 0, 10, 1e-3)]
    assert short(band) == []
    # half the box in its upper rows: already well filled, so it is left alone (a thin object's box)
    assert short(block(slice(0, 5), slice(0, 10))) == []
    # the outermost rows and columns are partly outside the box at the walk's size: not counted
    assert short(band & block(slice(1, 9), slice(1, 9))) == []
    # nearly empty: the fill rule's own strength
    assert short(block(slice(0, 1), slice(0, 5))) == [(1, 0, 10, 0, 10, 1e-2)]
    strength = rule.strength_map([(1, 0, 5, 0, 5, 1e-3), (1, 5, 10, 5, 10, 1e-2)], 1e-4, (10, 10))
    expected = np.full((10, 10), 1e-4)
    expected[:5, :5] = 1e-3
    expected[5:, 5:] = 1e-2
    np.testing.assert_array_equal(strength, expected)


def test_cover_rule_gives_back_the_part_of_an_object_the_seeds_around_its_box_flooded():
    """A tight box whose object is three quarters the background's colour: the walk keeps only
    the distinct quarter, which reaches a quarter of the box's columns; the rule lets the prior
    (here: object in the whole box) decide inside it."""
    import torch

    from dipseg.boxes import Box, box_labels
    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, prepare_full_resolution

    rng = np.random.default_rng(0)
    img = np.clip(128 + rng.normal(0, 2, (40, 40, 3)), 0, 255).astype(np.uint8)
    img[10:30, 10:15] = 220
    boxes = [Box(1, 10, 10, 30, 30)]
    labels = box_labels(boxes, (40, 40))
    ids = np.array([0, 1])
    logits = torch.zeros(1, 2, 40, 40)
    logits[0, 1, 10:30, 10:30] = 4.0

    def share(**fields):
        cfg = FitConfig(refine="random-walk", refine_size=40, colour_weight=0.0, box_inside=0.0,
                        box_sure_strength=0.0, box_cover_strength=1.0, **fields)
        prepared = prepare_full_resolution(img, labels, ids, cfg, seed=0, boxes=boxes, tight_boxes=True)
        return (finish_full_resolution(prepared, logits).argmax(-1)[10:30, 10:30] == 1).mean()

    off, on = share(box_cover_least=0.0), share()
    assert 0.2 < off < 0.4  # the distinct quarter only
    assert on > 0.8


@pytest.mark.parametrize("network_says_object", [True, False])
def test_fill_rule_keeps_an_even_object_from_being_flooded_by_the_seeds_around_its_box(network_says_object):
    """An object of the background's colour in a tight box: the seeds all around the box
    flood it in a weak walk; with the rule the prior decides inside the box, and where the
    prior says background the box stays background."""
    import torch

    from dipseg.boxes import Box, box_labels
    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, prepare_full_resolution

    rng = np.random.default_rng(0)
    img = np.clip(128 + rng.normal(0, 2, (40, 40, 3)), 0, 255).astype(np.uint8)  # one even colour
    boxes = [Box(1, 10, 10, 30, 30)]
    labels = box_labels(boxes, (40, 40))
    ids = np.array([0, 1])
    logits = torch.zeros(1, 2, 40, 40)
    logits[0, 1 if network_says_object else 0, 10:30, 10:30] = 4.0
    inside = np.zeros((40, 40), bool)
    inside[10:30, 10:30] = True

    def share(**fields):
        cfg = FitConfig(refine="random-walk", refine_size=40, colour_weight=0.0, box_inside=0.0,
                        box_sure_strength=0.0, box_fill_strength=1.0, **fields)
        prepared = prepare_full_resolution(img, labels, ids, cfg, seed=0, boxes=boxes, tight_boxes=True)
        return (finish_full_resolution(prepared, logits).argmax(-1)[inside] == 1).mean()

    off, on = share(box_fill_least=0.0), share()
    assert off < 0.1  # flooded
    if network_says_object:
        assert on > 0.8
    else:
        assert on < 0.1


@pytest.mark.parametrize("refine", ["none", "guided", "random-walk"])
def test_prepared_stage_equals_the_whole_stage(refine):
    import torch

    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, full_resolution, prepare_full_resolution

    img, gt = three_regions(40, noise=4)
    labels = seeds_from(gt, 3)
    ids = np.array([0, 1, 2])
    cfg = FitConfig(refine=refine, refine_size=24, box_prior=3.0, colour_weight=6.0)
    logits = torch.randn(1, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    whole = full_resolution(img, labels, ids, logits, cfg, seed=0)
    prepared = prepare_full_resolution(img, labels, ids, cfg, seed=0)
    np.testing.assert_array_equal(finish_full_resolution(prepared, logits), whole)
    assert whole.shape == (40, 40, 3)


def test_network_scale_grows_with_label_coverage_and_caps_at_one():
    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import network_scale

    ids = np.array([0, 1])
    compact = np.full((100, 100), IGNORE)
    compact[10:14, 10:14] = 0
    compact[80:84, 80:84] = 1
    spread = np.full((100, 100), IGNORE)
    spread[::9, 0:50:9] = 0
    spread[::9, 50::9] = 1
    cfg = FitConfig(network_coverage=0.3)
    low, high = network_scale(compact, ids, cfg), network_scale(spread, ids, cfg)
    assert 0 <= low < 0.2 and high == 1.0
    assert network_scale(compact, ids, FitConfig()) == 1.0  # off by default
    assert network_scale(compact, ids, FitConfig(network_coverage=0.3, network_coverage_power=0)) == 1.0


def test_network_scale_with_boxes_is_the_box_factor_whatever_the_labels():
    from dipseg.boxes import Box, box_labels
    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import network_scale

    boxes = [Box(1, 4, 4, 20, 20), Box(2, 18, 10, 36, 36)]
    labels = box_labels(boxes, (40, 40))
    ids = np.array([0, 1, 2])
    cfg = FitConfig(network_coverage=0.3)
    assert network_scale(labels, ids, cfg) < 0.5  # as plain labels: two unlabelled classes
    assert network_scale(labels, ids, cfg, boxes) == cfg.box_network_scale
    assert network_scale(labels, ids, FitConfig(network_coverage=0.3, box_network_scale=1.0), boxes) == 1.0


def test_zero_network_scale_leaves_the_priors_alone():
    import torch

    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, prepare_full_resolution

    img, gt = three_regions(40, noise=4)
    labels = seeds_from(gt, 3)
    ids = np.array([0, 1, 2])
    cfg = FitConfig(refine="random-walk", refine_size=24, box_prior=3.0, colour_weight=6.0)
    prepared = prepare_full_resolution(img, labels, ids, cfg, seed=0)
    prepared.scale = 0.0
    a = finish_full_resolution(prepared, torch.randn(1, 3, 20, 20))
    b = finish_full_resolution(prepared, torch.zeros(1, 3, 20, 20))
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_box_rounds_survive_a_class_that_vanishes():
    """GrabCut-like colour rounds re-fit each class to the current answer; a class the answer
    no longer holds anywhere must not crash the refit (it keeps that answer)."""
    import torch

    from dipseg.boxes import Box, box_labels
    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, prepare_full_resolution

    img, gt = three_regions(40, noise=4)
    boxes = [Box(1, 8, 8, 30, 30)]
    labels = box_labels(boxes, (40, 40))
    ids = np.array([0, 1])
    cfg = FitConfig(refine="random-walk", refine_size=24, colour_weight=6.0, box_colour_rounds=2,
                    box_outside=0.0, box_refine_strength=1e-2)
    logits = torch.zeros(1, 2, 20, 20)
    logits[0, 0] = 50.0  # the network sees background everywhere: class 1 vanishes after the first solve
    prepared = prepare_full_resolution(img, labels, ids, cfg, seed=0, boxes=boxes)
    prob = finish_full_resolution(prepared, logits)
    assert prob.shape == (40, 40, 2) and np.isfinite(prob).all()


def test_box_rounds_weigh_the_network_as_the_first_solve_does():
    """The colour rounds re-solve with the network's logits at the same coverage factor
    (``Prepared.scale``) as the first solve: with the factor 0 the answer cannot depend on
    the logits, rounds or not (they used the unscaled logits until 2026-12-03)."""
    import torch

    from dipseg.boxes import Box, box_labels
    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, prepare_full_resolution

    img, gt = three_regions(40, noise=4)
    boxes = [Box(1, 4, 4, 36, 36)]
    labels = box_labels(boxes, (40, 40))
    ids = np.array([0, 1])
    cfg = FitConfig(refine="random-walk", refine_size=24, colour_weight=6.0, box_colour_rounds=2)
    prepared = prepare_full_resolution(img, labels, ids, cfg, seed=0, boxes=boxes)
    assert prepared.rounds is not None
    prepared.scale = 0.0
    logits = torch.zeros(1, 2, 20, 20)
    logits[0, 1, :10] = 20.0  # a network sure of the object in the top half only
    a = finish_full_resolution(prepared, logits)
    b = finish_full_resolution(prepared, torch.zeros(1, 2, 20, 20))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_walk_strength_falls_with_the_labels_coverage_only_when_asked():
    from dipseg.boxes import Box
    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import walk_strength

    sparse = np.full((100, 100), IGNORE)
    sparse[10, 10], sparse[90, 90] = 0, 1
    dense = np.full((100, 100), IGNORE)
    dense[::3, ::3] = (np.arange(100)[::3, None] > 50).astype(int) * np.ones((1, 34), int)
    ids = np.array([0, 1])
    base = FitConfig(refine_strength=1e-5)
    on = FitConfig(refine_strength=1e-5, refine_dense_strength=1e-7, refine_dense_from=0.35, refine_dense_to=0.75)
    assert walk_strength(dense, ids, base) == 1e-5
    assert walk_strength(sparse, ids, on) == pytest.approx(1e-5)  # coverage ~0.01: untouched
    assert walk_strength(dense, ids, on) == pytest.approx(1e-7)   # coverage > 0.75: the dense value
    box = [Box(1, 10, 10, 50, 50)]
    assert walk_strength(dense, ids, on, box) == on.box_refine_strength
    with pytest.raises(ValueError, match="refine_dense"):
        FitConfig(refine_dense_from=0.8, refine_dense_to=0.5)


def test_colour_spot_factor_halves_colour_for_scattered_points_and_spares_strokes():
    """``colour_spot_scale`` acts on images whose classes are labelled by scattered spots, in
    proportion to their share; strokes, boxes, ``box_spot_min`` 0 or a scale of 1 leave the
    colour weight alone."""
    from dipseg.boxes import Box
    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import colour_spot_factor

    points = np.full((60, 60), IGNORE)
    points[5:55:10, 5:25:10] = 0   # ten single pixels per class
    points[5:55:10, 35:55:10] = 1
    strokes = np.full((60, 60), IGNORE)
    strokes[10:50, 15] = 0        # one long stroke per class
    strokes[10:50, 45] = 1
    mixed = strokes.copy()
    mixed[:, 40:] = points[:, 40:]  # class 1 as points, class 0 as a stroke
    mixed[mixed == 0] = IGNORE
    mixed[10:50, 15] = 0
    ids = np.array([0, 1])
    cfg = FitConfig(colour_weight=6.0, colour_spot_scale=0.5, box_spot_min=3)
    assert colour_spot_factor(points, ids, cfg) == pytest.approx(0.5)
    assert colour_spot_factor(strokes, ids, cfg) == 1.0
    assert colour_spot_factor(mixed, ids, cfg) == pytest.approx(0.75)
    assert colour_spot_factor(points, ids, FitConfig(colour_spot_scale=0.5, box_spot_min=0)) == 1.0
    assert colour_spot_factor(points, ids, FitConfig(colour_spot_scale=1.0, box_spot_min=3)) == 1.0
    with pytest.raises(ValueError, match="colour_spot_scale must be in \\[0, 1\\]"):
        FitConfig(colour_spot_scale=1.5)
    three = np.full((60, 60), IGNORE)
    three[5:55:20, 5] = 0          # three single pixels per class
    three[5:55:20, 45] = 1
    few = FitConfig(colour_weight=6.0, colour_spot_scale=0.5, box_spot_min=3, spot_rules_min_points=5)
    assert colour_spot_factor(three, ids, cfg) == pytest.approx(0.5)
    assert colour_spot_factor(three, ids, few) == 1.0       # too few points to count as spots here
    assert colour_spot_factor(points, ids, few) == pytest.approx(0.5)


@pytest.mark.parametrize("with_box", [False, True])
def test_colour_spot_scale_scales_the_colour_term_of_the_prior_only(with_box):
    """The prior is the spatial term plus the colour term times the factor: the spot rule
    halves the colour term for scattered points and leaves the box prior alone; with boxes
    nothing changes (their colour weight was tuned on its own)."""
    from dipseg.boxes import Box
    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import prepare_full_resolution

    img, gt = three_regions(40, noise=4)
    labels = seeds_from(gt, 6)
    ids = np.array([0, 1, 2])
    boxes = [Box(2, 3, 3, 22, 22)] if with_box else ()
    base = dict(refine="random-walk", refine_size=24, box_prior=3.0, box_spot_min=3, colour_weight=6.0)

    def prior(**kw):
        return prepare_full_resolution(img, labels, ids, FitConfig(**{**base, **kw}), seed=0, boxes=boxes).prior

    full, half = prior(colour_spot_scale=1.0), prior(colour_spot_scale=0.5)
    if with_box:
        np.testing.assert_array_equal(full, half)
        return
    spatial = prior(colour_weight=0.0)
    assert np.abs(full - spatial).max() > 0.1
    np.testing.assert_allclose(half - spatial, 0.5 * (full - spatial), rtol=1e-5, atol=1e-5)


def test_colour_rounds_without_boxes_refit_at_the_full_colour_weight():
    """``colour_rounds`` gives labels without boxes the GrabCut-like rounds: the models are
    re-fitted to the whole answer, so they get the full ``colour_weight`` (not the labels'
    coverage factor), under the label-box prior; 0 rounds, or no colour models, none."""
    import torch

    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, prepare_full_resolution

    img, gt = three_regions(40, noise=4)
    labels = seeds_from(gt, 3)
    ids = np.array([0, 1, 2])
    base = dict(refine="random-walk", refine_size=24, box_prior=3.0, colour_weight=6.0)
    assert prepare_full_resolution(img, labels, ids, FitConfig(**base), seed=0).rounds is None
    assert prepare_full_resolution(img, labels, ids, FitConfig(**{**base, "colour_weight": 0.0}, colour_rounds=2),
                                   seed=0).rounds is None
    prepared = prepare_full_resolution(img, labels, ids, FitConfig(**base, colour_rounds=2), seed=0)
    r = prepared.rounds
    assert r is not None and r.n == 2 and r.weight == 6.0
    assert r.spatial is not None and r.spatial.shape == (3, 24, 24)
    prob = finish_full_resolution(prepared, torch.zeros(1, 3, 20, 20))
    assert prob.shape == (40, 40, 3) and np.isfinite(prob).all()
    # three well separated regions: the rounds keep the right answer
    assert (ids[prob.argmax(-1)] == gt).mean() > 0.95


def test_colour_rounds_stop_where_a_class_holds_less_than_the_min_share():
    """A class below ``colour_rounds_min_share`` of the image ends the rounds before they
    start: the answer is the first solve's, as with no rounds at all."""
    import torch

    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, prepare_full_resolution

    img, gt = three_regions(40, noise=4)
    labels = seeds_from(gt, 3)
    ids = np.array([0, 1, 2])
    base = dict(refine="random-walk", refine_size=24, box_prior=3.0, colour_weight=6.0)
    logits = torch.randn(1, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    plain = finish_full_resolution(prepare_full_resolution(img, labels, ids, FitConfig(**base), seed=0), logits)
    # each of the three regions holds about a third of the image
    stopped = FitConfig(**base, colour_rounds=2, colour_rounds_min_share=0.5)
    np.testing.assert_allclose(
        finish_full_resolution(prepare_full_resolution(img, labels, ids, stopped, seed=0), logits), plain, atol=1e-6)
    ran = FitConfig(**base, colour_rounds=2, colour_rounds_min_share=0.1)
    assert not np.allclose(
        finish_full_resolution(prepare_full_resolution(img, labels, ids, ran, seed=0), logits), plain, atol=1e-6)


def test_refine_cut_gives_an_even_object_to_its_click_not_to_the_border_frame():
    """Two classes: a click inside an even object that touches the image border, the click
    protocol's background frame, and logits that favour the object there. The walk alone
    hands the object's border side to the frame; ``refine_cut`` gives the object to the
    click (the frame pixels keep their label), and its probabilities still sum to 1."""
    import torch

    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, prepare_full_resolution

    img = np.full((40, 40, 3), 30, np.uint8)
    obj = np.zeros((40, 40), bool)
    obj[10:, 12:28] = True  # touches the bottom border
    img[obj] = 200
    labels = np.full((40, 40), IGNORE)
    labels[[0, 1, -2, -1]] = 0
    labels[:, [0, 1, -2, -1]] = 0
    labels[14:17, 19:22] = 1
    ids = np.array([0, 1])
    logits = torch.zeros(1, 2, 40, 40)
    logits[0, 1][torch.from_numpy(obj)] = 3.0  # the network says object on the object
    base = dict(refine="random-walk", refine_size=None, refine_strength=1e-6)
    walked = finish_full_resolution(prepare_full_resolution(img, labels, ids, FitConfig(**base), seed=0), logits)
    inner = obj & (labels == IGNORE)
    share = {"walk": (walked.argmax(-1)[inner] == 1).mean()}
    before = labels.copy()
    for a in (0.0, 0.5):
        prob = finish_full_resolution(prepare_full_resolution(
            img, labels, ids, FitConfig(**base, refine_cut=1.0, refine_cut_walk=a), seed=0), logits)
        np.testing.assert_allclose(prob.sum(-1), 1, atol=1e-5)
        assert (prob.argmax(-1)[~obj] == 0).all()
        share[a] = (prob.argmax(-1)[inner] == 1).mean()
    np.testing.assert_array_equal(labels, before)
    # the walk loses the object's lower part to the frame; the cut on the priors alone keeps
    # all of it, and half the walk in the cut's unaries keeps more than the walk
    assert share["walk"] < 0.8 and share[0.0] == 1.0 and share["walk"] < share[0.5] < 1.0, share


def test_refine_cut_leaves_more_than_two_classes_to_the_walk():
    import torch

    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, prepare_full_resolution

    img, gt = three_regions(32, noise=4)
    labels = seeds_from(gt, 2)
    ids = np.array([0, 1, 2])
    logits = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    base = dict(refine="random-walk", refine_size=None)
    plain = finish_full_resolution(prepare_full_resolution(img, labels, ids, FitConfig(**base), seed=0), logits)
    cut = finish_full_resolution(prepare_full_resolution(img, labels, ids, FitConfig(**base, refine_cut=2.0), seed=0),
                                 logits)
    np.testing.assert_array_equal(plain, cut)


def test_refine_connected_drops_object_regions_without_a_click():
    """Two white squares, a click in one and the border frame: the network and colour say
    object on both; with ``refine_connected`` only the clicked square stays object. With
    three classes, or off, both stay."""
    import torch

    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, prepare_full_resolution

    img = np.full((40, 40, 3), 30, np.uint8)
    img[8:18, 8:18] = img[24:34, 24:34] = 220
    labels = np.full((40, 40), IGNORE)
    labels[[0, -1]] = 0
    labels[:, [0, -1]] = 0
    labels[12, 12] = 1
    logits = torch.zeros(1, 2, 40, 40)
    logits[0, 1][torch.from_numpy(img[..., 0] > 100)] = 4.0
    ids = np.array([0, 1])
    base = dict(refine="random-walk", refine_size=None, refine_cut=1.0, refine_cut_walk=0.5)
    both = finish_full_resolution(prepare_full_resolution(img, labels, ids, FitConfig(**base), seed=0), logits)
    assert (both.argmax(-1)[24:34, 24:34] == 1).all()
    one = finish_full_resolution(prepare_full_resolution(img, labels, ids, FitConfig(**base, refine_connected=True),
                                                         seed=0), logits)
    assert (one.argmax(-1)[8:18, 8:18] == 1).all() and (one.argmax(-1)[24:34, 24:34] == 0).all()
    np.testing.assert_allclose(one.sum(-1), 1, atol=1e-5)
    # the object's background pixels are untouched
    np.testing.assert_array_equal(one[:4, :4], both[:4, :4])


def test_dense_labels_keep_every_class_to_its_labelled_regions():
    """Three classes: class 1 wins two squares but is labelled in one only; with
    ``refine_dense_connected`` and dense labels the other square goes to the next most likely
    class in the walk's answer, and nothing changes for sparse labels, boxes, or with the field off."""
    import torch

    from dipseg.boxes import Box
    from dipseg.dip.config import FitConfig
    from dipseg.dip.refine import finish_full_resolution, prepare_full_resolution

    rng = np.random.default_rng(0)
    img = np.clip(60 + rng.normal(0, 2, (40, 40, 3)), 0, 255).astype(np.uint8)
    img[4:16, 4:16] = img[24:36, 24:36] = 220
    img[24:36, 4:16] = 140
    labels = np.full((40, 40), IGNORE)
    labels[::3, ::3] = 0  # a dense grid of background labels ...
    labels[4:16, 4:16] = labels[24:36, 4:16] = labels[24:36, 24:36] = IGNORE
    labels[4:16, 4:16][::3, ::3] = 1  # ... of the first square
    labels[24:36, 4:16][::3, ::3] = 2  # ... and of the grey square; the second white square holds none
    logits = torch.zeros(1, 3, 40, 40)
    logits[0, 1][torch.from_numpy(img[..., 0] > 200)] = 4.0
    ids = np.array([0, 1, 2])
    base = dict(refine="random-walk", refine_size=None)

    def classes(labels, **fields):
        prepared = prepare_full_resolution(img, labels, ids, FitConfig(**base, **fields), seed=0)
        return prepared, finish_full_resolution(prepared, logits)

    prepared, off = classes(labels)
    assert not prepared.dense_connected and (off.argmax(-1)[26:34, 26:34] == 1).all()
    prepared, on = classes(labels, refine_dense_connected=True)
    assert prepared.dense_connected
    runner_up = off.copy()
    runner_up[..., 1] = 0
    np.testing.assert_array_equal(on.argmax(-1)[24:36, 24:36], runner_up.argmax(-1)[24:36, 24:36])
    assert (on.argmax(-1)[26:34, 26:34] != 1).all()
    assert (on.argmax(-1)[6:14, 6:14] == 1).all() and (on.argmax(-1)[26:34, 6:14] == 2).all()
    np.testing.assert_allclose(on.sum(-1), 1, atol=1e-5)
    # sparse labels (coverage under refine_dense_from) and boxes leave the rule off
    sparse = np.full((40, 40), IGNORE)
    sparse[0, 0], sparse[8, 8], sparse[30, 8] = 0, 1, 2
    assert not classes(sparse, refine_dense_connected=True)[0].dense_connected
    boxed = prepare_full_resolution(img, labels, ids, FitConfig(**base, refine_dense_connected=True), seed=0,
                                    boxes=[Box(1, 4, 4, 16, 16)])
    assert not boxed.dense_connected


def test_the_click_preset_keeps_its_own_connected_rule_only():
    from dipseg.dip.presets import PRESETS

    assert PRESETS["fast"].fit.refine_dense_connected
    assert PRESETS["clicks"].fit.refine_connected and not PRESETS["clicks"].fit.refine_dense_connected
