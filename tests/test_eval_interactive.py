"""The interactive protocol: sessions, NoC scores, a resumable click sweep on a tiny COCO-MVal-layout set."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dipseg.cli import app
from dipseg.eval.interactive import run_clicks, run_session, summarize_clicks

TINY = {"iterations": 6, "working_size": 48}


def _object_image(size=48, seed=0, shift=0):
    rng = np.random.default_rng(seed)
    gt = np.zeros((size, size), bool)
    yy, xx = np.mgrid[:size, :size]
    gt[(yy - 24 - shift) ** 2 + (xx - 22 + shift) ** 2 < 11**2] = True
    img = np.where(gt[..., None], (220, 60, 40), (40, 120, 200)).astype(float)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    return img, gt


@pytest.mark.parametrize("method", ["grabcut", "random-walker"])
def test_a_session_reaches_the_target_on_an_easy_object(method):
    img, gt = _object_image()
    before = img.copy()
    rows = run_session(img, gt, None, method, threads=1)
    assert rows[0]["positive"] and rows[0]["click"] == 1
    assert rows[-1]["iou"] >= 0.90 and len(rows) <= 5
    assert [r["click"] for r in rows] == list(range(1, len(rows) + 1))
    np.testing.assert_array_equal(img, before)
    conf = np.array(rows[-1]["confusion"])
    assert conf.sum() == gt.size and conf[1, 1] / (conf.sum() - conf[0, 0]) == pytest.approx(rows[-1]["iou"])


def test_warm_sessions_continue_the_previous_fit():
    img, gt = _object_image()
    # a second, differently coloured part of the object far from the first click: it needs more clicks
    gt[38:46, 36:46] = True
    img[38:46, 36:46] = (40, 200, 60)
    rows = run_session(img, gt, None, "dipseg", warm=True, max_clicks=3, stop_iou=1.01, threads=1, fit_overrides=TINY)
    assert [r["warm"] for r in rows] == [False, True, True]
    with pytest.raises(ValueError, match="warm start is a DIPSEG option"):
        run_session(img, gt, None, "grabcut", warm=True)


def test_summary_counts_noc_failures_and_carries_the_last_iou():
    rows = []
    for image, ious in (("a", [0.5, 0.86, 0.92]), ("b", [0.3, 0.4])):
        for k, v in enumerate(ious, 1):
            rows.append({"dataset": "d", "image": image, "method": "m", "label": "m", "sampler": "clicks",
                         "budget": k, "seed": 0, "iou": v, "seconds": 0.1 * k})
    (s,) = summarize_clicks(rows, max_clicks=4)
    assert s["noc85"] == pytest.approx((2 + 4) / 2) and s["noc90"] == pytest.approx((3 + 4) / 2)
    assert s["failed90"] == 1 and s["images"] == 2 and s["clicks"] == 5
    np.testing.assert_allclose(s["miou_at"], [0.4, 0.63, 0.66, 0.66])


def _coco_mval(root, n=2):
    (root / "img").mkdir(parents=True)
    (root / "gt").mkdir()
    for k in range(n):
        img, gt = _object_image(seed=k, shift=2 * k)
        Image.fromarray(img).save(root / "img" / f"thing0{k}_00000{k}.jpg", quality=95)
        Image.fromarray((gt * 255).astype(np.uint8), mode="L").save(root / "gt" / f"thing0{k}_00000{k}.png")
    return root


def test_click_sweep_writes_rows_per_click_and_resumes(tmp_path):
    root = _coco_mval(tmp_path / "mval")
    out = tmp_path / "out"
    kw = dict(root=root, workers=1, threads=1, progress=False, log=lambda m: None, fit_overrides=TINY, max_clicks=3)
    report = run_clicks("coco-mval", "grabcut,dipseg", out, warm="both", **kw)
    assert report.jobs == 2 * 3 and report.ran == 6 and not report.failed
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["sampler"] for r in rows} == {"clicks", "clicks-warm"}
    assert sum(r["last"] for r in rows) == 6
    assert {(s["method"], s["sampler"]) for s in report.summary} == {
        ("grabcut", "clicks"), ("dipseg:clicks", "clicks"), ("dipseg:clicks", "clicks-warm")}
    assert (out / "miou_vs_clicks.png").stat().st_size > 0
    # an interrupted write: the last session lost its final row
    lines = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    (out / "results.jsonl").write_bytes(b"".join(lines[:-1]))
    again = run_clicks("coco-mval", "grabcut,dipseg", out, warm="both", **kw)
    assert again.skipped == 5 and again.ran == 1
    def stable(raw):
        return [{k: v for k, v in json.loads(x).items() if k not in ("finished", "seconds", "worker")} for x in raw]

    assert stable((out / "results.jsonl").read_bytes().splitlines()) == stable(lines)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "voc"], "needs a dataset of single objects"),
    (["--labels", "uniform:3"], "does not apply to --protocol clicks"),
    (["--warm", "maybe"], "warm must be both, on or off"),
])
def test_bad_click_options_are_one_line_and_exit_2(tmp_path, args, message):
    root = _coco_mval(tmp_path / "mval", n=1)
    base = ["bench", "--protocol", "clicks", "--dataset", "coco-mval", "--root", str(root), "--methods", "grabcut",
            "--out", str(tmp_path / "o"), "--quiet"]
    res = CliRunner().invoke(app, base + args)
    assert res.exit_code == 2 and message in res.stderr and res.stderr.strip().count("\n") == 0, res.stderr


@pytest.mark.parametrize("method, args, preset", [
    ("dipseg", [], "clicks"), ("dipseg", ["--preset", "fast"], "fast"), ("dipseg:slim", [], "slim")])
def test_dipseg_in_the_click_loop_means_the_click_preset_unless_named(tmp_path, method, args, preset):
    root = _coco_mval(tmp_path / "mval", n=1)
    out = tmp_path / "o"
    base = ["bench", "--protocol", "clicks", "--dataset", "coco-mval", "--root", str(root), "--methods", method,
            "--warm", "off", "--max-clicks", "1", "--iterations", "2", "--threads", "1", "-w", "1", "--out", str(out),
            "--quiet"]
    res = CliRunner().invoke(app, base + args)
    assert res.exit_code == 0, res.output
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["preset"] == preset and row["label"] == f"dipseg:{preset}"


def test_the_suggestion_robot_clicks_where_the_tool_points():
    img, gt = _object_image()
    gt[38:46, 36:46] = True
    img[38:46, 36:46] = (40, 200, 60)
    oracle = run_session(img, gt, None, "dipseg", max_clicks=3, stop_iou=1.01, threads=1, fit_overrides=TINY)
    suggest = run_session(img, gt, None, "dipseg", robot="suggest", max_clicks=3, stop_iou=1.01, threads=1,
                          fit_overrides=TINY)
    assert (suggest[0]["y"], suggest[0]["x"]) == (oracle[0]["y"], oracle[0]["x"])  # the first click is the oracle's
    assert all(r["positive"] == bool(gt[r["y"], r["x"]]) for r in suggest)  # signs from the ground truth
    with pytest.raises(ValueError, match="robot must be"):
        run_session(img, gt, None, "dipseg", robot="psychic")
