"""The command line: outputs of segment/sample/demo, label files of other tools, and one-line
errors with exit code 2 that come before any work (and before torch is imported)."""

import json
import os
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
ANDRADE_PALETTE = [0, 0, 0, 255, 255, 207, 219, 0, 0, 0, 0, 219]
SEEDS = [(5, 5), (30, 30), (12, 12)]  # one seed square per region of three_regions(40)


@pytest.fixture
def files(tmp_path):
    img, gt = three_regions(40)
    Image.fromarray(img).save(tmp_path / "img.png")
    labels = np.full(gt.shape, IGNORE)
    for c, (y, x) in enumerate(SEEDS):
        labels[y - 1 : y + 2, x - 1 : x + 2] = c
    write_labels(tmp_path / "labels.png", labels)
    Image.fromarray(gt.astype(np.uint8), mode="L").save(tmp_path / "gt.png")
    return tmp_path, gt


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(r, message):
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.output, r.output
    assert lines[0].startswith("dipseg: error: "), r.output


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
    assert meta["version"] and meta["threads"] == 1
    assert meta["label_file"] == {"kind": "index", "format": "voc", "unlabelled": 255}
    assert meta["class_names"] == {"0": "background", "1": "aeroplane", "2": "bicycle"}  # a VOC palette PNG
    assert not [p for p in (d / "out").iterdir() if p.name.startswith(".dipseg")]  # the write test left nothing


def test_threads_change_is_recorded(files):
    d, _ = files
    r = run("segment", d / "img.png", "--labels", d / "labels.png", "-o", d / "o", "--threads", 2, "--iterations", 2)
    assert r.exit_code == 0, r.output
    assert json.loads((d / "o" / "img_meta.json").read_text())["threads"] == 2


def test_segment_with_a_baseline(files):
    d, gt = files
    r = run("segment", d / "img.png", "--labels", d / "labels.png", "-o", d / "o", "--method", "random-walker")
    assert r.exit_code == 0, r.output
    with Image.open(d / "o" / "img_mask.png") as m:
        assert (np.asarray(m) == gt).mean() > 0.9
    assert json.loads((d / "o" / "img_meta.json").read_text())["threads"] is None


def test_single_class_says_so(files):
    d, _ = files
    lab = np.full((40, 40), IGNORE)
    lab[3, 3] = 15
    write_labels(d / "one.png", lab)
    r = run("segment", d / "img.png", "--labels", d / "one.png", "-o", d / "o1")
    assert r.exit_code == 0
    assert "only class 15 is labelled" in r.output


# ----------------------------------------------------------------------------- label files of other tools


def _zero_unlabelled(d, palette=None, n=3):
    """Seed squares of the first ``n`` regions as values 1..n on 0 (unlabelled), as napari, ilastik or Andrade write them."""
    values = np.zeros((40, 40), np.uint8)
    for c, (y, x) in enumerate(SEEDS[:n]):
        values[y - 1 : y + 2, x - 1 : x + 2] = c + 1
    img = Image.fromarray(values, mode="P" if palette else "L")
    if palette:
        img.putpalette(palette + [0] * (768 - len(palette)))
    img.save(d / "zero.png")


def test_grabcut_scribbles_are_read_as_foreground_and_background(files):
    d, gt = files
    _zero_unlabelled(d, ANDRADE_PALETTE, n=2)  # region 0 scribbled 1 = foreground, region 1 2 = background
    r = run("segment", d / "img.png", "--labels", d / "zero.png", "-o", d / "o", "-m", "random-walker")
    assert r.exit_code == 0, r.output
    assert "read as GrabCut scribbles" in r.output and "warning" not in r.output
    assert "foreground" in r.output and "background" in r.output and "aeroplane" not in r.output
    meta = json.loads((d / "o" / "img_meta.json").read_text())
    assert meta["label_file"]["format"] == "grabcut" and meta["class_names"] == {"0": "background", "1": "foreground"}
    with Image.open(d / "o" / "img_mask.png") as m:
        mask = np.asarray(m)
    assert mask[5, 5] == 1 and mask[30, 30] == 0


def test_zero_unlabelled_file_warns_and_unlabelled_0_reads_it(files):
    d, gt = files
    _zero_unlabelled(d)
    r = run("segment", d / "img.png", "--labels", d / "zero.png", "-o", d / "o", "-m", "random-walker")
    assert r.exit_code == 0
    assert "dipseg: warning: " in r.stderr and "pass --unlabelled 0" in r.stderr
    r = run("segment", d / "img.png", "--labels", d / "zero.png", "-o", d / "o", "-m", "random-walker", "--unlabelled", 0)
    assert r.exit_code == 0 and "warning" not in r.output
    assert "class 1" in r.stdout and "aeroplane" not in r.stdout  # a grayscale file: no VOC names
    with Image.open(d / "o" / "img_mask.png") as m:
        assert (np.asarray(m) == gt + 1).mean() > 0.9


def test_colour_scribbles_on_black_with_unlabelled_colour(files):
    from dipseg.palette import colourize

    d, gt = files
    lab = np.full((40, 40), IGNORE)
    for c, (y, x) in enumerate(SEEDS):
        lab[y - 1 : y + 2, x - 1 : x + 2] = c + 1
    rgb = colourize(lab)
    rgb[lab < 0] = 0  # unlabelled = black, as in CVAT's mask exports
    Image.fromarray(rgb).save(d / "black.png")
    r = run("segment", d / "img.png", "--labels", d / "black.png", "-o", d / "o", "-m", "random-walker",
            "--unlabelled", "0,0,0")
    assert r.exit_code == 0, r.output
    with Image.open(d / "o" / "img_mask.png") as m:
        assert (np.asarray(m) == gt + 1).mean() > 0.9


def test_class_names_from_a_classes_file(files):
    d, _ = files
    (d / "names.txt").write_text("sky\nsea\nsun\n")
    r = run("segment", d / "img.png", "--labels", d / "labels.png", "-o", d / "o", "-m", "random-walker",
            "--classes", d / "names.txt")
    assert r.exit_code == 0, r.output
    assert "sky" in r.stdout and "sun" in r.stdout and "aeroplane" not in r.stdout
    assert json.loads((d / "o" / "img_meta.json").read_text())["class_names"] == {"0": "sky", "1": "sea", "2": "sun"}


def test_16_bit_image_is_segmented_not_clipped(files):
    d, gt = files
    img16 = np.where(gt == 1, 60000, np.where(gt == 2, 30000, 2000)).astype(np.uint16)
    Image.fromarray(img16).save(d / "img16.png")  # clipped at 255, all three regions would be white
    r = run("segment", d / "img16.png", "--labels", d / "labels.png", "-o", d / "o", "-m", "random-walker")
    assert r.exit_code == 0, r.output
    with Image.open(d / "o" / "img16_mask.png") as m:
        assert (np.asarray(m) == gt).mean() > 0.95


# ----------------------------------------------------------------------------- sample


@pytest.mark.parametrize("sampler", ["uniform", "blobs"])
def test_sample_round_trip(files, sampler):
    d, gt = files
    r = run("sample", d / "gt.png", "--sampler", sampler, "--pixels", 20, "--seed", 1, "-o", d / sampler)
    assert r.exit_code == 0, r.output
    with Image.open(d / sampler / "gt_labels.png") as im:
        lab = np.asarray(im).astype(int)
    for c in range(3):
        assert ((lab == c) & (gt == c)).sum() == 20 and ((lab == c) & (gt != c)).sum() == 0


def test_sample_reads_grabcut_masks_with_255_as_foreground(files):
    d, _ = files
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255
    mask[9, 9:31] = 128  # GrabCut's unknown band
    Image.fromarray(mask, mode="L").save(d / "mask.bmp")
    r = run("sample", d / "mask.bmp", "--sampler", "uniform", "--pixels", 15, "-o", d / "s")
    assert r.exit_code == 0, r.output
    assert "binary mask" in r.output and "{0: 15, 1: 15}" in r.output
    with Image.open(d / "s" / "mask_labels.png") as im:
        lab = np.asarray(im).astype(int)
    assert (lab[mask == 255] == 1).sum() == 15 and (lab[mask == 0] == 0).sum() == 15 and (lab[mask == 128] == 255).all()


def test_sample_refuses_ground_truth_without_classes(files):
    d, _ = files
    write_labels(d / "void.png", np.full((10, 10), IGNORE))  # a VOC map that is void everywhere
    Image.fromarray(np.full((10, 10), 255, np.uint8), mode="L").save(d / "white.png")  # not a 0/255 mask
    for name in ("void", "white"):
        r = run("sample", d / f"{name}.png", "--sampler", "uniform", "--pixels", 3, "-o", d / "s")
        one_error_line(r, "no pixel of any class")
        assert not (d / "s" / f"{name}_labels.png").exists()


# ----------------------------------------------------------------------------- one-line errors


def _bad_cases(d):
    Image.fromarray(np.zeros((41, 40), np.uint8), mode="L").save(d / "small.png")
    Image.fromarray(np.full((40, 40), 255, np.uint8), mode="L").save(d / "empty.png")
    Image.fromarray(np.full((40, 40), 99, np.uint8), mode="L").save(d / "badval.png")
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., :] = (224, 224, 192)
    rgb[4, 4] = (10, 200, 30)
    Image.fromarray(rgb).save(d / "badcolour.png")
    (d / "notimage.png").write_text("hello")
    (d / "afile").write_text("x")
    (d / "names.txt").write_text("a\nb\n")
    Image.fromarray(np.array([[0, 1], [255, 255]], np.uint8), mode="L").save(d / "gt255.png")
    img, lab = d / "img.png", d / "labels.png"
    seg = ["segment", img, "--labels", lab]
    smp = ["sample", d / "gt.png", "--sampler", "uniform", "--pixels", 3]
    return {
        "missing image": (["segment", d / "nope.jpg", "--labels", lab], "image file not found"),
        "unreadable image": (["segment", d / "notimage.png", "--labels", lab], "cannot read image"),
        "missing labels": (["segment", img, "--labels", d / "nope.png"], "label file not found"),
        "other size": (["segment", img, "--labels", d / "small.png"], "label map is 40x41"),
        "no labels": (["segment", img, "--labels", d / "empty.png"], "no labelled pixel"),
        "bad value": (["segment", img, "--labels", d / "badval.png"], "label value 99 is not a class"),
        "bad colour": (["segment", img, "--labels", d / "badcolour.png"], "leave unlabelled pixels transparent"),
        "too large": ([*seg, "--max-pixels", 100], "more than the limit of 100"),
        "max pixels above Pillow's": ([*seg, "--max-pixels", 10**10], "--max-pixels"),
        "unknown preset": ([*seg, "--preset", "huge"], "unknown preset 'huge'"),
        "unknown method": ([*seg, "--method", "magic"], "unknown method 'magic'"),
        "bad device": ([*seg, "--device", "tpu"], "device must be"),
        "iterations 0": ([*seg, "--iterations", 0], "'--iterations'"),
        "iterations text": ([*seg, "--iterations", "many"], "'--iterations'"),
        "negative seed": ([*seg, "--seed", -1], "'--seed'"),
        "huge seed": ([*seg, "--seed", 2**40], "'--seed'"),
        "threads 0": ([*seg, "--threads", 0], "'--threads'"),
        "negative rgb weight": ([*seg, "--rgb-weight", -1], "'--rgb-weight'"),
        "one class": ([*seg, "--num-classes", 1], "'--num-classes'"),
        "unknown option": ([*seg, "--colour", "red"], "No such option"),
        "missing labels option": (["segment", img], "--labels"),
        "probs with a baseline": ([*seg, "-m", "grabcut", "--probs"], "--probs: grabcut gives no class probabilities"),
        "iterations with a baseline": ([*seg, "-m", "grabcut", "-n", 5], "apply to DIPSEG only"),
        "bad unlabelled": ([*seg, "--unlabelled", "none"], "--unlabelled 'none'"),
        "colour unlabelled on index file": ([*seg, "--unlabelled", "0,0,0"], "give --unlabelled VALUE"),
        "value unlabelled on colour file": (["segment", img, "--labels", d / "badcolour.png", "--unlabelled", 0],
                                            "give --unlabelled R,G,B"),
        "unknown label format": ([*seg, "--label-format", "napari"], "unknown --label-format 'napari'"),
        "missing classes file": ([*seg, "--classes", d / "nope.txt"], "classes file not found"),
        "classes against num-classes": ([*seg, "--classes", d / "names.txt", "--num-classes", 5], "names 2 classes"),
        "out is a file name": ([*seg, "-o", d / "mask.png"], "looks like a file name; -o is the output folder"),
        "out is a file": ([*seg, "-o", d / "afile"], "is a file; -o is the output folder"),
        "out under a file": ([*seg, "-o", d / "afile" / "sub"], "is a file, not a folder"),
        "bad sampler": (["sample", d / "gt.png", "--sampler", "grid", "--pixels", 3], "unknown sampler"),
        "rgb gt": (["sample", d / "img.png", "--sampler", "uniform", "--pixels", 3], "expected an index"),
        "pixels 0": (["sample", d / "gt.png", "--sampler", "uniform", "--pixels", 0], "'--pixels'"),
        "void 300": ([*smp, "--void", 300], "'--void'"),
        "sample seed": ([*smp, "--seed", -5], "'--seed'"),
        "sample out is a file name": ([*smp, "-o", d / "labels_out.png"], "looks like a file name"),
        "sample out without a suffix under a file": ([*smp, "-o", d / "afile" / "x"], "is a file, not a folder"),
        "sample class 255": (["sample", d / "gt255.png", "--sampler", "uniform", "--pixels", 1, "--void", 0],
                             "value 255 is a class here"),
        "demo seed": (["demo", "--seed", -1, "-o", d / "demo"], "'--seed'"),
        "demo preset": (["demo", "--preset", "huge", "-o", d / "demo"], "unknown preset 'huge'"),
        "demo out is a file": (["demo", "-o", d / "afile"], "is a file"),
    }


def test_bad_input_one_line_exit_2(files, monkeypatch):
    d, _ = files

    def no_fit(*a, **k):
        raise AssertionError("a fit started before the bad input was found")

    monkeypatch.setattr("dipseg.api.segment", no_fit)
    cases = _bad_cases(d)
    assert len(cases) >= 40
    for case, (args, message) in cases.items():
        extra = ["-o", str(d / "o")] if args[0] in ("segment", "sample") and "-o" not in args else []
        r = runner.invoke(app, [str(a) for a in args] + extra)
        assert r.exit_code == 2, (case, r.output)
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.output, (case, r.output)
        assert lines[0].startswith("dipseg: error: "), (case, r.output)
        assert not (d / "o").exists(), case  # nothing written, not even the folder


def test_output_checked_before_the_fit(files, monkeypatch):
    d, _ = files
    monkeypatch.setattr("dipseg.api.segment", lambda *a, **k: pytest.fail("the fit started"))
    (d / "o" / "img_mask.png").mkdir(parents=True)
    r = run("segment", d / "img.png", "--labels", d / "labels.png", "-o", d / "o")
    one_error_line(r, "img_mask.png: it is a folder")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write in any folder")
def test_read_only_output_folder_is_refused_before_the_fit(files, monkeypatch):
    d, _ = files
    monkeypatch.setattr("dipseg.api.segment", lambda *a, **k: pytest.fail("the fit started"))
    (d / "ro").mkdir()
    (d / "ro").chmod(0o500)
    try:
        r = run("segment", d / "img.png", "--labels", d / "labels.png", "-o", d / "ro" / "out")
    finally:
        (d / "ro").chmod(0o700)
    one_error_line(r, "cannot write in")


def test_bench_checks_seed_device_and_iterations_before_any_job(tmp_path):
    from benchutil import make_voc

    voc = make_voc(tmp_path / "voc", n=1)
    base = ["bench", "--dataset", "voc", "--root", voc, "--methods", "grabcut", "--labels", "uniform:2", "--quiet"]
    cases = [(["--seed", -1], "'--seed'"), (["--seed", 2**31 - 1, "--seeds", 2], "--seed must be in 0..2147483647"),
             (["--iterations", 0], "'--iterations'"), (["--device", "tpu"], "unknown device 'tpu'"),
             (["-o", tmp_path / "results.json"], "looks like a file name")]
    try:
        import torch

        if not torch.cuda.is_available():
            cases.append((["--device", "cuda"], "CUDA is not available"))
    except ImportError:  # pragma: no cover
        pass
    for extra, message in cases:
        args = [*base, *extra] + ([] if "-o" in extra else ["-o", tmp_path / "out"])
        r = run(*args)
        assert r.exit_code == 2, (extra, r.output)
        assert r.stderr.strip().count("\n") == 0 and message in r.stderr, (extra, r.stderr)
        assert not (tmp_path / "out" / "results.jsonl").exists()


def test_bench_rows_record_threads(tmp_path):
    from benchutil import make_voc

    voc = make_voc(tmp_path / "voc", n=1)
    r = run("bench", "--dataset", "voc", "--root", voc, "--methods", "grabcut,dipseg", "--labels", "uniform:2",
            "--iterations", 2, "--workers", 1, "--threads", 1, "--examples", 0, "--quiet", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sorted(row["method"] for row in rows) == ["dipseg", "grabcut"] and all(row["threads"] == 1 for row in rows)


def test_bad_arguments_fail_without_importing_torch(files):
    d, _ = files
    seg = ["segment", str(d / "img.png"), "--labels", str(d / "labels.png"), "-o", str(d / "o")]
    cases = [
        ["segment", str(d / "nope.jpg"), "--labels", "x.png"],
        [*seg, "--iterations", "0"],
        [*seg, "--seed", "-1"],
        [*seg, "--device", "tpu"],
        [*seg, "--method", "magic"],
        [*seg, "-o", str(d / "mask.png")],
        [*seg, "--unlabelled", "x"],
        ["segment", str(d / "img.png"), "--labels", str(d / "gt.png"), "--num-classes", "2"],  # value 2 is no class
        ["sample", str(d / "gt.png"), "--sampler", "grid", "--pixels", "3"],
    ]
    code = (
        "import json, sys\nfrom dipseg.cli.main import app\ncodes = []\n"
        f"for args in {cases!r}:\n"
        "    try:\n        app(args)\n    except SystemExit as e:\n        codes.append(e.code)\n"
        "heavy = [m for m in ('torch', 'cv2', 'sklearn', 'scipy', 'fastapi', 'rich') if m in sys.modules]\n"
        "print(json.dumps([codes, heavy]))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    codes, heavy = json.loads(p.stdout.strip().splitlines()[-1])
    assert codes == [2] * len(cases), p.stderr
    assert heavy == [], f"a bad argument imported {heavy}"
    assert p.stderr.count("dipseg: error: ") == len(cases) and len(p.stderr.strip().splitlines()) == len(cases)


def test_console_script_error_has_no_traceback(files):
    d, _ = files
    p = subprocess.run([sys.executable, "-m", "dipseg.cli", "segment", str(d / "nope.jpg"), "--labels", str(d / "labels.png")],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "image file not found" in p.stderr and p.stdout == ""


def test_help_is_plain_and_complete():
    for cmd in ("segment", "sample", "demo", "bench"):
        r = run(cmd, "--help")
        assert r.exit_code == 0, r.output
        assert "{" not in r.output.splitlines()[0] and "<bool>" not in r.output and "╭" not in r.output, r.output
        assert "-o, --out DIR" in r.output and "folder" in r.output
    demo = run("demo", "--help").output
    assert "--preset NAME" in demo and "DIPSEG preset" in demo
    assert "Usage: root segment [OPTIONS] IMAGE" in run("segment", "--help").output


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
    assert "cat" in r.output  # VOC colour scribbles: VOC class names


def test_bench_runs_a_sweep_file_of_named_variants(tmp_path):
    from benchutil import make_voc

    voc = make_voc(tmp_path / "voc", n=1)
    sweep = tmp_path / "variants.toml"
    sweep.write_text('labels = ["uniform:2"]\n[[methods]]\nname = "two-steps"\nfit = { iterations = 2 }\n'
                     '[[methods]]\nname = "shallow"\nfit = { iterations = 2 }\n'
                     'network = { channels_down = [8, 8], channels_up = [8, 8], channels_skip = [4, 4] }\n')
    r = run("bench", "--dataset", "voc", "--root", voc, "--methods", "grabcut", "--sweep", sweep, "--workers", 1,
            "--examples", 0, "--quiet", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sorted(row["label"] for row in rows) == ["grabcut", "shallow", "two-steps"]
    assert next(row for row in rows if row["label"] == "shallow")["config"]["network"]["channels_down"] == [8, 8]
    assert "| shallow |" in (tmp_path / "out" / "summary.md").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text('[[methods]]\nname = "x"\nfit = { colour = 1 }\n')
    r = run("bench", "--dataset", "voc", "--root", voc, "--sweep", bad, "--labels", "uniform:2", "-o", tmp_path / "o2")
    assert r.exit_code == 2 and "bad DIPSEG option" in r.stderr and r.stderr.strip().count("\n") == 0


def test_progress_figure(files):
    d, _ = files
    r = run("segment", d / "img.png", "--labels", d / "labels.png", "-o", d / "out", "--iterations", 6,
            "--figure-steps", "0,3,6")
    assert r.exit_code == 0, r.output
    with Image.open(d / "out" / "img_progress.png") as im:
        assert im.size[0] > 4 * im.size[1] / 2  # five columns of two rows
    meta = json.loads((d / "out" / "img_meta.json").read_text())
    assert meta["files"]["progress_figure"].endswith("img_progress.png")
    for extra, message in ((["--figure-steps", "0,9"], "steps must be in 0..6"),
                           (["--figure-steps", "a"], "whole numbers"),
                           (["--method", "grabcut", "--progress-figure"], "DIPSEG methods only")):
        args = ["segment", d / "img.png", "--labels", d / "labels.png", "-o", d / "o2", *extra]
        if "--method" not in extra:
            args += ["--iterations", 6]
        one_error_line(run(*args), message)


def test_figure_default_steps_follow_the_poster():
    from dipseg.figures import parse_steps

    assert parse_steps(None, 200) == [0, 40, 200] and parse_steps(None, 100) == [0, 20, 100]
    assert parse_steps("40, 0,40", 50) == [0, 40]
