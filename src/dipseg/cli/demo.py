"""``dipseg demo``: segment a built-in photo from the scribbles shipped with dipseg."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..api import DEFAULT_THREADS, MAX_SEED
from .common import OUT_HELP, check_out_dir, user_errors
from .segment import run_segment


def demo_cmd(
    out: Path = typer.Option(Path("dipseg-demo"), "--out", "-o", metavar="DIR",
                             help=f"{OUT_HELP}: chelsea.png, its scribbles and the segment outputs."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", metavar="NAME",
                                         help="DIPSEG preset (see `dipseg presets`; default: the fast one)."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, max=MAX_SEED, metavar="S", help=f"Random seed, 0..{MAX_SEED}."),
    device: str = typer.Option("auto", "--device", metavar="NAME", help="auto, cpu, cuda or cuda:N."),
    threads: int = typer.Option(DEFAULT_THREADS, "--threads", min=1, metavar="N", help="torch threads (recorded in the metadata)."),
) -> None:
    """Segment scikit-image's cat photo (chelsea) from the scribbles shipped with dipseg."""
    with user_errors():
        from ..api import check_device_name, parse_method

        parse_method("dipseg", preset)
        check_device_name(device)
        check_out_dir(out)
        from importlib.resources import files

        import skimage.data

        from ..io import write_rgb

        out.mkdir(parents=True, exist_ok=True)
        image_path = out / "chelsea.png"
        write_rgb(image_path, skimage.data.chelsea())
        labels_path = out / "chelsea_scribbles.png"
        labels_path.write_bytes(files("dipseg").joinpath("data/chelsea_scribbles.png").read_bytes())
        run_segment(image_path, labels_path, out, "dipseg", preset, seed=seed, device=device, threads=threads)
