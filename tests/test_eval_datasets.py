"""Dataset readers on tiny fake trees, plus one smoke test per real dataset in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dipseg.eval.datasets import (
    CAMVID_CLASSES,
    CamVidDataset,
    GrabCutDataset,
    Sample,
    VOCDataset,
    default_root,
    open_dataset,
)
from dipseg.io import PALETTE, VOC_CLASSES, InputError
from dipseg.labels import IGNORE, VOID

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _palette_png(path: Path, index: np.ndarray) -> None:
    img = Image.fromarray(index.astype(np.uint8), mode="P")
    img.putpalette(PALETTE.ravel().tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _make_voc(base: Path, ids=("2007_000001", "2007_000002", "2007_000003"), split="val") -> dict:
    truth = {}
    for k, i in enumerate(ids):
        h, w = 6 + k, 8
        gt = np.zeros((h, w), np.uint8)
        gt[1:4, 2:6] = 15  # person
        gt[0, :] = 255  # void border
        (base / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb(h, w, k)).save(base / "JPEGImages" / f"{i}.jpg")
        _palette_png(base / "SegmentationClass" / f"{i}.png", gt)
        truth[i] = gt
    (base / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return truth


# --------------------------------------------------------------------------- VOC


@pytest.mark.parametrize("layout", ["direct", "voc2012", "vocdevkit", "above-devkit"])
def test_voc_layouts(tmp_path, layout):
    base = {
        "direct": tmp_path / "voc",
        "voc2012": tmp_path / "VOC2012",
        "vocdevkit": tmp_path / "VOCdevkit" / "VOC2012",
        "above-devkit": tmp_path / "VOCdevkit" / "VOC2012",
    }[layout]
    truth = _make_voc(base)
    root = {
        "direct": tmp_path / "voc",
        "voc2012": tmp_path / "VOC2012",
        "vocdevkit": tmp_path / "VOCdevkit",
        "above-devkit": tmp_path,
    }[layout]
    ds = VOCDataset(root)
    assert len(ds) == 3 and ds.ids == list(truth)
    assert ds.num_classes == 21 and ds.class_names == VOC_CLASSES and ds.void == 255
    samples = list(ds)
    assert all(isinstance(s, Sample) for s in samples)
    for s in samples:
        assert s.image.dtype == np.uint8 and s.image.shape == truth[s.id].shape + (3,)
        assert s.gt.dtype == np.int64
        np.testing.assert_array_equal(s.gt, truth[s.id])  # palette indices, not colours
        assert s.void == 255 and s.scribbles is None
    assert ds["2007_000002"].id == "2007_000002" and ds[-1].id == "2007_000003"


def test_voc_limit_and_split(tmp_path):
    _make_voc(tmp_path, ids=("a", "b", "c"), split="train")
    ds = VOCDataset(tmp_path, split="train", limit=2)
    assert ds.ids == ["a", "b"] and len(ds) == 2
    assert len(open_dataset("voc", tmp_path, "train", limit=1)) == 1
    with pytest.raises(KeyError):
        ds["c"]
    with pytest.raises(ValueError, match="limit"):
        VOCDataset(tmp_path, split="train", limit=-1)


def test_voc_missing_split_says_what(tmp_path):
    _make_voc(tmp_path, split="train")
    with pytest.raises(InputError, match=r"no ImageSets/Segmentation/val\.txt under .*; splits there: train"):
        VOCDataset(tmp_path, split="val")


def test_voc_bad_root_says_what(tmp_path):
    with pytest.raises(InputError, match="VOC root not found"):
        VOCDataset(tmp_path / "nope")
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(InputError, match=r"no SegmentationClass/, ImageSets/ under"):
        VOCDataset(tmp_path)


def test_voc_bad_label_file(tmp_path):
    truth = _make_voc(tmp_path, ids=("x",))
    bad = truth["x"].copy()
    bad[2, 2] = 40
    _palette_png(tmp_path / "SegmentationClass" / "x.png", bad)
    with pytest.raises(InputError, match="holds value 40"):
        VOCDataset(tmp_path)[0]
    Image.fromarray(_rgb(*bad.shape)).save(tmp_path / "SegmentationClass" / "x.png")
    with pytest.raises(InputError, match="mode RGB"):
        VOCDataset(tmp_path)[0]


# --------------------------------------------------------------------------- GrabCut


def _make_grabcut(root: Path) -> None:
    for stem, ext in (("124080", ".jpg"), ("flower", ".JPG"), ("sheep", ".bmp")):
        h, w = 7, 9
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb(h, w)).save(root / "images" / f"{stem}{ext}", format="BMP" if ext == ".bmp" else "JPEG")
        mask = np.zeros((h, w), np.uint8)
        mask[2:5, 3:7] = 255
        mask[1, 3:7] = 128
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask, mode="L").save(root / "masks" / f"{stem}.bmp")
        for n, value in (("1", 1), ("2", 2)):
            anno = np.zeros((h, w), np.uint8)
            anno[3, 4] = 1
            anno[6, 0:3] = 2
            anno[0, 0] = value
            scribble_stem = "124084" if stem == "124080" else stem
            _palette_png(root / "andrade2015" / f"scribbles-set-{n}" / f"{scribble_stem}-anno.png", anno)


def test_grabcut_reader(tmp_path):
    _make_grabcut(tmp_path)
    ds = GrabCutDataset(tmp_path)
    assert ds.ids == ["124080", "flower", "sheep"]  # mixed extensions, sorted by stem
    assert ds.num_classes == 2 and ds.class_names == ("background", "foreground") and ds.void == 255
    s = ds["124080"]  # its scribbles are stored as 124084
    assert s.image.shape == (7, 9, 3)
    assert set(np.unique(s.gt)) == {0, 1, 255}
    assert s.gt[3, 4] == 1 and s.gt[0, 0] == 0 and s.gt[1, 4] == VOID  # 128 band -> void
    assert s.scribbles[3, 4] == 1 and np.all(s.scribbles[6, 0:3] == 0)
    assert s.scribbles[0, 0] == 1  # set-1 marks it foreground
    assert np.sum(s.scribbles != IGNORE) == 5
    assert GrabCutDataset(tmp_path, scribbles="set-2")[0].scribbles[0, 0] == 0
    assert GrabCutDataset(tmp_path, scribbles=None)[0].scribbles is None
    assert len(GrabCutDataset(tmp_path, limit=1)) == 1
    assert len(open_dataset("grabcut", tmp_path, "val")) == 3  # no splits: all images


def test_grabcut_errors(tmp_path):
    with pytest.raises(InputError, match="GrabCut root not found"):
        GrabCutDataset(tmp_path / "nope")
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="no masks/ folder"):
        GrabCutDataset(tmp_path)
    with pytest.raises(ValueError, match="scribbles must be"):
        GrabCutDataset(tmp_path, scribbles="set-3")
    with pytest.raises(ValueError, match="no split 'train'"):
        GrabCutDataset(tmp_path, split="train")


def test_grabcut_missing_scribbles(tmp_path):
    _make_grabcut(tmp_path)
    (tmp_path / "andrade2015" / "scribbles-set-1" / "sheep-anno.png").unlink()
    ds = GrabCutDataset(tmp_path)
    with pytest.raises(InputError, match="sheep-anno.png"):
        ds["sheep"]


# --------------------------------------------------------------------------- CamVid


def _make_camvid(root: Path, n=2) -> list[np.ndarray]:
    annots = []
    for k in range(n):
        (root / "val").mkdir(parents=True, exist_ok=True)
        (root / "valannot").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb(6, 8, k)).save(root / "val" / f"f{k}.png")
        annot = (np.arange(48).reshape(6, 8) % 12).astype(np.uint8)
        Image.fromarray(annot, mode="L").save(root / "valannot" / f"f{k}.png")
        annots.append(annot)
    return annots


def test_camvid_reader(tmp_path):
    annots = _make_camvid(tmp_path)
    ds = CamVidDataset(tmp_path)
    assert ds.ids == ["f0", "f1"] and ds.num_classes == 11 and ds.class_names == CAMVID_CLASSES
    s = ds[0]
    expected = np.where(annots[0] == 11, 255, annots[0])
    np.testing.assert_array_equal(s.gt, expected)
    assert s.gt.dtype == np.int64 and s.image.shape == (6, 8, 3) and s.scribbles is None
    assert len(open_dataset("camvid", tmp_path, limit=1)) == 1


def test_camvid_errors(tmp_path):
    with pytest.raises(InputError, match="CamVid root not found"):
        CamVidDataset(tmp_path / "nope")
    _make_camvid(tmp_path)
    with pytest.raises(InputError, match=r"no testannot/ folder|no test/ folder"):
        CamVidDataset(tmp_path, split="test")
    (tmp_path / "valannot" / "f1.png").unlink()
    with pytest.raises(InputError, match="no annotation .* f1.png"):
        CamVidDataset(tmp_path)


# --------------------------------------------------------------------------- registry


def test_open_dataset_unknown():
    with pytest.raises(ValueError, match="unknown dataset 'coco'"):
        open_dataset("coco", "/tmp")
    with pytest.raises(ValueError, match="unknown dataset"):
        default_root("coco")


def test_default_root_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DIPSEG_VOC_ROOT", str(tmp_path / "VOCdevkit"))
    assert default_root("voc") == tmp_path / "VOCdevkit"
    _make_voc(tmp_path / "VOCdevkit" / "VOC2012")
    assert len(open_dataset("voc")) == 3


def test_default_root_from_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("DIPSEG_CAMVID_ROOT", raising=False)
    _make_camvid(tmp_path / "shared" / "data" / "camvid")
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert default_root("camvid") == (tmp_path / "shared" / "data" / "camvid").resolve()


# --------------------------------------------------------------------------- real data (skipped when absent)


def _real_root(folder: str, env: str | None = None) -> Path:
    if env and os.environ.get(env):
        return Path(os.environ[env])
    root = (SHARED / folder).resolve()
    if not root.is_dir():
        pytest.skip(f"real dataset not available: {root} is missing" + (f" and {env} is unset" if env else ""))
    return root


@pytest.mark.voc
def test_real_voc():
    ds = VOCDataset(_real_root("voc2012", "DIPSEG_VOC_ROOT"), "val", limit=2)
    for s in ds:
        assert s.image.shape[:2] == s.gt.shape and s.image.dtype == np.uint8
        values = set(np.unique(s.gt).tolist())
        assert values <= set(range(21)) | {255} and 255 in values and 0 in values


def test_real_grabcut():
    ds = GrabCutDataset(_real_root("grabcut"))
    assert len(ds) == 50
    s = ds["124080"]
    assert set(np.unique(s.gt).tolist()) <= {0, 1, 255}
    assert set(np.unique(s.scribbles).tolist()) == {IGNORE, 0, 1}
    labelled = s.scribbles != IGNORE
    # real scribbles agree with the ground truth wherever it is scored
    ok = s.gt[labelled & (s.gt != VOID)] == s.scribbles[labelled & (s.gt != VOID)]
    assert ok.mean() > 0.95


def test_real_camvid():
    ds = CamVidDataset(_real_root("camvid"), "val", limit=1)
    assert len(CamVidDataset(_real_root("camvid"))) == 101
    s = ds[0]
    assert s.image.shape == (360, 480, 3)
    assert set(np.unique(s.gt).tolist()) <= set(range(11)) | {255}


def test_coco_mval_reader(tmp_path):
    from dipseg.eval.datasets import COCOMValDataset

    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    mask = np.zeros((10, 12), np.uint8)
    mask[2:6, 3:9] = 255
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "img" / "cat 00_000001.jpg")
    Image.fromarray(mask, mode="L").save(tmp_path / "gt" / "cat 00_000001.png")
    ds = COCOMValDataset(tmp_path)
    s = ds.load("cat 00_000001")
    assert ds.ids == ["cat 00_000001"] and s.gt.sum() == 24 and set(np.unique(s.gt)) == {0, 1}
    Image.fromarray(mask, mode="L").save(tmp_path / "gt" / "dog00_000002.png")
    with pytest.raises(InputError, match="has no image"):
        COCOMValDataset(tmp_path)
    (tmp_path / "gt" / "dog00_000002.png").unlink()
    bad = mask.copy()
    bad[0, 0] = 7
    Image.fromarray(bad, mode="L").save(tmp_path / "gt" / "cat 00_000001.png")
    with pytest.raises(InputError, match="holds value 7"):
        ds.load("cat 00_000001")


def test_real_coco_mval_when_present():
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_mval"
    if not root.is_dir():
        pytest.skip("COCO MVal not found at ../shared/data/coco_mval")
    ds = open_dataset("coco-mval", root)
    s = ds[0]
    assert len(ds) == 160 and s.gt.shape == s.image.shape[:2] and s.gt.max() == 1
