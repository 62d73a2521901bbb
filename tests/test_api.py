"""The one entry point: every method takes the same arrays and returns the same kind of result."""

import json

import numpy as np
import pytest

from conftest import seeds_from, three_regions
from dipseg import IGNORE, available_methods, segment
from dipseg.api import parse_method

FAST = {"iterations": 60, "working_size": 48}


@pytest.mark.parametrize("method", ["dipseg", "dipseg-norgb", "dipseg:slim", "grabcut", "random-walker", "trainable"])
def test_every_method_same_convention(method):
    img, gt = three_regions(48)
    labels = seeds_from(gt, 6)
    labels[labels == 2] = 12  # class ids need not be consecutive
    gt = np.where(gt == 2, 12, gt)
    img0, lab0 = img.copy(), labels.copy()
    overrides = FAST if method.startswith("dipseg") else {}
    seg = segment(img, labels, method, seed=0, **overrides)
    np.testing.assert_array_equal(img, img0)
    np.testing.assert_array_equal(labels, lab0)
    assert seg.classes.shape == gt.shape and seg.classes.dtype == np.int64
    assert set(np.unique(seg.classes)) <= {0, 1, 12}
    np.testing.assert_array_equal(seg.class_ids, [0, 1, 12])
    meta = json.loads(json.dumps(seg.metadata()))
    assert meta["seed"] == 0 and meta["version"] and meta["method"] == method.split(":")[0]
    if method != "dipseg-norgb" and method != "dipseg:slim":  # noise-only DIP needs more steps
        assert (seg.classes == gt).mean() > 0.9


def test_default_preset_recovers_regions_quickly():
    img, gt = three_regions(64)
    seg = segment(img, seeds_from(gt, 4), seed=0)
    assert (seg.classes == gt).mean() > 0.95


def test_norgb_sets_rgb_weight_zero():
    img, gt = three_regions(32)
    seg = segment(img, seeds_from(gt, 3), "dipseg-norgb", iterations=3)
    assert seg.config["fit"]["rgb_weight"] == 0 and seg.info["losses"]["rgb"] == 0


def test_single_class_message():
    img, _ = three_regions(16)
    labels = np.full((16, 16), IGNORE)
    labels[1, 1] = 3
    for method in ("dipseg", "grabcut"):
        seg = segment(img, labels, method)
        assert np.all(seg.classes == 3) and "only class 3" in seg.message


@pytest.mark.parametrize(
    "method, match",
    [("magic", "unknown method 'magic'"), ("dipseg:huge", "unknown preset 'huge'"), ("grabcut:paper", "unknown method")],
)
def test_bad_method_names(method, match):
    with pytest.raises(ValueError, match=match):
        parse_method(method)


def test_baselines_refuse_dipseg_options():
    img, gt = three_regions(16)
    with pytest.raises(ValueError, match="takes no DIPSEG options"):
        segment(img, seeds_from(gt, 2), "grabcut", iterations=5)


def test_available_methods():
    assert {"dipseg", "dipseg-norgb", "grabcut", "random-walker", "trainable"} <= set(available_methods())


@pytest.mark.slow
@pytest.mark.voc
def test_voc_images_default_preset(voc):
    """sample + segment on a few real VOC val images: the default preset gives sensible masks."""
    from dipseg.eval.datasets import VOCDataset
    from dipseg.samplers import sample_labels
    from dipseg.eval.metrics import confusion_matrix, scores

    ds = VOCDataset(voc, "val", limit=3)
    conf = np.zeros((21, 21), np.int64)
    for s in ds:
        labels = sample_labels(s.gt, "blobs", 100, seed=0)
        seg = segment(s.image, labels, seed=0)
        assert seg.classes.shape == s.gt.shape
        conf += confusion_matrix(s.gt, seg.classes, 21)
    sc = scores(conf)
    # the trivial all-background answer scores 0.78 pixel accuracy and 0.19 mIoU on these
    assert sc["pixel_acc"] > 0.82 and sc["miou"] > 0.5, sc


@pytest.mark.parametrize("seed", [-1, 2**31, 2**32, True, 1.5, "3"])
@pytest.mark.parametrize("method", ["dipseg", "grabcut", "random-walker", "trainable"])
def test_every_method_refuses_the_same_bad_seeds_up_front(method, seed):
    img, gt = three_regions(16)
    with pytest.raises(ValueError, match=r"seed must be (a whole number )?in 0\.\.2147483647"):
        segment(img, seeds_from(gt, 2), method, seed=seed)


def test_largest_seed_works_for_every_method():
    img, gt = three_regions(16)
    for method in ("dipseg", "grabcut", "random-walker", "trainable"):
        extra = {"iterations": 2} if method == "dipseg" else {}
        assert segment(img, seeds_from(gt, 2), method, seed=2**31 - 1, **extra).seed == 2**31 - 1


def test_bad_device_and_threads_are_refused_before_the_fit():
    img, gt = three_regions(16)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        segment(img, seeds_from(gt, 2), device="tpu")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a whole number >= 1"):
            segment(img, seeds_from(gt, 2), threads=bad)


def test_threads_are_recorded_in_the_metadata():
    from dipseg.api import DEFAULT_THREADS

    img, gt = three_regions(16)
    labels = seeds_from(gt, 2)
    assert segment(img, labels, iterations=2).metadata()["threads"] == DEFAULT_THREADS == 1
    assert segment(img, labels, iterations=2, threads=2).metadata()["threads"] == 2
    assert segment(img, labels, "grabcut").metadata()["threads"] is None


def test_callback_gets_every_loss_from_iteration_0():
    img, gt = three_regions(24)
    seen = []
    segment(img, seeds_from(gt, 2), iterations=3, callback=lambda p: seen.append((p.iteration, dict(p.losses))))
    assert [it for it, _ in seen] == [0, 1, 2, 3]
    for it, losses in seen:
        assert set(losses) == {"total", "rgb", "ce", "pairwise"}
        assert np.isnan(losses["total"]) == (it == 0)
    one = np.full((8, 8), IGNORE)
    one[1, 1] = 4
    seen.clear()
    segment(three_regions(8)[0], one, callback=lambda p: seen.append(p.losses["total"]))  # single class
    assert len(seen) == 1 and np.isnan(seen[0])
