"""The annotation web app: paint rough blobs in a browser, watch DIPSEG turn them into a mask.

``dipseg serve`` (see :mod:`dipseg.web_cli`) runs :func:`create_app` under uvicorn; the
page itself is plain HTML/JS/CSS in ``dipseg/web/static``. See ``docs/web.md``.
"""

from .app import create_app, load_classes

__all__ = ["create_app", "load_classes"]
