"""Transfers: start an image from the network fitted on another one ("start from the previous image")."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from ...io import InputError
from ..body import Body
from ..deps import get_settings, get_store, get_transfers, image_entry, body_reader
from ..jobs import JobQueue
from ..models import Proposal, TransferRequest, errors, request_body
from ..settings import Settings
from ..store import ImageEntry, ImageStore
from ..transfer import Transfers

router = APIRouter(prefix="/api")


@router.post(
    "/images/{image_id}/transfer", response_model=Proposal,
    responses=errors(400, 403, 404, 408, 409, 413, 415, 422, 429),
    openapi_extra=request_body(TransferRequest),
)
async def transfer_image(entry: ImageEntry = Depends(image_entry), store: ImageStore = Depends(get_store),
                         transfers: Transfers = Depends(get_transfers), settings: Settings = Depends(get_settings),
                         reader: Body = Depends(body_reader)) -> dict:
    body = await reader.json(settings.max_json_bytes)
    source_id = body.get("source")
    if not isinstance(source_id, str) or not source_id:
        raise InputError("the JSON body needs 'source': the id of the image to start from")
    source = store.entry(source_id)
    # the cheap refusals first, before the image is decoded
    transfers.check_enabled()
    transfers.source(source)
    image = await run_in_threadpool(store.load_image, entry)
    JobQueue.check_fittable(image)  # what a fit refuses, a prediction refuses too (422)
    # a forward pass and the full-resolution stage: a fraction of a second, so no job and
    # no progress stream, but off the event loop
    return await run_in_threadpool(transfers.propose, entry, source, image)
