"""``dipseg segment --boxes``: VOC XML / COCO JSON / CSV in, mask and annotations.json (COCO RLE) out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from conftest import red_square
from PIL import Image

from dipseg.boxio import rle_decode


def _run(*args):
    return subprocess.run([sys.executable, "-m", "dipseg.cli", "segment", *args], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


def _image(tmp_path):
    return red_square(tmp_path)


def test_segment_with_voc_xml_writes_coco(tmp_path):
    img = _image(tmp_path)
    xml = tmp_path / "photo.xml"
    xml.write_text("<annotation><object><name>cat</name><bndbox><xmin>18</xmin><ymin>8</ymin><xmax>47</xmax>"
                   "<ymax>32</ymax></bndbox></object></annotation>")
    r = _run(str(img), "--boxes", str(xml), "-m", "grabcut", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert coco["images"][0]["file_name"] == "photo.png" and coco["categories"] == [{"id": 8, "name": "cat"}]
    mask = np.asarray(Image.open(tmp_path / "out" / "photo_mask.png"))
    assert np.array_equal(rle_decode(coco["annotations"][0]["segmentation"]), mask == 8)
    assert (mask[12:28, 22:43] == 8).mean() > 0.9 and (mask[:5] == 0).all()
    meta = json.loads((tmp_path / "out" / "photo_meta.json").read_text())
    assert meta["info"]["boxes"] == [[8, 17.0, 7.0, 47.0, 32.0]] and meta["labels"] is None


def test_segment_with_coco_json_of_several_images(tmp_path):
    img = _image(tmp_path)
    js = tmp_path / "boxes.json"
    js.write_text(json.dumps({"images": [{"id": 1, "file_name": "other.jpg"}, {"id": 2, "file_name": "photo.png"}],
                              "categories": [{"id": 17, "name": "cat"}],
                              "annotations": [{"image_id": 1, "category_id": 17, "bbox": [0, 0, 5, 5]},
                                              {"image_id": 2, "category_id": 17, "bbox": [18, 8, 29, 24]}]}))
    r = _run(str(img), "--boxes", str(js), "-m", "grabcut", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "out" / "photo_meta.json").read_text())
    assert meta["info"]["boxes"] == [[8, 18.0, 8.0, 47.0, 32.0]]  # the COCO name 'cat' is VOC's class 8


def test_bad_box_file_is_one_line_exit_2(tmp_path):
    img = _image(tmp_path)
    csv = tmp_path / "b.csv"
    csv.write_text("cat,10,10,99,20\n")
    r = _run(str(img), "--boxes", str(csv), "-m", "grabcut", "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "outside" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _run(str(img), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "give --labels FILE, --boxes FILE, --clicks FILE" in r.stderr


def test_tight_boxes_flag(tmp_path):
    img = _image(tmp_path)
    csv = tmp_path / "b.csv"
    csv.write_text("class,x0,y0,x1,y1\ncat,20,10,45,30\n")
    r = _run(str(img), "--boxes", str(csv), "--tight-boxes", "-n", "10", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "out" / "photo_meta.json").read_text())
    assert meta["info"]["tight_boxes"] is True
    mask = np.asarray(Image.open(tmp_path / "out" / "photo_mask.png"))
    assert (mask[10:30, 20:45] == 8).mean() > 0.9 and (mask[:8] == 0).all()
    labels = tmp_path / "l.png"
    Image.fromarray(np.where(np.arange(60)[None, :].repeat(40, 0) < 5, 0, 255).astype(np.uint8)).save(labels)
    r = _run(str(img), "--labels", str(labels), "--tight-boxes", "-o", str(tmp_path / "out2"))
    assert r.returncode == 2 and "--tight-boxes" in r.stderr and len(r.stderr.strip().splitlines()) == 1
