"""The API's routes, one module per resource: :mod:`.meta` (page, config, health),
:mod:`.images` (listing, uploads, labels, masks, saving), :mod:`.jobs` (fits) and
:mod:`.transfer` (proposals from another image's network)."""

from . import images, jobs, meta, transfer

ROUTERS = (meta.router, images.router, jobs.router, transfer.router)

__all__ = ["ROUTERS"]
