"""FastAPI dependencies: the app's settings, image store, job queue and kept networks, and the image of a path."""

from __future__ import annotations

from typing import AsyncIterator

from fastapi import Depends, Request

from .body import Body
from .jobs import JobQueue
from .settings import Settings
from .store import ImageEntry, ImageStore
from .transfer import Transfers


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ImageStore:
    return request.app.state.store


def get_jobs(request: Request) -> JobQueue:
    return request.app.state.jobs


def get_transfers(request: Request) -> Transfers:
    return request.app.state.transfers


async def image_entry(image_id: str, store: ImageStore = Depends(get_store)) -> ImageEntry:
    """The image named by the path's ``{image_id}`` (:class:`~dipseg.web.errors.NotFound` if none)."""
    return store.entry(image_id)


async def body_reader(request: Request) -> AsyncIterator[Body]:
    """The request's body reader, its bytes counted against the app's body budget until the request ends."""
    body = request.app.state.bodies.body(request)
    try:
        yield body
    finally:
        body.release()
