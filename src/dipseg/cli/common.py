"""What every command shares: one-line errors with exit code 2, output folders checked before
any work, and the progress bar.

Only light modules are imported here (and by every command module at import time): a bad
argument must fail in a fraction of a second, before torch is loaded.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import typer
from typer.core import TyperCommand, TyperGroup

OUT_HELP = "Output folder, created if missing (-o is a folder in every dipseg command)"
"""The one meaning of ``-o`` / ``--out``, repeated in each command's help."""

FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".npy", ".json")
"""Suffixes that show an ``-o`` meant as a file name, not a folder."""


def fail(message: str) -> None:
    """Print one error line and exit with status 2."""
    typer.echo(f"dipseg: error: {message}", err=True)
    raise typer.Exit(2)


def warn(message: str) -> None:
    """Print one warning line on stderr (the command goes on)."""
    typer.echo(f"dipseg: warning: {message}", err=True)


class user_errors:
    """Context manager: ``ValueError`` / ``OSError`` / ``ImportError`` become one line and exit 2.

    ``ValueError`` covers :class:`dipseg.io.InputError` and every validation in the library.
    """

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


class Command(TyperCommand):
    """A command whose usage line names arguments the usual way (``IMAGE``, not ``{image}``)."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in super().collect_usage_pieces(ctx)]


def _click_exceptions():
    try:  # typer >= 0.2x ships its own copy of click
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - older typer on click
        from click import exceptions
    return exceptions


class Group(TyperGroup):
    """The ``dipseg`` group: a bad option or argument is one line on stderr and exit code 2.

    Click's own usage errors (an out-of-range ``--iterations 0``, a missing ``--labels``, an
    unknown option) would otherwise print a usage block and a boxed message.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        click = _click_exceptions()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except getattr(click, "NoArgsIsHelpError", ()) as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            typer.echo(f"dipseg: error: {' '.join(exc.format_message().split())}{where}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            typer.echo(f"dipseg: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("dipseg: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def check_out_dir(out: Path, flag: str = "-o") -> Path:
    """Check, before any work, that ``out`` can be the output folder; creates nothing.

    Raises
    ------
    ValueError
        ``out`` is a file or lies under one, looks like a file name (``mask.png``), or its
        nearest existing folder cannot be written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out} is a file; {flag} is the output folder (files are named after the input)")
    if not out.exists() and out.suffix.lower() in FILE_SUFFIXES:
        raise ValueError(f"{flag} {out} looks like a file name; {flag} is the output folder, e.g. {flag} "
                         f"{out.with_suffix('')} (files are named after the input)")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {out}: cannot write in {parent} (permission denied)")
    return out


def make_out_dir(out: Path, names: list[str] = (), flag: str = "-o") -> Path:
    """Create the output folder and prove it is writable, before the work that fills it.

    Parameters
    ----------
    out : Path
    names : list of str
        Files that will be written there; none may be a folder.

    Raises
    ------
    ValueError
        The folder cannot be created or written (a read-only file system, permissions), or
        one of ``names`` is a folder.
    """
    check_out_dir(out, flag)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # a real write: os.access says yes to root on a read-only mount
        with tempfile.NamedTemporaryFile(dir=out, prefix=".dipseg-write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write to {flag} {out}: {exc.strerror or exc}") from None
    for name in names:
        if (out / name).is_dir():
            raise ValueError(f"cannot write {out / name}: it is a folder")
    return out


def progress_bar(total: int, desc: str):
    """A tqdm bar on stderr and a fit callback that advances it; returns ``(bar, callback)``."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr, dynamic_ncols=True)

    def cb(p):
        bar.total = p.total
        bar.update(p.iteration - bar.n)
        if p.iteration > 0:  # iteration 0 is the quick preview, before any loss
            bar.set_postfix(loss=f"{p.losses['total']:.3f}", ce=f"{p.losses['ce']:.3f}", refresh=False)

    return bar, cb


def expand_images(paths: Sequence[Path], purpose: str = "transfer to") -> list[Path]:
    """Image paths as files: a folder stands for its image files (:func:`dipseg.io.list_images`).

    Parameters
    ----------
    paths : list of Path
        Image files and folders.
    purpose : str
        What the images are for, in the message when there are none ("no images to ...").

    Raises
    ------
    ValueError
        A path that does not exist, a folder without images, no images at all, or two
        images with the same file stem (their outputs would overwrite each other).
    """
    from ..io import IMAGE_SUFFIXES, list_images

    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise ValueError(f"folder {p} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise ValueError(f"image {p} does not exist")
    if not out:
        raise ValueError(f"no images to {purpose}: give image files or folders")
    stems: dict[str, Path] = {}
    for p in out:
        if p.stem in stems and stems[p.stem] != p:
            raise ValueError(f"{stems[p.stem]} and {p} have the same name {p.stem!r}: their outputs would "
                             "overwrite each other; rename one or run them in two runs")
        stems[p.stem] = p
    return list(dict.fromkeys(out))
