"""``dipseg segment FOLDER --boxes SOURCE``: every image of a folder from its boxes, one COCO file for all.

The boxes come from a :class:`dipseg.boxio.BoxSource` (a COCO JSON of the folder's images,
or a folder of per-image VOC XML / COCO JSON / CSV files): a detection data set or a
detector's output becomes masks. Each image is written as by ``dipseg segment IMAGE``
(mask, overlay, metadata) as soon as it is done, and ``annotations.json`` holds every
image's masks. A run that is stopped resumes: an image whose metadata records the same
job (method, preset, seed, threads, steps, boxes, version) is read back, not fitted again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..io import DEFAULT_MAX_PIXELS
from ..palette import VOC_CLASSES
from .common import check_out_dir, expand_images, make_out_dir, warn

COCO_FILE = "annotations.json"


def run_segment_folder(
    folder: Path,
    boxes_source: Optional[Path],
    out: Path,
    method: str = "dipseg",
    preset: Optional[str] = None,
    iterations: Optional[int] = None,
    rgb_weight: Optional[float] = None,
    seed: int = 0,
    device: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    num_classes: Optional[int] = None,
    threads: Optional[int] = None,
    quiet: bool = False,
    classes_file: Optional[Path] = None,
    tight_boxes: bool = False,
    **unsupported,
) -> dict:
    """Segment every image of ``folder`` that has boxes in ``boxes_source``; write one COCO file.

    Parameters
    ----------
    folder : Path
        Images (:func:`dipseg.io.list_images`; no two with the same stem).
    boxes_source : Path
        :class:`dipseg.boxio.BoxSource`.
    unsupported : dict
        ``dipseg segment``'s options that apply to one image only (``labels_path``,
        ``clicks_path``, ``save_probs``, ...): any that is set is an error.

    Returns
    -------
    dict
        ``{"done", "reused", "without_boxes", "failed"}``: image names.

    Raises
    ------
    ValueError
        Bad options or source before any work; after the run, if some images' boxes could
        not be used (the other images are done and in ``annotations.json``).
    """
    from ..api import parse_method
    from .. import __version__
    from .segment import label_options, run_segment

    given = [k for k, v in unsupported.items() if v not in (None, False, "auto")]
    if given:
        flags = ", ".join("--" + k.replace("_path", "").replace("save_", "").replace("_", "-") for k in given)
        raise ValueError(f"{flags}: with a folder of images only --boxes is read (one box source for all); "
                         "give a single IMAGE for labels, clicks, probabilities or figures")
    if boxes_source is None:
        raise ValueError(f"{folder} is a folder: give --boxes (a COCO JSON of its images, or a folder of "
                         "<image stem>.xml / .json / .csv box files) to segment every image from its boxes")
    name, preset_name = parse_method(method, preset)
    _, names, num_classes = label_options("auto", None, classes_file, num_classes)
    images = expand_images([folder], "segment")
    check_out_dir(out)
    if any(p.parent.resolve() == Path(out).resolve() for p in images):
        raise ValueError("-o must differ from the image folder: the masks would land among the images")
    from ..boxio import BoxSource, CocoResults

    source = BoxSource(boxes_source, names if names is not None else VOC_CLASSES)
    make_out_dir(out, [COCO_FILE])
    names = names if names is not None else (VOC_CLASSES if num_classes == len(VOC_CLASSES) else None)

    from tqdm.auto import tqdm

    from ..io import read_image, read_index_png

    # what makes two runs of an image the same job, besides its boxes
    same_job = {"method": name, "preset": preset_name, "seed": seed, "threads": threads, "iterations": iterations,
                "rgb_weight": rgb_weight, "tight_boxes": tight_boxes, "box_source": str(Path(boxes_source).resolve()),
                "version": __version__}
    results = CocoResults(names)
    report: dict[str, list[str]] = {"done": [], "reused": [], "without_boxes": [], "failed": []}
    bar = tqdm(images, desc=f"{folder.name} [{name}:{preset_name}]" if preset_name else folder.name, unit="image",
               disable=quiet, dynamic_ncols=True)
    try:
        for path in bar:
            bar.set_postfix_str(path.name, refresh=False)
            try:
                image = read_image(path, max_pixels=max_pixels)
                boxes = source.boxes_for(path.name, image.shape[:2], num_classes=num_classes)
            except ValueError as exc:
                report["failed"].append(path.name)
                warn(str(exc))
                continue
            if not boxes:
                report["without_boxes"].append(path.name)
                continue
            job = same_job | {"boxes": [b.as_list() for b in boxes]}
            mask_path, meta_path = out / f"{path.stem}_mask.png", out / f"{path.stem}_meta.json"
            classes = _reuse(meta_path, mask_path, job, image.shape[:2])
            if classes is not None:
                report["reused"].append(path.name)
            else:
                run_segment(path, None, out, method, preset, iterations, rgb_weight, seed, device, max_pixels,
                            num_classes, threads=threads, quiet=True, classes_file=classes_file,
                            tight_boxes=tight_boxes, boxes_given=boxes, write_coco=False, extra_meta={"job": job})
                classes = read_index_png(mask_path, "mask")
                report["done"].append(path.name)
            results.add(path.name, classes, boxes)
    finally:
        bar.close()
        # whatever was done, also when stopped: a rerun reads these images back
        if results.images:
            results.write(out / COCO_FILE)
    if not quiet:
        typer.echo(f"{folder}: {len(report['done'])} segmented, {len(report['reused'])} already done, "
                   f"{len(report['without_boxes'])} without boxes, {len(report['failed'])} failed"
                   + (f" -> {out / COCO_FILE}" if results.images else ""))
    if report["failed"]:
        raise ValueError(f"the boxes of {len(report['failed'])} image(s) could not be used "
                         f"({', '.join(report['failed'][:5])}{', ...' if len(report['failed']) > 5 else ''}); "
                         "the messages above say why, the other images are done")
    return report


def _reuse(meta_path: Path, mask_path: Path, job: dict, shape: tuple[int, int]):
    """The saved class map of an image already segmented by the same ``job``, else None."""
    from ..io import read_index_png

    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("job") != job:
            return None
        classes = read_index_png(mask_path, "mask")
    except (OSError, ValueError):
        return None
    return classes if classes.shape == tuple(shape) else None
