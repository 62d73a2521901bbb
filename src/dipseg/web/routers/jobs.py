"""Fits: start one on an image (answered as an event stream), list them, cancel one."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ...io import InputError
from ..body import Body
from ..deps import get_jobs, get_settings, get_store, image_entry, body_reader
from ..jobs import JobQueue
from ..models import Cancelled, JobList, SegmentRequest, errors, request_body
from ..settings import Settings
from ..store import UNLABELLED, ImageEntry, ImageStore

router = APIRouter(prefix="/api")

EVENT_STREAM = {200: {"content": {"text/event-stream": {}},
                      "description": "Server-Sent Events: queued, start, progress, done or error (see docs/web.md)"}}


@router.post(
    "/images/{image_id}/segment", response_class=StreamingResponse,
    responses={**EVENT_STREAM, **errors(400, 403, 404, 408, 413, 415, 422, 429, 503)},
    openapi_extra=request_body(SegmentRequest),
)
async def segment_image(entry: ImageEntry = Depends(image_entry), store: ImageStore = Depends(get_store),
                        jobs: JobQueue = Depends(get_jobs), settings: Settings = Depends(get_settings),
                        reader: Body = Depends(body_reader)) -> StreamingResponse:
    body = await reader.json(settings.max_json_bytes)
    if body.get("labels") is None and not body.get("boxes"):
        raise InputError("the JSON body needs 'labels' ({width, height, rle} or a PNG data URL), 'boxes' or both")
    warm = body.get("warm_start", True)
    if not isinstance(warm, bool):
        raise InputError("warm_start must be true or false")
    clicks = body.get("clicks", False)
    if not isinstance(clicks, bool):
        raise InputError("clicks must be true or false (true: every label is a click of the page's Click tool)")
    preset, _ = settings.config_for(body.get("preset"), clicks)
    tight = store.parse_tight(body.get("tight_boxes"))
    if tight and not body.get("boxes"):
        raise InputError("tight_boxes says how the boxes were drawn, but no 'boxes' were sent: send boxes or drop it")
    image = await run_in_threadpool(store.load_image, entry)
    shape = image.shape[:2]
    labels = np.full(shape, UNLABELLED, np.uint8) if body.get("labels") is None else \
        await run_in_threadpool(store.parse_labels, body["labels"], shape)
    boxes = store.parse_boxes(body.get("boxes"), shape)
    del body
    reader.release()  # the fit may run for minutes; the body's bytes are done with
    if not (labels != UNLABELLED).any() and not boxes:
        raise InputError("no pixel is labelled: paint at least two classes (or draw a box) before segmenting")
    jobs.check_fittable(image)
    store.set_labels(entry, labels)
    store.set_boxes(entry, boxes, tight)
    job = jobs.submit(entry, image, labels, warm, boxes, tight, preset, clicks)
    return StreamingResponse(jobs.stream(job), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/jobs", response_model=JobList)
async def list_jobs(jobs: JobQueue = Depends(get_jobs), settings: Settings = Depends(get_settings)) -> dict:
    return {"jobs": jobs.describe(), "capacity": settings.capacity, "workers": settings.workers}


@router.post("/jobs/{job_id}/cancel", response_model=Cancelled, responses=errors(403, 404))
async def cancel_job(job_id: str, jobs: JobQueue = Depends(get_jobs)) -> dict:
    job = jobs.cancel(job_id)
    return {"job": job.id, "cancelled": True, "state": job.state}
