"""The interactive protocol: a robot clicks until the mask is good; how many clicks did it take (NoC)?

One **session** (:func:`run_session`) segments one object with one method: the robot of
:mod:`dipseg.eval.clicker` clicks, the method segments from the clicks so far, and so on,
until the IoU reaches :data:`STOP_IOU` or :data:`MAX_CLICKS` clicks are spent. DIPSEG may
continue from its previous fit at every click (``warm``: :data:`dipseg.dip.config.WARM_FRACTION`
of the preset's steps, from the previous network and optimiser).

A sweep (:func:`run_clicks`, ``dipseg bench --protocol clicks``) runs one session per
(image, method, warm start, seed) on the local or Ray executor and writes one row per click
to ``results.jsonl`` (``sampler`` = ``clicks`` or ``clicks-warm``, ``budget`` = the click
number, plus ``iou``, the click and its seconds). A session's rows are written together;
a sweep that is interrupted redoes only the sessions that have no last row.

Scores (:func:`summarize_clicks`): NoC@85 and NoC@90 (the first click with IoU >= 85 % /
90 %, 20 if never), how many objects never reach 90 %, mean IoU after each click (a stopped
session keeps its last IoU) and seconds per click (median and 95th percentile).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import __version__
from ..api import METHODS, dipseg_config, segment
from ..dip.config import WARM_FRACTION
from ..dip.presets import CLICK_PRESET
from ..uncertainty import suggest_click
from .clicker import OBJECT, Click, click_labels, iou, next_click, noc
from .jobs import BenchSample, DatasetSource, JobContext
from .results import ResultsFile, RunLock
from .specs import MethodSpec, parse_methods

MAX_CLICKS = 20
"""Clicks per object at most (the field's standard)."""

STOP_IOU = 0.90
"""A session stops once its IoU reaches this (the higher NoC threshold)."""

THRESHOLDS = (0.85, 0.90)
"""IoU targets of NoC@85 and NoC@90."""

ROBOTS = ("oracle", "suggest")
"""Who decides where to click: the error oracle (the protocol), or the tool's own suggestion."""


def click_sampler(warm: bool, robot: str = "oracle") -> str:
    """The ``sampler`` field of a click row: ``clicks``, ``clicks-warm``, ``clicks-suggest``, ``clicks-warm-suggest``."""
    return "clicks" + ("-warm" if warm else "") + ("" if robot == "oracle" else f"-{robot}")

CLICK_DATASETS = ("grabcut", "coco-mval")
"""Datasets with one object per image."""


def protocol_preset(preset: str | None) -> str:
    """The DIPSEG preset of methods named without ``:PRESET`` in the click loop.

    :data:`dipseg.dip.presets.CLICK_PRESET` unless ``preset`` names another: the labels are
    clicks, as for ``dipseg segment --clicks`` and the page's Click tool.
    """
    return CLICK_PRESET if preset is None else preset


def object_masks(sample: BenchSample) -> tuple[np.ndarray, np.ndarray]:
    """``(object, ignore)`` bool masks of a binary sample (class 1 = object, ``void`` = ignored)."""
    gt = np.asarray(sample.gt)
    return gt == OBJECT, gt == sample.void


def run_session(
    image: np.ndarray,
    gt: np.ndarray,
    ignore: np.ndarray | None,
    method: str = "dipseg",
    *,
    preset: str | None = None,
    seed: int = 0,
    warm: bool = False,
    max_clicks: int = MAX_CLICKS,
    stop_iou: float = STOP_IOU,
    threads: int | None = None,
    device: str = "auto",
    fit_overrides: dict | None = None,
    robot: str = "oracle",
    network: dict | None = None,
) -> list[dict]:
    """Segment one object with a robot's clicks; one record per click.

    Parameters
    ----------
    image : (H, W, 3) uint8
    gt, ignore : (H, W) bool
        The object, and pixels that are neither object nor background.
    method, seed, threads, device, fit_overrides, network
        As for :func:`dipseg.segment` (``fit_overrides`` are its keyword overrides).
    preset : str, optional
        DIPSEG's preset when ``method`` names none; default :func:`protocol_preset`'s
        (``clicks``).
    warm : bool
        DIPSEG only: continue from the previous click's fit, for ``WARM_FRACTION`` of the
        steps (the first click always starts cold).
    max_clicks : int
    stop_iou : float
        Stop once the IoU reaches it.
    robot : {"oracle", "suggest"}
        ``oracle`` clicks at the largest error (the protocol); ``suggest`` clicks where the
        tool suggests (:func:`dipseg.uncertainty.suggest_click` on the method's
        probabilities) and looks at the ground truth only for the click's sign. Its first
        click is the oracle's (the person shows the object); where the tool has no
        suggestion, no probabilities, or points at an ignored pixel, the oracle clicks.

    Returns
    -------
    list of dict
        ``click`` (1-based), ``y``, ``x``, ``positive``, ``iou``, ``seconds`` (the method
        call), ``warm`` (whether this click continued a previous fit), ``confusion``
        (2x2, rows = ground truth, ignored pixels excluded).
    """
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be >= 1, got {max_clicks}")
    if robot not in ROBOTS:
        raise ValueError(f"robot must be one of {', '.join(ROBOTS)}, got {robot!r}")
    if warm and not METHODS[method.partition(":")[0]].is_dipseg:
        raise ValueError(f"warm start is a DIPSEG option; {method} has none")
    gt = np.asarray(gt, bool)
    ignore = np.zeros_like(gt) if ignore is None else np.asarray(ignore, bool)
    clicks: list[Click] = []
    pred = seg = labels = None
    records = []
    for k in range(1, max_clicks + 1):
        click = next_click(gt, pred, ignore, clicks)
        if click is None:
            break
        if robot == "suggest" and seg is not None and seg.probabilities is not None:
            spot = suggest_click(seg.probabilities, labels)
            if spot is not None and not ignore[spot]:
                click = Click(spot[0], spot[1], bool(gt[spot]))
        clicks.append(click)
        labels = click_labels(gt.shape, clicks)
        options = dict(fit_overrides or {})
        continued = warm and seg is not None and seg.state is not None
        if continued:
            steps = dipseg_config(method.partition(":")[0], seg.preset, options).fit.iterations
            options["iterations"] = max(1, int(np.ceil(steps * WARM_FRACTION)))
        seg = segment(image, labels, method, preset=protocol_preset(preset), seed=seed, device=device, threads=threads,
                      warm_start=seg.state if continued else None, network=network, **options)
        pred = seg.classes == OBJECT
        keep = ~ignore
        conf = np.array([[int((keep & ~gt & ~pred).sum()), int((keep & ~gt & pred).sum())],
                         [int((keep & gt & ~pred).sum()), int((keep & gt & pred).sum())]])
        records.append({"click": k, "y": click.y, "x": click.x, "positive": click.positive,
                        "iou": iou(gt, pred, ignore), "seconds": round(float(seg.seconds), 4),
                        "warm": bool(continued), "confusion": conf.tolist()})
        if records[-1]["iou"] >= stop_iou:
            break
    return records


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class ClickJob:
    """One session of a sweep: (image, method, warm start, seed)."""

    image: str
    method: MethodSpec
    warm: bool
    seed: int
    max_clicks: int = MAX_CLICKS
    robot: str = "oracle"

    @property
    def sampler(self) -> str:
        return click_sampler(self.warm, self.robot)


def click_key(dataset: str, job: ClickJob, click: int) -> tuple:
    """Resume key of a click row (the bench's row key with sampler = clicks[-warm], budget = click)."""
    m = job.method
    return (dataset, job.image, m.method, m.preset, m.config_id, job.sampler, str(click), int(job.seed))


def execute_session(sample: BenchSample, job: ClickJob, ctx: JobContext) -> dict:
    """Run one session on a loaded sample; ``{"rows": [...], "job": job}`` (one row per click)."""
    gt, ignore = object_masks(sample)
    m = job.method
    records = run_session(sample.image, gt, ignore, m.method, preset=m.preset, seed=job.seed, warm=job.warm,
                          max_clicks=job.max_clicks, robot=job.robot, threads=ctx.threads if m.is_dipseg else None,
                          device=ctx.device, fit_overrides=dict(m.overrides),
                          network=dict(m.network_overrides) or None)
    torch = sys.modules.get("torch")
    rows = []
    for r in records:
        rows.append({
            "dataset": ctx.dataset, "split": ctx.split, "image": sample.id, "method": m.method,
            "preset": m.preset, "label": m.label, "sampler": job.sampler, "budget": r["click"],
            "seed": int(job.seed), "num_classes": 2, **r, "last": r is records[-1],
            "labelled_pixels": None, "labelled_classes": [0, 1],
            "device": ctx.device if m.is_dipseg else "cpu",
            "threads": int(torch.get_num_threads()) if torch is not None else None,
            "worker": f"{socket.gethostname()}:{os.getpid()}", "version": __version__,
            "config_id": m.config_id, "config": m.config, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })
    return {"rows": rows, "job": job}


# --------------------------------------------------------------------------- scores


def sessions(rows: Sequence[dict]) -> "OrderedDict[tuple, dict[str, list]]":
    """Group click rows into sessions: ``(dataset, label, sampler, seed) -> {image: [row, ...]}`` by click."""
    out: OrderedDict = OrderedDict()
    for r in rows:
        key = (r["dataset"], r.get("label") or r["method"], r["sampler"], int(r["seed"]))
        out.setdefault(key, {}).setdefault(r["image"], []).append(r)
    for per_image in out.values():
        for lst in per_image.values():
            lst.sort(key=lambda r: int(r["budget"]))
    return out


def summarize_clicks(rows: Sequence[dict], max_clicks: int = MAX_CLICKS) -> list[dict]:
    """One line per (dataset, method, sampler, seed): NoC@85, NoC@90, >=max count, mIoU@k, seconds.

    Returns
    -------
    list of dict
        ``noc85``, ``noc90`` (means over objects), ``failed90`` (objects never at 90 %),
        ``miou_at`` (list, mean IoU after clicks 1..max_clicks, a stopped session keeping
        its last IoU), ``sec_median``, ``sec_p95`` (per click), ``images``, ``clicks``.
    """
    out = []
    for (dataset, label, sampler, seed), per_image in sessions(rows).items():
        nocs = {t: [] for t in THRESHOLDS}
        curves, secs = [], []
        for lst in per_image.values():
            ious = [float(r["iou"]) for r in lst]
            for t in THRESHOLDS:
                nocs[t].append(noc(ious, t, max_clicks))
            curves.append([ious[min(k, len(ious)) - 1] for k in range(1, max_clicks + 1)])
            secs += [float(r["seconds"]) for r in lst]
        out.append({
            "dataset": dataset, "method": label, "sampler": sampler, "seed": seed, "images": len(per_image),
            "noc85": float(np.mean(nocs[0.85])), "noc90": float(np.mean(nocs[0.90])),
            "failed90": int(sum(1 for lst in per_image.values()
                                if max(float(r["iou"]) for r in lst) < 0.90)),
            "miou_at": [float(v) for v in np.mean(curves, axis=0)],
            "sec_median": float(np.median(secs)), "sec_p95": float(np.percentile(secs, 95)), "clicks": len(secs),
        })
    return out


CLICK_COLUMNS = ("dataset", "method", "sampler", "images", "noc85", "noc90", "failed90", "miou_at_1",
                 "miou_at_5", "sec_median", "sec_p95", "clicks")
"""Columns of ``summary_clicks.csv``."""


def _cell(col: str, s: dict) -> str:
    if col.startswith("miou_at_"):
        k = min(int(col.rsplit("_", 1)[1]), len(s["miou_at"]))
        return f"{100 * s['miou_at'][k - 1]:.2f}"
    v = s[col]
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def write_click_summary(out: Path, summary: list[dict]) -> tuple[Path, Path]:
    """``summary_clicks.csv`` (:data:`CLICK_COLUMNS`) and ``summary_clicks.md``."""
    from .report import write_atomic

    lines = [",".join(CLICK_COLUMNS)] + [",".join(_cell(c, s) for c in CLICK_COLUMNS) for s in summary]
    csv_path = out / "summary_clicks.csv"
    write_atomic(csv_path, "\n".join(lines) + "\n")
    md = ["| " + " | ".join(CLICK_COLUMNS) + " |", "|" + "|".join("---" for _ in CLICK_COLUMNS) + "|"]
    md += ["| " + " | ".join(_cell(c, s) for c in CLICK_COLUMNS) + " |" for s in summary]
    text = ("# dipseg bench: interactive protocol\n\n" + "\n".join(md) + "\n\n"
            "noc85, noc90: mean number of clicks to reach IoU 85 % / 90 % (20 if never). failed90: objects "
            "that never reach 90 %. miou_at_k: mean IoU (%) after k clicks. sec_*: seconds per click "
            "(median, 95th percentile). sampler clicks-warm: DIPSEG continues from its previous fit; "
            "-suggest: the robot clicks where the tool suggests (sign from the ground truth).\n")
    md_path = out / "summary_clicks.md"
    write_atomic(md_path, text)
    return csv_path, md_path


def plot_miou_vs_clicks(summary: list[dict], path: Path) -> Path:
    """Mean IoU against the number of clicks, one line per method and start mode."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    datasets = list(OrderedDict.fromkeys(s["dataset"] for s in summary)) or ["(none)"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for s in (s for s in summary if s["dataset"] == ds):
            k = np.arange(1, len(s["miou_at"]) + 1)
            style = "--" if "warm" in s["sampler"] else "-"
            mode = s["sampler"].removeprefix("clicks").replace("-", " ").strip()
            ax.plot(k, 100 * np.asarray(s["miou_at"]), style, marker="x" if "suggest" in mode else ".",
                    label=f"{s['method']}{f' ({mode})' if mode else ''}  NoC@90 {s['noc90']:.2f}")
        for t in THRESHOLDS:
            ax.axhline(100 * t, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("clicks")
        ax.set_ylabel("mean IoU (%)")
        ax.set_title(f"{ds}: robot clicks")
        ax.set_xticks(range(1, MAX_CLICKS + 1, 2))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- driver


@dataclass
class ClickReport:
    """What :func:`run_clicks` did (see :class:`dipseg.eval.runner.BenchReport`)."""

    out: Path
    jobs: int = 0
    skipped: int = 0
    ran: int = 0
    failed: list = field(default_factory=list)
    summary: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    seconds: float = 0.0


def run_clicks(
    dataset: str,
    methods: str | Sequence[str],
    out: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    limit: int | None = None,
    seeds: Sequence[int] = (0,),
    warm: str = "both",
    max_clicks: int = MAX_CLICKS,
    robot: str = "oracle",
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    device: str = "auto",
    preset: str | None = None,
    fit_overrides: dict | None = None,
    threads: int | None = None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 1.0,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> ClickReport:
    """Run (or resume) the interactive protocol and write the results, summary and plot.

    Parameters
    ----------
    dataset : {"grabcut", "coco-mval"}
    methods : str or list of str
        As for ``dipseg bench``.
    out : path-like
    warm : {"both", "on", "off"}
        DIPSEG sessions with a cold start at every click (``off``), a warm start (``on``),
        or both; baselines always start cold.
    max_clicks : int
    robot : {"oracle", "suggest", "both"}
        ``suggest``: the robot clicks where the tool suggests (methods with probabilities,
        i.e. DIPSEG); ``both`` runs DIPSEG sessions with each robot.
    Other parameters as for :func:`dipseg.eval.runner.run_bench`.

    Returns
    -------
    ClickReport

    Raises
    ------
    ValueError
        Bad dataset, method, option (before any session runs).
    """
    from . import executors as ex
    from .datasets import default_root

    t0 = time.perf_counter()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if dataset not in CLICK_DATASETS:
        raise ValueError(f"--protocol clicks needs a dataset of single objects: {', '.join(CLICK_DATASETS)}, not {dataset!r}")
    if warm not in ("both", "on", "off"):
        raise ValueError(f"warm must be both, on or off, got {warm!r}")
    if robot not in (*ROBOTS, "both"):
        raise ValueError(f"robot must be oracle, suggest or both, got {robot!r}")
    if not 1 <= max_clicks <= 100:
        raise ValueError(f"max_clicks must be 1..100, got {max_clicks}")
    if executor not in ex.EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of: {', '.join(ex.EXECUTORS)}")
    if executor == "ray":
        ex.import_ray()
    specs = parse_methods(methods, protocol_preset(preset), fit_overrides)
    root = Path(root) if root is not None else default_root(dataset)
    source = DatasetSource(dataset, str(root.resolve()), None)
    ds = source.open(limit=limit)
    ids = list(ds.ids)
    if not ids:
        raise ValueError(f"no images selected from {root} (--limit {limit})")
    ctx = JobContext(dataset=dataset, split=ds.split, num_classes=2, device=device, threads=threads)
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[warm]
    robots = ROBOTS if robot == "both" else (robot,)
    jobs = [ClickJob(i, m, w, int(s), max_clicks, r) for i in ids for s in seeds for m in specs
            for w in (modes if m.is_dipseg else (False,)) for r in (robots if m.is_dipseg else ("oracle",))]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = ClickReport(out, jobs=len(jobs))
    with RunLock(out):
        results = ResultsFile(out / "results.jsonl")
        rows = results.load()
        finished = {(r["dataset"], r["image"], r["method"], r.get("preset"), r.get("config_id"), r["sampler"],
                     int(r["seed"])) for r in rows if r.get("last")}

        def done(j: ClickJob) -> bool:
            m = j.method
            return (dataset, j.image, m.method, m.preset, m.config_id, j.sampler, j.seed) in finished

        todo = [j for j in jobs if not done(j)]
        report.skipped = len(jobs) - len(todo)
        if report.skipped:
            log(f"resuming: {report.skipped} of {len(jobs)} sessions already in {results.path}")
        stream = bar = None
        try:
            if todo:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(jobs), initial=report.skipped, desc=f"clicks {dataset}", unit="session",
                           file=sys.stderr, dynamic_ncols=True, disable=not progress)
                stream = ex.run_jobs(executor, todo, ctx, source, workers=workers, threads=threads,
                                     ray_address=ray_address, cpus_per_task=cpus_per_task,
                                     gpus_per_task=gpus_per_task, job_fn=execute_session, log=log)
                for result in stream:
                    bar.update(1)
                    if "error" in result:
                        report.failed.append((result["job"], result["error"]))
                        log(f"session failed: {result['job'].image} {result['job'].method.label}: {result['error']}")
                        continue
                    for row in result["rows"]:
                        if results.append(row):
                            rows.append(row)
                    report.ran += 1
                    last = result["rows"][-1] if result["rows"] else None
                    if last is not None:
                        bar.set_postfix_str(f"{last['image']} {last['label']} {last['budget']} clicks "
                                            f"IoU {100 * last['iou']:.0f}", refresh=False)
        finally:
            if stream is not None:
                stream.close()
            results.close()
            if bar is not None:
                bar.close()
        wanted = {(j.image, j.method.label, j.sampler, j.seed) for j in jobs}
        mine = [r for r in rows if "iou" in r and (r["image"], r.get("label"), r["sampler"], int(r["seed"])) in wanted]
        report.summary = summarize_clicks(mine, max_clicks)
        csv_path, md_path = write_click_summary(out, report.summary)
        report.files = {"results": results.path, "summary_csv": csv_path, "summary_md": md_path,
                        "plot": plot_miou_vs_clicks(report.summary, out / "miou_vs_clicks.png")}
    report.seconds = time.perf_counter() - t0
    return report
