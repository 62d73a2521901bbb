"""``dipseg presets`` and ``dipseg classes``: what can be chosen."""

from __future__ import annotations

import typer

from ..palette import PALETTE, VOC_CLASSES


def presets_cmd() -> None:
    """List DIPSEG presets."""
    from ..dip.presets import DEFAULT_PRESET, PRESETS

    for name, p in PRESETS.items():
        mark = " (default)" if name == DEFAULT_PRESET else ""
        typer.echo(f"{name}{mark}: {p.description}")


def classes_cmd() -> None:
    """List the VOC classes with their label values and palette colours."""
    for i, name in enumerate(VOC_CLASSES):
        r, g, b = PALETTE[i]
        typer.echo(f"{i:3d}  {name:12s} rgb({r},{g},{b})")
    typer.echo("255  (unlabelled in index PNGs)")
