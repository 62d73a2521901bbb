"""The page itself, the server's configuration and its health."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from ... import __version__
from ...clicks import CLICK_RADIUS, FRAME_WIDTH
from ...dip.presets import CLICK_PRESET
from ...palette import PALETTE
from ..deps import get_jobs, get_settings, get_transfers
from ..jobs import JobQueue
from ..models import Health, ServerConfig
from ..settings import Settings
from ..transfer import Transfers, can_transfer
from ..store import UNLABELLED

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
"""The page's HTML, CSS and JS modules (served under ``/static``)."""

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/api/health", response_model=Health)
async def health(jobs: JobQueue = Depends(get_jobs)) -> dict:
    running, queued = jobs.counts()
    return {"status": "ok", "version": __version__, "running": running, "queued": queued}


@router.get("/api/config", response_model=ServerConfig)
async def config(settings: Settings = Depends(get_settings), transfers: Transfers = Depends(get_transfers)) -> dict:
    fit = settings.preset_config.fit
    return {
        "version": __version__,
        "mode": settings.mode,
        "classes": [{"id": i, "name": n, "colour": "#%02x%02x%02x" % tuple(int(c) for c in PALETTE[i])}
                    for i, n in enumerate(settings.classes)],
        "unlabelled": UNLABELLED,
        "preset": settings.preset,
        "presets": [{"name": name, "description": p.description, "iterations": p.fit.iterations,
                     "can_transfer": can_transfer(p)}
                    for name, p in settings.preset_configs.items()],
        "click_preset": CLICK_PRESET if CLICK_PRESET in settings.preset_configs else None,
        "click_radius": CLICK_RADIUS,
        "click_frame": FRAME_WIDTH,
        "iterations": fit.iterations,
        "working_size": fit.working_size,
        "warm_fraction": settings.warm_fraction,
        "max_upload_bytes": settings.max_upload_bytes,
        "max_pixels": settings.max_pixels,
        "max_json_bytes": settings.max_json_bytes,
        "max_fit_pixels": settings.max_fit_pixels,
        "workers": settings.workers,
        "queue_size": settings.queue_size,
        "images_dir": str(settings.images_dir) if settings.images_dir else None,
        "out_dir": str(settings.out_dir),
        "can_transfer": transfers.enabled,
        "token": settings.token,
    }
