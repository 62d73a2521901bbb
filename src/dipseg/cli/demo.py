"""``dipseg demo``: segment a built-in photo from the scribbles shipped with dipseg."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..io import DEFAULT_MAX_PIXELS
from ..palette import VOC_CLASSES
from .common import user_errors
from .segment import run_segment


def demo_cmd(
    out: Path = typer.Option(Path("dipseg-demo"), "--out", "-o", help="Output folder."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p"),
    seed: int = typer.Option(0, "--seed", "-s"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Segment scikit-image's cat photo (chelsea) from the scribbles shipped with dipseg."""
    from importlib.resources import files

    import skimage.data

    from ..io import write_rgb

    with user_errors():
        out.mkdir(parents=True, exist_ok=True)
        image_path = out / "chelsea.png"
        write_rgb(image_path, skimage.data.chelsea())
        labels_path = out / "chelsea_scribbles.png"
        labels_path.write_bytes(files("dipseg").joinpath("data/chelsea_scribbles.png").read_bytes())
        run_segment(image_path, labels_path, out, "dipseg", preset, None, None, seed, device,
                    DEFAULT_MAX_PIXELS, len(VOC_CLASSES), False, None)
