"""What every command shares: one way to turn a user error into one line and exit code 2."""

from __future__ import annotations

import sys

import typer


def fail(message: str) -> None:
    """Print one error line and exit with status 2."""
    typer.echo(f"dipseg: error: {message}", err=True)
    raise typer.Exit(2)


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


def progress_bar(total: int, desc: str):
    """A tqdm bar on stderr and a fit callback that advances it; returns ``(bar, callback)``."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr, dynamic_ncols=True)

    def cb(p):
        bar.total = p.total
        bar.update(p.iteration - bar.n)
        if p.losses:
            bar.set_postfix(loss=f"{p.losses['total']:.3f}", ce=f"{p.losses['ce']:.3f}", refresh=False)

    return bar, cb
