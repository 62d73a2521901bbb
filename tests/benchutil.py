"""Helpers shared by the benchmark tests: a tiny VOC-layout dataset and ways to read a sweep's files.

A utility module, not a test file: test files import it, never each other.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from dipseg.eval.jobs import row_key
from dipseg.eval.runner import run_bench
from dipseg.palette import PALETTE

METHODS = "grabcut,dipseg"
LABELS = ["uniform:2,8", "blobs:9"]
TINY = {"iterations": 5, "working_size": 64}
N_IMAGES = 3
N_JOBS = N_IMAGES * 2 * 3


def make_voc(root: Path, n: int = N_IMAGES, size: int = 48) -> Path:
    """A tiny VOC-layout dataset: background, a 'person' box and a 'car' disc, void borders."""
    from scipy import ndimage

    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    ids = []
    for k in range(n):
        rng = np.random.default_rng(k)
        gt = np.zeros((size, size), np.uint8)
        y0, x0 = 6 + 2 * k, 24 - k
        gt[y0 : y0 + 18, x0 : x0 + 16] = 15
        yy, xx = np.mgrid[:size, :size]
        gt[(yy - 34) ** 2 + (xx - 12) ** 2 < (7 + k) ** 2] = 7
        colours = {0: (40, 160, 60), 15: (220, 180, 150), 7: (30, 40, 200)}
        img = np.zeros((size, size, 3), float)
        for c, rgb in colours.items():
            img[gt == c] = rgb
        img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
        # a void band on the object borders, as in VOC
        border = np.zeros_like(gt, bool)
        for c in (15, 7):
            m = gt == c
            border |= ndimage.binary_dilation(m) & ~m
        gt[border] = 255
        id_ = f"2099_{k:06d}"
        ids.append(id_)
        Image.fromarray(img).save(root / "JPEGImages" / f"{id_}.jpg", quality=95)
        p = Image.fromarray(gt, mode="P")
        p.putpalette(PALETTE.ravel().tolist())
        p.save(root / "SegmentationClass" / f"{id_}.png")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")
    return root


def read_summary(path: Path, drop=("mean_seconds",)) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def read_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def keys(rows: list[dict]) -> list[tuple]:
    return [row_key(r) for r in rows]


def sweep(voc: Path, out: Path, **kw):
    args = dict(root=voc, fit_overrides=TINY, workers=1, threads=1, progress=False, log=lambda m: None)
    args.update(kw)
    return run_bench("voc", args.pop("methods", METHODS), args.pop("labels", LABELS), out, **args)
