"""``dipseg transfer``: label one image, segment the next ones (video frames, similar images).

``dipseg transfer --from IMAGE --labels LABELS IMAGES... -o OUT`` fits DIPSEG on IMAGE
once and applies the fitted network to every other image (no new fit per image); each
gets ``<stem>_mask.png``, ``<stem>_overlay.png`` and ``<stem>_meta.json`` as ``dipseg
segment`` writes them (the source image too). ``--model FILE`` saves the fitted model
there; without ``--from``, ``--model FILE`` loads a saved model instead of fitting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..api import DEFAULT_THREADS, DEVICES, MAX_SEED, check_device_name, check_seed, parse_method
from ..io import DEFAULT_MAX_PIXELS, PIL_MAX_PIXELS
from ..palette import VOC_CLASSES
from .common import OUT_HELP, check_out_dir, expand_images, make_out_dir, progress_bar, user_errors
from .segment import UNLABELLED_HELP, class_name, label_options

def run_transfer(
    images: list[Path],
    out: Path,
    source: Optional[Path] = None,
    labels_path: Optional[Path] = None,
    model_path: Optional[Path] = None,
    preset: Optional[str] = None,
    iterations: Optional[int] = None,
    seed: int = 0,
    device: str = "auto",
    threads: int = DEFAULT_THREADS,
    refine: str = "seeds",
    confidence: float | None = None,
    finetune: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    num_classes: Optional[int] = None,
    unlabelled: Optional[str] = None,
    label_format: str = "auto",
    classes_file: Optional[Path] = None,
    save_probs: bool = False,
    quiet: bool = False,
) -> dict:
    """Fit on ``source`` (or load ``model_path``) and segment every image; write masks, overlays, metadata.

    Returns
    -------
    dict
        ``{"model": description, "images": [metadata of each image]}`` (also ``OUT/transfer.json``).

    Raises
    ------
    ValueError
        Bad options or inputs (before any fit), e.g. neither ``--from`` nor ``--model``,
        ``--from`` without ``--labels``, a preset whose network does not see the image.
    """
    from ..dip.transfer import CONFIDENCE, REFINE_MODES, check_transferable

    # 1. options, without reading anything
    if source is None and model_path is None:
        raise ValueError("give --from IMAGE --labels FILE to fit a model, or --model FILE to reuse a saved one")
    if source is not None and labels_path is None:
        raise ValueError("--from IMAGE needs --labels FILE (the labels of that image)")
    if source is None and labels_path is not None:
        raise ValueError("--labels belongs to --from IMAGE; with --model alone the saved model's labels are used")
    if source is None and (preset is not None or iterations is not None):
        raise ValueError("--preset and --iterations apply when fitting (--from), not to a loaded --model")
    if refine not in REFINE_MODES:
        raise ValueError(f"--refine must be one of {', '.join(REFINE_MODES)}, got {refine!r}")
    confidence = CONFIDENCE if confidence is None else confidence
    if not 0 < confidence <= 1:
        raise ValueError(f"--confidence must be in (0, 1], got {confidence}")
    seed = check_seed(seed, "--seed")
    check_device_name(device)
    if source is not None:
        _, preset_name = parse_method("dipseg", preset)
        from ..api import dipseg_config

        check_transferable(dipseg_config("dipseg", preset_name, {"iterations": iterations}).fit)
    unlabelled_value, names, num_classes = label_options(label_format, unlabelled, classes_file, num_classes)
    targets = expand_images(images)
    if source is not None:
        if not Path(source).is_file():
            raise ValueError(f"--from {source} does not exist")
        clash = [p for p in targets if p.stem == Path(source).stem and p.resolve() != Path(source).resolve()]
        if clash:
            raise ValueError(f"--from {source} and {clash[0]} have the same name: their outputs would overwrite each other")
    if source is None and not Path(model_path).is_file():
        raise ValueError(f"--model {model_path} does not exist (give --from IMAGE --labels FILE to fit one)")
    check_out_dir(out)
    if model_path is not None and source is not None:
        check_out_dir(Path(model_path).parent, "--model")
        if Path(model_path).is_dir():
            raise ValueError(f"--model {model_path} is a folder; give a file name such as model.pt")

    # 2. inputs (Pillow only), then the output folder
    from ..io import load_label_file, read_image

    labels = lf = None
    if source is not None:
        src_image = read_image(source, max_pixels=max_pixels)
        lf = load_label_file(labels_path, src_image.shape[:2], num_classes, max_pixels, unlabelled_value, label_format)
        labels = lf.labels
        if names is None and (num_classes == len(VOC_CLASSES) or lf.format is not None and lf.format.class_names):
            names = lf.class_names
    stems = ([Path(source)] if source is not None else []) + targets
    make_out_dir(out, [n for p in stems for n in (f"{p.stem}_mask.png", f"{p.stem}_overlay.png", f"{p.stem}_meta.json")])

    # 3. the model
    import numpy as np

    from ..api import fit_model, load_model
    from ..io import overlay, write_mask, write_rgb

    records = []

    def write(path: Path, seg, lab, extra: dict) -> dict:
        stem = path.stem
        files = {"mask": write_mask(out / f"{stem}_mask.png", seg.classes),
                 "overlay": write_rgb(out / f"{stem}_overlay.png", overlay(image, seg.classes, lab))}
        if save_probs:
            files["probabilities"] = out / f"{stem}_probs.npy"
            np.save(files["probabilities"], seg.probabilities)
        files["meta"] = out / f"{stem}_meta.json"
        meta = seg.metadata() | {"image": str(path)} | extra | {
            "class_names": {str(int(c)): class_name(int(c), names) for c in seg.class_ids} if names else None,
            "files": {k: str(v) for k, v in files.items()},
        }
        files["meta"].write_text(json.dumps(meta, indent=2))
        return meta

    if source is not None:
        bar = cb = None
        if not quiet:
            from ..dip.presets import get_preset

            total = iterations if iterations is not None else get_preset(preset_name).fit.iterations
            bar, cb = progress_bar(total, f"fit {Path(source).name} [dipseg:{preset_name}]")
        try:
            model = fit_model(src_image, labels, preset=preset_name, seed=seed, device=device, callback=cb,
                              threads=threads, **({"iterations": iterations} if iterations is not None else {}))
        finally:
            if bar is not None:
                bar.close()
        image = src_image
        records.append(write(Path(source), model.source, labels, {
            "labels": str(labels_path), "labelled_pixels": int((labels >= 0).sum()), "role": "source"}))
        if model_path is not None:
            model.save(model_path)
        if not quiet:
            typer.echo(f"{Path(source).name}: fitted in {model.source.seconds:.1f} s"
                       + (f", model saved to {model_path}" if model_path is not None else ""))
    else:
        model = load_model(model_path)
        if not quiet:
            typer.echo(f"model {model_path}: classes {', '.join(class_name(int(c), names) for c in model.class_ids)}, "
                       f"fitted by dipseg {model.version} on a {model.source_shape[1]}x{model.source_shape[0]} image")

    # 4. every image
    from tqdm.auto import tqdm

    import sys

    for path in tqdm(targets, desc="transfer", unit="image", file=sys.stderr, dynamic_ncols=True, disable=quiet):
        image = read_image(path, max_pixels=max_pixels)
        res = model.predict(image, refine=refine, confidence=confidence, finetune=finetune, device=device,
                            threads=threads)
        records.append(write(path, res, None, {
            "role": "transfer", "model": str(model_path) if model_path is not None else None,
            "source": str(source) if source is not None else model.info.get("source_image"),
            "pseudo_labelled_pixels": int((res.pseudo_labels >= 0).sum()),
        }))
    summary = {"model": model.describe() | {"file": str(model_path) if model_path else None},
               "images": [{k: r[k] for k in ("image", "seconds", "files")} | {"role": r.get("role")} for r in records]}
    (out / "transfer.json").write_text(json.dumps(summary, indent=2))
    if not quiet:
        secs = [r["seconds"] for r in records if r.get("role") == "transfer"]
        typer.echo(f"{len(secs)} image(s) transferred, {np.mean(secs):.2f} s each -> {out}")
    return summary


def transfer_cmd(
    images: List[Path] = typer.Argument(..., metavar="IMAGES...", help="Images (or folders of images) to segment."),
    source: Optional[Path] = typer.Option(None, "--from", metavar="IMAGE", help="The labelled image to fit on."),
    labels: Optional[Path] = typer.Option(None, "--labels", "-l", metavar="FILE",
                                          help="Labels of --from (index PNG or VOC-colour scribbles; docs/labels.md)."),
    model: Optional[Path] = typer.Option(None, "--model", metavar="FILE",
                                         help="With --from: save the fitted model here. Without: load it instead of fitting."),
    out: Path = typer.Option(Path("dipseg-out"), "--out", "-o", metavar="DIR",
                             help=f"{OUT_HELP}: STEM_mask.png, STEM_overlay.png, STEM_meta.json per image, transfer.json."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", metavar="NAME",
                                         help="DIPSEG preset of the fit (one whose network sees the image)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", "-n", min=1, metavar="N", help="Override the preset's steps."),
    refine: str = typer.Option("seeds", "--refine", metavar="MODE",
                               help="seeds (the fit's refinement, seeded by confident pixels) or none."),
    confidence: Optional[float] = typer.Option(None, "--confidence", metavar="P",
                                               help="Probability above which a pixel seeds the refinement (default 0.97)."),
    finetune: int = typer.Option(0, "--finetune", min=0, metavar="N",
                                 help="Fine-tune N steps on each image with its confident pixels as labels (slower)."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, max=MAX_SEED, metavar="S", help=f"Random seed, 0..{MAX_SEED}."),
    device: str = typer.Option("auto", "--device", metavar="NAME", help=f"{', '.join(DEVICES)} or cuda:N."),
    threads: int = typer.Option(DEFAULT_THREADS, "--threads", min=1, metavar="N", help="torch threads."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, max=PIL_MAX_PIXELS, metavar="N",
                                   help="Refuse larger images (memory guard)."),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", min=2, max=255, metavar="N",
                                              help="Valid label values are 0..N-1 (default 21)."),
    unlabelled: Optional[str] = typer.Option(None, "--unlabelled", metavar="VALUE", help=UNLABELLED_HELP),
    label_format: str = typer.Option("auto", "--label-format", metavar="NAME", help="auto, voc or grabcut."),
    classes: Optional[Path] = typer.Option(None, "--classes", metavar="FILE", help="Class names, one per line."),
    probs: bool = typer.Option(False, "--probs", help="Also save STEM_probs.npy (H, W, k)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or messages."),
) -> None:
    """Fit DIPSEG on one labelled image (--from, --labels) and segment IMAGES with it, without a new fit each."""
    with user_errors():
        run_transfer(images, out, source, labels, model, preset, iterations, seed, device, threads, refine,
                     confidence, finetune, max_pixels, num_classes, unlabelled, label_format, classes, probs, quiet)
