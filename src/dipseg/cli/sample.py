"""``dipseg sample``: sparse labels drawn from a ground-truth map, deterministic given --seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from .common import user_errors


def sample_cmd(
    gt: Path = typer.Argument(..., help="Ground-truth index PNG (e.g. VOC SegmentationClass/*.png)."),
    sampler: str = typer.Option(..., "--sampler", help="uniform or blobs."),
    pixels: int = typer.Option(..., "--pixels", "-n", min=1, help="Labelled pixels per class."),
    seed: int = typer.Option(0, "--seed", "-s"),
    void: int = typer.Option(255, "--void", help="Ground-truth value never sampled."),
    out: Path = typer.Option(..., "--out", "-o", help="Label PNG to write (255 = unlabelled)."),
) -> None:
    """Draw sparse labels from a ground-truth map (deterministic given --seed)."""
    from ..io import read_index_png, write_labels
    from ..samplers import sample_labels

    with user_errors():
        arr = read_index_png(gt, "ground truth")
        labels = sample_labels(arr, sampler, pixels, seed=seed, void=void)
        write_labels(out, labels)
        per = {int(c): int((labels == c).sum()) for c in np.unique(labels) if c >= 0}
        typer.echo(f"{out}: {sum(per.values())} labelled pixels ({sampler}, seed {seed}) per class {per}")
