"""`dipseg bench`: outputs, identical labels, resume after interruption or kill, errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchutil import LABELS, METHODS, N_IMAGES, N_JOBS, TINY, keys, make_voc, read_rows, read_summary, sweep
from dipseg.cli import app
from dipseg.eval.report import SUMMARY_COLUMNS
from dipseg.eval.jobs import execute_job
from dipseg.eval.results import ResultsFile, RunLock
from dipseg.eval.runner import run_bench
from dipseg.eval.specs import label_seed, parse_label_specs, parse_methods

@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return make_voc(tmp_path_factory.mktemp("data") / "voc")


@pytest.fixture(scope="module")
def reference(voc, tmp_path_factory):
    """One uninterrupted sweep, shared by the tests that compare against it."""
    out = tmp_path_factory.mktemp("ref")
    report = sweep(voc, out)
    return out, report


# --------------------------------------------------------------------------- specs


def test_parse_label_specs():
    assert parse_label_specs(["uniform:1,10,100", "blobs:30"]) == [
        ("uniform", 1), ("uniform", 10), ("uniform", 100), ("blobs", 30)]
    assert parse_label_specs(["scribbles"]) == [("scribbles", "set-1")]
    assert parse_label_specs(["scribbles:set-1,set-2", "uniform:5,5"]) == [
        ("scribbles", "set-1"), ("scribbles", "set-2"), ("uniform", 5)]
    for bad, msg in [("uniform", "give pixels"), ("uniform:", "give pixels"), ("blob:3", "unknown sampler"),
                     ("uniform:a", "whole number"), ("uniform:0", ">= 1"), ("scribbles:set-9", "scribble set")]:
        with pytest.raises(ValueError, match=msg):
            parse_label_specs([bad])
    with pytest.raises(ValueError, match="no --labels"):
        parse_label_specs([])


def test_label_seed_depends_on_seed_and_image_only():
    a = label_seed(0, "2007_000033")
    assert a == label_seed(0, "2007_000033")  # stable: no hash() randomisation, no state
    assert a == int(np.random.SeedSequence([0, zlib.crc32(b"2007_000033")]).generate_state(1)[0])
    assert a != label_seed(1, "2007_000033") and a != label_seed(0, "2007_000042")


def test_method_config_id_changes_with_overrides():
    a = parse_methods("dipseg,grabcut")
    b = parse_methods("dipseg", fit_overrides={"iterations": 7})
    assert [m.label for m in a] == ["dipseg:fast", "grabcut"]
    assert a[0].config_id != b[0].config_id and b[0].config["fit"]["iterations"] == 7
    assert parse_methods("dipseg-norgb")[0].config["fit"]["rgb_weight"] == 0.0
    with pytest.raises(ValueError, match="unknown method"):
        parse_methods("dipseg,watershed")


# --------------------------------------------------------------------------- outputs


def test_outputs_and_columns(reference):
    out, report = reference
    assert report.jobs == N_JOBS and report.ran == N_JOBS and not report.failed
    for name in ("results.jsonl", "summary.csv", "summary.md", "miou_vs_budget.png", "examples.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    with open(out / "summary.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == list(SUMMARY_COLUMNS)
    assert header == "dataset,method,sampler,budget,images,miou,pixel_acc,mean_image_miou,mean_seconds".split(",")
    summary = read_summary(out / "summary.csv", drop=())
    assert [(s["method"], s["sampler"], s["budget"]) for s in summary] == [
        ("grabcut", "uniform", "2"), ("dipseg:fast", "uniform", "2"), ("grabcut", "uniform", "8"),
        ("dipseg:fast", "uniform", "8"), ("grabcut", "blobs", "9"), ("dipseg:fast", "blobs", "9")]
    for s in summary:
        assert s["dataset"] == "voc" and s["images"] == str(N_IMAGES)
        assert 0 <= float(s["miou"]) <= 100 and 0 <= float(s["pixel_acc"]) <= 100
        assert float(s["mean_seconds"]) > 0
    md = (out / "summary.md").read_text()
    assert "| " + " | ".join(SUMMARY_COLUMNS) + " |" in md
    assert md.count("| voc |") == len(summary)
    # the example masks are on disk, so examples.png can be redrawn on resume
    ex = out / "examples" / "2099_000000" / "uniform-8"
    assert (ex / "grabcut.png").is_file() and (ex / "dipseg_fast.png").is_file()


def test_rows_hold_what_is_needed(reference):
    out, _ = reference
    rows = read_rows(out)
    assert len(rows) == N_JOBS and len(set(keys(rows))) == N_JOBS
    for r in rows:
        for field in ("dataset", "image", "method", "preset", "sampler", "budget", "seed", "confusion",
                      "labelled_pixels", "seconds", "version", "config"):
            assert field in r, field
        conf = np.asarray(r["confusion"])
        assert conf.shape == (21, 21) and conf.sum() > 0
        assert r["labelled_pixels"] > 0
        assert (r["preset"] == "fast") == (r["method"] == "dipseg")
        if r["method"] == "dipseg":
            assert r["config"]["fit"]["iterations"] == 5 and r["info"]["iterations"] == 5


def test_miou_matches_independent_computation(reference):
    """Recompute every summary line from results.jsonl with plain numpy (VOC protocol)."""
    out, _ = reference
    groups: dict = {}
    for r in read_rows(out):
        name = r["method"] + (f":{r['preset']}" if r["preset"] else "")
        groups.setdefault((name, r["sampler"], str(r["budget"])), []).append(np.array(r["confusion"]))
    summary = read_summary(out / "summary.csv")
    assert len(summary) == len(groups)
    for s in summary:
        confs = groups[(s["method"], s["sampler"], s["budget"])]
        c = np.sum(confs, axis=0).astype(float)
        tp, gt, pred = np.diag(c), c.sum(1), c.sum(0)
        union = gt + pred - tp
        miou = 100 * np.mean(tp[union > 0] / union[union > 0])
        acc = 100 * tp.sum() / c.sum()
        per_image = []
        for ci in confs:
            ci = ci.astype(float)
            u = ci.sum(0) + ci.sum(1) - np.diag(ci)
            per_image.append(np.mean(np.diag(ci)[u > 0] / u[u > 0]))
        assert float(s["miou"]) == pytest.approx(miou, abs=0.006)
        assert float(s["pixel_acc"]) == pytest.approx(acc, abs=0.006)
        assert float(s["mean_image_miou"]) == pytest.approx(100 * np.mean(per_image), abs=0.006)
        assert int(s["images"]) == len(confs)


def test_every_method_sees_the_same_labels(voc, tmp_path, monkeypatch):
    import dipseg.eval.jobs

    seen: dict = {}
    real = dipseg.eval.jobs.segment

    def spy(image, labels, method, **kw):
        seen.setdefault((image.shape, labels.tobytes()), set()).add(method)
        seen.setdefault("calls", []).append((method, labels.copy()))
        return real(image, labels, method, **kw)

    monkeypatch.setattr(dipseg.eval.jobs, "segment", spy)
    sweep(voc, tmp_path / "a", methods="grabcut,random-walker,dipseg", labels=["uniform:3", "blobs:9"], examples=0)
    maps = [k for k in seen if k != "calls"]
    assert len(maps) == N_IMAGES * 2  # one label map per (image, sampler, budget, seed) ...
    assert all(seen[k] == {"grabcut", "random-walker", "dipseg"} for k in maps)  # ... shared by all methods
    # ... and it does not depend on the job order or on which other images are in the sweep
    first = {m.tobytes() for _, m in seen["calls"]}
    seen.clear()
    sweep(voc, tmp_path / "b", methods="random-walker", labels=["blobs:9", "uniform:3"], examples=0,
          limit=1)
    assert {m.tobytes() for _, m in seen["calls"]} <= first


# --------------------------------------------------------------------------- resume


def test_rerun_finishes_at_once(voc, reference):
    out, _ = reference
    before = (out / "results.jsonl").read_bytes()
    report = sweep(voc, out)
    assert report.ran == 0 and report.skipped == N_JOBS
    assert (out / "results.jsonl").read_bytes() == before


def test_interrupted_run_resumes_to_same_summary(voc, reference, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "out"
    count = [0]

    def stop_after_5(row):
        count[0] += 1
        if count[0] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(voc, out, on_row=stop_after_5)
    assert len(read_rows(out)) == 5 and not (out / "summary.csv").exists()
    report = sweep(voc, out)
    assert report.skipped == 5 and report.ran == N_JOBS - 5
    rows = read_rows(out)
    assert len(rows) == N_JOBS and len(set(keys(rows))) == N_JOBS
    assert read_summary(out / "summary.csv") == read_summary(ref_out / "summary.csv")


def test_truncated_last_line_is_dropped_and_rewritten(voc, reference, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "out"
    out.mkdir()
    lines = (ref_out / "results.jsonl").read_bytes().splitlines(keepends=True)
    # 7 complete rows, then half of the 8th (a kill in the middle of a write)
    (out / "results.jsonl").write_bytes(b"".join(lines[:7]) + lines[7][: len(lines[7]) // 2])
    messages = []
    report = sweep(voc, out, log=messages.append)
    assert report.dropped == 1 and any("dropped 1" in m for m in messages)
    assert report.skipped == 7 and report.ran == N_JOBS - 7
    text = (out / "results.jsonl").read_text()
    assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())
    assert len(text.splitlines()) == N_JOBS
    assert read_summary(out / "summary.csv") == read_summary(ref_out / "summary.csv")


def test_results_file_never_duplicates(tmp_path):
    rf = ResultsFile(tmp_path / "r.jsonl")
    rf.load()
    row = {"dataset": "voc", "image": "a", "method": "grabcut", "preset": None, "config_id": "x",
           "sampler": "uniform", "budget": 1, "seed": 0, "confusion": [[1, 0], [0, 2]]}
    assert rf.append(row) and not rf.append(dict(row))
    rf.close()
    # a duplicate that got into the file some other way is dropped on read
    with open(tmp_path / "r.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    rf = ResultsFile(tmp_path / "r.jsonl")
    assert len(rf.load()) == 1 and rf.dropped == 1
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1


def _cli_args(voc: Path, out: Path, iterations: int = 5) -> list[str]:
    return ["bench", "--dataset", "voc", "--root", str(voc), "--methods", "dipseg", "--labels", "uniform:2,8",
            "--labels", "blobs:9", "--iterations", str(iterations), "--workers", "1", "--threads", "1",
            "--out", str(out), "--quiet"]


KILL_ITERATIONS = 60  # long enough that a signal sent after 2 rows lands before the last of 9 jobs


@pytest.fixture(scope="module")
def cli_reference(voc, tmp_path_factory) -> Path:
    """An uninterrupted `dipseg bench` run with the arguments of the kill tests."""
    ref = tmp_path_factory.mktemp("cli-ref")
    res = CliRunner().invoke(app, _cli_args(voc, ref, iterations=KILL_ITERATIONS))
    assert res.exit_code == 0, res.output
    return ref


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_process_resumes(voc, tmp_path, sig, cli_reference):
    """Kill (or Ctrl-C) a real `dipseg bench` process midway, then resume it."""
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = _cli_args(voc, out, iterations=KILL_ITERATIONS)
    cmd = [sys.executable, "-c", "from dipseg.cli import main; main()", *args]
    # A test that ran a pool-worker initialiser in this process leaves SIGINT ignored, and a child
    # inherits that: give the command the default handler, as a shell would.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    results = out / "results.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    n = len(read_rows(out))
    assert 2 <= n < N_IMAGES * 3
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert "interrupted" in err and "rerun the same command to resume" in err and "Traceback" not in err
    # resume (in this process), then compare with the uninterrupted run
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"{n} already done" in res.output
    rows = read_rows(out)
    assert len(rows) == N_IMAGES * 3 and len(set(keys(rows))) == len(rows)
    assert read_summary(out / "summary.csv") == read_summary(cli_reference / "summary.csv")


# --------------------------------------------------------------------------- failures and errors


def test_failed_job_is_reported_and_retried_on_rerun(voc, tmp_path):
    def flaky(sample, job, ctx):
        if sample.id == "2099_000001" and job.sampler == "blobs":
            raise RuntimeError("boom")
        return execute_job(sample, job, ctx)

    out = tmp_path / "out"
    report = sweep(voc, out, methods="grabcut", job_fn=flaky)
    assert len(report.failed) == 1 and "RuntimeError: boom" in report.failed[0][1]
    assert len(read_rows(out)) == N_IMAGES * 3 - 1
    report = sweep(voc, out, methods="grabcut")
    assert report.ran == 1 and len(read_rows(out)) == N_IMAGES * 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--root", "{missing}"], "VOC root not found"),
        (["--split", "test"], "no ImageSets/Segmentation/test.txt"),
        (["--methods", "grabcut,watershed"], "unknown method 'watershed'"),
        (["--labels", "poisson:3"], "unknown sampler 'poisson'"),
        (["--labels", "uniform:1,x"], "not a whole number"),
        (["--labels", "scribbles"], "needs a dataset with real scribbles"),
        (["--executor", "dask"], "unknown executor"),
        (["--device", "tpu"], "unknown device"),
        (["--dataset", "coco"], "unknown dataset 'coco'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(voc, tmp_path, args, message):
    base = {"--dataset": "voc", "--root": str(voc), "--methods": "grabcut", "--labels": "uniform:2",
            "--out": str(tmp_path / "o")}
    given = dict(zip(args[::2], args[1::2]))
    base.update({k: v.format(missing=tmp_path / "nope") for k, v in given.items()})
    argv = ["bench", *[x for kv in base.items() for x in kv], "--quiet"]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 2, res.output
    assert res.stderr.strip().count("\n") == 0 and message in res.stderr, res.stderr
    assert not (tmp_path / "o" / "results.jsonl").exists()


def test_second_run_on_same_out_is_refused(voc, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    with RunLock(out):
        with pytest.raises(ValueError, match="another dipseg bench is running"):
            sweep(voc, out, methods="grabcut")


def test_box_rows_are_given_tight_and_old_ones_are_not_resumed(voc, tmp_path):
    out = tmp_path / "box"
    report = sweep(voc, out, methods="grabcut", labels=["box"], limit=1)
    assert report.ran == 1
    rows = read_rows(out)
    assert rows[0]["tight_boxes"] is True and rows[0]["boxes"] >= 1
    # a row written before VOC's boxes were given as tight lacks the field: not resumed silently
    del rows[0]["tight_boxes"]
    (out / "results.jsonl").write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(ValueError, match="before its boxes were given as tight"):
        sweep(voc, out, methods="grabcut", labels=["box"], limit=1)
