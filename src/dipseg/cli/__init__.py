"""The ``dipseg`` command line (see :mod:`dipseg.cli.main`)."""

from .main import app, main

__all__ = ["app", "main"]
