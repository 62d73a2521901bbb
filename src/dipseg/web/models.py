"""The JSON shapes of the API, as pydantic models: what ``/api/docs`` and the OpenAPI show.

Responses are validated against these models on the way out. Request bodies are read by
the routes themselves (bounded in bytes, with their own 400 / 413 / 415 / 422 answers, see
:mod:`dipseg.web.body`), so their models are documentation only: :func:`request_body`
points a route's OpenAPI entry at one, and :func:`add_request_schemas` publishes them.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

Mode = Literal["folder", "upload"]
Source = Literal["folder", "upload"]


class ErrorBody(BaseModel):
    """Every error answer (validation errors of query parameters excepted: FastAPI's own list)."""

    detail: str


class ClassInfo(BaseModel):
    id: int
    name: str
    colour: str = Field(description="VOC palette colour as #rrggbb")


class PresetInfo(BaseModel):
    name: str
    description: str
    iterations: int
    can_transfer: bool = Field(description="its network sees the image, so its fits can start the next image")


class ServerConfig(BaseModel):
    """``GET /api/config``."""

    version: str
    mode: Mode
    classes: list[ClassInfo]
    unlabelled: int = Field(description="label value of an unlabelled pixel (255)")
    preset: str = Field(description="the preset of a Segment that names none")
    presets: list[PresetInfo] = Field(description="the presets a Segment may name (`preset`), this server's first")
    click_preset: str | None = Field(description="the preset of a Segment whose labels are clicks and that names "
                                                 "none (null: not offered, the server's preset then)")
    click_radius: int = Field(description="radius (pixels) of the disk a click of the Click tool labels, the "
                                          "click protocol's")
    click_frame: int = Field(description="width (pixels) of the background frame added to clicks until a "
                                         "background pixel is labelled")
    iterations: int
    working_size: int | None
    warm_fraction: float
    max_upload_bytes: int
    max_pixels: int
    max_json_bytes: int
    max_fit_pixels: int = Field(description="larger images are fitted at a downscaled copy of this many pixels")
    workers: int
    queue_size: int
    images_dir: str | None
    out_dir: str
    can_transfer: bool = Field(description="some preset offered has a network that sees the image, so an image "
                                           "fitted with it can start the next one (POST /api/images/{id}/transfer)")
    token: str = Field(description="send it as the X-Dipseg-Token header of every POST (new at every start)")


class Health(BaseModel):
    """``GET /api/health``."""

    status: Literal["ok"]
    version: str
    running: int
    queued: int


class ImageSummary(BaseModel):
    id: str
    name: str
    source: Source
    done: bool = Field(description="a mask is saved in --out")
    has_labels: bool


class ImageListing(BaseModel):
    """``GET /api/images``."""

    mode: Mode
    total: int
    done: int
    images: list[ImageSummary]


class OutputFiles(BaseModel):
    """Names of the files saved into ``--out`` for an image."""

    mask: str
    labels: str
    meta: str
    boxes: str = Field(description="the boxes as class,x0,y0,x1,y1 (written when the image has boxes)")


class Unsaved(BaseModel):
    """What of an image is held only in the server's memory (lost when it stops) until saved."""

    labels: bool
    mask: bool


class ImageInfo(BaseModel):
    """``GET /api/images/{id}``."""

    id: str
    name: str
    source: Source
    index: int = Field(description="position in the listing (-1 once an upload is forgotten)")
    total: int
    prev: str | None
    next: str | None
    width: int
    height: int
    done: bool
    has_labels: bool
    has_mask: bool
    proposed: bool = Field(description="the current mask was proposed from another image's network, not fitted")
    has_model: bool = Field(description="a fitted network is kept for this image: the next one can start from it")
    unsaved: Unsaved
    files: OutputFiles
    image_url: str
    labels_url: str
    mask_url: str
    boxes: list[list[float]] = Field(description="the current boxes, [[class, x0, y0, x1, y1], ...]: this session's, "
                                                 "else those saved in --out, else those of serve --boxes")
    tight_boxes: bool = Field(description="the boxes were last sent as tight, or are imported with --tight-boxes "
                                          "(docs/boxes.md)")
    boxes_note: str | None = Field(None, description="why saved or imported boxes could not be read (then boxes "
                                                     "is empty)")


class UploadedImage(ImageInfo):
    """``POST /api/upload``: the image's info; ``new`` is False for a repeated upload (status 200)."""

    new: bool


class RunLengthLabels(BaseModel):
    """Labels as a row-major run-length code; values are classes or 255 (unlabelled)."""

    width: int
    height: int
    rle: list[int] = Field(description="[value, count, value, count, ...], counts adding up to width*height")


class StoredLabels(RunLengthLabels):
    """``GET /api/images/{id}/labels``."""

    labelled: int = Field(description="labelled pixels")
    source: Literal["memory", "file"]
    clicks: bool = Field(description="these labels are exactly those of a Segment with `clicks` (this session's "
                                     "last fit, or the saved one): the page's *auto* preset keeps treating them "
                                     "as clicks")


LabelsIn = Union[RunLengthLabels, str]
"""Labels in a request: run-length code, or a PNG as data URL / base64 (index or RGBA scribbles)."""


BoxesIn = list[list[float]]
"""Boxes in a request: ``[[class, x0, y0, x1, y1], ...]`` in image pixels (see docs/boxes.md)."""


class SegmentRequest(BaseModel):
    """Body of ``POST /api/images/{id}/segment``: labels, boxes or both."""

    labels: LabelsIn | None = None
    boxes: BoxesIn | None = None
    tight_boxes: bool = Field(False, description="the boxes touch their objects on every side (detection data); "
                                                 "false for boxes drawn with a margin (docs/boxes.md)")
    warm_start: bool = True
    preset: str | None = Field(None, description="one of /api/config's `presets` (`clicks` for clicking, "
                                                 "docs/interactive.md); omitted: `click_preset` when `clicks` is "
                                                 "true, else the server's")
    clicks: bool = Field(False, description="every label is a click (a disk of /api/config's `click_radius`): "
                                            "until a background pixel is labelled, a frame of `click_frame` pixels "
                                            "along the border seeds the background, as in the click protocol "
                                            "(docs/interactive.md)")


class SaveRequest(BaseModel):
    """Body of ``POST /api/images/{id}/save`` (may be empty)."""

    labels: LabelsIn | None = None
    boxes: BoxesIn | None = None
    tight_boxes: bool | None = Field(None, description="whether the boxes are tight, kept in the metadata; "
                                                       "omitted: the choice sent with the last Segment")


class TransferRequest(BaseModel):
    """Body of ``POST /api/images/{id}/transfer``."""

    source: str = Field(description="id of the image whose fitted network proposes this image's mask")


class ClassFraction(BaseModel):
    id: int
    name: str
    fraction: float = Field(description="fraction of the image's pixels")


class Proposal(BaseModel):
    """``POST /api/images/{id}/transfer``: the proposed mask and labels, now the image's unsaved work."""

    id: str
    source: str = Field(description="the image asked to start from")
    fitted_on: str = Field(description="the image its network was fitted on (the source, or the one that proposed it)")
    width: int
    height: int
    labels: RunLengthLabels = Field(description="the confident pixels as labels (255 elsewhere), to correct")
    labelled: int = Field(description="labelled pixels")
    classes: list[ClassFraction]
    seconds: float
    mask_url: str
    metadata: dict[str, Any] = Field(description="method dipseg-transfer, preset, seed, config, version, info, "
                                                 "transfer: {source_image, requested_from}")
    message: str | None


class Progress(BaseModel):
    done: int
    total: int


class SaveResult(BaseModel):
    """``POST /api/images/{id}/save``."""

    id: str
    saved: bool
    out_dir: str
    files: dict[str, str] = Field(description="written files: 'mask' and 'labels' where there was one, 'meta'")
    done: bool
    progress: Progress


class JobInfo(BaseModel):
    id: str
    image: str
    state: Literal["queued", "running", "finished"]
    iteration: int
    total: int
    cancelled: bool
    age: float = Field(description="seconds since the fit was admitted")


class JobList(BaseModel):
    """``GET /api/jobs``."""

    jobs: list[JobInfo]
    capacity: int
    workers: int


class Cancelled(BaseModel):
    """``POST /api/jobs/{job}/cancel``."""

    job: str
    cancelled: bool
    state: str


REQUEST_MODELS: tuple[type[BaseModel], ...] = (SegmentRequest, SaveRequest, TransferRequest)


def request_body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads a JSON body of ``model`` itself."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def add_request_schemas(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add the :data:`REQUEST_MODELS` (and the models they use) to an OpenAPI document."""
    _, defs = models_json_schema([(m, "validation") for m in REQUEST_MODELS],
                                 ref_template="#/components/schemas/{model}")
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    return openapi


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: each status in ``codes`` answers an :class:`ErrorBody`."""
    return {code: {"model": ErrorBody} for code in codes}
