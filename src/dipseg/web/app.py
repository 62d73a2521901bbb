"""The FastAPI app of the annotation page: wiring only.

The parts (documented in ``docs/web.md``):

* :mod:`.settings` -- :class:`Settings`, checked once at start-up;
* :mod:`.store` -- images, labels, masks, saving; :mod:`.jobs` -- the fit queue and its streams;
* :mod:`.transfer` -- the fitted networks kept for "start from the previous image";
* :mod:`.routers` -- the HTTP routes, one module per resource; :mod:`.models` -- their JSON shapes;
* :mod:`.body` -- request bodies, run-length labels, SSE; :mod:`.errors` -- errors and their statuses;
* ``static/`` -- the page (``index.html``, ``style.css``, ES modules under ``js/``, entry ``js/main.js``).
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..io import DEFAULT_MAX_PIXELS
from .errors import install as install_error_handlers
from .body import BodyBudget
from .jobs import JobQueue
from .middleware import HostCheck, PageOnly, TokenCheck
from .models import add_request_schemas
from .routers import ROUTERS
from .routers.meta import STATIC_DIR
from .settings import DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_QUEUE_SIZE, Settings
from .store import ImageStore
from .transfer import Transfers

__all__ = ["STATIC_DIR", "build_app", "create_app"]


def build_app(settings: Settings) -> FastAPI:
    """The annotation app for ``settings``.

    ``app.state`` holds ``settings``, ``store`` (:class:`ImageStore`), ``jobs``
    (:class:`JobQueue`), ``transfers`` (:class:`~dipseg.web.transfer.Transfers`) and ``bodies``
    (:class:`~dipseg.web.body.BodyBudget`); leaving the
    app's lifespan cancels the running fits and deletes the spooled uploads.

    Requests pass, outermost first: the Host check (when ``allowed_hosts``), the token check
    (when ``require_token``), and the page-only check of state-changing requests
    (:mod:`.middleware`). There is no ``/docs`` page: Swagger UI would load its code from the
    internet; ``/api/openapi.json`` describes the API.
    """
    store = ImageStore(settings)
    transfers = Transfers(settings, store)
    jobs = JobQueue(settings, store, on_fit=transfers.keep_fit)

    def forget(image_id: str) -> None:
        # a forgotten upload's warm-start state and kept network (whole networks) must not outlive it
        jobs.forget(image_id)
        transfers.forget(image_id)

    store.on_forget = forget

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            yield
        finally:
            jobs.shutdown()
            store.close()

    app = FastAPI(title="dipseg annotate", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.settings = settings
    app.state.store = store
    app.state.jobs = jobs
    app.state.transfers = transfers
    app.state.bodies = BodyBudget(settings.body_budget_bytes, settings.body_timeout)
    # the last added runs first
    app.add_middleware(PageOnly, token=settings.token)
    if settings.require_token:
        app.add_middleware(TokenCheck, token=settings.token)
    if settings.allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=settings.allowed_hosts)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def openapi() -> dict[str, Any]:
        # the routes read their JSON bodies themselves, so FastAPI does not see those models
        if app.openapi_schema is None:
            app.openapi_schema = add_request_schemas(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi
    return app


def create_app(
    images_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike = "dipseg-out",
    classes: list[str] | None = None,
    preset: str | None = None,
    fit_overrides: dict[str, Any] | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    workers: int = 1,
    *,
    device: str = "auto",
    warm_fraction: float = 0.5,
    allowed_hosts: list[str] | None = None,
    heartbeat: float = 2.0,
    **limits: Any,
) -> FastAPI:
    """Build the annotation app (keyword form of :func:`build_app`).

    Parameters
    ----------
    images_dir : path, optional
        Folder of images to annotate (top level, natural sort). Without it the page asks the
        user to open or drop an image.
    out_dir : path
        Where masks (``<stem>.png``, VOC palette), painted labels (``<stem>_labels.png``, index
        PNG with 255 = unlabelled) and metadata (``<stem>_meta.json``) are saved.
    classes : list of str, optional
        Class names (default the 21 VOC classes); class ``i`` has VOC palette colour ``i``.
    preset : str, optional
        DIPSEG preset (default :data:`dipseg.dip.presets.DEFAULT_PRESET`).
    fit_overrides : dict, optional
        :class:`dipseg.dip.config.FitConfig` fields, e.g. ``{"iterations": 100}`` (``None``
        values keep the preset's).
    max_upload_bytes, max_pixels : int
        Upload limits (413 beyond them).
    queue_size : int
        Fits that may wait for a worker; beyond ``workers + queue_size`` a request gets 429.
    workers : int
        Fits running at once (each with one torch thread when more than one).
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    warm_fraction : float
        A fit warm-started from the previous one on the same image runs this fraction of
        the preset's steps.
    allowed_hosts : list of str, optional
        Accepted Host header names (None accepts any); ``dipseg serve`` passes the loopback
        names when bound to localhost.
    heartbeat : float
        Seconds between SSE keep-alive comments while nothing happens.
    **limits
        Further :class:`Settings` fields: ``token``, ``require_token``, ``max_json_bytes``,
        ``max_fit_pixels``, ``body_budget_bytes``, ``body_timeout``, ``boxes`` and
        ``tight_boxes`` (boxes each folder image starts with).

    Returns
    -------
    FastAPI

    Raises
    ------
    ValueError
        Bad folder, classes, preset or limits (:class:`dipseg.io.InputError` for user input).
    """
    optional = {"classes": tuple(classes)} if classes is not None else {}
    return build_app(Settings(
        images_dir=images_dir, out_dir=out_dir, preset=preset, fit_overrides=fit_overrides or {},
        max_upload_bytes=max_upload_bytes, max_pixels=max_pixels, queue_size=queue_size, workers=workers,
        device=device, warm_fraction=warm_fraction,
        allowed_hosts=tuple(allowed_hosts) if allowed_hosts is not None else None, heartbeat=heartbeat, **optional,
        **limits,
    ))
