"""``dipseg segment``: one image, one label file -> mask, overlay and metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..io import DEFAULT_MAX_PIXELS
from ..palette import VOC_CLASSES
from .common import progress_bar, user_errors


def run_segment(
    image_path: Path,
    labels_path: Path,
    out: Path,
    method: str,
    preset: Optional[str],
    iterations: Optional[int],
    rgb_weight: Optional[float],
    seed: int,
    device: str,
    max_pixels: int,
    num_classes: int,
    save_probs: bool,
    threads: Optional[int],
    quiet: bool = False,
) -> dict:
    """Segment one image file with one label file and write mask, overlay and metadata."""
    from ..api import DIPSEG_METHODS, parse_method, segment
    from ..dip.device import resolve_device
    from ..dip.presets import get_preset
    from ..io import overlay, read_image, read_labels, write_mask, write_rgb

    name, preset_name = parse_method(method, preset)
    resolve_device(device)
    if name not in DIPSEG_METHODS and (iterations is not None or rgb_weight is not None):
        raise ValueError(f"--iterations and --rgb-weight apply to DIPSEG only, not to {name}")
    image = read_image(image_path, max_pixels=max_pixels)
    labels = read_labels(labels_path, shape=image.shape[:2], num_classes=num_classes, max_pixels=max_pixels)
    overrides = {}
    if iterations is not None:
        overrides["iterations"] = iterations
    if rgb_weight is not None:
        overrides["rgb_weight"] = rgb_weight
    bar = cb = None
    if name in DIPSEG_METHODS and not quiet:
        total = iterations if iterations is not None else get_preset(preset_name).fit.iterations
        bar, cb = progress_bar(total, f"{image_path.name} [{name}:{preset_name}]")
    try:
        seg = segment(image, labels, method, preset=preset_name, seed=seed, device=device, callback=cb,
                      threads=threads, **overrides)
    finally:
        if bar is not None:
            bar.close()
    stem = image_path.stem
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "mask": write_mask(out / f"{stem}_mask.png", seg.classes),
        "overlay": write_rgb(out / f"{stem}_overlay.png", overlay(image, seg.classes, labels)),
    }
    if save_probs:
        if seg.probabilities is None:
            raise ValueError(f"--probs: method {name} gives no probabilities")
        files["probabilities"] = out / f"{stem}_probs.npy"
        np.save(files["probabilities"], seg.probabilities)
    meta = seg.metadata() | {"image": str(image_path), "labels": str(labels_path),
                             "labelled_pixels": int((labels >= 0).sum()),
                             "files": {k: str(v) for k, v in files.items()}}
    files["meta"] = out / f"{stem}_meta.json"
    files["meta"].write_text(json.dumps(meta | {"files": {k: str(v) for k, v in files.items()}}, indent=2))
    if not quiet:
        if seg.message:
            typer.echo(f"note: {seg.message}")
        present = ", ".join(
            f"{VOC_CLASSES[c] if c < len(VOC_CLASSES) and num_classes == len(VOC_CLASSES) else c} "
            f"{100 * float((seg.classes == c).mean()):.1f}%"
            for c in seg.class_ids
        )
        typer.echo(f"{image_path.name}: {name} in {seg.seconds:.1f} s -> {present}")
        for k, v in files.items():
            typer.echo(f"  {k:13s} {v}")
    return meta


def segment_cmd(
    image: Path = typer.Argument(..., help="Image file (JPEG, PNG, BMP, ...)."),
    labels: Path = typer.Option(..., "--labels", "-l", help="Label file: index PNG (255 = unlabelled) or RGB(A) scribbles in VOC colours."),
    out: Path = typer.Option(Path("dipseg-out"), "--out", "-o", help="Output folder."),
    method: str = typer.Option("dipseg", "--method", "-m", help="dipseg, dipseg-norgb, grabcut, random-walker or trainable."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="DIPSEG preset (see `dipseg presets`)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", "-n", min=1, help="Override the preset's steps."),
    rgb_weight: Optional[float] = typer.Option(None, "--rgb-weight", min=0.0, help="Weight of the RGB loss (0 = wo/RGB ablation)."),
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Refuse larger images (memory guard)."),
    num_classes: int = typer.Option(len(VOC_CLASSES), "--num-classes", min=2, max=255, help="Valid label values are 0..N-1."),
    probs: bool = typer.Option(False, "--probs", help="Also save class probabilities as .npy (H, W, k)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch threads (default: torch's choice)."),
) -> None:
    """Segment IMAGE from the sparse labels in --labels; writes mask, overlay and metadata."""
    with user_errors():
        run_segment(image, labels, out, method, preset, iterations, rgb_weight, seed, device,
                    max_pixels, num_classes, probs, threads)
