"""Executors of `dipseg bench`: a local process pool and Ray give the same rows as one process."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchutil import N_IMAGES, keys, make_voc, read_rows, read_summary, sweep
from dipseg.cli import app
from dipseg.eval import executors
from dipseg.eval.jobs import DatasetSource, execute_job

HAVE_RAY = importlib.util.find_spec("ray") is not None


JOBS = N_IMAGES * 2 * 3  # images x (grabcut, dipseg) x (uniform:2, uniform:8, blobs:9)


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return make_voc(tmp_path_factory.mktemp("data") / "voc")


@pytest.fixture(scope="module")
def one_process(voc, tmp_path_factory) -> Path:
    """The sweep run in this process with one thread: the reference for every executor."""
    out = tmp_path_factory.mktemp("one")
    report = sweep(voc, out)
    assert report.ran == JOBS and not report.failed
    return out


def test_image_cache_reads_each_image_once(voc):
    source = DatasetSource("voc", str(voc), "val")
    cache = executors._ImageCache(source)
    for _ in range(3):
        for image_id in ("2099_000000", "2099_000001"):
            assert cache.get(image_id).id == image_id
    assert cache.reads == 2


def test_default_local_workers_is_one_per_core():
    assert executors.default_local_workers() == (executors.DEFAULT_LOCAL_WORKERS or executors.available_cores())


@pytest.mark.slow
def test_local_pool_of_two_matches_one_process(voc, one_process, tmp_path):
    report = sweep(voc, tmp_path, workers=2, threads=None)
    assert report.ran == JOBS and not report.failed
    rows = read_rows(tmp_path)
    assert len(set(keys(rows))) == JOBS
    # cores // workers threads per worker, set explicitly (1 on a 2-core machine)
    assert {r["threads"] for r in rows} == {max(1, executors.available_cores() // 2)}
    assert len({r["worker"] for r in rows}) == 2
    if executors.available_cores() == 2:
        assert read_summary(tmp_path / "summary.csv") == read_summary(one_process / "summary.csv")


# --------------------------------------------------------------------------- Ray missing


def test_ray_executor_without_ray_says_how_to_install(voc, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'dipseg\[ray\]'"):
        sweep(voc, tmp_path / "a", executor="ray")
    res = CliRunner().invoke(app, ["bench", "--dataset", "voc", "--root", str(voc), "--methods", "grabcut",
                                   "--labels", "uniform:2", "--out", str(tmp_path / "b"), "--executor", "ray"])
    assert res.exit_code == 2
    assert "pip install 'dipseg[ray]'" in res.stderr and res.stderr.strip().count("\n") == 0


# --------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_local():
    if not HAVE_RAY:
        pytest.skip("ray is not installed (pip install 'dipseg[ray]')")
    import ray

    # One declared GPU (none needs to exist) lets a test check which tasks request it.
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, object_store_memory=80 * 1024**2, logging_level="ERROR",
             log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_matches_local(ray_local, voc, one_process, tmp_path):
    report = sweep(voc, tmp_path, executor="ray", threads=1)
    assert report.ran == JOBS and not report.failed
    rows = read_rows(tmp_path)
    assert len(rows) == JOBS and len(set(keys(rows))) == JOBS
    assert read_summary(tmp_path / "summary.csv") == read_summary(one_process / "summary.csv")
    assert ray_local.is_initialized()  # an instance it did not start is left running


@pytest.mark.ray
@pytest.mark.slow
def test_ray_killed_worker_loses_and_duplicates_nothing(ray_local, voc, one_process, tmp_path):
    marker = tmp_path / "crashed-once"

    def crash_once(sample, job, ctx):
        # The first attempt of one job kills its worker process outright; Ray retries it.
        if sample.id == "2099_000001" and job.method.method == "grabcut" and job.budget == 8:
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)
        return execute_job(sample, job, ctx)

    out = tmp_path / "out"
    report = sweep(voc, out, executor="ray", threads=1, job_fn=crash_once)
    assert marker.exists()  # the worker really died
    assert report.ran == JOBS and not report.failed
    rows = read_rows(out)
    assert len(rows) == JOBS and len(set(keys(rows))) == JOBS
    assert read_summary(out / "summary.csv") == read_summary(one_process / "summary.csv")


@pytest.mark.ray
@pytest.mark.slow
def test_ray_interrupted_then_resumed_has_one_row_per_job(ray_local, voc, one_process, tmp_path):
    count = [0]

    def stop_after_3(row):
        count[0] += 1
        if count[0] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(voc, tmp_path, executor="ray", threads=1, on_row=stop_after_3)
    assert len(read_rows(tmp_path)) == 3
    report = sweep(voc, tmp_path, executor="ray", threads=1)
    assert report.skipped == 3 and report.ran == JOBS - 3
    rows = read_rows(tmp_path)
    assert len(rows) == JOBS and len(set(keys(rows))) == JOBS
    assert read_summary(tmp_path / "summary.csv") == read_summary(one_process / "summary.csv")


@pytest.mark.ray
@pytest.mark.slow
def test_ray_requests_gpus_for_dipseg_jobs_only(ray_local, voc, tmp_path):
    from dataclasses import replace

    def record_resources(sample, job, ctx):
        import ray

        result = execute_job(sample, job, replace(ctx, device="cpu"))  # no real GPU here
        result["row"]["assigned"] = ray.get_runtime_context().get_assigned_resources()
        return result

    report = sweep(voc, tmp_path, executor="ray", device="cuda", gpus_per_task=0.5, labels=["uniform:2"],
                   limit=1, job_fn=record_resources, examples=0)
    assert report.ran == 2 and not report.failed
    assigned = {r["method"]: r["assigned"] for r in read_rows(tmp_path)}
    assert assigned["dipseg"].get("GPU") == 0.5 and assigned["dipseg"].get("CPU") == 1
    assert "GPU" not in assigned["grabcut"] and assigned["grabcut"].get("CPU") == 1
