"""mIoU against seconds per image for the variants of a ``dipseg bench`` sweep, with the Pareto front.

    python benchmarks/pareto.py runs/architecture/summary.csv -o docs/img/study/pareto.png

Reads the bench's ``summary.csv`` (one row per method variant and label setting), plots one
panel per label setting (dataset mIoU against mean seconds per call) and marks the variants
no other variant beats on both axes. Prints the front per setting. Seconds come from the
bench's own rows, so compare variants of one run only.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path


def pareto_front(points: list[tuple[str, float, float]]) -> list[str]:
    """Names of the points (name, seconds, miou) that no other point beats on both, fastest first."""
    front, best = [], float("-inf")
    for name, _, miou in sorted(points, key=lambda p: (p[1], -p[2])):
        if miou > best:
            front.append(name)
            best = miou
    return front


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("summary", type=Path, help="summary.csv of a dipseg bench sweep")
    ap.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_setting: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    with args.summary.open() as f:
        for row in csv.DictReader(f):
            setting = f"{row['sampler']}:{row['budget']}"
            by_setting[setting].append((row["method"], float(row["mean_seconds"]), float(row["miou"])))
    if not by_setting:
        raise SystemExit(f"error: {args.summary} has no rows")
    fig, axes = plt.subplots(1, len(by_setting), figsize=(6.5 * len(by_setting), 5), squeeze=False)
    for ax, (setting, points) in zip(axes[0], sorted(by_setting.items())):
        front = pareto_front(points)
        print(f"{setting}: Pareto front (fastest first): {', '.join(front)}")
        for name, sec, miou in points:
            on = name in front
            ax.scatter(sec, miou, c="tab:red" if on else "tab:blue", s=36 if on else 20, zorder=3)
            ax.annotate(name, (sec, miou), fontsize=7, xytext=(3, 3), textcoords="offset points")
        fp = sorted((p for p in points if p[0] in front), key=lambda p: p[1])
        ax.plot([p[1] for p in fp], [p[2] for p in fp], c="tab:red", lw=1, zorder=2)
        ax.set_xlabel("mean seconds per image (one thread per worker)")
        ax.set_ylabel("dataset mIoU (%)")
        ax.set_title(setting)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
