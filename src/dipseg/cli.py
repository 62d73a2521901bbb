"""Command-line interface: a thin layer over :func:`dipseg.segment` and friends.

Every user error ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from . import __version__
from .io import DEFAULT_MAX_PIXELS, VOC_CLASSES, InputError, PALETTE

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Segment an image from a handful of labelled pixels with a Deep Image Prior.",
    pretty_exceptions_enable=False,
)


def fail(message: str) -> None:
    """Print one error line and exit with status 2."""
    typer.echo(f"dipseg: error: {message}", err=True)
    raise typer.Exit(2)


class _Fail:
    """Context manager turning ValueError/OSError into one line and exit code 2."""

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if exc is None or isinstance(exc, (typer.Exit, typer.Abort, KeyboardInterrupt)):
            return False
        if isinstance(exc, ImportError):
            fail(f"{exc}")
        if isinstance(exc, (ValueError, OSError)):
            fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
        return False


def _progress_callback(total: int, desc: str):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr, dynamic_ncols=True)

    def cb(p):
        bar.total = p.total
        bar.update(p.iteration - bar.n)
        if p.losses:
            bar.set_postfix(loss=f"{p.losses['total']:.3f}", ce=f"{p.losses['ce']:.3f}", refresh=False)

    return bar, cb


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
    from .io import overlay, read_image, read_labels, write_mask, write_rgb
    from .methods import DIPSEG_METHODS, parse_method, segment
    from .presets import get_preset

    from .fitting import resolve_device

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
        bar, cb = _progress_callback(total, f"{image_path.name} [{name}:{preset_name}]")
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


@app.command("segment")
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
    with _Fail():
        run_segment(image, labels, out, method, preset, iterations, rgb_weight, seed, device,
                    max_pixels, num_classes, probs, threads)


@app.command("sample")
def sample_cmd(
    gt: Path = typer.Argument(..., help="Ground-truth index PNG (e.g. VOC SegmentationClass/*.png)."),
    sampler: str = typer.Option(..., "--sampler", help="uniform or blobs."),
    pixels: int = typer.Option(..., "--pixels", "-n", min=1, help="Labelled pixels per class."),
    seed: int = typer.Option(0, "--seed", "-s"),
    void: int = typer.Option(255, "--void", help="Ground-truth value never sampled."),
    out: Path = typer.Option(..., "--out", "-o", help="Label PNG to write (255 = unlabelled)."),
) -> None:
    """Draw sparse labels from a ground-truth map (deterministic given --seed)."""
    from .io import _open, write_labels
    from .labels import sample_labels

    with _Fail():
        img = _open(gt, "ground-truth", DEFAULT_MAX_PIXELS)
        if img.mode not in ("P", "L"):
            raise InputError(f"ground truth {gt} has mode {img.mode}; expected an index (palette or grayscale) PNG")
        arr = np.asarray(img, dtype=np.int64)
        labels = sample_labels(arr, sampler, pixels, seed=seed, void=void)
        write_labels(out, labels)
        per = {int(c): int((labels == c).sum()) for c in np.unique(labels) if c >= 0}
        typer.echo(f"{out}: {sum(per.values())} labelled pixels ({sampler}, seed {seed}) per class {per}")


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("dipseg-demo"), "--out", "-o", help="Output folder."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p"),
    seed: int = typer.Option(0, "--seed", "-s"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Segment scikit-image's cat photo (chelsea) from the scribbles shipped with dipseg."""
    from importlib.resources import files

    import skimage.data

    from .io import write_rgb

    with _Fail():
        out.mkdir(parents=True, exist_ok=True)
        image_path = out / "chelsea.png"
        write_rgb(image_path, skimage.data.chelsea())
        labels_path = out / "chelsea_scribbles.png"
        labels_path.write_bytes(files("dipseg").joinpath("data/chelsea_scribbles.png").read_bytes())
        run_segment(image_path, labels_path, out, "dipseg", preset, None, None, seed, device,
                    DEFAULT_MAX_PIXELS, len(VOC_CLASSES), False, None)


@app.command("presets")
def presets_cmd() -> None:
    """List DIPSEG presets."""
    from .presets import DEFAULT_PRESET, PRESETS

    for name, p in PRESETS.items():
        mark = " (default)" if name == DEFAULT_PRESET else ""
        typer.echo(f"{name}{mark}: {p.description}")


@app.command("classes")
def classes_cmd() -> None:
    """List the VOC classes with their label values and palette colours."""
    for i, name in enumerate(VOC_CLASSES):
        r, g, b = PALETTE[i]
        typer.echo(f"{i:3d}  {name:12s} rgb({r},{g},{b})")
    typer.echo("255  (unlabelled in index PNGs)")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"dipseg {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version."),
) -> None:
    pass


def _register_optional_commands() -> None:
    """Commands that live in their own modules (bench, serve) register themselves here."""
    for module in ("bench_cli", "web_cli"):
        try:
            mod = __import__(f"dipseg.{module}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"dipseg.{module}":
                raise
            continue
        mod.register(app)


_register_optional_commands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
