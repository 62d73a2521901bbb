"""What a sweep reports: ``summary.csv`` / ``summary.md``, ``miou_vs_budget.png``, ``examples.png``.

Written at the end of a run from the rows of the requested jobs only. ``examples.png`` is
drawn from the masks saved under ``OUT/examples/`` while the jobs run, so it can be
redrawn after a resume.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..labels import IGNORE
from ..palette import colourize
from .jobs import BenchSample, make_labels
from .metrics import mean_image_miou, scores
from .specs import SCRIBBLES, MethodSpec

SUMMARY_COLUMNS = ("dataset", "method", "sampler", "budget", "images", "miou", "pixel_acc",
                   "mean_image_miou", "mean_seconds")
"""Columns of ``summary.csv`` (mIoU, pixel accuracy and mean image mIoU in percent)."""


def summarize(rows: Iterable[dict], order: Sequence[tuple] | None = None) -> list[dict]:
    """One line per (dataset, method, sampler, budget): scores of the summed confusion matrix.

    ``miou`` and ``pixel_acc`` come from the sum of the per-image matrices (VOC protocol),
    ``mean_image_miou`` is the mean of the images' own mIoU; all three in percent.
    ``method`` is the row's ``label`` (``NAME:PRESET`` for DIPSEG). ``order`` optionally
    lists (method, sampler, budget) tuples to sort by; others follow sorted.
    """
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
        if all("box_pixels" in r for r in group):
            # the GrabCut literature's error rate: misclassified / scored pixels inside the boxes
            out[-1]["box_error"] = 100 * sum(r["box_errors"] for r in group) / max(1, sum(r["box_pixels"] for r in group))
    return out


def _budget_sort(b: str):
    try:
        return (0, float(b), "")
    except ValueError:
        return (1, 0.0, b)


def _fmt(col: str, value: Any) -> str:
    if col in ("miou", "pixel_acc", "mean_image_miou", "box_error"):
        return "nan" if value is None or math.isnan(value) else f"{value:.2f}"
    if col == "mean_seconds":
        return f"{value:.3f}"
    return str(value)


def write_summary(out: Path, summary: list[dict]) -> tuple[Path, Path]:
    """Write ``summary.csv`` (:data:`SUMMARY_COLUMNS`) and ``summary.md``.

    With box label modes a last column ``box_error`` holds the error rate inside the
    boxes, in % (empty for other modes).
    """
    columns = SUMMARY_COLUMNS + (("box_error",) if any("box_error" in s for s in summary) else ())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for s in summary:
        w.writerow([_fmt(c, s[c]) if c in s else "" for c in columns])
    csv_path = out / "summary.csv"
    write_atomic(csv_path, buf.getvalue())
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if c in ("dataset", "method", "sampler") else "---:" for c in columns) + "|",
    ]
    for s in summary:
        lines.append("| " + " | ".join(_fmt(c, s[c]) if c in s else "" for c in columns) + " |")
    md = (
        "# dipseg bench summary\n\n"
        + "\n".join(lines)
        + "\n\nmiou, pixel_acc: from one confusion matrix summed over the images (VOC protocol), in %. "
        "mean_image_miou: mean of each image's own mIoU, in %. budget: labelled pixels per class "
        "(or the scribble set). mean_seconds: mean wall time of one method call."
        + (" box_error: misclassified pixels inside the boxes, in % of the scored pixels there "
           "(the GrabCut literature's error rate)." if len(columns) > len(SUMMARY_COLUMNS) else "")
        + "\n"
    )
    md_path = out / "summary.md"
    write_atomic(md_path, md)
    return csv_path, md_path


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _method_colours(methods: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def plot_miou_vs_budget(summary: list[dict], path: Path) -> Path:
    """mIoU against labelled pixels per class (log x): one panel per sampler, one line per method.

    A method measured at only some of a panel's budgets is drawn as points, not a line.

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
            budgets = {str(s["budget"]) for s in rows}
            for m in methods:
                pts = sorted((float(s["budget"]), s["miou"]) for s in rows if s["method"] == m)
                if pts:
                    x, y = zip(*pts)
                    # A method run at only some of the panel's budgets gets points: a line
                    # would claim the budgets between them.
                    ax.plot(x, y, "o-" if len(pts) == len(budgets) else "o", color=colours[m], label=m)
            if all(float(s["budget"]) > 0 for s in rows):
                ax.set_xscale("log")  # budgets span decades; box modes have budget 0, kept linear
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
