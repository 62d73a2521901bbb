"""Speed, memory and accuracy of DIPSEG presets against the classical baselines, on VOC.

    python benchmarks/speed.py --root ../shared/data/voc2012 --limit 10

Each method runs in its own fresh process (so peak memory is that method's alone) over the
same images with the same labels as ``dipseg bench`` (``blobs:100`` and ``uniform:10``,
seed 0). Prints one table: seconds per image (median, min, max over all fits), GFLOP per
training step, achieved GFLOP/s, peak resident memory, time to the first preview (the quick,
network-free one) and to the first preview from the network (after 5 steps), and the
dataset-level mIoU for each label setting. ``dipseg:paper`` (minutes per image) is timed over ``--paper-steps``
steps on one image and its seconds per image extrapolated to its full step count; its
GFLOP/s is that of the timed steps. Nothing here is asserted; the numbers go into
docs/performance.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import time

import numpy as np

SETTINGS = (("blobs", 100), ("uniform", 10))


def _paper_worker(method, root, split, start, threads, steps, conn) -> None:
    """The paper preset takes minutes per image: time a few steps and extrapolate."""
    import torch

    torch.set_num_threads(threads)
    from dipseg.eval.specs import label_seed
    from dipseg.eval.datasets import open_dataset
    from dipseg.dip.build import gflop_per_step
    from dipseg.samplers import sample_labels
    from dipseg.api import segment
    from dipseg.dip.presets import get_preset

    ds = open_dataset("voc", root, split)
    s = ds.load(ds.ids[start])
    labels = sample_labels(s.gt, "blobs", 100, seed=label_seed(0, s.id), void=s.void)
    stamps = []
    seg = segment(s.image, labels, method, iterations=steps, callback=lambda p: stamps.append(time.perf_counter()))
    per_step = (stamps[-1] - stamps[1]) / (len(stamps) - 2)  # skip the quick preview and the first step
    p = get_preset("paper")
    conn.send({
        "per_step": per_step, "seconds": [per_step * p.fit.iterations], "extrapolated": True,
        "gflop": [gflop_per_step(p.network, p.fit, s.gt.shape, len(seg.class_ids))], "steps": [1],
        "step_seconds": per_step, "first_preview": [], "first_net_preview": [], "miou": {},
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "images": 1,
    })
    conn.close()


def _worker(method: str, root: str, split: str, limit: int, start: int, threads: int, conn) -> None:
    import torch

    torch.set_num_threads(threads)
    from dipseg.eval.specs import label_seed
    from dipseg.eval.datasets import open_dataset
    from dipseg.dip.build import gflop_per_step
    from dipseg.samplers import sample_labels
    from dipseg.api import parse_method, segment
    from dipseg.eval.metrics import confusion_matrix, scores
    from dipseg.dip.presets import get_preset

    name, preset = parse_method(method)
    ds = open_dataset("voc", root, split)
    ids = ds.ids[start : start + limit]
    out = {"seconds": [], "first_preview": [], "first_net_preview": [], "gflop": [], "steps": [], "miou": {}}
    for sampler, n in SETTINGS:
        conf = np.zeros((ds.num_classes, ds.num_classes), np.int64)
        for image_id in ids:
            s = ds.load(image_id)
            labels = sample_labels(s.gt, sampler, n, seed=label_seed(0, s.id), void=s.void)
            first, first_net = [], []

            def cb(p, t0=time.perf_counter(), first=first, first_net=first_net):
                if p.preview is not None and not first:
                    first.append(time.perf_counter() - t0)
                if p.preview is not None and p.iteration > 0 and not first_net:
                    first_net.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            kwargs = {"callback": cb, "preview_every": 5} if preset else {}
            seg = segment(s.image, labels, method, **kwargs)
            out["seconds"].append(time.perf_counter() - t0)
            if preset:
                p = get_preset(preset)
                out["first_preview"] += first
                out["first_net_preview"] += first_net
                out["steps"].append(seg.info["iterations"])
                out["gflop"].append(gflop_per_step(p.network, p.fit, s.gt.shape, len(seg.class_ids)))
            conf += confusion_matrix(s.gt, seg.classes, ds.num_classes, void=s.void)
        out["miou"][f"{sampler}:{n}"] = 100 * scores(conf)["miou"]
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["images"] = len(ids)
    conn.send(out)
    conn.close()


def in_fresh_process(target, *args):
    """Run ``target(*args, conn)`` in a spawned process (no shared OpenMP pool) and return what it sends."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=target, args=(*args, send))
    p.start()
    result = recv.recv()
    p.join()
    return result


def run(method: str, args) -> dict:
    if method.endswith(":paper"):
        return in_fresh_process(_paper_worker, method, args.root, args.split, args.start, args.threads, args.paper_steps)
    return in_fresh_process(_worker, method, args.root, args.split, args.limit, args.start, args.threads)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="VOC root (VOC2012/ or a folder with JPEGImages/ etc.)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--start", type=int, default=0, help="skip this many images of the split first")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per run")
    ap.add_argument("--methods", default="dipseg:fast,dipseg:slim,grabcut,random-walker,trainable",
                    help="comma-separated; add dipseg:paper for the (slow) poster method")
    ap.add_argument("--paper-steps", type=int, default=5,
                    help="dipseg:paper is timed over this many steps and extrapolated to its full length")
    args = ap.parse_args(argv)
    header = ("method", "images", "s/img med", "min", "max", "GFLOP/step", "GFLOP/s", "peak MiB",
              "1st preview s", "1st net preview s", *(f"mIoU {s}:{n}" for s, n in SETTINGS))
    rows = []
    for method in args.methods.split(","):
        print(f"running {method} ...", file=sys.stderr, flush=True)
        r = run(method, args)
        secs = r["seconds"]
        gflop = statistics.mean(r["gflop"]) if r["gflop"] else None
        if r.get("extrapolated"):
            rate = gflop / r["step_seconds"]
        else:
            rate = (gflop * sum(r["steps"]) / sum(secs)) if gflop else None
        rows.append((
            method + (" (extrapolated)" if r.get("extrapolated") else ""), r["images"], f"{statistics.median(secs):.2f}", f"{min(secs):.2f}", f"{max(secs):.2f}",
            f"{gflop:.2f}" if gflop else "-", f"{rate:.1f}" if rate else "-", f"{r['peak_mib']:.0f}",
            f"{statistics.median(r['first_preview']):.2f}" if r["first_preview"] else "-",
            f"{statistics.median(r['first_net_preview']):.2f}" if r["first_net_preview"] else "-",
            *(f"{r['miou'][f'{s}:{n}']:.1f}" if f"{s}:{n}" in r["miou"] else "-" for s, n in SETTINGS),
        ))
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()
