"""The label-budget curve of one or more ``dipseg bench`` runs, and each budget's margin.

    python benchmarks/budget_plot.py runs/budget250 -o docs/img/study/budget250.png --reference dipseg:fast

Reads every row of each run's ``results.jsonl`` (runs made with different ``--methods`` and
``--labels`` into one folder, or several folders), summarises them the way ``dipseg bench``
does (dataset mIoU from one confusion matrix per method and setting), prints a Markdown table
of every setting with the reference method's margin over the best other method, and plots
mIoU against labelled pixels per class, one panel per sampler (``dipseg bench``'s own
plot: a method measured at only some budgets of a sampler is drawn as points).
"""

from __future__ import annotations

import argparse
import json
from collections import OrderedDict
from pathlib import Path

from dipseg.eval.report import plot_miou_vs_budget, summarize


def read_rows(folders: list[Path]) -> list[dict]:
    rows = []
    for folder in folders:
        path = folder / "results.jsonl"
        if not path.is_file():
            raise SystemExit(f"error: {path} not found; give the -o folder of a dipseg bench run")
        with path.open() as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="output folders of dipseg bench runs")
    ap.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--reference", default="dipseg:fast", help="method whose margin is reported")
    ap.add_argument("--limit", type=int, default=None, help="only the first N image ids (sorted)")
    args = ap.parse_args()

    rows = read_rows(args.runs)
    if args.limit is not None:
        keep = set(sorted({r["image"] for r in rows})[: args.limit])
        rows = [r for r in rows if r["image"] in keep]
    summary = summarize(rows)
    if not summary:
        raise SystemExit("error: no rows")
    settings = list(OrderedDict.fromkeys((s["sampler"], str(s["budget"])) for s in summary))
    methods = list(OrderedDict.fromkeys(s["method"] for s in summary))
    cell = {(s["method"], s["sampler"], str(s["budget"])): s for s in summary}
    print(f"| labels | images | {' | '.join(methods)} | margin of {args.reference} over the best other |")
    print("|---|---:|" + "---:|" * len(methods) + "---:|")
    for sampler, budget in settings:
        got = {m: cell[(m, sampler, budget)] for m in methods if (m, sampler, budget) in cell}
        others = [g["miou"] for m, g in got.items() if m != args.reference]
        margin = (f"{got[args.reference]['miou'] - max(others):+.1f}"
                  if args.reference in got and others else "")
        images = "/".join(sorted({str(g["images"]) for g in got.values()}))
        print(f"| {sampler}:{budget} | {images} | "
              + " | ".join(f"{got[m]['miou']:.2f}" if m in got else "-" for m in methods) + f" | {margin} |")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_miou_vs_budget(summary, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
