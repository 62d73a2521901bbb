"""One-shot transfer: a model fitted on one synthetic image segments shifted and resized copies;
save/load round trips (also in a fresh process); inputs that cannot transfer are refused."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import dipseg
from conftest import seeds_from, three_regions
from dipseg.dip.transfer import TransferModel, check_transferable, propagate_mask
from dipseg.dip.config import FitConfig
from dipseg.labels import IGNORE

NET = {"channels_down": (8, 16, 16), "channels_up": (8, 16, 16), "channels_skip": (4, 4, 4)}
# box_spot_min=0: six random seeds per class on a 48-px image span well under each region, so
# the default's tight box for spot labels (docs/study.md, "Spots and strokes") would clip the
# regions in the fitted network itself; these tests are about carrying a fit to new images.
QUICK = {"iterations": 150, "working_size": 40, "box_spot_min": 0}


def _acc(a, b):
    return float((a == b).mean())


@pytest.fixture(scope="module")
def fitted():
    img, gt = three_regions(48)
    labels = seeds_from(gt, 6)
    model = dipseg.fit_model(img, labels, seed=0, network=NET, **QUICK)
    return img, gt, labels, model


def test_segments_a_shifted_copy(fitted):
    img, gt, labels, model = fitted
    shifted, gt_s = np.roll(img, 3, axis=1), np.roll(gt, 3, axis=1)
    before = shifted.copy()
    res = model.predict(shifted, box=False)
    assert np.array_equal(shifted, before)  # input unmodified
    assert res.classes.shape == gt.shape and res.probabilities.shape == (48, 48, 3)
    assert set(np.unique(res.classes)) <= {0, 1, 2}
    assert _acc(res.classes, gt_s) > 0.88
    assert res.info["noise"] == "fit" and res.method == "dipseg-transfer"
    assert (res.pseudo_labels != IGNORE).any()
    np.testing.assert_allclose(res.probabilities.sum(-1), 1, atol=1e-4)
    none = model.predict(shifted, refine="none", box=False)
    assert _acc(none.classes, gt_s) > 0.85
    assert res.metadata()["class_ids"] == [0, 1, 2]


def test_other_size_regenerates_noise_from_the_seed(fitted):
    img, gt, labels, model = fitted
    import cv2

    big = cv2.resize(img, (72, 60), interpolation=cv2.INTER_NEAREST)
    gt_big = cv2.resize(gt.astype(np.uint8), (72, 60), interpolation=cv2.INTER_NEAREST)
    a, b = model.predict(big, box=False), model.predict(big, box=False)
    assert a.classes.shape == (60, 72) and a.info["noise"] == "regenerated"
    assert np.array_equal(a.classes, b.classes)  # the regenerated noise is the seed's, every time
    assert _acc(a.classes, gt_big) > 0.85


def test_the_source_image_gives_about_the_fit(fitted):
    img, gt, labels, model = fitted
    assert _acc(model.predict(img, box=False).classes, model.source.classes) > 0.88


def test_save_load_round_trip(fitted, tmp_path):
    img, gt, labels, model = fitted
    path = model.save(tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)  # plain content only
    assert data["format"] == "dipseg-model" and data["class_ids"] == [0, 1, 2] and data["seed"] == 0
    loaded = dipseg.load_model(path)
    assert loaded.config == model.config and loaded.network == model.network
    other = np.roll(img, -2, axis=0)
    assert np.array_equal(loaded.predict(other).classes, model.predict(other).classes)
    np.save(tmp_path / "other.npy", other)
    # a fresh process gives the same mask
    code = ("import numpy as np, dipseg; m = dipseg.load_model(r'%s'); "
            "np.save(r'%s', m.predict(np.load(r'%s')).classes)") % (path, tmp_path / "mask.npy", tmp_path / "other.npy")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert np.array_equal(np.load(tmp_path / "mask.npy"), model.predict(other).classes)


def test_propagate_mask_follows_a_shift_and_distrusts_new_content():
    rng = np.random.default_rng(0)
    img = (rng.random((64, 64, 3)) * 60 + 40).astype(np.uint8)
    img[20:44, 16:40] = (220, 60, 60)
    mask = np.zeros((64, 64), np.int64)
    mask[20:44, 16:40] = 1
    before = img.copy()
    moved = np.roll(img, 4, axis=1)
    seeds, consistent = propagate_mask(mask, img, moved, np.array([0, 1]))
    assert np.array_equal(img, before)
    assert seeds.shape == (64, 64) and consistent.dtype == bool
    inside = seeds[24:40, 26:40]  # well inside the shifted square
    assert (inside == 1).mean() > 0.9
    assert (seeds[:, 50:] == 0).mean() > 0.8
    assert consistent.mean() > 0.5
    unrelated = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    _, consistent = propagate_mask(mask, img, unrelated, np.array([0, 1]))
    assert consistent.mean() < 0.1
    # a target of another size gets seeds of its own size
    big = np.repeat(np.repeat(moved, 2, 0), 2, 1)
    seeds, consistent = propagate_mask(mask, img, big, np.array([0, 1]))
    assert seeds.shape == consistent.shape == (128, 128)


def test_mask_seeding_modes(fitted, tmp_path):
    img, gt, labels, model = fitted
    assert model.source_mask.shape == gt.shape and model.source_image.shape == img.shape
    shifted, gt_s = np.roll(img, 3, axis=1), np.roll(gt, 3, axis=1)
    flow, off = model.predict(shifted, box=False), model.predict(shifted, box=False, mask="off")
    assert flow.info["mask_seeded"] > 0 and off.info["mask_seeded"] == 0
    assert _acc(flow.classes, gt_s) > 0.88
    assert model.predict(shifted, box=False, mask="agree").info["mask_seeded"] > 0
    loaded = dipseg.load_model(model.save(tmp_path / "m.pt"))
    assert np.array_equal(loaded.source_mask, model.source_mask)
    assert np.array_equal(loaded.source_image, model.source_image)
    assert np.array_equal(loaded.predict(shifted).classes, model.predict(shifted).classes)
    with pytest.raises(ValueError, match="mask"):
        model.predict(shifted, mask="bogus")


def test_finetune_runs_and_keeps_the_classes(fitted):
    img, gt, labels, model = fitted
    shifted, gt_s = np.roll(img, 3, axis=1), np.roll(gt, 3, axis=1)
    res = model.predict(shifted, finetune=5, box=False)
    assert res.info["finetune"] == 5 and res.classes.shape == gt.shape
    assert _acc(res.classes, gt_s) > 0.85
    # the model itself is not changed by a fine-tune
    assert np.array_equal(model.predict(shifted).classes, model.predict(shifted).classes)


@pytest.mark.parametrize("mode", ["noise", "noise+xy"])
def test_noise_only_inputs_cannot_transfer(mode):
    img, gt = three_regions(32)
    with pytest.raises(ValueError, match="cannot be applied to another image"):
        dipseg.fit_model(img, seeds_from(gt, 4), input=mode, iterations=5, network=NET)
    with pytest.raises(ValueError, match="never the image"):
        check_transferable(FitConfig(input=mode))


def test_bad_inputs(fitted, tmp_path):
    img, gt, labels, model = fitted
    one = np.full(gt.shape, IGNORE)
    one[3, 3] = 1
    with pytest.raises(ValueError, match="two classes"):
        dipseg.fit_model(img, one, iterations=5, network=NET)
    with pytest.raises(ValueError, match="only DIPSEG"):
        dipseg.fit_model(img, labels, "grabcut")
    with pytest.raises(ValueError, match="shape"):
        model.predict(img[..., 0])
    with pytest.raises(ValueError, match="refine"):
        model.predict(img, refine="bogus")
    with pytest.raises(ValueError, match="confidence"):
        model.predict(img, confidence=1.5)
    with pytest.raises(ValueError, match="finetune"):
        model.predict(img, finetune=-1)
    with pytest.raises(ValueError, match="does not exist"):
        dipseg.load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a dipseg model"):
        dipseg.load_model(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a dipseg model"):
        dipseg.load_model(tmp_path / "other.pt")
    path = model.save(tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    data["fit"]["a_future_setting"] = 1
    torch.save(data, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="does not know"):
        TransferModel.load(tmp_path / "future.pt")
