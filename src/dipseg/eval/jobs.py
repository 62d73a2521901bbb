"""One job of a sweep: load an image, draw its labels, segment it with one method, score it.

A sweep is a list of independent **jobs**, one per (image, method, sampler, budget,
seed). Each job keeps only the image's confusion matrix; the scores come later from the
sum of the matrices (:mod:`dipseg.eval.metrics`). Jobs run anywhere (a local process, a
Ray worker): everything a job needs travels with it.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import __version__
from ..api import segment
from ..labels import IGNORE
from ..samplers import sample_labels
from .datasets import open_dataset
from .metrics import confusion_matrix
from .boxlabels import BOX_SAMPLERS, box_error, box_job_labels, boxes_are_tight
from .specs import SCRIBBLES, MethodSpec, label_seed


@dataclass(frozen=True, eq=False)
class BenchSample:
    """An image with its ground truth and the scribble sets the sweep needs."""

    id: str
    image: np.ndarray
    gt: np.ndarray
    void: int
    scribbles: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSource:
    """Where a worker reads images from: dataset name, absolute root, split, scribble sets."""

    name: str
    root: str
    split: str | None
    scribble_sets: tuple = ()

    def open(self, scribbles: str | None = None, limit: int | None = None):

        options = {"scribbles": scribbles} if self.name == "grabcut" else {}
        return open_dataset(self.name, self.root, self.split, limit, **options)

    def loader(self) -> Callable[[str], BenchSample]:
        """A function ``id -> BenchSample`` (opens the dataset once)."""
        base = self.open()
        extra = {s: self.open(scribbles=s) for s in self.scribble_sets}

        def load(image_id: str) -> BenchSample:
            s = base.load(image_id)
            scribbles = {}
            for name, ds in extra.items():
                path = ds.scribble_path(image_id)
                if path is not None and path.is_file():
                    scribbles[name] = ds.load(image_id).scribbles
            return BenchSample(s.id, s.image, s.gt, s.void, scribbles)

        return load


def make_labels(sample: BenchSample, sampler: str, budget: int | str, seed: int) -> np.ndarray:
    """The sparse label map of a job (identical for every method).

    Raises
    ------
    ValueError
        Unknown sampler, or a scribble set the image does not have.
    """
    if sampler in BOX_SAMPLERS:
        raise ValueError(f"{sampler} labels come with boxes: use make_box_labels")
    if sampler == SCRIBBLES:
        if budget not in sample.scribbles:
            raise ValueError(f"image {sample.id} has no scribbles {budget!r}")
        return np.asarray(sample.scribbles[budget], dtype=np.int64)
    return sample_labels(sample.gt, sampler, int(budget), seed=label_seed(seed, sample.id), void=sample.void)


def make_box_labels(sample: BenchSample, sampler: str, budget: int | str, seed: int, dataset: str):
    """Clicks and boxes of a ``box`` / ``box+clicks`` job: ``(labels, boxes)`` (:mod:`dipseg.eval.boxlabels`)."""
    return box_job_labels(sample.gt, dataset, sampler, int(budget), label_seed(seed, sample.id), sample.void)


@dataclass(frozen=True)
class Job:
    """One (image, method, sampler, budget, seed) of a sweep."""

    image: str
    method: MethodSpec
    sampler: str
    budget: int | str
    seed: int


@dataclass(frozen=True)
class JobContext:
    """What every job of a sweep shares (sent to workers once)."""

    dataset: str
    split: str | None
    num_classes: int
    device: str = "auto"
    threads: int | None = None
    example_ids: frozenset = frozenset()
    example_seed: int = 0


def job_key(dataset: str, job: Job) -> tuple:
    """Resume key of a job (same as :func:`row_key` of its row)."""
    m = job.method
    return (dataset, job.image, m.method, m.preset, m.config_id, job.sampler, str(job.budget), int(job.seed))


def row_key(row: dict) -> tuple:
    """Resume key of a row of ``results.jsonl``."""
    return (row["dataset"], row["image"], row["method"], row.get("preset"), row.get("config_id"),
            row["sampler"], str(row["budget"]), int(row["seed"]))


def execute_job(sample: BenchSample, job: Job, ctx: JobContext) -> dict:
    """Run one job on a loaded image; return ``{"row": dict, "mask": ndarray or None}``.

    The row holds: ``dataset, split, image, method, preset, label (summary name), sampler,
    budget, seed, label_seed, num_classes, confusion`` (K x K list, rows = ground truth),
    ``labelled_pixels, labelled_classes, seconds`` (wall time of the method call),
    ``job_seconds`` (labels + method + scoring), ``device, threads, worker, version,
    config_id, config, info, finished``. ``mask`` is the predicted class map (uint8)
    for the example images of the first seed, else None.
    """
    t0 = time.perf_counter()
    boxes = None
    tight = boxes_are_tight(ctx.dataset)
    if job.sampler in BOX_SAMPLERS:
        labels, boxes = make_box_labels(sample, job.sampler, job.budget, job.seed, ctx.dataset)
    else:
        labels = make_labels(sample, job.sampler, job.budget, job.seed)
    m = job.method
    if boxes is not None and not boxes:
        # every component too small for a box: the whole image lies outside every box
        labels = np.zeros(sample.gt.shape, np.int64)
    seg = segment(sample.image, labels if (labels != IGNORE).any() else None, m.method, preset=m.preset,
                  seed=int(job.seed), device=ctx.device, boxes=boxes or None,
                  tight_boxes=bool(boxes) and tight,
                  threads=ctx.threads if m.is_dipseg else None, network=dict(m.network_overrides) or None,
                  **dict(m.overrides))
    conf = confusion_matrix(sample.gt, seg.classes, ctx.num_classes, void=sample.void)
    labelled = labels != IGNORE
    classes = [int(c) for c in np.unique(labels[labelled])]
    info = {k: v for k, v in seg.info.items() if k in ("iterations", "stopped")}
    row = {
        "dataset": ctx.dataset,
        "split": ctx.split,
        "image": sample.id,
        "method": m.method,
        "preset": m.preset,
        "label": m.label,
        "sampler": job.sampler,
        "budget": job.budget,
        "seed": int(job.seed),
        "label_seed": label_seed(job.seed, sample.id) if job.sampler != SCRIBBLES else None,
        "num_classes": int(ctx.num_classes),
        "confusion": conf.tolist(),
        "labelled_pixels": int(labelled.sum()),
        "labelled_classes": classes,
        "seconds": round(float(seg.seconds), 4),
        "job_seconds": round(time.perf_counter() - t0, 4),
        "device": ctx.device if m.is_dipseg else "cpu",
        "threads": _current_threads(),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "version": __version__,
        "config_id": m.config_id,
        "config": m.config,
        "info": info,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if boxes is not None:
        errors, scored = box_error(sample.gt, seg.classes, boxes, sample.void)
        row["boxes"] = len(boxes)
        row["tight_boxes"] = tight
        row["box_errors"], row["box_pixels"] = errors, scored
    mask = None
    if sample.id in ctx.example_ids and int(job.seed) == ctx.example_seed:
        mask = seg.classes.astype(np.uint8)
    return {"row": row, "mask": mask}


def _current_threads() -> int | None:
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None
