"""The benchmark: every method on every image with the same sparse labels, scored the VOC way.

A sweep is a list of independent **jobs**, one per (image, method, sampler, budget,
seed). Each job draws the sparse labels, segments the image with one method and keeps
only the image's confusion matrix; the scores come later from the sum of the matrices
(:mod:`dipseg.metrics`).

**Identical labels.** The labels of a job depend only on (image id, sampler, budget,
seed): the sampler's RNG is seeded with :func:`label_seed` = a hash of ``seed`` and the
CRC-32 of the image id, never with the job's position, worker or executor. So every
method sees the same label map, in any order, on any machine.

**Results file.** ``OUT/results.jsonl`` holds one JSON object per finished job (see
:func:`execute_job` for the fields), appended by the driver with one ``write`` of the
whole line, then ``fsync``: a killed run leaves at most a truncated *last* line, which
:class:`ResultsFile` drops (and rewrites the file without it) on the next read.

**Resume.** A job's key is (dataset, image, method, preset, config id, sampler,
budget, seed), where the config id is a hash of the method's full configuration
(so a changed ``iterations`` is a new job, not a hit). A rerun skips every job whose
key is already in the file; the driver also refuses to write a key twice, so no row
is ever duplicated whatever the executor does.

**Outputs** (written at the end of a run, from the rows of the requested jobs only):
``summary.csv`` / ``summary.md`` (:data:`SUMMARY_COLUMNS`), ``miou_vs_budget.png`` and
``examples.png`` (drawn from the masks saved under ``OUT/examples/`` while the jobs
run, so it can be redrawn after a resume).

Executors (:mod:`dipseg.executors`): ``local`` (a process pool) and ``ray``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import socket
import sys
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import __version__
from .labels import IGNORE, SAMPLERS

__all__ = [
    "SUMMARY_COLUMNS",
    "BenchReport",
    "BenchSample",
    "DatasetSource",
    "Job",
    "JobContext",
    "MethodSpec",
    "ResultsFile",
    "execute_job",
    "job_key",
    "label_seed",
    "make_labels",
    "parse_label_specs",
    "parse_methods",
    "row_key",
    "run_bench",
    "summarize",
]

SUMMARY_COLUMNS = ("dataset", "method", "sampler", "budget", "images", "miou", "pixel_acc",
                   "mean_image_miou", "mean_seconds")
"""Columns of ``summary.csv`` (mIoU, pixel accuracy and mean image mIoU in percent)."""

SCRIBBLES = "scribbles"
SCRIBBLE_SETS = ("set-1", "set-2")
DEFAULT_SCRIBBLE_SET = "set-1"
DEFAULT_EXAMPLES = 4


# --------------------------------------------------------------------------- specs


def parse_label_specs(specs: Sequence[str]) -> list[tuple[str, int | str]]:
    """Turn ``["uniform:1,10,100", "blobs:30", "scribbles"]`` into (sampler, budget) pairs.

    ``SAMPLER:N1,N2,...`` gives N pixels per class for a sampler of
    :data:`dipseg.labels.SAMPLERS`; ``scribbles`` (or ``scribbles:set-1,set-2``) uses a
    dataset's real scribbles, the budget being the scribble set's name.

    Raises
    ------
    ValueError
        Empty list, unknown sampler, missing or non-positive budgets, unknown scribble set.
    """
    if isinstance(specs, str):
        specs = [specs]
    if not specs:
        raise ValueError("no --labels given; e.g. --labels uniform:1,10,100 --labels blobs:30,100,300")
    out: list[tuple[str, int | str]] = []
    known = ", ".join([*SAMPLERS, SCRIBBLES])
    for spec in specs:
        text = spec.strip()
        name, sep, rest = text.partition(":")
        name = name.strip()
        if name == SCRIBBLES:
            sets = [s.strip() for s in rest.split(",")] if sep else [DEFAULT_SCRIBBLE_SET]
            for s in sets:
                if s not in SCRIBBLE_SETS:
                    raise ValueError(f"--labels {spec!r}: unknown scribble set {s!r}; choose {', '.join(SCRIBBLE_SETS)}")
                out.append((SCRIBBLES, s))
            continue
        if name not in SAMPLERS:
            raise ValueError(f"--labels {spec!r}: unknown sampler {name!r}; choose one of: {known}")
        if not sep or not rest.strip():
            raise ValueError(f"--labels {spec!r}: give pixels per class, e.g. {name}:1,10,100")
        for part in rest.split(","):
            part = part.strip()
            try:
                n = int(part)
            except ValueError:
                raise ValueError(f"--labels {spec!r}: {part!r} is not a whole number of pixels per class") from None
            if n < 1:
                raise ValueError(f"--labels {spec!r}: pixels per class must be >= 1, got {n}")
            out.append((name, n))
    seen: set = set()
    return [s for s in out if not (s in seen or seen.add(s))]


@dataclass(frozen=True)
class MethodSpec:
    """A method as the benchmark runs it: name, preset, overrides and the resulting configuration.

    Attributes
    ----------
    label : str
        Name in the summary: the method for baselines, ``NAME:PRESET`` for DIPSEG.
    method : str
        Base method name accepted by :func:`dipseg.segment`.
    preset : str or None
    overrides : tuple of (str, value)
        DIPSEG :class:`~dipseg.fitting.FitConfig` overrides (sorted).
    config_json : str
        The full configuration as canonical JSON.
    config_id : str
        First 12 hex digits of its SHA-1 (part of the resume key).
    """

    label: str
    method: str
    preset: str | None
    overrides: tuple
    config_json: str
    config_id: str

    @property
    def is_dipseg(self) -> bool:
        from .methods import DIPSEG_METHODS

        return self.method in DIPSEG_METHODS

    @property
    def config(self) -> dict:
        return json.loads(self.config_json)

    @property
    def file_stem(self) -> str:
        return self.label.replace(":", "_")


def parse_methods(
    methods: str | Sequence[str], preset: str | None = None, fit_overrides: dict | None = None
) -> list[MethodSpec]:
    """Parse ``"dipseg,grabcut"`` (or a list) into :class:`MethodSpec` objects.

    ``preset`` applies to DIPSEG methods without their own ``:PRESET``; ``fit_overrides``
    (e.g. ``{"iterations": 50}``) apply to DIPSEG methods only.

    Raises
    ------
    ValueError
        Unknown method or preset, an empty list, or a bad override.
    """
    from .fitting import config_dict
    from .methods import DIPSEG_METHODS, parse_method
    from .presets import get_preset

    if isinstance(methods, str):
        methods = methods.split(",")
    names = [m.strip() for m in methods if m.strip()]
    if not names:
        raise ValueError("no --methods given; e.g. --methods dipseg,grabcut,random-walker")
    overrides = {k: v for k, v in (fit_overrides or {}).items() if v is not None}
    specs: list[MethodSpec] = []
    for text in names:
        name, preset_name = parse_method(text, preset)
        if name in DIPSEG_METHODS:
            fit = dict(overrides)
            if name == "dipseg-norgb":
                fit["rgb_weight"] = 0.0
            try:
                p = get_preset(preset_name).with_fit(**fit)
            except TypeError as exc:
                raise ValueError(f"bad DIPSEG option: {exc}") from None
            config = config_dict(p.network, p.fit)
            label = f"{name}:{preset_name}"
        else:
            config = {"method": name, "options": _baseline_defaults(name)}
            label = name
        config_json = json.dumps(config, sort_keys=True, separators=(",", ":"), default=list)
        spec = MethodSpec(label, name, preset_name, tuple(sorted(overrides.items())) if name in DIPSEG_METHODS else (),
                          config_json, hashlib.sha1(config_json.encode()).hexdigest()[:12])
        if spec.label not in {s.label for s in specs}:
            specs.append(spec)
    return specs


def _baseline_defaults(name: str) -> dict:
    """Keyword defaults of a baseline function (part of its config, so a changed default is a new job)."""
    import inspect

    from .baselines import BASELINES

    out = {}
    for p in inspect.signature(BASELINES[name]).parameters.values():
        if p.kind is p.KEYWORD_ONLY and p.name != "seed" and p.default is not p.empty:
            out[p.name] = p.default if isinstance(p.default, (int, float, str, bool, type(None))) else repr(p.default)
    return out


def label_seed(seed: int, image_id: str) -> int:
    """Seed of the label sampler for one image: depends on (seed, image id) only.

    ``SeedSequence([seed, crc32(image_id)])`` folded to a 32-bit integer, stable across
    Python versions, processes and machines (unlike ``hash()``).
    """
    crc = zlib.crc32(str(image_id).encode("utf-8"))
    return int(np.random.SeedSequence([int(seed), crc]).generate_state(1)[0])


# --------------------------------------------------------------------------- data


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
        from .datasets import open_dataset

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
    if sampler == SCRIBBLES:
        if budget not in sample.scribbles:
            raise ValueError(f"image {sample.id} has no scribbles {budget!r}")
        return np.asarray(sample.scribbles[budget], dtype=np.int64)
    from .labels import sample_labels

    return sample_labels(sample.gt, sampler, int(budget), seed=label_seed(seed, sample.id), void=sample.void)


# --------------------------------------------------------------------------- jobs


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
    from .methods import segment
    from .metrics import confusion_matrix

    t0 = time.perf_counter()
    labels = make_labels(sample, job.sampler, job.budget, job.seed)
    m = job.method
    seg = segment(sample.image, labels, m.method, preset=m.preset, seed=int(job.seed), device=ctx.device,
                  threads=ctx.threads if m.is_dipseg else None, **dict(m.overrides))
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
    mask = None
    if sample.id in ctx.example_ids and int(job.seed) == ctx.example_seed:
        mask = seg.classes.astype(np.uint8)
    return {"row": row, "mask": mask}


def _current_threads() -> int | None:
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


# --------------------------------------------------------------------------- results file


class ResultsFile:
    """``results.jsonl``: append one row atomically, read back tolerating a truncated last line.

    Parameters
    ----------
    path : path-like
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.keys: set[tuple] = set()
        self.dropped = 0
        self._fd: int | None = None

    def load(self) -> list[dict]:
        """All complete, distinct rows (slim: see :func:`slim_row`); repairs the file if needed.

        A line that is not complete JSON (a kill during a write, a full disk) is dropped,
        as is a second row with a key already seen; the file is then rewritten with the
        good lines only (byte for byte, atomically: temp file + rename).
        """
        self.keys = set()
        self.dropped = 0
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        rows: list[dict] = []
        good: list[bytes] = []
        lines = data.split(b"\n")
        # Every complete row ends with "\n": a last piece without one was cut off.
        complete, tail = lines[:-1], lines[-1]
        bad = 1 if tail.strip() else 0
        for line in complete:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                key = row_key(row)
                slim = slim_row(row)
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            if key in self.keys:
                bad += 1
                continue
            self.keys.add(key)
            rows.append(slim)
            good.append(line + b"\n")
        if bad:
            self.dropped = bad
            self._rewrite(good)
        return rows

    def _rewrite(self, lines: list[bytes]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def append(self, row: dict) -> bool:
        """Append ``row`` unless its key is present; one write, flush, fsync. Returns whether written."""
        key = row_key(row)
        if key in self.keys:
            return False
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        data = _dump(row)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.keys.add(key)
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def slim_row(row: dict) -> dict:
    """The part of a row the summaries need, with the confusion matrix as an int64 array.

    Keeps memory small for a full sweep (tens of thousands of rows): the configuration
    and fit details stay in the file only.
    """
    slim = {k: v for k, v in row.items() if k not in ("config", "info")}
    slim["confusion"] = np.asarray(row["confusion"], dtype=np.int64)
    return slim


def _dump(row: dict) -> bytes:
    return (json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- summary


def summarize(rows: Iterable[dict], order: Sequence[tuple] | None = None) -> list[dict]:
    """One line per (dataset, method, sampler, budget): scores of the summed confusion matrix.

    ``miou`` and ``pixel_acc`` come from the sum of the per-image matrices (VOC protocol),
    ``mean_image_miou`` is the mean of the images' own mIoU; all three in percent.
    ``method`` is the row's ``label`` (``NAME:PRESET`` for DIPSEG). ``order`` optionally
    lists (method, sampler, budget) tuples to sort by; others follow sorted.
    """
    from .metrics import mean_image_miou, scores

    groups: "OrderedDict[tuple, list[dict]]" = OrderedDict()
    for row in rows:
        label = row.get("label") or row["method"]
        groups.setdefault((row["dataset"], label, row["sampler"], str(row["budget"])), []).append(row)
    rank = {tuple(map(str, k)): i for i, k in enumerate(order or [])}

    def sort_key(k):
        return (k[0], rank.get(k[1:], len(rank)), k[1], k[2], _budget_sort(k[3]))

    out = []
    for key in sorted(groups, key=sort_key):
        group = groups[key]
        confs = [np.asarray(r["confusion"], dtype=np.int64) for r in group]
        total = np.sum(confs, axis=0)
        s = scores(total)
        budget = group[0]["budget"]
        out.append({
            "dataset": key[0],
            "method": key[1],
            "sampler": key[2],
            "budget": budget,
            "images": len({r["image"] for r in group}),
            "rows": len(group),
            "miou": 100 * s["miou"],
            "pixel_acc": 100 * s["pixel_acc"],
            "mean_image_miou": 100 * mean_image_miou(confs),
            "mean_seconds": float(np.mean([r["seconds"] for r in group])),
            "labelled_per_class": float(np.mean([r["labelled_pixels"] / max(1, len(r["labelled_classes"]))
                                                 for r in group])),
        })
    return out


def _budget_sort(b: str):
    try:
        return (0, float(b), "")
    except ValueError:
        return (1, 0.0, b)


def _fmt(col: str, value: Any) -> str:
    if col in ("miou", "pixel_acc", "mean_image_miou"):
        return "nan" if value is None or math.isnan(value) else f"{value:.2f}"
    if col == "mean_seconds":
        return f"{value:.3f}"
    return str(value)


def write_summary(out: Path, summary: list[dict]) -> tuple[Path, Path]:
    """Write ``summary.csv`` (exactly :data:`SUMMARY_COLUMNS`) and ``summary.md``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SUMMARY_COLUMNS)
    for s in summary:
        w.writerow([_fmt(c, s[c]) for c in SUMMARY_COLUMNS])
    csv_path = out / "summary.csv"
    _write_atomic(csv_path, buf.getvalue())
    lines = [
        "| " + " | ".join(SUMMARY_COLUMNS) + " |",
        "|" + "|".join("---" if c in ("dataset", "method", "sampler") else "---:" for c in SUMMARY_COLUMNS) + "|",
    ]
    for s in summary:
        lines.append("| " + " | ".join(_fmt(c, s[c]) for c in SUMMARY_COLUMNS) + " |")
    md = (
        "# dipseg bench summary\n\n"
        + "\n".join(lines)
        + "\n\nmiou, pixel_acc: from one confusion matrix summed over the images (VOC protocol), in %. "
        "mean_image_miou: mean of each image's own mIoU, in %. budget: labelled pixels per class "
        "(or the scribble set). mean_seconds: mean wall time of one method call.\n"
    )
    md_path = out / "summary.md"
    _write_atomic(md_path, md)
    return csv_path, md_path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- figures


def _method_colours(methods: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def plot_miou_vs_budget(summary: list[dict], path: Path) -> Path:
    """mIoU against labelled pixels per class (log x): one panel per sampler, one line per method.

    Real scribbles have no budget: their panel is a bar per method and scribble set,
    labelled with the mean labelled pixels per class.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    samplers = list(OrderedDict.fromkeys(s["sampler"] for s in summary)) or ["(none)"]
    methods = list(OrderedDict.fromkeys(s["method"] for s in summary))
    colours = _method_colours(methods)
    fig, axes = plt.subplots(1, len(samplers), figsize=(5.2 * len(samplers), 4.2), squeeze=False)
    dataset = ", ".join(OrderedDict.fromkeys(s["dataset"] for s in summary))
    for ax, sampler in zip(axes[0], samplers):
        rows = [s for s in summary if s["sampler"] == sampler]
        if sampler == SCRIBBLES:
            sets = list(OrderedDict.fromkeys(str(s["budget"]) for s in rows))
            width = 0.8 / max(1, len(methods))
            for i, m in enumerate(methods):
                for j, st in enumerate(sets):
                    hit = [s for s in rows if s["method"] == m and str(s["budget"]) == st]
                    if hit:
                        ax.bar(j + i * width, hit[0]["miou"], width, color=colours[m], label=m if j == 0 else None)
            ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(sets))])
            ax.set_xticklabels([
                f"{st}\n(~{np.mean([s['labelled_per_class'] for s in rows if str(s['budget']) == st]):.0f} px/class)"
                for st in sets
            ])
            ax.set_xlabel("real scribbles")
        else:
            for m in methods:
                pts = sorted((float(s["budget"]), s["miou"]) for s in rows if s["method"] == m)
                if pts:
                    x, y = zip(*pts)
                    ax.plot(x, y, "o-", color=colours[m], label=m)
            ax.set_xscale("log")
            ax.set_xlabel("labelled pixels per class")
        ax.set_title(f"{dataset}: {sampler}")
        ax.set_ylabel("mIoU (%)")
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def example_dir(out: Path, image_id: str, sampler: str, budget: int | str) -> Path:
    """Folder of the saved example masks of one image and label setting."""
    return out / "examples" / str(image_id) / f"{sampler}-{budget}"


def plot_examples(
    out: Path,
    load: Callable[[str], BenchSample],
    image_ids: Sequence[str],
    setting: tuple[str, int | str],
    methods: Sequence[MethodSpec],
    seed: int,
    rows: Sequence[dict],
    path: Path,
) -> Path:
    """Grid: one line per example image; image, labels, ground truth, each method's mask.

    Masks are read from ``OUT/examples/`` (saved while the jobs ran); the labels are drawn
    again from the ground truth (deterministic). A cell whose job has not run says so.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from PIL import Image
    from scipy import ndimage

    from .io import colourize
    from .metrics import scores

    sampler, budget = setting
    conf_of = {
        (r["image"], r.get("label") or r["method"]): np.asarray(r["confusion"], dtype=np.int64)
        for r in rows
        if r["sampler"] == sampler and str(r["budget"]) == str(budget) and int(r["seed"]) == seed
    }
    ncols = 3 + len(methods)
    nrows = max(1, len(image_ids))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 1.9 * nrows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, image_id in enumerate(image_ids):
        sample = load(image_id)
        try:
            labels = make_labels(sample, sampler, budget, seed)
        except ValueError:
            labels = np.full(sample.gt.shape, IGNORE)
        # Grow each seed a little so single pixels stay visible at figure size.
        grow = max(1, round(max(labels.shape) / 120))
        shown = ndimage.grey_dilation(labels + 1, size=2 * grow + 1) - 1
        seeds = shown != IGNORE
        lab_img = (sample.image * 0.45).astype(np.uint8)
        lab_img[ndimage.binary_dilation(seeds) & ~seeds] = 255  # white rim: black (class 0) seeds stay visible
        lab_img[seeds] = colourize(shown)[seeds]
        panels = [(sample.image, image_id), (lab_img, f"labels ({int((labels != IGNORE).sum())} px)"),
                  (colourize(sample.gt), "ground truth")]
        for m in methods:
            mask_path = example_dir(out, image_id, sampler, budget) / f"{m.file_stem}.png"
            if mask_path.is_file():
                mask = np.asarray(Image.open(mask_path), dtype=np.int64)
                conf = conf_of.get((image_id, m.label))
                title = m.label + (f"  {100 * scores(conf)['miou']:.1f}" if conf is not None else "")
                panels.append((colourize(mask), title))
            else:
                panels.append((None, f"{m.label}: not run"))
        for j, (img, title) in enumerate(panels):
            ax = axes[i, j]
            if img is not None:
                ax.imshow(img)
            ax.set_title(title, fontsize=7)
    fig.suptitle(f"{sampler} {budget}, seed {seed} (method titles: image mIoU %)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- driver


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


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _Lock:
    """An exclusive lock on ``OUT/.bench.lock`` so two runs never write the same results file."""

    def __init__(self, out: Path):
        self.path = out / ".bench.lock"
        self.f = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self.f = open(self.path, "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            self.f = None
            raise ValueError(f"another dipseg bench is running with --out {self.path.parent}; wait for it or use another folder") from None
        return self

    def __exit__(self, *exc):
        if self.f is not None:
            self.f.close()
        return False


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
        Dataset folder (default :func:`dipseg.datasets.default_root`), split, first N images.
    seeds : list of int
    executor : {"local", "ray"}
    workers : int, optional
        Local worker processes (default: see :data:`dipseg.executors.DEFAULT_LOCAL_WORKERS`).
    ray_address : str, optional
        Ray cluster to join (``ray://host:10001`` or ``host:6379``); a local instance if None.
    device : {"auto", "cpu", "cuda"}
    preset : str, optional
        DIPSEG preset for methods without ``:PRESET``.
    fit_overrides : dict, optional
        DIPSEG :class:`~dipseg.fitting.FitConfig` overrides, e.g. ``{"iterations": 50}``.
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
        Bad dataset, root, split, method, sampler or label spec (before any job runs).
    ImportError
        ``executor="ray"`` without Ray installed.
    KeyboardInterrupt
        Interrupted: every finished row is in ``results.jsonl``; rerun to resume.
    """
    from . import executors as ex
    from .io import write_mask

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
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given")
    if device not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; choose auto, cpu or cuda")
    settings = parse_label_specs(labels)
    specs = parse_methods(methods, preset, fit_overrides)

    from .datasets import DATASETS, default_root

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

    with _Lock(out):
        results = ResultsFile(out / "results.jsonl")
        rows = results.load()
        report.dropped = results.dropped
        if results.dropped:
            log(f"results.jsonl: dropped {results.dropped} incomplete or duplicate line(s) (an interrupted write)")
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


def _job_text(job: Job) -> str:
    return f"{job.image} {job.method.label} {job.sampler}:{job.budget} seed {job.seed}"
