"""Images: the listing, uploads, each image's info, pixels, labels and mask, and saving."""

from __future__ import annotations

from io import BytesIO
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from PIL import Image

from ...io import InputError, TooLargeError, UnsupportedFormatError
from ..body import Body, content_type, encode_rle
from ..deps import get_settings, get_store, get_transfers, image_entry, body_reader
from ..errors import BadRequest, NotFound
from ..models import (
    ImageInfo,
    ImageListing,
    SaveRequest,
    SaveResult,
    StoredLabels,
    UploadedImage,
    errors,
    request_body,
)
from ..settings import Settings
from ..store import UNLABELLED, ImageEntry, ImageStore
from ..transfer import Transfers

router = APIRouter(prefix="/api")

MULTIPART_OVERHEAD = 64 * 1024
"""Bytes a multipart upload may carry beyond the image (boundaries, headers, small fields)."""
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}


def image_info(store: ImageStore, entry: ImageEntry, image: np.ndarray, transfers: Transfers) -> dict[str, Any]:
    """See :class:`dipseg.web.models.ImageInfo`."""
    i, order = store.position(entry)
    q = quote(entry.id, safe="")
    boxes, tight, note = store.current_boxes(entry, image.shape[:2])
    return {
        "id": entry.id, "name": entry.name, "source": entry.source, "index": i, "total": len(order),
        "prev": order[i - 1] if i > 0 else None, "next": order[i + 1] if 0 <= i < len(order) - 1 else None,
        "width": int(image.shape[1]), "height": int(image.shape[0]),
        "done": store.is_done(entry), "has_labels": store.has_labels(entry), "has_mask": store.has_mask(entry),
        "proposed": store.proposed(entry), "has_model": transfers.has(entry.id),
        "unsaved": store.unsaved(entry),
        "files": entry.outputs(),
        "image_url": f"/api/images/{q}/image",
        "labels_url": f"/api/images/{q}/labels",
        "mask_url": f"/api/images/{q}/mask.png",
        "boxes": [b.as_list() for b in boxes], "tight_boxes": tight, "boxes_note": note,
    }


def rgb_png(rgb: np.ndarray) -> bytes:
    """An ``(H, W, 3) uint8`` image as PNG bytes (fast, light compression)."""
    buf = BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


async def read_upload(request: Request, reader: Body, limit: int) -> tuple[bytes, str]:
    """The uploaded file's bytes and name: multipart field ``file``, or a raw ``image/*`` body.

    Raises
    ------
    TooLargeError, UnsupportedFormatError, InputError, BadRequest
        Over ``limit`` bytes, another Content-Type, no ``file`` field, an empty file.
    RequestTimeout, Busy
        See :meth:`dipseg.web.body.Body.read`.
    """
    ctype = content_type(request)
    if ctype == "multipart/form-data":
        body = await reader.read(limit + MULTIPART_OVERHEAD, "upload")

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        # the body is already read (bounded); Starlette parses the form from this copy
        form = await Request(request.scope, receive).form(max_files=1, max_fields=16)
        try:
            file = form.get("file")
            if file is None or isinstance(file, str):
                raise InputError("send the image in the multipart form field 'file'")
            data = await file.read()
            name = file.filename or "image"
        finally:
            await form.close()
    elif ctype.startswith("image/") or ctype == "application/octet-stream":
        data = await reader.read(limit, "upload")
        name = request.query_params.get("name") or request.headers.get("x-filename") or "image"
    else:
        raise UnsupportedFormatError(
            "upload the image as multipart/form-data (field 'file') or as the raw body with an image/* Content-Type")
    if len(data) > limit:
        raise TooLargeError(f"the upload is {len(data)} bytes, more than the limit of {limit} bytes")
    if not data:
        raise BadRequest("the uploaded file is empty")
    return data, name


@router.get("/images", response_model=ImageListing)
async def list_images(store: ImageStore = Depends(get_store)) -> dict:
    return await run_in_threadpool(store.listing)


@router.post(
    "/upload", status_code=201, response_model=UploadedImage, responses=errors(400, 403, 408, 413, 415, 422, 429),
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
    }}},
)
async def upload(request: Request, response: Response, store: ImageStore = Depends(get_store),
                 settings: Settings = Depends(get_settings), reader: Body = Depends(body_reader),
                 transfers: Transfers = Depends(get_transfers)) -> dict:
    data, name = await read_upload(request, reader, settings.max_upload_bytes)
    array = await run_in_threadpool(store.decode_upload, data)
    entry, new = await run_in_threadpool(store.add_upload, name, data, array)
    info = await run_in_threadpool(image_info, store, entry, array, transfers)
    info["new"] = new
    if not new:
        response.status_code = 200
    return info


@router.get("/images/{image_id}", response_model=ImageInfo, responses=errors(404))
async def get_image_info(entry: ImageEntry = Depends(image_entry), store: ImageStore = Depends(get_store),
                         transfers: Transfers = Depends(get_transfers)) -> dict:
    image = await run_in_threadpool(store.load_image, entry)
    return await run_in_threadpool(image_info, store, entry, image, transfers)


@router.get("/images/{image_id}/image", response_class=Response, responses={**PNG, **errors(404, 413, 422)})
async def get_image(entry: ImageEntry = Depends(image_entry), store: ImageStore = Depends(get_store)) -> Response:
    image = await run_in_threadpool(store.load_image, entry)
    png = await run_in_threadpool(rgb_png, image)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/images/{image_id}/labels", response_model=StoredLabels, responses=errors(404, 409))
async def get_labels(entry: ImageEntry = Depends(image_entry), store: ImageStore = Depends(get_store)) -> dict:
    image = await run_in_threadpool(store.load_image, entry)
    labels, source = await run_in_threadpool(store.current_labels, entry, image.shape[:2])
    if labels is None:
        raise NotFound(f"no labels painted or saved for {entry.name} yet")
    rle = await run_in_threadpool(encode_rle, labels)
    clicks = await run_in_threadpool(store.labels_are_clicks, entry, source)
    return {"width": int(labels.shape[1]), "height": int(labels.shape[0]), "rle": rle,
            "labelled": int((labels != UNLABELLED).sum()), "source": source, "clicks": clicks}


@router.get("/images/{image_id}/mask.png", response_class=Response, responses={**PNG, **errors(404)})
async def get_mask(download: bool = False, entry: ImageEntry = Depends(image_entry),
                   store: ImageStore = Depends(get_store)) -> Response:
    png = await run_in_threadpool(store.mask_png, entry)
    if png is None:
        raise NotFound(f"no mask for {entry.name} yet: press Segment first")
    headers = {"Cache-Control": "no-store"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{entry.outputs()["mask"]}"'
    return Response(png, media_type="image/png", headers=headers)


@router.post("/images/{image_id}/save", response_model=SaveResult,
             responses=errors(400, 403, 404, 408, 409, 413, 415, 422, 429, 500),
             openapi_extra=request_body(SaveRequest, required=False))
async def save_image(entry: ImageEntry = Depends(image_entry), store: ImageStore = Depends(get_store),
                     settings: Settings = Depends(get_settings), reader: Body = Depends(body_reader)) -> dict:
    body = await reader.json(settings.max_json_bytes)
    image = await run_in_threadpool(store.load_image, entry)
    labels = None
    if body.get("labels") is not None:
        labels = await run_in_threadpool(store.parse_labels, body["labels"], image.shape[:2])
    boxes = store.parse_boxes(body["boxes"], image.shape[:2]) if "boxes" in body else None
    tight = store.parse_tight(body["tight_boxes"]) if body.get("tight_boxes") is not None else None
    del body
    return await run_in_threadpool(store.save, entry, image, labels, boxes, tight)
