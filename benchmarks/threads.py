"""How many torch threads a single ``dipseg segment`` should use, on an idle and on a busy machine.

    python benchmarks/threads.py --root ../shared/data/voc2012 --limit 3 --threads 1,2 --hogs 0,1

For each number of CPU hogs (processes that spin at 100 % of a core, standing in for
another user's job) and each thread count, every image is segmented with the default
preset in a fresh process (so no OpenMP pool is shared between runs), labels ``blobs:100``
seed 0 as in ``dipseg bench``. Prints one table of seconds per image (median, min, max)
and, per image, how many pixels of the mask differ between the first thread count and the
others (a fit is reproducible only for a fixed thread count). Nothing is asserted; the
numbers go into the README and ``--threads``' help.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time

import numpy as np
from speed import in_fresh_process  # benchmarks/speed.py, beside this script


def _hog() -> None:
    while True:
        pass


def _fit(root: str, image_id: str, threads: int, method: str, conn) -> None:
    from dipseg.api import segment
    from dipseg.eval.datasets import open_dataset
    from dipseg.eval.specs import label_seed
    from dipseg.samplers import sample_labels

    s = open_dataset("voc", root, "val").load(image_id)
    labels = sample_labels(s.gt, "blobs", 100, seed=label_seed(0, s.id), void=s.void)
    t0 = time.perf_counter()
    seg = segment(s.image, labels, method, threads=threads)
    conn.send((time.perf_counter() - t0, seg.classes.astype(np.uint8)))
    conn.close()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="VOC root")
    ap.add_argument("--limit", type=int, default=3, help="first N images of val")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--hogs", default="0,1", help="comma-separated numbers of busy-loop processes beside the fit")
    ap.add_argument("--method", default="dipseg")
    args = ap.parse_args(argv)
    from dipseg.eval.datasets import open_dataset

    ids = open_dataset("voc", args.root, "val", args.limit).ids
    counts = [int(t) for t in args.threads.split(",")]
    rows, diffs = [], {}
    for hogs in (int(h) for h in args.hogs.split(",")):
        procs = [mp.get_context("spawn").Process(target=_hog, daemon=True) for _ in range(hogs)]
        for p in procs:
            p.start()
        try:
            for t in counts:
                secs = []
                for image_id in ids:
                    s, mask = in_fresh_process(_fit, args.root, image_id, t, args.method)
                    print(f"hogs {hogs} threads {t} {image_id}: {s:.1f} s", file=sys.stderr, flush=True)
                    secs.append(s)
                    first = diffs.setdefault((hogs, image_id), {}).setdefault(counts[0], mask)
                    diffs[(hogs, image_id)][t] = int((mask != first).sum())
                rows.append((hogs, t, statistics.median(secs), min(secs), max(secs)))
        finally:
            for p in procs:
                p.kill()
                p.join()
    print("| CPU hogs | threads | s/img median | min | max |")
    print("|---|---|---|---|---|")
    for hogs, t, med, lo, hi in rows:
        print(f"| {hogs} | {t} | {med:.1f} | {lo:.1f} | {hi:.1f} |")
    print()
    print(f"pixels that differ from the {counts[0]}-thread mask:")
    for (hogs, image_id), d in diffs.items():
        if hogs == 0:
            print(f"  {image_id}: " + ", ".join(f"{t} threads {n}" for t, n in d.items() if t != counts[0]))


if __name__ == "__main__":
    main()
