"""The command line: outputs of segment/sample/demo and one-line errors with exit code 2."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import three_regions
from dipseg.cli import app
from dipseg.io import write_labels
from dipseg.labels import IGNORE

runner = CliRunner()
FAST = ["--iterations", "40"]


@pytest.fixture
def files(tmp_path):
    img, gt = three_regions(40)
    Image.fromarray(img).save(tmp_path / "img.png")
    labels = np.full(gt.shape, IGNORE)
    for c, (y, x) in enumerate([(5, 5), (30, 30), (12, 12)]):
        labels[y - 1 : y + 2, x - 1 : x + 2] = c
    write_labels(tmp_path / "labels.png", labels)
    Image.fromarray(gt.astype(np.uint8), mode="L").save(tmp_path / "gt.png")
    return tmp_path, gt


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_segment_writes_mask_overlay_probs_meta(files):
    d, gt = files
    r = run("segment", d / "img.png", "--labels", d / "labels.png", "-o", d / "out", "--probs", "--seed", 3, *FAST)
    assert r.exit_code == 0, r.output
    with Image.open(d / "out" / "img_mask.png") as m:
        assert m.mode == "P" and m.size == (40, 40)
        mask = np.asarray(m)
    assert (mask == gt).mean() > 0.9
    assert np.load(d / "out" / "img_probs.npy").shape == (40, 40, 3)
    with Image.open(d / "out" / "img_overlay.png") as o:
        assert o.size == (40, 40)
    meta = json.loads((d / "out" / "img_meta.json").read_text())
    assert meta["seed"] == 3 and meta["method"] == "dipseg" and meta["config"]["fit"]["iterations"] == 40
    assert meta["version"]


def test_segment_with_a_baseline(files):
    d, gt = files
    r = run("segment", d / "img.png", "--labels", d / "labels.png", "-o", d / "o", "--method", "random-walker")
    assert r.exit_code == 0, r.output
    with Image.open(d / "o" / "img_mask.png") as m:
        assert (np.asarray(m) == gt).mean() > 0.9


def test_single_class_says_so(files):
    d, _ = files
    lab = np.full((40, 40), IGNORE)
    lab[3, 3] = 15
    write_labels(d / "one.png", lab)
    r = run("segment", d / "img.png", "--labels", d / "one.png", "-o", d / "o1")
    assert r.exit_code == 0
    assert "only class 15 is labelled" in r.output


@pytest.mark.parametrize("sampler", ["uniform", "blobs"])
def test_sample_round_trip(files, sampler):
    d, gt = files
    r = run("sample", d / "gt.png", "--sampler", sampler, "--pixels", 20, "--seed", 1, "-o", d / f"{sampler}.png")
    assert r.exit_code == 0, r.output
    with Image.open(d / f"{sampler}.png") as im:
        lab = np.asarray(im).astype(int)
    for c in range(3):
        assert ((lab == c) & (gt == c)).sum() == 20 and ((lab == c) & (gt != c)).sum() == 0


def _bad_cases(d):
    Image.fromarray(np.zeros((41, 40), np.uint8), mode="L").save(d / "small.png")
    Image.fromarray(np.full((40, 40), 255, np.uint8), mode="L").save(d / "empty.png")
    Image.fromarray(np.full((40, 40), 99, np.uint8), mode="L").save(d / "badval.png")
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., :] = (224, 224, 192)
    rgb[4, 4] = (10, 200, 30)
    Image.fromarray(rgb).save(d / "badcolour.png")
    (d / "notimage.png").write_text("hello")
    img, lab = d / "img.png", d / "labels.png"
    return {
        "missing image": (["segment", d / "nope.jpg", "--labels", lab], "image file not found"),
        "unreadable image": (["segment", d / "notimage.png", "--labels", lab], "cannot read image"),
        "missing labels": (["segment", img, "--labels", d / "nope.png"], "label file not found"),
        "other size": (["segment", img, "--labels", d / "small.png"], "label map is 40x41"),
        "no labels": (["segment", img, "--labels", d / "empty.png"], "no labelled pixel"),
        "bad value": (["segment", img, "--labels", d / "badval.png"], "label value 99 is not a class"),
        "bad colour": (["segment", img, "--labels", d / "badcolour.png"], r"label colour (10, 200, 30)"),
        "too large": (["segment", img, "--labels", lab, "--max-pixels", 100], "more than the limit of 100"),
        "unknown preset": (["segment", img, "--labels", lab, "--preset", "huge"], "unknown preset 'huge'"),
        "unknown method": (["segment", img, "--labels", lab, "--method", "magic"], "unknown method 'magic'"),
        "bad device": (["segment", img, "--labels", lab, "--device", "tpu"], "device must be"),
        "bad sampler": (["sample", d / "gt.png", "--sampler", "grid", "--pixels", 3, "-o", d / "x.png"], "unknown sampler"),
        "rgb gt": (["sample", d / "img.png", "--sampler", "uniform", "--pixels", 3, "-o", d / "x.png"], "expected an index"),
    }


CASES = ["missing image", "unreadable image", "missing labels", "other size", "no labels", "bad value",
         "bad colour", "too large", "unknown preset", "unknown method", "bad device", "bad sampler", "rgb gt"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_one_line_exit_2(files, case):
    d, _ = files
    args, message = _bad_cases(d)[case]
    r = runner.invoke(app, [str(a) for a in args] + ["-o", str(d / "o")] if args[0] == "segment" else [str(a) for a in args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.output, r.output


def test_console_script_error_has_no_traceback(files):
    d, _ = files
    p = subprocess.run([sys.executable, "-m", "dipseg.cli", "segment", str(d / "nope.jpg"), "--labels", str(d / "labels.png")],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "image file not found" in p.stderr and p.stdout == ""


def test_presets_and_classes_listing():
    r = run("presets")
    assert r.exit_code == 0 and "paper" in r.output and "(default)" in r.output
    r = run("classes")
    assert "tvmonitor" in r.output and "rgb(128,0,0)" in r.output


@pytest.mark.slow
def test_demo_writes_outputs(tmp_path):
    r = run("demo", "--out", tmp_path / "demo")
    assert r.exit_code == 0, r.output
    for name in ("chelsea_mask.png", "chelsea_overlay.png", "chelsea_meta.json"):
        assert (tmp_path / "demo" / name).is_file()
    with Image.open(tmp_path / "demo" / "chelsea_mask.png") as m:
        mask = np.asarray(m)
    # the cat fills most of the photo; the right edge is background
    assert (mask == 8).mean() > 0.5 and (mask[:, -20:] == 0).mean() > 0.5
