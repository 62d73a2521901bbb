"""``dipseg sample``: sparse labels drawn from a ground-truth map, deterministic given --seed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..api import MAX_SEED
from ..labels import VOID
from ..samplers import SAMPLERS
from .common import OUT_HELP, check_out_dir, make_out_dir, user_errors, warn


def sample_cmd(
    gt: Path = typer.Argument(..., metavar="GT", help="Ground truth: index PNG (e.g. VOC SegmentationClass/*.png) or a grayscale 0/255 mask."),
    sampler: str = typer.Option(..., "--sampler", metavar="NAME", help=f"{' or '.join(SAMPLERS)}."),
    pixels: int = typer.Option(..., "--pixels", "-n", min=1, metavar="N", help="Labelled pixels per class."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, max=MAX_SEED, metavar="S", help=f"Random seed, 0..{MAX_SEED}."),
    void: Optional[int] = typer.Option(None, "--void", min=0, max=255, metavar="V",
                                       help="Ground-truth value never sampled (default 255; a grayscale mask of 0, 128 "
                                            "and 255 is read as background 0, foreground 255, void 128)."),
    out: Path = typer.Option(Path("dipseg-out"), "--out", "-o", metavar="DIR",
                             help=f"{OUT_HELP}: GT_labels.png (index PNG, 255 = unlabelled)."),
) -> None:
    """Draw sparse labels from a ground-truth map (deterministic given --seed) into -o/GT_labels.png."""
    with user_errors():
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
        check_out_dir(out)
        from ..io import read_ground_truth, write_labels
        from ..samplers import sample_labels

        truth = read_ground_truth(gt, void)
        if truth.void != VOID and (truth.values == VOID).any():
            raise ValueError(f"{gt}: value {VOID} is a class here (--void {truth.void}), but {VOID} marks unlabelled "
                             f"pixels in label files; use --void {VOID} or map that class to another value")
        if truth.note:
            typer.echo(f"note: {truth.note}")
        labels = sample_labels(truth.values, sampler, pixels, seed=seed, void=truth.void)
        path = make_out_dir(out, [f"{gt.stem}_labels.png"]) / f"{gt.stem}_labels.png"
        write_labels(path, labels)
        per = {int(c): int((labels == c).sum()) for c in sorted(set(labels[labels >= 0].tolist()))}
        if len(per) == 1:
            warn(f"only class {next(iter(per))} is in the ground truth: a segmentation from these labels gives every "
                 "pixel that class")
        typer.echo(f"{path}: {sum(per.values())} labelled pixels ({sampler}, seed {seed}) per class {per}")
