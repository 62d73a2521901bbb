import itertools

import numpy as np
import pytest

from dipseg.dip.refine import RandomWalk
from dipseg.features import edge_weights
from dipseg.graphcut import SCALE, binary_graph_cut
from dipseg.labels import IGNORE


def _energy(x, cost0, cost1, wy, wx, weight):
    unary = np.where(x, cost1, cost0).sum()
    pair = (wy * (x[1:] != x[:-1])).sum() + (wx * (x[:, 1:] != x[:, :-1])).sum()
    return unary + weight * pair


def test_without_pairwise_cost_each_pixel_takes_its_cheaper_label():
    rng = np.random.default_rng(0)
    c0, c1 = rng.random((6, 7)), rng.random((6, 7))
    wy, wx = np.zeros((5, 7)), np.zeros((6, 6))
    out = binary_graph_cut(c0, c1, wy, wx, 1.0)
    assert out.shape == (6, 7) and out.dtype == bool
    np.testing.assert_array_equal(out, c1 < c0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_cut_is_the_exact_minimum_of_the_energy(seed):
    # 3 x 4 pixels: every one of the 4096 labellings, against the cut (up to the integer rounding)
    rng = np.random.default_rng(seed)
    c0, c1 = 3 * rng.random((3, 4)), 3 * rng.random((3, 4))
    wy, wx = rng.random((2, 4)), rng.random((3, 3))
    weight = 1.5
    fixed = np.full((3, 4), -1)
    fixed[0, 0], fixed[2, 3] = 1, 0
    best = np.inf
    for bits in itertools.product([False, True], repeat=12):
        x = np.array(bits).reshape(3, 4)
        if not x[0, 0] or x[2, 3]:
            continue
        best = min(best, _energy(x, c0, c1, wy, wx, weight))
    out = binary_graph_cut(c0, c1, wy, wx, weight, fixed)
    assert out[0, 0] and not out[2, 3]
    assert _energy(out, c0, c1, wy, wx, weight) <= best + 40 / SCALE


def test_fixed_pixels_keep_their_label_against_their_costs():
    c0 = np.zeros((5, 5))
    c1 = np.full((5, 5), 10.0)  # everything prefers label 0
    fixed = np.full((5, 5), -1)
    fixed[2, 2] = 1
    out = binary_graph_cut(c0, c1, np.ones((4, 5)), np.ones((5, 4)), 1.0, fixed)
    assert out[2, 2] and out.sum() == 1


def test_the_cut_follows_the_image_edge():
    img = np.full((20, 20, 3), 40, np.uint8)
    img[:, 10:] = 200
    rng = np.random.default_rng(0)
    p1 = np.clip(np.where(np.arange(20) >= 10, 0.7, 0.3)[None, :] + rng.normal(0, 0.25, (20, 20)), 0.01, 0.99)
    wy, wx = edge_weights(img)
    out = binary_graph_cut(-np.log(1 - p1), -np.log(p1), wy, wx, 2.0)
    expected = np.zeros((20, 20), bool)
    expected[:, 10:] = True
    np.testing.assert_array_equal(out, expected)


def test_a_long_seed_line_does_not_outweigh_a_click_as_in_a_random_walk():
    # An even region inside a frame of label 0 (the click protocol's background seeds), one
    # small seed of label 1 inside, and costs that favour label 1 everywhere: the walk gives
    # most of the region to the frame, the cut gives it to the seed.
    img = np.full((40, 40, 3), 120, np.uint8)
    labels = np.full((40, 40), IGNORE)
    labels[[0, -1]] = 0
    labels[:, [0, -1]] = 0
    labels[19, 19] = 1
    prob = np.full((40, 40, 2), 0.2, np.float32)
    prob[..., 1] = 0.8
    walk = RandomWalk(img, labels, np.array([0, 1]), strength=1e-6)
    walked = walk.solve(prob)[..., 1] > 0.5
    cut = walk.cut(prob, 1.0)
    assert walked.mean() < 0.5
    assert cut[1:-1, 1:-1, 1].all() and not cut[..., 1][labels == 0].any()
    np.testing.assert_array_equal(cut.sum(-1), 1)


def test_a_weight_too_large_for_int32_flows_is_scaled_down_not_overflowed():
    # neighbour capacities summing past 2**31 at the default resolution: the answer is still exact
    rng = np.random.default_rng(0)
    c0, c1 = rng.random((30, 30)), rng.random((30, 30))
    wy, wx = np.ones((29, 30)), np.ones((30, 29))
    fixed = np.full((30, 30), -1)
    fixed[0, 0] = 1
    out = binary_graph_cut(c0, c1, wy, wx, 1e6, fixed)  # the pairwise term dominates: one label everywhere
    assert out.all()


def test_inputs_are_left_unmodified():
    rng = np.random.default_rng(0)
    c0, c1 = rng.random((4, 4)), rng.random((4, 4))
    wy, wx = rng.random((3, 4)), rng.random((4, 3))
    fixed = np.full((4, 4), -1)
    fixed[0, 0] = 1
    copies = [a.copy() for a in (c0, c1, wy, wx, fixed)]
    binary_graph_cut(c0, c1, wy, wx, 1.0, fixed)
    for a, b in zip((c0, c1, wy, wx, fixed), copies):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    (dict(cost1=np.zeros((4, 5))), "one shape"),
    (dict(wy=np.zeros((4, 4))), "wy must be"),
    (dict(cost0=-np.ones((4, 4))), "cost0 must be finite and >= 0"),
    (dict(wx=np.full((4, 3), np.nan)), "wx must be finite"),
    (dict(weight=0.0), "weight must be"),
    (dict(fixed=np.full((3, 3), -1)), "fixed must have shape"),
    (dict(cost0=np.full((4, 4), 1e12)), "too large"),
])
def test_bad_input_raises_a_clear_error(kwargs, match):
    args = dict(cost0=np.zeros((4, 4)), cost1=np.ones((4, 4)), wy=np.ones((3, 4)), wx=np.ones((4, 3)), weight=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        binary_graph_cut(**args)


def test_the_walk_refuses_a_cut_of_more_than_two_classes():
    img = np.zeros((8, 8, 3), np.uint8)
    labels = np.full((8, 8), IGNORE)
    labels[0, 0], labels[7, 7], labels[0, 7] = 0, 1, 2
    walk = RandomWalk(img, labels, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="two classes"):
        walk.cut(np.full((8, 8, 3), 1 / 3, np.float32), 1.0)
