"""``dipseg transfer``: fit once, segment other images; --model saves and reuses; one-line errors."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import three_regions
from test_cli import SEEDS, one_error_line, run
from dipseg.io import write_labels
from dipseg.labels import IGNORE

FAST = ["--iterations", "30"]


@pytest.fixture
def frames(tmp_path):
    img, gt = three_regions(40)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(np.roll(img, 2, axis=1)).save(tmp_path / "b.png")
    Image.fromarray(np.roll(img, 4, axis=1)).save(tmp_path / "c.png")
    labels = np.full(gt.shape, IGNORE)
    for c, (y, x) in enumerate(SEEDS):
        labels[y - 1 : y + 2, x - 1 : x + 2] = c
    write_labels(tmp_path / "labels.png", labels)
    return tmp_path


def test_transfer_writes_outputs_and_reuses_the_model(frames):
    d = frames
    r = run("transfer", "--from", d / "a.png", "--labels", d / "labels.png", d / "b.png", d / "c.png",
            "-o", d / "out", "--model", d / "m.pt", "-q", *FAST)
    assert r.exit_code == 0, r.output
    for stem in ("a", "b", "c"):
        for suffix in ("_mask.png", "_overlay.png", "_meta.json"):
            assert (d / "out" / f"{stem}{suffix}").is_file()
    meta = json.loads((d / "out" / "b_meta.json").read_text())
    assert meta["method"] == "dipseg-transfer" and meta["class_ids"] == [0, 1, 2] and meta["role"] == "transfer"
    assert (d / "m.pt").is_file() and json.loads((d / "out" / "transfer.json").read_text())["images"]
    r = run("transfer", "--model", d / "m.pt", d / "b.png", "-o", d / "out2", "-q")
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.asarray(Image.open(d / "out" / "b_mask.png")), np.asarray(Image.open(d / "out2" / "b_mask.png")))


@pytest.mark.parametrize("args, message", [
    (["b.png"], "give --from IMAGE"),
    (["--from", "a.png", "b.png"], "needs --labels"),
    (["--from", "a.png", "--labels", "labels.png", "--preset", "slim", "b.png"], "cannot be applied to another image"),
    (["--from", "a.png", "--labels", "labels.png", "missing.png"], "does not exist"),
    (["--model", "nothing.pt", "b.png"], "does not exist"),
    (["--from", "a.png", "--labels", "labels.png", "--refine", "bogus", "b.png"], "--refine"),
])
def test_errors_are_one_line(frames, args, message, monkeypatch):
    monkeypatch.chdir(frames)
    r = run("transfer", *args, "-o", frames / "o")
    one_error_line(r, message)
