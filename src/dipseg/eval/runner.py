"""The benchmark driver: every method on every image with the same sparse labels, scored the VOC way.

:func:`run_bench` validates a sweep up front, skips the jobs already in
``results.jsonl`` (:mod:`dipseg.eval.results`), runs the rest on an executor
(:mod:`dipseg.eval.executors`), writes each row as it arrives, and finally the summaries
and figures (:mod:`dipseg.eval.report`). Jobs: :mod:`dipseg.eval.jobs`; label and method
specs, and why every method sees identical labels: :mod:`dipseg.eval.specs`.
"""

from __future__ import annotations

import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..api import check_device_name, check_seed
from ..io import write_mask
from . import executors as ex
from .boxlabels import BOX_SAMPLERS, boxes_are_tight
from .datasets import DATASETS, default_root
from .jobs import DatasetSource, Job, JobContext, job_key, row_key
from .report import example_dir, plot_examples, plot_miou_vs_budget, summarize, write_summary
from .results import ResultsFile, RunLock, slim_row
from .specs import SCRIBBLES, parse_label_specs, parse_methods

DEFAULT_EXAMPLES = 4


@dataclass
class BenchReport:
    """What :func:`run_bench` did.

    Attributes
    ----------
    out : Path
    jobs : int
        Jobs in the sweep.
    skipped : int
        Already in ``results.jsonl`` before this run.
    ran : int
        Rows written by this run.
    failed : list of (Job, str)
        Jobs that raised (no row written; a rerun retries them).
    summary : list of dict
    files : dict of str to Path
    dropped : int
        Broken or duplicate lines removed from ``results.jsonl`` when it was read.
    other_rows : int
        Rows in ``results.jsonl`` that are not jobs of this sweep (kept, not summarised).
    seconds : float
    """

    out: Path
    jobs: int = 0
    skipped: int = 0
    ran: int = 0
    failed: list = field(default_factory=list)
    summary: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    dropped: int = 0
    other_rows: int = 0
    seconds: float = 0.0


def run_bench(
    dataset: str,
    methods: str | Sequence[str],
    labels: Sequence[str],
    out: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    split: str | None = None,
    limit: int | None = None,
    seeds: Sequence[int] = (0,),
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    device: str = "auto",
    preset: str | None = None,
    fit_overrides: dict | None = None,
    threads: int | None = None,
    cpus_per_task: int = 1,
    gpus_per_task: float = 1.0,
    examples: int = DEFAULT_EXAMPLES,
    progress: bool = True,
    on_row: Callable[[dict], None] | None = None,
    job_fn: Callable | None = None,
    log: Callable[[str], None] | None = None,
) -> BenchReport:
    """Run (or resume) a sweep and write ``results.jsonl``, the summaries and the figures.

    Parameters
    ----------
    dataset : {"voc", "grabcut", "camvid"}
    methods : str or list of str
        e.g. ``"dipseg,dipseg-norgb,grabcut,random-walker,trainable"``.
    labels : list of str
        Label specs, e.g. ``["uniform:1,10,100", "blobs:30,100,300"]`` or ``["scribbles"]``.
    out : path-like
        Output folder (created; reused to resume).
    root, split, limit
        Dataset folder (default :func:`dipseg.eval.datasets.default_root`), split, first N images.
    seeds : list of int
    executor : {"local", "ray"}
    workers : int, optional
        Local worker processes (default: see :data:`dipseg.eval.executors.DEFAULT_LOCAL_WORKERS`).
    ray_address : str, optional
        Ray cluster to join (``ray://host:10001`` or ``host:6379``); a local instance if None.
    device : {"auto", "cpu", "cuda"}
    preset : str, optional
        DIPSEG preset for methods without ``:PRESET``.
    fit_overrides : dict, optional
        DIPSEG :class:`~dipseg.dip.config.FitConfig` overrides, e.g. ``{"iterations": 50}``.
    threads : int, optional
        torch / BLAS threads per worker (default: cores // workers locally, the task's
        CPUs under Ray).
    cpus_per_task, gpus_per_task
        Ray resource requests per job (GPUs only for DIPSEG jobs with ``device="cuda"``).
    examples : int
        Number of images (the first ones) whose masks are saved for ``examples.png``.
    progress : bool
        Show a progress bar on stderr.
    on_row : callable, optional
        Called with each row after it is written (tests use it to interrupt a run).
    job_fn : callable, optional
        Replaces :func:`execute_job` in the workers (fault-injection tests).
    log : callable, optional
        Receives one-line messages (default: print to stderr).

    Returns
    -------
    BenchReport

    Raises
    ------
    ValueError
        Bad dataset, root, split, method, sampler, label spec, seed or device (before any job runs).
    ImportError
        ``executor="ray"`` without Ray installed.
    KeyboardInterrupt
        Interrupted: every finished row is in ``results.jsonl``; rerun to resume.
    """
    t_start = time.perf_counter()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if executor not in ex.EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of: {', '.join(ex.EXECUTORS)}")
    if executor == "ray":
        ex.import_ray()
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if not seeds:
        raise ValueError("no seeds given")
    # every job would fail on a bad seed or device: refuse the sweep instead
    seeds = [check_seed(s, "--seed") for s in seeds]
    check_device_name(device)
    if executor == "local" and str(device).startswith("cuda"):
        from ..dip.device import resolve_device  # Ray workers may have GPUs the driver lacks

        resolve_device(device)
    settings = parse_label_specs(labels)
    specs = parse_methods(methods, preset, fit_overrides)

    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    root = Path(root) if root is not None else default_root(dataset)
    scribble_sets = tuple(OrderedDict.fromkeys(b for s, b in settings if s == SCRIBBLES))
    if scribble_sets and dataset != "grabcut":
        raise ValueError(f"--labels scribbles needs a dataset with real scribbles (grabcut), not {dataset}")
    source = DatasetSource(dataset, str(root.resolve()), split, scribble_sets)
    ds = source.open(limit=limit)  # validates root, split and the scribble folders
    ids = list(ds.ids)
    if not ids:
        raise ValueError(f"no images selected from {root} (--limit {limit})")
    source = DatasetSource(dataset, str(Path(ds.root).resolve()), ds.split, scribble_sets)
    ctx = JobContext(
        dataset=dataset, split=ds.split, num_classes=int(ds.num_classes), device=device, threads=threads,
        example_ids=frozenset(ids[: max(0, examples)]), example_seed=seeds[0],
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = BenchReport(out)
    # image-major order: the jobs of one image run back to back (one image in memory at a time)
    jobs = [Job(i, m, s, b, seed) for i in ids for seed in seeds for s, b in settings for m in specs]
    report.jobs = len(jobs)
    wanted = {job_key(dataset, j) for j in jobs}

    with RunLock(out):
        results = ResultsFile(out / "results.jsonl")
        rows = results.load()
        report.dropped = results.dropped
        if results.dropped:
            log(f"results.jsonl: dropped {results.dropped} incomplete or duplicate line(s) (an interrupted write)")
        _refuse_untight_box_rows(rows, wanted, results.path)
        todo = [j for j in jobs if job_key(dataset, j) not in results.keys]
        report.skipped = len(jobs) - len(todo)
        if report.skipped:
            log(f"resuming: {report.skipped} of {len(jobs)} jobs already in {results.path}")
        bar = stream = None
        try:
            if todo:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(jobs), initial=report.skipped, desc=f"bench {dataset}", unit="job",
                           file=sys.stderr, dynamic_ncols=True, disable=not progress, smoothing=0.05)

                def log_above_bar(msg: str) -> None:
                    bar.clear()
                    log(msg)
                    bar.refresh()

                stream = ex.run_jobs(
                    executor, todo, ctx, source, workers=workers, threads=threads, ray_address=ray_address,
                    cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task, job_fn=job_fn, log=log_above_bar,
                )
                for result in stream:
                    if "error" in result:
                        report.failed.append((result["job"], result["error"]))
                        bar.update(1)
                        log_above_bar(f"job failed: {_job_text(result['job'])}: {result['error']}")
                        continue
                    row = result["row"]
                    if row_key(row) not in wanted or row_key(row) in results.keys:
                        continue  # a duplicate delivery; the first one is already written
                    if result.get("mask") is not None:
                        # mask first, then the row: a row on disk always has its example mask
                        label = row.get("label") or row["method"]
                        write_mask(example_dir(out, row["image"], row["sampler"], row["budget"])
                                   / f"{label.replace(':', '_')}.png", result["mask"])
                    results.append(row)
                    rows.append(slim_row(row))
                    report.ran += 1
                    bar.set_postfix_str(f"{row['image']} {row.get('label')} {row['seconds']:.1f}s", refresh=False)
                    bar.update(1)
                    if on_row is not None:
                        on_row(row)
        finally:
            if stream is not None:
                stream.close()  # stops the executor's workers / cancels its tasks if we are interrupted
            results.close()
            if bar is not None:
                bar.close()

        mine = [r for r in rows if row_key(r) in wanted]
        report.other_rows = len(rows) - len(mine)
        order = [(m.label, s, str(b)) for s, b in settings for m in specs]
        report.summary = summarize(mine, order)
        csv_path, md_path = write_summary(out, report.summary)
        report.files = {"results": results.path, "summary_csv": csv_path, "summary_md": md_path}
        report.files["plot"] = plot_miou_vs_budget(report.summary, out / "miou_vs_budget.png")
        if examples > 0:
            report.files["examples"] = plot_examples(
                out, source.loader(), ids[:examples], _example_setting(settings), specs, seeds[0], mine,
                out / "examples.png",
            )
    report.seconds = time.perf_counter() - t_start
    return report


def _example_setting(settings: list[tuple[str, int | str]]) -> tuple[str, int | str]:
    """The label setting shown in ``examples.png``: the first sampler's middle budget."""
    first = settings[0][0]
    budgets = [b for s, b in settings if s == first]
    return first, budgets[len(budgets) // 2]


def _refuse_untight_box_rows(rows: list[dict], wanted: set, path: Path) -> None:
    """Refuse to resume box rows from before boxes were given as tight (2026-12-07).

    They were fitted without ``tight_boxes`` on a data set whose boxes now are tight
    (:func:`dipseg.eval.boxlabels.boxes_are_tight`): resuming would mix two protocols.
    """
    old = [r for r in rows if r.get("sampler") in BOX_SAMPLERS and "tight_boxes" not in r
           and boxes_are_tight(r["dataset"]) and row_key(r) in wanted]
    if old:
        raise ValueError(f"{path} holds {len(old)} box row(s) of {old[0]['dataset']} fitted before its boxes were "
                         f"given as tight (dipseg 2026-12-07): write this run into a new --out folder")


def _job_text(job: Job) -> str:
    return f"{job.image} {job.method.label} {job.sampler}:{job.budget} seed {job.seed}"
