"""FastAPI dependencies: the app's settings, image store and job queue, and the image of a path."""

from __future__ import annotations

from fastapi import Depends, Request

from .jobs import JobQueue
from .settings import Settings
from .store import ImageEntry, ImageStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ImageStore:
    return request.app.state.store


def get_jobs(request: Request) -> JobQueue:
    return request.app.state.jobs


async def image_entry(image_id: str, store: ImageStore = Depends(get_store)) -> ImageEntry:
    """The image named by the path's ``{image_id}`` (:class:`~dipseg.web.errors.NotFound` if none)."""
    return store.entry(image_id)
