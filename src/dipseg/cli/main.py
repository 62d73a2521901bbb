"""The ``dipseg`` command: a Typer app with every command registered statically.

Each command lives in its own module and is a thin layer over the library API; user
errors, including a bad option, end with one line on stderr and exit code 2
(:mod:`dipseg.cli.common`). Heavy modules (torch, OpenCV, FastAPI) are imported inside the
commands that need them, after their arguments are checked. ``-o`` / ``--out`` is an
output folder in every command.
"""

from __future__ import annotations

import gc

import typer

from .. import __version__
from .bench import bench_cmd
from .demo import demo_cmd
from .info import classes_cmd, presets_cmd
from .sample import sample_cmd
from .segment_cmd import segment_cmd
from .serve import serve_cmd
from .transfer import transfer_cmd
from .common import Command, Group

app = typer.Typer(
    cls=Group,
    add_completion=False,
    no_args_is_help=True,
    help="Segment an image from a handful of labelled pixels with a Deep Image Prior.",
    pretty_exceptions_enable=False,
    # plain help and one-line errors (Group), without rich's boxes
    rich_markup_mode=None,
)

app.command("segment", cls=Command)(segment_cmd)
app.command("sample", cls=Command)(sample_cmd)
app.command("demo", cls=Command)(demo_cmd)
app.command("bench", cls=Command)(bench_cmd)
app.command("serve", cls=Command)(serve_cmd)
app.command("transfer", cls=Command)(transfer_cmd)
app.command("presets", cls=Command)(presets_cmd)
app.command("classes", cls=Command)(classes_cmd)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"dipseg {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version."),
) -> None:
    pass


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    finally:
        # torch and SciPy leave ~10^6 long-lived objects; the cyclic collector's last full
        # pass over them at interpreter exit took 0.4-0.8 s of a 3-4 s `dipseg segment`
        # (docs/performance.md). Frozen objects are skipped by it; the process is ending,
        # so nothing is kept that the OS does not reclaim anyway.
        gc.freeze()
