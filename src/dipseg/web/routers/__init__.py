"""The API's routes, one module per resource: :mod:`.meta` (page, config, health),
:mod:`.images` (listing, uploads, labels, masks, saving) and :mod:`.jobs` (fits)."""

from . import images, jobs, meta

ROUTERS = (meta.router, images.router, jobs.router)

__all__ = ["ROUTERS"]
