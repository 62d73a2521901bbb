"""``--protocol transfer``: label frame t of a sequence, segment frames t+k, score against k.

For every start frame ``t`` and label setting (``blobs:100``...), the labels of frame ``t``
are drawn from its ground truth (:func:`dipseg.eval.jobs.make_labels`, the same labels as
``--protocol labels`` draws for that frame), then every method segments frames ``t + k``:

* ``dipseg-transfer``: DIPSEG fitted on frame t once (:func:`dipseg.fit_model`), then
  :meth:`~dipseg.dip.transfer.TransferModel.predict` on frame t+k (no new fit);
  its random walk is seeded by the confident pixels and by frame t's mask moved along an
  optical flow (``mask="flow"``);
* ``dipseg-transfer-noflow``: the same without frame t's mask (``mask="off"``: the seeds are
  the network's confident pixels alone);
* ``dipseg-transfer-norefine``: the same without the full-resolution stage (``refine="none"``);
* ``dipseg-transfer-ft``: the same plus a fine-tune of :data:`FINETUNE_STEPS` steps on frame
  t+k with its pseudo-labels (opt-in: a fit's cost per frame);
* ``copy-labels+random-walker`` / ``copy-labels+grabcut``: frame t's labels, copied onto
  frame t+k, given to the random walker / GrabCut there;
* ``trainable-transfer``: the random forest trained on frame t's labelled pixels
  (:func:`dipseg.baselines.trainable.fit_forest`) classifying frame t+k;
* ``copy-mask``: DIPSEG's mask of frame t (the same fit) as the answer for frame t+k.

Each row holds one (start, labels, seed, method, distance) with its confusion matrix and
``seconds`` (the method's time for that frame; ``setup_seconds``: the fit or forest
training on frame t, paid once). Rows go to ``OUT/results.jsonl`` as they come; a rerun
skips the rows already there. One process, one thread (a sequential protocol).
"""

from __future__ import annotations

import csv
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import __version__
from ..api import DEFAULT_THREADS, check_seed
from ..labels import IGNORE
from .datasets import DATASETS, default_root
from .jobs import DatasetSource, make_labels, row_key
from .metrics import confusion_matrix, scores
from .results import ResultsFile, RunLock
from .specs import SCRIBBLES, label_seed, parse_label_specs

TRANSFER_METHODS = ("dipseg-transfer", "dipseg-transfer-noflow", "dipseg-transfer-norefine", "dipseg-transfer-ft",
                    "trainable-transfer", "copy-labels+random-walker", "copy-labels+grabcut", "copy-mask")
"""Methods of the transfer protocol (see the module docstring)."""

DEFAULT_METHODS = tuple(m for m in TRANSFER_METHODS if m != "dipseg-transfer-ft")
"""What runs when no methods are named (fine-tuning costs a fit per frame: opt-in)."""

DEFAULT_STARTS = (0, 20, 40, 70)
DEFAULT_DISTANCES = (1, 5, 15, 30, 60)
FINETUNE_STEPS = 20
"""Steps of the ``dipseg-transfer-ft`` fine-tune (a fifth of the fast preset's fit)."""


@dataclass
class TransferReport:
    out: Path
    rows: int = 0
    skipped: int = 0
    ran: int = 0
    summary: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    seconds: float = 0.0


def parse_ints(text: str | Sequence[int] | None, default: Sequence[int], what: str) -> list[int]:
    """``"0,20,40"`` -> ``[0, 20, 40]`` (sorted, unique, >= 0).

    Raises
    ------
    ValueError
        Not whole numbers >= 0, or none.
    """
    if text is None:
        return list(default)
    parts = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for p in parts:
        try:
            v = int(str(p).strip())
        except ValueError:
            raise ValueError(f"{what}: {p!r} is not a whole number") from None
        if v < 0:
            raise ValueError(f"{what}: values must be >= 0, got {v}")
        out.append(v)
    if not out:
        raise ValueError(f"{what}: give at least one value")
    return sorted(set(out))


def parse_transfer_methods(text: str | Sequence[str] | None) -> list[str]:
    """Method names of the transfer protocol, in :data:`TRANSFER_METHODS` order.

    Raises
    ------
    ValueError
        An unknown name (the message lists the known ones).
    """
    if text is None:
        return list(DEFAULT_METHODS)
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    bad = [n for n in names if n not in TRANSFER_METHODS]
    if bad or not names:
        raise ValueError(f"--protocol transfer: unknown method {bad[0] if bad else ''!r}; choose from: "
                         f"{', '.join(TRANSFER_METHODS)}")
    return [m for m in TRANSFER_METHODS if m in names]


def run_transfer_bench(
    dataset: str,
    labels: Sequence[str],
    out: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    split: str | None = None,
    methods: str | Sequence[str] | None = None,
    starts: str | Sequence[int] | None = None,
    distances: str | Sequence[int] | None = None,
    seeds: Sequence[int] = (0,),
    preset: str | None = None,
    fit_overrides: dict | None = None,
    device: str = "cpu",
    threads: int | None = None,
    finetune_steps: int = FINETUNE_STEPS,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TransferReport:
    """Run (or resume) the transfer protocol on a sequence and write results, summary and plot.

    Parameters
    ----------
    dataset : str
        A dataset whose sorted ids are consecutive frames (``camvid``: one drive at 15 fps).
    labels : list of str
        Label specs for frame t, e.g. ``["blobs:100", "uniform:10"]`` (no scribbles).
    out : path-like
    root, split
        Dataset folder and split.
    methods : str or list, optional
        Names of :data:`TRANSFER_METHODS` (default :data:`DEFAULT_METHODS`).
    starts, distances : str or list of int, optional
        Start frames t (positions in the sorted ids) and distances k; pairs with
        ``t + k`` past the sequence's end are left out.
    seeds : list of int
        Label and fit seeds.
    preset, fit_overrides
        The DIPSEG fit on frame t.
    device, threads
        DIPSEG's device and torch threads (default :data:`dipseg.api.DEFAULT_THREADS`).
    finetune_steps : int
        Steps of ``dipseg-transfer-ft``.

    Returns
    -------
    TransferReport

    Raises
    ------
    ValueError
        Bad dataset, labels, methods, starts, distances or seeds (before any work), or
        no (start, distance) pair inside the sequence.
    """
    t_start = time.perf_counter()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    settings = parse_label_specs(labels)
    if any(s == SCRIBBLES for s, _ in settings):
        raise ValueError("--protocol transfer draws labels from ground truth: use uniform:N or blobs:N, not scribbles")
    names = parse_transfer_methods(methods)
    starts = parse_ints(starts, DEFAULT_STARTS, "--starts")
    distances = parse_ints(distances, DEFAULT_DISTANCES, "--distances")
    if 0 in distances:
        distances.remove(0)
        if not distances:
            raise ValueError("--distances: give distances >= 1 (frame t itself is always scored as distance 0)")
    seeds = [check_seed(s, "--seed") for s in seeds]
    threads = DEFAULT_THREADS if threads is None else int(threads)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    from ..api import dipseg_config, parse_method
    from ..dip.config import config_dict

    name, preset_name = parse_method("dipseg", preset)
    p = dipseg_config(name, preset_name, fit_overrides)
    import hashlib
    import json

    config = config_dict(p.network, p.fit) | {"finetune_steps": int(finetune_steps)}
    config_id = hashlib.sha1(json.dumps(config, sort_keys=True, default=list).encode()).hexdigest()[:12]

    root = Path(root) if root is not None else default_root(dataset)
    source = DatasetSource(dataset, str(root.resolve()), split)
    ds = source.open()
    ids = sorted(ds.ids)
    n = len(ids)
    pairs = [(t, k) for t in starts if t < n for k in distances if t + k < n]
    if not pairs:
        raise ValueError(f"no start frame + distance lies inside the {n} frames of {dataset} {ds.split}")
    load = source.loader()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = TransferReport(out)
    groups = [(t, s, b, seed) for t in sorted({t for t, _ in pairs}) for s, b in settings for seed in seeds]
    wanted = {}
    for t, s, b, seed in groups:
        for m in names:
            for k in [0] + [k for tt, k in pairs if tt == t]:
                if k == 0 and m in ("copy-mask",):
                    continue
                key = (dataset, _image_key(ids[t], k), m, preset_name, config_id, s, str(b), int(seed))
                wanted[key] = (t, s, b, seed, m, k)
    report.rows = len(wanted)
    with RunLock(out):
        results = ResultsFile(out / "results.jsonl")
        rows = results.load()
        done = set(results.keys)
        report.skipped = sum(1 for key in wanted if key in done)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(wanted), initial=report.skipped, desc=f"transfer {dataset}", unit="row",
                   file=sys.stderr, dynamic_ncols=True, disable=not progress)
        try:
            for t, s, b, seed in groups:
                todo = [v for key, v in wanted.items() if v[:4] == (t, s, b, seed) and key not in done]
                if not todo:
                    continue
                for row in _run_group(load, ids, dataset, ds.split, int(ds.num_classes), t, s, b, seed, todo,
                                      name, preset_name, fit_overrides, config, config_id, device, threads,
                                      finetune_steps):
                    if results.append(row):
                        rows.append(row)
                    report.ran += 1
                    bar.set_postfix_str(f"{row['start']} {row['method']} +{row['distance']} {row['seconds']:.1f}s",
                                        refresh=False)
                    bar.update(1)
        finally:
            results.close()
            bar.close()
    mine = [r for r in rows if row_key(r) in wanted]
    report.summary = summarize_transfer(mine, names)
    report.files = write_transfer_summary(out, report.summary)
    report.files["results"] = out / "results.jsonl"
    report.files["plot"] = plot_miou_vs_distance(report.summary, out / "miou_vs_distance.png")
    report.seconds = time.perf_counter() - t_start
    return report


def _image_key(start: str, k: int) -> str:
    """A row's ``image``: start frame and distance (``0016E5_07959+15``), part of its resume key."""
    return f"{start}+{int(k)}"


def _run_group(load, ids, dataset, split, num_classes, t, sampler, budget, seed, todo, name, preset_name,
               fit_overrides, config, config_id, device, threads, finetune_steps):
    """Every missing row of one (start frame, labels, seed): yields rows as they are scored."""
    from ..api import fit_model, segment

    src = load(ids[t])
    labels = make_labels(src, sampler, budget, seed)
    wanted_methods = {m for *_, m, _ in todo}
    need = {(m, k) for *_, m, k in todo}
    cache: dict = {}

    def frame(k):
        if k not in cache:
            cache[k] = load(ids[t + k])
        return cache[k]

    def row(method, k, pred, seconds, setup_seconds, info=None):
        target = frame(k)
        conf = confusion_matrix(target.gt, pred, num_classes, void=target.void)
        return {
            "dataset": dataset, "split": split, "image": _image_key(ids[t], k), "start": ids[t], "start_index": t, "target": ids[t + k],
            "distance": int(k), "method": method, "label": method, "sampler": sampler, "budget": budget,
            "seed": int(seed), "label_seed": label_seed(seed, ids[t]), "num_classes": num_classes,
            "confusion": conf.tolist(), "labelled_pixels": int((labels != IGNORE).sum()),
            "seconds": round(float(seconds), 4), "setup_seconds": round(float(setup_seconds), 4),
            "threads": threads, "version": __version__, "config_id": config_id, "config": config,
            "preset": preset_name, "info": info or {}, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }

    dipseg_methods = {"dipseg-transfer", "dipseg-transfer-noflow", "dipseg-transfer-norefine", "dipseg-transfer-ft",
                      "copy-mask"}
    if wanted_methods & dipseg_methods:
        t0 = time.perf_counter()
        model = fit_model(src.image, labels, name, preset=preset_name, seed=int(seed), device=device, threads=threads,
                          **(fit_overrides or {}))
        fit_seconds = time.perf_counter() - t0
        source_mask = model.source.classes
        variants = {"dipseg-transfer": {}, "dipseg-transfer-noflow": {"mask": "off"},
                    "dipseg-transfer-norefine": {"refine": "none"},
                    "dipseg-transfer-ft": {"finetune": int(finetune_steps)}}
        for m, options in variants.items():
            if m not in wanted_methods:
                continue
            for k in sorted(kk for mm, kk in need if mm == m):
                if k == 0:
                    # frame t itself: the fresh fit (the reference cost of a fit)
                    yield row(m, 0, source_mask, fit_seconds, fit_seconds, {"fresh_fit": True})
                    continue
                r = model.predict(frame(k).image, device=device, threads=threads, **options)
                yield row(m, k, r.classes, r.seconds, fit_seconds,
                          {x: r.info.get(x) for x in ("refine", "pseudo_labelled", "carried", "mask_seeded", "noise",
                                                      "finetune")})
        for k in sorted(kk for mm, kk in need if mm == "copy-mask"):
            yield row("copy-mask", k, source_mask, 0.0, fit_seconds)
    for m, base in (("copy-labels+random-walker", "random-walker"), ("copy-labels+grabcut", "grabcut")):
        for k in sorted(kk for mm, kk in need if mm == m):
            seg = segment(frame(k).image, labels, base, seed=int(seed))
            yield row(m, k, seg.classes, seg.seconds, 0.0)
    if "trainable-transfer" in wanted_methods:
        from ..baselines.trainable import apply_forest, fit_forest

        t0 = time.perf_counter()
        forest = fit_forest(src.image, labels, seed=int(seed))
        train_seconds = time.perf_counter() - t0
        for k in sorted(kk for mm, kk in need if mm == "trainable-transfer"):
            t1 = time.perf_counter()
            pred = apply_forest(forest, frame(k).image)
            seconds = time.perf_counter() - t1
            if k == 0:
                seconds += train_seconds
            yield row("trainable-transfer", k, pred, seconds, train_seconds)


def summarize_transfer(rows: Sequence[dict], methods: Sequence[str] = TRANSFER_METHODS) -> list[dict]:
    """One line per (method, sampler, budget, distance): mIoU of the summed confusion, mean seconds."""
    groups: "OrderedDict[tuple, list[dict]]" = OrderedDict()
    for r in rows:
        groups.setdefault((r["method"], r["sampler"], str(r["budget"]), int(r["distance"])), []).append(r)
    rank = {m: i for i, m in enumerate(methods)}
    out = []
    for key in sorted(groups, key=lambda k: (k[1], k[2], rank.get(k[0], 99), k[3])):
        g = groups[key]
        s = scores(np.sum([np.asarray(r["confusion"], np.int64) for r in g], axis=0))
        out.append({"method": key[0], "sampler": key[1], "budget": g[0]["budget"], "distance": key[3],
                    "starts": len({r["start"] for r in g}), "rows": len(g), "miou": 100 * s["miou"],
                    "mean_seconds": float(np.mean([r["seconds"] for r in g])),
                    "setup_seconds": float(np.mean([r.get("setup_seconds", 0.0) for r in g]))})
    return out


def write_transfer_summary(out: Path, summary: Sequence[dict]) -> dict:
    """``summary_transfer.csv`` (long form) and ``summary_transfer.md`` (mIoU per method x distance)."""
    csv_path, md_path = out / "summary_transfer.csv", out / "summary_transfer.md"
    cols = ["method", "sampler", "budget", "distance", "starts", "rows", "miou", "mean_seconds", "setup_seconds"]
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        for s in summary:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()})
    lines = ["# Transfer: mIoU (%) against frame distance", ""]
    for setting in OrderedDict.fromkeys((s["sampler"], str(s["budget"])) for s in summary):
        part = [s for s in summary if (s["sampler"], str(s["budget"])) == setting]
        dists = sorted({s["distance"] for s in part})
        methods = list(OrderedDict.fromkeys(s["method"] for s in part))
        lines += [f"## labels {setting[0]}:{setting[1]} on frame t", "",
                  "| method | " + " | ".join(f"t+{d}" for d in dists) + " | s / image (t+k>0) | starts |",
                  "|---|" + "---:|" * (len(dists) + 2)]
        for m in methods:
            cells = {s["distance"]: s for s in part if s["method"] == m}
            secs = [c["mean_seconds"] for d, c in cells.items() if d > 0]
            lines.append(f"| {m} | " + " | ".join(f"{cells[d]['miou']:.1f}" if d in cells else "" for d in dists)
                         + f" | {np.mean(secs):.2f} | {max(c['starts'] for c in cells.values())} |"
                         if secs else f"| {m} | " + " | ".join(f"{cells[d]['miou']:.1f}" if d in cells else ""
                                                              for d in dists) + " | | |")
        lines.append("")
    md_path.write_text("\n".join(lines))
    return {"summary_csv": csv_path, "summary_md": md_path}


def plot_miou_vs_distance(summary: Sequence[dict], path: Path) -> Path:
    """mIoU against frame distance, one line per method, one panel per label setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(OrderedDict.fromkeys((s["sampler"], str(s["budget"])) for s in summary))
    fig, axes = plt.subplots(1, max(1, len(settings)), figsize=(5.5 * max(1, len(settings)), 4), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        part = [s for s in summary if (s["sampler"], str(s["budget"])) == setting]
        for m in OrderedDict.fromkeys(s["method"] for s in part):
            pts = sorted((s["distance"], s["miou"]) for s in part if s["method"] == m)
            ax.plot([d for d, _ in pts], [v for _, v in pts], marker="o", label=m)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("frame distance k (15 frames per second)")
        ax.set_ylabel("mIoU (%)")
        ax.set_title(f"labels {setting[0]}:{setting[1]} on frame t")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
