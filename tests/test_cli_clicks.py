"""``dipseg segment --clicks``: a ``class,x,y`` CSV of clicks in, the click protocol's labels and preset."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import red_square
from PIL import Image


def _run(*args):
    return subprocess.run([sys.executable, "-m", "dipseg.cli", "segment", *args, "--iterations", "12"],
                          capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


def _image(tmp_path):
    return red_square(tmp_path)


def test_clicks_alone_run_the_click_preset_with_the_frame(tmp_path):
    img = _image(tmp_path)
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("class,x,y\ncat,32,20\n")
    r = _run(str(img), "--clicks", str(clicks), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    mask = np.asarray(Image.open(tmp_path / "out" / "photo_mask.png"))
    obj = np.zeros(mask.shape, bool)
    obj[10:30, 20:45] = True
    assert ((mask == 8) & obj).sum() / ((mask == 8) | obj).sum() > 0.8 and (mask[0] == 0).all()
    meta = json.loads((tmp_path / "out" / "photo_meta.json").read_text())
    assert meta["preset"] == "clicks" and meta["clicks"] == [[32, 20, 8]] and meta["clicks_file"] == str(clicks)
    # one disk of 81 pixels plus the 3-pixel frame (40x60 image)
    assert meta["labelled_pixels"] == 81 + 40 * 60 - 34 * 54


def test_clicks_with_labels_or_a_named_preset_add_no_frame(tmp_path):
    img = _image(tmp_path)
    clicks = tmp_path / "clicks.csv"
    clicks.write_text("cat,32,20\n")
    r = _run(str(img), "--clicks", str(clicks), "-p", "fast", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "out" / "photo_meta.json").read_text())
    assert meta["preset"] == "fast" and meta["labelled_pixels"] == 81 + 40 * 60 - 34 * 54  # alone: framed
    labels = np.full((40, 60), 255, np.uint8)
    labels[:, :3] = 0
    Image.fromarray(labels).save(tmp_path / "labels.png")
    r = _run(str(img), "--clicks", str(clicks), "--labels", str(tmp_path / "labels.png"), "-o", str(tmp_path / "o2"))
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "o2" / "photo_meta.json").read_text())
    assert meta["preset"] == "fast" and meta["labelled_pixels"] == 81 + 120


@pytest.mark.parametrize("text,message", [
    ("cat,32\n", "expected class,x,y"),
    ("cat,60,20\n", "outside the 60x40"),
    ("unicorn,3,3\n", "unknown class 'unicorn'"),
    ("25,3,3\n", "class 25, but the classes are 0..20"),
    ("cat,3.5,3\n", "is not a pixel"),
])
def test_bad_click_file_is_one_line_exit_2(tmp_path, text, message):
    img = _image(tmp_path)
    clicks = tmp_path / "c.csv"
    clicks.write_text(text)
    r = _run(str(img), "--clicks", str(clicks), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_click_file_is_named(tmp_path):
    r = _run(str(_image(tmp_path)), "--clicks", str(tmp_path / "none.csv"), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "click file not found" in r.stderr
