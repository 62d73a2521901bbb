"""The annotation web app: paint rough blobs in a browser, watch DIPSEG turn them into a mask.

``dipseg serve`` (see :mod:`dipseg.cli.serve`) runs :func:`create_app` under uvicorn; the
page itself is plain HTML/CSS and ES modules in ``dipseg/web/static``. See ``docs/web.md``.
"""

from .app import build_app, create_app
from .settings import Settings, load_classes

__all__ = ["Settings", "build_app", "create_app", "load_classes"]
