"""``dipseg segment``: the command, over one image (:mod:`.segment`) or a folder of them (:mod:`.batch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..api import DEFAULT_THREADS, DEVICES, MAX_SEED
from ..io import DEFAULT_MAX_PIXELS, PIL_MAX_PIXELS
from .batch import run_segment_folder
from .common import OUT_HELP, user_errors
from .segment import UNLABELLED_HELP, run_segment


def segment_cmd(
    image: Path = typer.Argument(..., metavar="IMAGE", help="Image file (JPEG, PNG, BMP, TIFF; 16-bit is scaled to 8), "
                                                         "or a folder of images with --boxes (see docs/boxes.md, Files)."),
    labels: Optional[Path] = typer.Option(None, "--labels", "-l", metavar="FILE",
                                          help="Label file: index PNG (the value is the class) or RGB(A) scribbles in VOC colours; see docs/labels.md."),
    boxes: Optional[Path] = typer.Option(None, "--boxes", "-b", metavar="FILE",
                                         help="Object boxes: Pascal VOC XML, COCO JSON (bbox x,y,w,h) or CSV class,x0,y0,x1,y1; "
                                              "with or without --labels. Also writes annotations.json (COCO, RLE). With a folder "
                                              "IMAGE: a COCO JSON of its images or a folder of <image stem>.xml/.json/.csv. "
                                              "See docs/boxes.md."),
    box_format: str = typer.Option("auto", "--box-format", metavar="NAME", help="auto (by suffix), voc, coco or csv."),
    clicks: Optional[Path] = typer.Option(None, "--clicks", "-k", metavar="FILE",
                                          help="Clicks: CSV class,x,y (pixel column and row), a disk of 5 px each; alone they run "
                                               "the preset clicks with the click protocol's background frame. See docs/labels.md (Clicks)."),
    tight_boxes: bool = typer.Option(False, "--tight-boxes",
                                     help="The boxes touch their objects on every side, as detection data's (VOC, COCO) do; "
                                          "without it boxes are taken as drawn with a margin. See docs/boxes.md."),
    unlabelled: Optional[str] = typer.Option(None, "--unlabelled", metavar="VALUE", help=UNLABELLED_HELP),
    label_format: str = typer.Option("auto", "--label-format", metavar="NAME",
                                     help="Index PNG convention: auto (recognise GrabCut scribbles, else voc), voc or grabcut."),
    classes: Optional[Path] = typer.Option(None, "--classes", metavar="FILE",
                                           help="Class names, one per line, as for `dipseg serve` (sets the number of classes)."),
    out: Path = typer.Option(Path("dipseg-out"), "--out", "-o", metavar="DIR",
                             help=f"{OUT_HELP}: IMAGE_mask.png, IMAGE_overlay.png, IMAGE_meta.json."),
    method: str = typer.Option("dipseg", "--method", "-m", metavar="NAME",
                               help="dipseg, dipseg-norgb, dipseg:PRESET, grabcut, random-walker or trainable."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", metavar="NAME", help="DIPSEG preset (see `dipseg presets`)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", "-n", min=1, metavar="N", help="Override the preset's steps (>= 1)."),
    rgb_weight: Optional[float] = typer.Option(None, "--rgb-weight", min=0.0, metavar="W", help="Weight of the RGB loss (0 = wo/RGB ablation)."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, max=MAX_SEED, metavar="S", help=f"Random seed, 0..{MAX_SEED}."),
    device: str = typer.Option("auto", "--device", metavar="NAME", help=f"{', '.join(DEVICES)} or cuda:N."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, max=PIL_MAX_PIXELS, metavar="N",
                                   help="Refuse larger images (memory guard)."),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", min=2, max=255, metavar="N",
                                              help="Valid label values are 0..N-1 (default: 21, the VOC classes, or the --classes count)."),
    probs: bool = typer.Option(False, "--probs", help="Also save class probabilities as IMAGE_probs.npy (H, W, k); DIPSEG only."),
    threads: int = typer.Option(DEFAULT_THREADS, "--threads", min=1, metavar="N",
                                help="torch threads; the result depends on them and they are recorded in the metadata. "
                                     "One stays fast on a busy machine (README, Threads)."),
    progress_figure: bool = typer.Option(False, "--progress-figure",
                                         help="Also write IMAGE_progress.png: the mask and RGB reconstruction at chosen steps (DIPSEG)."),
    figure_steps: Optional[str] = typer.Option(None, "--figure-steps", metavar="S1,S2,...",
                                               help="Steps shown by --progress-figure (default: 0, a fifth and all of the steps, "
                                                    "as the poster's 0/40/200)."),
) -> None:
    """Segment IMAGE from the sparse labels in --labels, the boxes in --boxes and/or the clicks in --clicks; writes mask, overlay and metadata into -o."""
    with user_errors():
        if image.is_dir():
            run_segment_folder(image, boxes, out, method, preset, iterations, rgb_weight, seed, device, max_pixels,
                               num_classes, threads, classes_file=classes, tight_boxes=tight_boxes,
                               labels_path=labels, clicks_path=clicks, save_probs=probs,
                               progress_figure=progress_figure, figure_steps=figure_steps, unlabelled=unlabelled,
                               label_format=label_format, box_format=box_format)
            return
        run_segment(image, labels, out, method, preset, iterations, rgb_weight, seed, device, max_pixels,
                    num_classes, probs, threads, unlabelled=unlabelled, label_format=label_format, classes_file=classes,
                    progress_figure=progress_figure, figure_steps=figure_steps, boxes_path=boxes,
                    box_format=box_format, tight_boxes=tight_boxes, clicks_path=clicks)
