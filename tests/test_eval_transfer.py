"""``--protocol transfer`` on a tiny synthetic sequence in CamVid's layout: rows, resume, summary, plot."""

import json

import numpy as np
import pytest
from PIL import Image

from dipseg.eval.transfer import parse_ints, parse_transfer_methods, run_transfer_bench


@pytest.fixture
def sequence(tmp_path):
    """Five 40x40 frames of a square moving right by 2 px per frame over two background halves."""
    root = tmp_path / "seq"
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        gt = np.zeros((40, 40), np.uint8)
        gt[:, 20:] = 1
        gt[12:26, 6 + 2 * i : 18 + 2 * i] = 2
        colours = np.array([[200, 60, 50], [40, 70, 190], [230, 220, 60]], float)
        img = np.clip(colours[gt] + rng.normal(0, 8, (40, 40, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "val" / f"f_{i:03d}.png")
        Image.fromarray(gt, mode="L").save(root / "valannot" / f"f_{i:03d}.png")
    return root


def test_rows_summary_and_resume(sequence, tmp_path):
    out = tmp_path / "out"
    kw = dict(root=sequence, methods="dipseg-transfer,copy-mask,trainable-transfer,copy-labels+random-walker",
              starts="0", distances="1,3,9", fit_overrides={"iterations": 10, "working_size": 32}, progress=False)
    rep = run_transfer_bench("camvid", ["uniform:5"], out, **kw)
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    # distance 9 lies past the end; copy-mask has no distance 0
    assert rep.ran == len(rows) == 3 * 3 + 2
    assert {r["distance"] for r in rows} == {0, 1, 3}
    t = [r for r in rows if r["method"] == "dipseg-transfer" and r["distance"] == 1][0]
    assert t["setup_seconds"] >= t["seconds"] > 0 and t["target"] == "f_001"
    md = (out / "summary_transfer.md").read_text()
    assert "dipseg-transfer" in md and "t+3" in md
    assert (out / "miou_vs_distance.png").is_file()
    again = run_transfer_bench("camvid", ["uniform:5"], out, **kw)
    assert again.ran == 0 and again.skipped == len(rows)


def test_bad_options(sequence, tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        parse_transfer_methods("dipseg-transfer,bogus")
    with pytest.raises(ValueError, match="whole number"):
        parse_ints("1,x", (1,), "--starts")
    with pytest.raises(ValueError, match="scribbles"):
        run_transfer_bench("camvid", ["scribbles"], tmp_path / "o", root=sequence, progress=False)
    with pytest.raises(ValueError, match="inside"):
        run_transfer_bench("camvid", ["uniform:5"], tmp_path / "o", root=sequence, starts="10", progress=False)
