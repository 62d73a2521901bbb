from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import seeds_from, three_regions
from dipseg.dip.config import FitConfig, NetworkConfig
from dipseg.dip.fit import fit
from dipseg.labels import IGNORE

TINY = NetworkConfig((16, 16, 16), (16, 16, 16), (4, 4, 4))
QUICK = FitConfig(iterations=60, working_size=48, check_every=10)


def _acc(res, gt):
    return float((res.classes == gt).mean())


# Noise input interpolates labels in space, so it needs more seeds than the image-aware inputs.
@pytest.mark.parametrize("input_mode, seeds", [("noise", 25), ("noise+image", 5), ("noise+image+xy", 5)])
def test_recovers_three_regions(input_mode, seeds):
    img, gt = three_regions(48)
    labels = seeds_from(gt, seeds)
    res = fit(img, labels, TINY, FitConfig(iterations=80, working_size=48, input=input_mode, pairwise_weight=0.5), seed=0)
    assert _acc(res, gt) > 0.95
    assert res.classes.shape == gt.shape and res.probabilities.shape == (48, 48, 3)
    np.testing.assert_allclose(res.probabilities.sum(-1), 1, atol=1e-4)


@pytest.mark.parametrize("refine", ["none", "guided", "random-walk"])
def test_working_resolution_returns_full_resolution(refine):
    img, gt = three_regions(96)
    labels = seeds_from(gt, 6)
    cfg = FitConfig(iterations=60, working_size=40, refine=refine, refine_size=64, input="noise+image")
    res = fit(img, labels, TINY, cfg, seed=0)
    assert res.classes.shape == (96, 96) and res.probabilities.shape == (96, 96, 3)
    assert _acc(res, gt) > 0.9


def test_labels_are_kept_and_inputs_unmodified():
    img, gt = three_regions(40)
    labels = seeds_from(gt, 3)
    img0, lab0 = img.copy(), labels.copy()
    res = fit(img, labels, TINY, QUICK, seed=0)
    np.testing.assert_array_equal(img, img0)
    np.testing.assert_array_equal(labels, lab0)
    seeded = labels != IGNORE
    np.testing.assert_array_equal(res.classes[seeded], labels[seeded])


def test_class_ids_are_original_values():
    img, gt = three_regions(40)
    labels = seeds_from(gt, 3)
    labels[labels == 2] = 15  # sparse, non-contiguous ids
    res = fit(img, labels, TINY, QUICK, seed=0)
    assert set(np.unique(res.classes)) <= {0, 1, 15}
    np.testing.assert_array_equal(res.class_ids, [0, 1, 15])


def test_same_seed_same_result_other_seed_differs():
    img, gt = three_regions(32)
    labels = seeds_from(gt, 3)
    cfg = FitConfig(iterations=15, working_size=32)
    a = fit(img, labels, TINY, cfg, seed=1)
    b = fit(img, labels, TINY, cfg, seed=1)
    c = fit(img, labels, TINY, cfg, seed=2)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    assert not np.array_equal(a.probabilities, c.probabilities)


def test_global_rng_untouched():
    img, gt = three_regions(32)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(img, seeds_from(gt, 2), TINY, FitConfig(iterations=2, working_size=32), seed=5)
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_callback_progress_previews_and_cancel():
    img, gt = three_regions(32)
    seen = []

    def cb(p):
        seen.append((p.iteration, p.preview is not None, set(p.losses)))
        return p.iteration < 12

    res = fit(img, seeds_from(gt, 3), TINY, FitConfig(iterations=50, working_size=32), seed=0, callback=cb, preview_every=5)
    assert res.stopped == "cancelled" and res.iterations == 12
    assert [s[0] for s in seen] == list(range(0, 13))  # 0 = the quick preview before any step
    assert [s[0] for s in seen if s[1]] == [0, 5, 10]
    assert seen[1][2] == {"total", "rgb", "ce", "pairwise"}


def test_quick_preview_is_usable_and_optional():
    img, gt = three_regions(48, noise=4)
    previews = []
    fit(img, seeds_from(gt, 3), TINY, FitConfig(iterations=1, working_size=48, box_prior=3.0), seed=0,
        callback=lambda p: previews.append(p.preview) if p.iteration == 0 else None)
    assert len(previews) == 1 and (previews[0] == gt).mean() > 0.9
    seen = []
    fit(img, seeds_from(gt, 3), TINY, FitConfig(iterations=2, working_size=48, quick_preview=False), seed=0,
        callback=lambda p: seen.append(p.iteration))
    assert seen == [1, 2]


def test_cancel_at_the_quick_preview():
    img, gt = three_regions(32)
    res = fit(img, seeds_from(gt, 3), TINY, FitConfig(iterations=50, working_size=32), callback=lambda p: False)
    assert res.stopped == "cancelled" and res.iterations == 0 and res.classes.shape == gt.shape


def test_early_stop():
    img, gt = three_regions(32, noise=2)
    res = fit(img, seeds_from(gt, 4), TINY, FitConfig(iterations=2000, working_size=32, early_stop=True, check_every=10), seed=0)
    assert res.stopped == "early" and res.iterations < 2000


def test_warm_start_continues():
    img, gt = three_regions(32)
    labels = seeds_from(gt, 3)
    cfg = FitConfig(iterations=10, working_size=32)
    first = fit(img, labels, TINY, cfg, seed=0)
    weights = [p.detach().clone() for p in first.state.model.parameters()]
    second = fit(img, labels, TINY, cfg, seed=0, warm_start=first.state)
    assert second.state.model is first.state.model  # reused, and trained further
    assert any(not torch.equal(a, b) for a, b in zip(weights, second.state.model.parameters()))
    other = labels.copy()
    other[other == 2] = IGNORE  # different classes: a fresh network
    third = fit(img, other, TINY, cfg, seed=0, warm_start=first.state)
    assert third.state.model is not first.state.model


def test_rgb_weight_zero_is_the_ablation():
    img, gt = three_regions(32)
    res = fit(img, seeds_from(gt, 3), TINY, FitConfig(iterations=5, working_size=32, rgb_weight=0), seed=0)
    assert res.losses["rgb"] == 0


def test_single_class_fills_everything():
    img, _ = three_regions(16)
    labels = np.full((16, 16), IGNORE)
    labels[3, 3] = 7
    res = fit(img, labels, TINY, QUICK)
    assert res.stopped == "single-class" and np.all(res.classes == 7)


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.full((16, 16), IGNORE), "no labelled pixel"),
        (np.zeros((15, 16), np.int64), "label map is 16x15"),
        (np.full((16, 16), 1.0), "integer"),
    ],
)
def test_bad_labels(labels, match):
    img, _ = three_regions(16)
    with pytest.raises(ValueError, match=match):
        fit(img, labels, TINY, QUICK)


@pytest.mark.parametrize("shape", [(8, 8), (100, 12), (6, 300)])
def test_small_and_thin_images(shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    labels = np.full(shape, IGNORE)
    labels[0, 0], labels[-1, -1] = 0, 1
    res = fit(img, labels, NetworkConfig(), FitConfig(iterations=2, working_size=160), seed=0)
    assert res.classes.shape == shape


def test_colour_models_reach_object_parts_far_from_a_short_stroke():
    # A long yellow bar on brown, labelled by one short stroke in its middle: the box prior
    # cuts the bar off near the stroke; the colour models carry it to both ends.
    rng = np.random.default_rng(0)
    img = np.full((48, 96, 3), (120, 70, 30), np.float64)
    img[18:30, 4:92] = (230, 210, 40)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    gt = np.zeros((48, 96), np.int64)
    gt[18:30, 4:92] = 1
    labels = np.full(gt.shape, IGNORE, np.int64)
    labels[24, 44:52] = 1
    labels[4, 4:92] = 0
    labels[43, 4:92] = 0
    base = FitConfig(iterations=40, working_size=48, input="noise+image+xy", box_prior=3.0, check_every=10)
    without = fit(img, labels, TINY, base, seed=0)
    with_colour = fit(img, labels, TINY, replace(base, colour_weight=6.0, colour_coverage=False), seed=0)
    assert _acc(with_colour, gt) > 0.97
    assert _acc(with_colour, gt) > _acc(without, gt) + 0.05


def test_two_threads_prepare_the_refinement_beside_the_fit_and_change_nothing():
    img, gt = three_regions(64, noise=4)
    labels = seeds_from(gt, 4)
    cfg = FitConfig(iterations=15, working_size=32, input="noise+image+xy", refine="random-walk", refine_size=48,
                    box_prior=3.0, colour_weight=6.0, pairwise_weight=1.0)
    one = fit(img, labels, TINY, cfg, seed=3, threads=1)
    two = fit(img, labels, TINY, cfg, seed=3, threads=2)
    np.testing.assert_array_equal(one.probabilities, two.probabilities)
    np.testing.assert_array_equal(one.classes, two.classes)


def test_pairwise_term_matches_its_definition():
    from dipseg.dip.losses import OFFSETS, PairwisePotts

    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 9, 11, generator=g)
    prob = torch.softmax(torch.randn(1, 4, 9, 11, generator=g), 1)
    ref = []
    for dy, dx in OFFSETS:  # a plain loop over pixel pairs
        terms = []
        for y in range(9):
            for x in range(11):
                y1, x1 = y - dy, x - dx
                if 0 <= y1 < 9 and 0 <= x1 < 11:
                    w = torch.exp(-((image[0, :, y, x] - image[0, :, y1, x1]) ** 2).sum() / (2 * 0.1**2))
                    terms.append(w * (1 - (prob[0, :, y, x] * prob[0, :, y1, x1]).sum()))
        ref.append(torch.stack(terms).mean())
    torch.testing.assert_close(PairwisePotts(image, 0.1)(prob), torch.stack(ref).mean())


def test_jitter_windows_are_seeded_and_differ_per_step():
    from dipseg.dip.fit import JitterField

    a = JitterField((1, 2, 8, 8), 0.1, torch.Generator().manual_seed(5), torch.device("cpu"))
    b = JitterField((1, 2, 8, 8), 0.1, torch.Generator().manual_seed(5), torch.device("cpu"))
    steps = [a.next().clone() for _ in range(4)]
    assert all(torch.equal(s, b.next()) for s in steps)
    assert steps[0].shape == (1, 2, 8, 8) and not torch.equal(steps[0], steps[1])


def test_fused_adam_matches_torchs_fused_adam():
    import copy

    import torch

    from dipseg.dip.fit import FusedAdam

    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Conv2d(8, 2, 1))
    b = copy.deepcopy(a)
    reference, ours = torch.optim.Adam(a.parameters(), lr=0.01, fused=True), FusedAdam(b.parameters(), 0.01)
    x = torch.randn(2, 3, 16, 16)
    for _ in range(4):
        for model, opt in ((a, reference), (b, ours)):
            opt.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
