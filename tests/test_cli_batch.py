"""``dipseg segment FOLDER --boxes SOURCE`` (:mod:`dipseg.cli.batch`): every image from its boxes, one COCO file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import red_square
from PIL import Image

from dipseg.boxio import rle_decode


def _run(*args):
    return subprocess.run([sys.executable, "-m", "dipseg.cli", "segment", *map(str, args)], capture_output=True,
                          text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        red_square(d, name)
    return d


def _coco(tmp_path, images):
    """A detector's COCO file, file names with folders as export tools write them."""
    js = tmp_path / "detections.json"
    js.write_text(json.dumps({
        "images": [{"id": i, "file_name": f"frames/{n}"} for i, n in enumerate(images, 1)],
        "categories": [{"id": 3, "name": "cat"}],
        "annotations": [{"image_id": i, "category_id": 3, "bbox": [18, 8, 29, 24]} for i in range(1, len(images) + 1)],
    }))
    return js


def test_folder_from_coco_writes_each_image_and_one_coco_file_and_resumes(tmp_path, folder):
    js, out = _coco(tmp_path, ["a.png", "b.png"]), tmp_path / "out"
    r = _run(folder, "--boxes", js, "-m", "grabcut", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "2 segmented, 0 already done, 1 without boxes, 0 failed" in r.stdout
    coco = json.loads((out / "annotations.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == ["a.png", "b.png"]  # c.png has no boxes
    assert coco["categories"] == [{"id": 8, "name": "cat"}]
    for im, ann in zip(coco["images"], coco["annotations"]):
        mask = np.asarray(Image.open(out / (im["file_name"][0] + "_mask.png")))
        assert ann["image_id"] == im["id"] and np.array_equal(rle_decode(ann["segmentation"]), mask == 8)
        assert (mask[12:28, 22:43] == 8).mean() > 0.9 and (mask[:5] == 0).all()
    assert not (out / "c_mask.png").exists()
    meta = json.loads((out / "a_meta.json").read_text())
    assert meta["job"]["boxes"] == [[8, 18.0, 8.0, 47.0, 32.0]] and meta["job"]["method"] == "grabcut"

    # a second run reads the finished images back; another seed is another job
    before = (out / "a_mask.png").stat().st_mtime_ns
    r = _run(folder, "--boxes", js, "-m", "grabcut", "-o", out)
    assert r.returncode == 0 and "0 segmented, 2 already done" in r.stdout, r.stdout + r.stderr
    assert (out / "a_mask.png").stat().st_mtime_ns == before
    assert json.loads((out / "annotations.json").read_text()) == coco
    r = _run(folder, "--boxes", js, "-m", "grabcut", "-o", out, "--seed", 1)
    assert r.returncode == 0 and "2 segmented, 0 already done" in r.stdout, r.stdout + r.stderr


def test_folder_of_box_files_and_a_bad_one(tmp_path, folder):
    boxes, out = tmp_path / "Annotations", tmp_path / "out"
    boxes.mkdir()
    (boxes / "a.xml").write_text("<annotation><object><name>cat</name><bndbox><xmin>19</xmin><ymin>9</ymin>"
                                 "<xmax>47</xmax><ymax>32</ymax></bndbox></object></annotation>")
    (boxes / "b.csv").write_text("cat,10,10,99,20\n")  # outside the 60 px wide image
    r = _run(folder, "--boxes", boxes, "-m", "grabcut", "-o", out)
    # the bad image is named and makes the exit code 2; the others are done all the same
    assert r.returncode == 2 and "b.csv" in r.stderr and "outside" in r.stderr, r.stderr
    assert "1 segmented, 0 already done, 1 without boxes, 1 failed" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("dipseg: error: the boxes of 1 image(s)")
    assert [im["file_name"] for im in json.loads((out / "annotations.json").read_text())["images"]] == ["a.png"]


@pytest.mark.parametrize("extra, message", [
    ([], "give --boxes"),
    (["--boxes", "SOURCE", "--labels", "x.png"], "--labels: with a folder of images only --boxes is read"),
    (["--boxes", "SOURCE", "--probs"], "--probs"),
    (["--boxes", "MISSING"], "box source not found"),
    (["--boxes", "SOURCE", "-o", "FOLDER"], "-o must differ from the image folder"),
])
def test_folder_mode_bad_options_are_one_line_exit_2(tmp_path, folder, extra, message):
    js = _coco(tmp_path, ["a.png"])
    subs = {"SOURCE": js, "MISSING": tmp_path / "nope.json", "FOLDER": folder}
    args = [subs.get(a, a) for a in extra]
    if "-o" not in extra:
        args += ["-o", tmp_path / "out"]
    r = _run(folder, *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out" / "annotations.json").exists()
