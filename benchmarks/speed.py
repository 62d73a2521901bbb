"""Speed, memory and accuracy of DIPSEG presets against the classical baselines, on VOC.

    python benchmarks/speed.py --root ../shared/data/voc2012 --limit 10

Each method runs in its own fresh process (so peak memory is that method's alone) over the
same images with the same labels as ``dipseg bench`` (``blobs:100`` and ``uniform:10``,
seed 0), image already in memory. Prints one table: seconds per image (median, min, max
over all fits), GFLOP per training step, achieved GFLOP/s, peak resident memory, time to
the first preview (the quick, network-free one) and to the first preview from the network
(after 5 steps), and the dataset-level mIoU for each label setting. ``grabcut (1 object)``
times GrabCut on one object per image (the image's background and its first object class
labelled, nothing else), the single-object time the speed target is measured against.

Below the table:

* **conv throughput**: GFLOP/s of a plain 3x3 convolution (forward + backward, 64 -> 64
  channels at 96x96, channels-last, fp32) on as many torch threads as the fits use: what
  this machine's convolutions reach when arithmetic, not overhead, dominates;
* **where a step goes**: torch's profiler on one fit of the default preset, self time per
  kind of operation, per step;
* **cold start**: ``dipseg segment IMAGE --labels FILE -o DIR`` as a new process, from its
  start to its files written (import time counts), median of ``--cold`` runs.

``dipseg:paper`` (minutes per image) is timed over ``--paper-steps`` steps on one image and
its seconds per image extrapolated to its full step count; its GFLOP/s is that of the timed
steps. Nothing here is asserted; the numbers go into docs/performance.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SETTINGS = (("blobs", 100), ("uniform", 10))


def _labels(s, sampler, n):
    from dipseg.eval.specs import label_seed
    from dipseg.samplers import sample_labels

    return sample_labels(s.gt, sampler, n, seed=label_seed(0, s.id), void=s.void)


def _paper_worker(method, root, split, start, threads, steps, conn) -> None:
    """The paper preset takes minutes per image: time a few steps and extrapolate."""
    from dipseg.api import segment
    from dipseg.dip.build import gflop_per_step
    from dipseg.dip.presets import get_preset
    from dipseg.eval.datasets import open_dataset

    ds = open_dataset("voc", root, split)
    s = ds.load(ds.ids[start])
    labels = _labels(s, "blobs", 100)
    stamps = []
    seg = segment(s.image, labels, method, iterations=steps, threads=threads,
                  callback=lambda p: stamps.append(time.perf_counter()))
    per_step = (stamps[-1] - stamps[1]) / (len(stamps) - 2)  # skip the quick preview and the first step
    p = get_preset("paper")
    conn.send({
        "per_step": per_step, "seconds": [per_step * p.fit.iterations], "extrapolated": True,
        "gflop": [gflop_per_step(p.network, p.fit, s.gt.shape, len(seg.class_ids))], "steps": [1],
        "step_seconds": per_step, "first_preview": [], "first_net_preview": [], "miou": {},
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "images": 1,
    })
    conn.close()


def _one_object(s) -> np.ndarray:
    """Labels ``blobs:100`` of the background and of the image's first object class only."""
    labels = _labels(s, "blobs", 100)
    objects = [c for c in np.unique(labels) if c > 0]
    keep = (labels == 0) | (labels == (objects[0] if objects else -2))
    return np.where(keep, labels, -1)


def _worker(method: str, root: str, split: str, limit: int, start: int, threads: int, conn) -> None:
    from dipseg.api import parse_method, segment
    from dipseg.dip.build import gflop_per_step
    from dipseg.dip.presets import get_preset
    from dipseg.eval.datasets import open_dataset
    from dipseg.eval.metrics import confusion_matrix, scores

    one_object = method == "grabcut-1"
    name, preset = parse_method("grabcut" if one_object else method)
    ds = open_dataset("voc", root, split)
    ids = ds.ids[start : start + limit]
    out = {"seconds": [], "first_preview": [], "first_net_preview": [], "gflop": [], "steps": [], "miou": {}}
    for sampler, n in ((("blobs", 100),) if one_object else SETTINGS):
        conf = np.zeros((ds.num_classes, ds.num_classes), np.int64)
        for image_id in ids:
            s = ds.load(image_id)
            labels = _one_object(s) if one_object else _labels(s, sampler, n)
            first, first_net = [], []

            def cb(p, t0=time.perf_counter(), first=first, first_net=first_net):
                if p.preview is not None and not first:
                    first.append(time.perf_counter() - t0)
                if p.preview is not None and p.iteration > 0 and not first_net:
                    first_net.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            kwargs = {"callback": cb, "preview_every": 5, "threads": threads} if preset else {}
            seg = segment(s.image, labels, name, preset=preset, **kwargs)
            out["seconds"].append(time.perf_counter() - t0)
            if preset:
                p = get_preset(preset)
                out["first_preview"] += first
                out["first_net_preview"] += first_net
                out["steps"].append(seg.info["iterations"])
                out["gflop"].append(gflop_per_step(p.network, p.fit, s.gt.shape, len(seg.class_ids)))
            conf += confusion_matrix(s.gt, seg.classes, ds.num_classes, void=s.void)
        if not one_object:
            out["miou"][f"{sampler}:{n}"] = 100 * scores(conf)["miou"]
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["images"] = len(ids)
    conn.send(out)
    conn.close()


def _conv_worker(threads: int, conn) -> None:
    import torch

    torch.set_num_threads(threads)
    x = torch.randn(1, 64, 96, 96).contiguous(memory_format=torch.channels_last).requires_grad_()
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
    flop = 3 * 2 * 64 * 64 * 9 * 96 * 96  # forward + input and weight gradients
    best = 0.0
    for rep in range(5):
        t0 = time.perf_counter()
        for _ in range(20):
            conv(x).sum().backward()
        best = max(best, 20 * flop / (time.perf_counter() - t0) / 1e9)
    conn.send(best)
    conn.close()


KINDS = (("conv", ("conv", "mkldnn_convolution")), ("batch norm", ("batch_norm",)), ("optimizer", ("adam", "optimizer")),
         ("up/down sampling", ("upsample", "interpolate", "grid_sampler", "pad")))


def _profile_worker(root: str, split: str, start: int, threads: int, conn) -> None:
    """Self CPU time per kind of torch op over one fit of the default preset, per step."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from dipseg.api import segment
    from dipseg.eval.datasets import open_dataset

    s = open_dataset("voc", root, split).load(open_dataset("voc", root, split).ids[start])
    labels = _labels(s, "blobs", 100)
    segment(s.image, labels, threads=threads)  # warm up
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        seg = segment(s.image, labels, threads=threads)
    wall = time.perf_counter() - t0
    steps = max(1, seg.info["iterations"])
    parts = {k: 0.0 for k, _ in KINDS}
    parts["other torch ops"] = 0.0
    total = 0.0
    for ev in prof.key_averages():
        if not ev.key.startswith("aten::") and not ev.key.startswith("Optimizer"):
            continue
        t = ev.self_cpu_time_total / 1e6
        total += t
        name = ev.key.lower()
        kind = next((k for k, words in KINDS if any(w in name for w in words)), "other torch ops")
        parts[kind] += t
    conn.send({"wall": wall, "steps": steps, "parts": parts, "torch": total})
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


def cold_start(root: str, split: str, start: int, threads: int, runs: int) -> list[float]:
    """Seconds of ``dipseg segment`` as a fresh process, start to files written."""
    from dipseg.eval.datasets import open_dataset
    from dipseg.io import write_labels

    ds = open_dataset("voc", root, split)
    image_id = ds.ids[start]
    s = ds.load(image_id)
    image_path = next(Path(ds.root).glob(f"JPEGImages/{image_id}.jpg"), None)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        labels = write_labels(Path(tmp) / "labels.png", _labels(s, "blobs", 100))
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "dipseg", "segment", str(image_path), "--labels", str(labels),
                            "-o", str(Path(tmp) / "out"), "--threads", str(threads)],
                           check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
    return times


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
    ap.add_argument("--threads", type=int, default=2, help="threads per DIPSEG fit")
    ap.add_argument("--methods", default="dipseg:fast,grabcut-1,grabcut,random-walker,trainable",
                    help="comma-separated; grabcut-1 is GrabCut on one object; add dipseg:paper for the (slow) poster method")
    ap.add_argument("--paper-steps", type=int, default=5,
                    help="dipseg:paper is timed over this many steps and extrapolated to its full length")
    ap.add_argument("--cold", type=int, default=3, help="runs of the cold-start command (0: skip)")
    args = ap.parse_args(argv)
    header = ("method", "images", "s/img med", "min", "max", "GFLOP/step", "GFLOP/s", "peak MiB",
              "1st preview s", "1st net preview s", *(f"mIoU {s}:{n}" for s, n in SETTINGS))
    rows, rates = [], {}
    for method in args.methods.split(","):
        print(f"running {method} ...", file=sys.stderr, flush=True)
        r = run(method, args)
        secs = r["seconds"]
        gflop = statistics.mean(r["gflop"]) if r["gflop"] else None
        if r.get("extrapolated"):
            rate = gflop / r["step_seconds"]
        else:
            rate = (gflop * sum(r["steps"]) / sum(secs)) if gflop else None
        rates[method] = rate
        label = {"grabcut-1": "grabcut (1 object)"}.get(method, method)
        rows.append((
            label + (" (extrapolated)" if r.get("extrapolated") else ""), r["images"], f"{statistics.median(secs):.2f}",
            f"{min(secs):.2f}", f"{max(secs):.2f}",
            f"{gflop:.2f}" if gflop else "-", f"{rate:.1f}" if rate else "-", f"{r['peak_mib']:.0f}",
            f"{statistics.median(r['first_preview']):.2f}" if r["first_preview"] else "-",
            f"{statistics.median(r['first_net_preview']):.2f}" if r["first_net_preview"] else "-",
            *(f"{r['miou'][f'{s}:{n}']:.1f}" if f"{s}:{n}" in r["miou"] else "-" for s, n in SETTINGS),
        ))
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")

    # the fit's torch threads: one of `threads` prepares the refinement (dipseg.dip.fit.fit)
    torch_threads = max(1, args.threads - 1)
    conv = in_fresh_process(_conv_worker, torch_threads)
    print(f"\nconv throughput ({torch_threads} torch thread(s), 3x3 64->64 at 96x96, fwd+bwd): {conv:.1f} GFLOP/s")
    for method, rate in rates.items():
        if rate and method.startswith("dipseg"):
            print(f"  {method}: the fit reaches {rate:.1f} GFLOP/s = {100 * rate / conv:.0f} % of it")
    prof = in_fresh_process(_profile_worker, args.root, args.split, args.start, args.threads)
    per_step = 1e3 / prof["steps"]
    print(f"\nwhere a default-preset fit goes (profiler, one image, {prof['steps']} steps, {prof['wall']:.2f} s wall"
          f" under the profiler): torch ops {prof['torch'] * per_step:.1f} ms/step")
    for kind, t in sorted(prof["parts"].items(), key=lambda kv: -kv[1]):
        print(f"  {kind:18s} {t * per_step:6.2f} ms/step  ({100 * t / prof['wall']:.0f} % of the wall time)")
    rest = prof["wall"] - prof["torch"]
    print(f"  {'outside torch ops':18s} {rest * per_step:6.2f} ms/step  ({100 * rest / prof['wall']:.0f} %: Python, "
          "the refinement, colour models, I/O)")
    if args.cold:
        times = cold_start(args.root, args.split, args.start, args.threads, args.cold)
        print(f"\ncold start: `dipseg segment` as a new process, start to files written: median "
              f"{statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, {len(times)} runs)")


if __name__ == "__main__":
    main()
