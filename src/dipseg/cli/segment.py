"""``dipseg segment IMAGE``: one image, a label file and/or a box file -> mask, overlay, metadata (and COCO results).

Every option and both input files are checked, and the output folder is created and
written to, before torch is imported and the fit starts: a mistake costs a fraction of a
second, not a fit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import typer

from ..api import DIPSEG_METHODS, check_device_name, check_seed, parse_method
from ..io import DEFAULT_MAX_PIXELS, LABEL_FORMAT_CHOICES
from ..palette import VOC_CLASSES
from .common import check_out_dir, make_out_dir, progress_bar, warn

UNLABELLED_HELP = (
    "Unlabelled pixels: a value in index PNGs (default 255; 0 for napari, ilastik and most annotation tools) "
    "or an R,G,B colour in colour scribbles (default: transparent or 224,224,192). "
    "GrabCut scribbles (Andrade 2015) are recognised by their palette. See docs/labels.md."
)


def label_options(label_format: str, unlabelled: str | None, classes_file, num_classes: int | None):
    """``--label-format``, ``--unlabelled``, ``--classes`` and ``--num-classes``, checked together.

    Returns
    -------
    unlabelled_value, names (list of str or None), num_classes (int; VOC's 21 by default)

    Raises
    ------
    ValueError
        Unknown label format, a bad unlabelled value, or a class count that the class file contradicts.
    """
    if label_format not in LABEL_FORMAT_CHOICES:
        raise ValueError(f"unknown --label-format {label_format!r}; choose one of: {', '.join(LABEL_FORMAT_CHOICES)}")
    unlabelled_value = parse_unlabelled(unlabelled)
    names = None
    if classes_file is not None:
        from ..web.settings import load_classes  # the same class files as `dipseg serve --classes`

        names = load_classes(classes_file)
        if num_classes is not None and num_classes != len(names):
            raise ValueError(f"--num-classes {num_classes} but --classes {classes_file} names {len(names)} classes")
        num_classes = len(names)
    return unlabelled_value, names, num_classes if num_classes is not None else len(VOC_CLASSES)


def parse_unlabelled(text: str | None) -> int | tuple[int, int, int] | None:
    """``--unlabelled``: ``"0"`` -> 0 (index files), ``"0,0,0"`` -> (0, 0, 0) (colour files).

    Raises
    ------
    ValueError
        Neither a value 0..65535 nor three values 0..255.
    """
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1 and 0 <= values[0] <= 65535:
        return values[0]
    if len(values) == 3 and all(0 <= v <= 255 for v in values):
        return tuple(values)
    raise ValueError(f"--unlabelled {text!r}: give a value 0..65535 (index PNGs) or a colour R,G,B with "
                     "0..255 each (colour scribbles), e.g. --unlabelled 0 or --unlabelled 0,0,0")


def class_name(c: int, names: Sequence[str] | None) -> str:
    """How a class is called in messages: its name where known, else ``class N``."""
    return names[c] if names is not None and 0 <= c < len(names) else f"class {c}"


def run_segment(
    image_path: Path,
    labels_path: Optional[Path],
    out: Path,
    method: str = "dipseg",
    preset: Optional[str] = None,
    iterations: Optional[int] = None,
    rgb_weight: Optional[float] = None,
    seed: int = 0,
    device: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    num_classes: Optional[int] = None,
    save_probs: bool = False,
    threads: Optional[int] = None,
    quiet: bool = False,
    unlabelled: Optional[str] = None,
    label_format: str = "auto",
    classes_file: Optional[Path] = None,
    progress_figure: bool = False,
    figure_steps: Optional[str] = None,
    boxes_path: Optional[Path] = None,
    box_format: str = "auto",
    tight_boxes: bool = False,
    clicks_path: Optional[Path] = None,
    boxes_given: Optional[list] = None,
    write_coco: bool = True,
    extra_meta: Optional[dict] = None,
) -> dict:
    """Segment one image file with a label file, a box file and/or a click file; write mask, overlay and metadata.

    Clicks (``--clicks``: ``class,x,y`` CSV, :mod:`dipseg.clicks`) label a disk each; clicks
    alone are fitted as the click protocol's (the border frame seeds the background until a
    click is background) with the preset ``clicks`` unless one is named.

    With boxes (``--boxes``: Pascal VOC XML, COCO JSON or ``class,x0,y0,x1,y1`` CSV,
    :mod:`dipseg.boxio`) it also writes ``annotations.json``, the result as COCO
    annotations with RLE masks and boxes.

    ``boxes_given`` (checked :class:`dipseg.boxes.Box` objects) stand in for a box file, and
    ``write_coco`` False leaves ``annotations.json`` to the caller (:func:`run_segment_folder`);
    ``extra_meta`` is added to the metadata.

    Returns
    -------
    dict
        The metadata written to ``<stem>_meta.json``.

    Raises
    ------
    ValueError
        Any bad option or input (see :func:`dipseg.cli.common.user_errors`), before the fit.
    """
    # 1. options, without reading anything
    clicks_only = clicks_path is not None and labels_path is None and boxes_path is None
    if clicks_only and preset is None and ":" not in method:
        from ..dip.presets import CLICK_PRESET

        preset = CLICK_PRESET
    name, preset_name = parse_method(method, preset)
    dipseg = name in DIPSEG_METHODS
    seed = check_seed(seed, "--seed")
    check_device_name(device)
    if not dipseg and (iterations is not None or rgb_weight is not None):
        raise ValueError(f"--iterations and --rgb-weight apply to DIPSEG only, not to {name}")
    if save_probs and not dipseg:
        raise ValueError(f"--probs: {name} gives no class probabilities (DIPSEG methods only)")
    if (progress_figure or figure_steps is not None) and not dipseg:
        raise ValueError(f"--progress-figure: {name} has no training steps to show (DIPSEG methods only)")
    steps = None
    if progress_figure or figure_steps is not None:
        from ..dip.presets import get_preset
        from ..figures import parse_steps

        steps = parse_steps(figure_steps, iterations if iterations is not None else get_preset(preset_name).fit.iterations)
    if labels_path is None and boxes_path is None and clicks_path is None and not boxes_given:
        raise ValueError("give --labels FILE, --boxes FILE, --clicks FILE or several of them")
    if tight_boxes and boxes_path is None and not boxes_given:
        raise ValueError("--tight-boxes says how the boxes of --boxes FILE were drawn: give --boxes FILE or drop it")
    from ..boxio import FORMATS as BOX_FORMATS

    if box_format not in BOX_FORMATS:
        raise ValueError(f"unknown --box-format {box_format!r}; choose one of: {', '.join(BOX_FORMATS)}")
    unlabelled_value, names, num_classes = label_options(label_format, unlabelled, classes_file, num_classes)
    check_out_dir(out)

    # 2. the inputs (Pillow only)
    from ..io import load_label_file, read_image

    image = read_image(image_path, max_pixels=max_pixels)
    lf = labels = None
    if labels_path is not None:
        lf = load_label_file(labels_path, image.shape[:2], num_classes, max_pixels, unlabelled_value, label_format)
        labels = lf.labels
        if names is None and (num_classes == len(VOC_CLASSES) or lf.format is not None and lf.format.class_names):
            names = lf.class_names
        if lf.note and not quiet:
            typer.echo(f"note: {lf.note}")
        if lf.warning:
            warn(lf.warning)
    boxes = list(boxes_given) if boxes_given else None
    if boxes_path is not None:
        from ..boxio import read_boxes

        box_names = names if names is not None else VOC_CLASSES
        boxes = read_boxes(boxes_path, image.shape[:2], fmt=box_format, classes=box_names, image=image_path.name,
                           num_classes=num_classes) if _coco_with_image(boxes_path, image_path) else \
            read_boxes(boxes_path, image.shape[:2], fmt=box_format, classes=box_names, num_classes=num_classes)
    clicks = None
    if clicks_path is not None:
        labels, clicks = _add_clicks(clicks_path, labels, image.shape[:2], names, num_classes, clicks_only)
    if (boxes is not None or clicks is not None) and names is None and num_classes == len(VOC_CLASSES):
        names = VOC_CLASSES  # box and click files name VOC's classes by default

    # 3. where the results go, and the device
    stem = image_path.stem
    outputs = {"mask": f"{stem}_mask.png", "overlay": f"{stem}_overlay.png", "meta": f"{stem}_meta.json"}
    if save_probs:
        outputs["probabilities"] = f"{stem}_probs.npy"
    if steps is not None:
        outputs["progress_figure"] = f"{stem}_progress.png"
    if boxes is not None and write_coco:
        outputs["coco"] = "annotations.json"
    if dipseg and device != "cpu":
        from ..dip.device import resolve_device  # imports torch, which the fit needs next anyway

        resolve_device(device)
    make_out_dir(out, list(outputs.values()))

    # 4. the work
    import numpy as np

    from ..api import segment
    from ..dip.presets import get_preset
    from ..io import overlay, write_mask, write_rgb

    overrides = {k: v for k, v in (("iterations", iterations), ("rgb_weight", rgb_weight)) if v is not None}
    bar = cb = None
    if dipseg and not quiet:
        total = iterations if iterations is not None else get_preset(preset_name).fit.iterations
        bar, cb = progress_bar(total, f"{image_path.name} [{name}:{preset_name}]")
    snapshots: list = []
    callback, every = cb, None
    if steps is not None:
        from ..figures import Snapshot

        def callback(p, bar_cb=cb):
            # the preview of iteration i is the network after i - 1 steps
            if p.rgb is not None and p.iteration - 1 in steps and all(s.step != p.iteration - 1 for s in snapshots):
                snapshots.append(Snapshot(p.iteration - 1, p.preview, p.rgb))
            if bar_cb is not None:
                bar_cb(p)

        every = 1
    try:
        seg = segment(image, labels, method, preset=preset_name, seed=seed, device=device, callback=callback,
                      preview_every=every, threads=threads, boxes=boxes, tight_boxes=tight_boxes, **overrides)
    finally:
        if bar is not None:
            bar.close()
    drawn = labels if labels is not None else np.full(image.shape[:2], -1, np.int64)
    files = {
        "mask": write_mask(out / outputs["mask"], seg.classes),
        "overlay": write_rgb(out / outputs["overlay"], overlay(image, seg.classes, drawn)),
    }
    if boxes is not None and write_coco:
        from ..boxio import write_coco_results

        files["coco"] = write_coco_results(out / outputs["coco"], [{"file_name": image_path.name,
                                                                    "classes": seg.classes, "boxes": boxes}],
                                           names)
    if save_probs:
        files["probabilities"] = out / outputs["probabilities"]
        np.save(files["probabilities"], seg.probabilities)
    if steps is not None:
        from ..figures import Snapshot, progress_figure as draw

        last = seg.info.get("iterations", 0)
        if last in steps and seg.state is not None and all(s.step != last for s in snapshots):
            snapshots.append(Snapshot(last, *_network_view(seg)))
        shown = [s for s in sorted(snapshots, key=lambda s: s.step)]
        files["progress_figure"] = draw(image, drawn, shown, seg.classes, out / outputs["progress_figure"],
                                        title=f"{image_path.name}: {name}:{preset_name}, seed {seed}")
    files["meta"] = out / outputs["meta"]
    meta = seg.metadata() | {
        "image": str(image_path),
        "labels": str(labels_path) if labels_path is not None else None,
        "label_file": {"kind": lf.kind, "format": lf.format.name if lf.format else None,
                       "unlabelled": list(lf.unlabelled) if isinstance(lf.unlabelled, tuple) else lf.unlabelled}
        if lf is not None else None,
        "boxes_file": str(boxes_path) if boxes_path is not None else None,
        "clicks_file": str(clicks_path) if clicks_path is not None else None,
        "clicks": [list(c) for c in clicks] if clicks is not None else None,
        "labelled_pixels": int((drawn >= 0).sum()),
        "class_names": {str(int(c)): class_name(int(c), names) for c in seg.class_ids} if names else None,
        "files": {k: str(v) for k, v in files.items()},
    } | dict(extra_meta or {})
    files["meta"].write_text(json.dumps(meta, indent=2))
    if not quiet:
        if seg.message:
            typer.echo(f"note: {seg.message}")
        present = ", ".join(f"{class_name(int(c), names)} {100 * float((seg.classes == c).mean()):.1f}%"
                            for c in seg.class_ids)
        typer.echo(f"{image_path.name}: {name} in {seg.seconds:.1f} s -> {present}")
        for k, v in files.items():
            typer.echo(f"  {k:13s} {v}")
    return meta


def _add_clicks(path: Path, labels, shape: tuple[int, int], names, num_classes: Optional[int], alone: bool):
    """``labels`` (or none) with the disks of the clicks in ``path`` painted on, and the clicks.

    Clicks ``alone`` get the click protocol's background frame while none is background (class 0).
    """
    import numpy as np

    from ..boxio import class_id
    from ..clicks import add_frame, paint_clicks, read_clicks_csv
    from ..io import InputError, read_text
    from ..labels import IGNORE

    text = read_text(path, "click file")
    known = names if names is not None else VOC_CLASSES
    clicks = read_clicks_csv(text, lambda n, where: class_id(n, known, where), shape, where=str(path))
    limit = num_classes if num_classes is not None else len(known)
    for c in clicks:
        if c.cls >= limit:
            raise InputError(f"{path}: click ({c.x}, {c.y}) has class {c.cls}, but the classes are 0..{limit - 1} "
                             "(--num-classes or --classes FILE for more)")
    base = labels if labels is not None else np.full(shape, IGNORE, np.int64)
    labels = paint_clicks(base, clicks)
    if alone:
        labels = add_frame(labels, 0, IGNORE)
    return labels, clicks


def _coco_with_image(boxes_path: Path, image_path: Path) -> bool:
    """Whether a COCO box file lists several images, so the image's own file name picks its boxes."""
    if boxes_path.suffix.lower() != ".json":
        return False
    try:
        data = json.loads(boxes_path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # read_boxes reports it
    anns = data.get("annotations") if isinstance(data, dict) else data
    return isinstance(anns, list) and len({a.get("image_id") for a in anns if isinstance(a, dict)}) > 1


def _network_view(seg) -> tuple:
    """Class map and RGB of a finished fit's network at working resolution (the figure's last step)."""
    import numpy as np
    import torch

    state = seg.state
    with torch.no_grad():
        rgb, logits = state.model(state.net_input)
    classes = np.asarray(state.class_ids)[logits.argmax(1)[0].cpu().numpy()]
    return classes, (rgb[0].permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
