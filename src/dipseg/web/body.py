"""The wire formats: bounded request bodies, JSON objects, run-length labels, data URLs, SSE.

Nothing here knows about images or fits; each reader raises :mod:`dipseg.web.errors` or
:class:`dipseg.io.InputError` kinds, answered by the app's exception handlers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from ..io import InputError, TooLargeError, UnsupportedFormatError
from .errors import BadRequest, Busy, RequestTimeout

DRAIN_LIMIT = 1 << 30
"""Bytes of an oversized body read and discarded before answering 413 (beyond: connection dropped)."""

KEEP_ALIVE = b": keep-alive\n\n"
"""An SSE comment: keeps proxies and the browser from timing out an idle stream."""


def content_type(request: Request) -> str:
    """The request's media type, lower case, without parameters (``""`` when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


class BodyBudget:
    """The request-body bytes all requests hold at once, bounded; and JSON parsing off the event loop.

    Parameters
    ----------
    budget : int
        Bytes of request bodies held in memory by all requests together, from the first
        byte read until the request is answered; a body that would take more is refused
        with :class:`~dipseg.web.errors.Busy` (429), so many large requests at once cannot
        exhaust memory.
    timeout : float
        Seconds a body may stall between two chunks (:class:`~dipseg.web.errors.RequestTimeout`).
    parsers : int
        JSON bodies parsed at once, in worker threads: parsing never blocks the event loop,
        and a parsed body, larger than its text, is held by at most this many requests.
    """

    def __init__(self, budget: int, timeout: float, parsers: int = 2):
        self.budget = budget
        self.timeout = timeout
        self.held = 0
        self.parsing = asyncio.Semaphore(parsers)

    def take(self, n: int) -> None:
        """Hold ``n`` more bytes (:class:`~dipseg.web.errors.Busy` when they do not fit)."""
        if self.held + n > self.budget:
            raise Busy(f"the server is receiving too much at once ({self.held} bytes of requests); try again shortly",
                       retry_after=1)
        self.held += n

    def give(self, n: int) -> None:
        self.held -= n

    def body(self, request: Request) -> "Body":
        """A reader of ``request``'s body that holds its bytes against this budget until released."""
        return Body(self, request)


class Body:
    """One request's body, read within the limits of a :class:`BodyBudget` (see there).

    Release it (:meth:`release`, idempotent) when the bytes are no longer needed; the
    :func:`dipseg.web.deps.body_reader` dependency does so when the request ends.
    """

    def __init__(self, budget: BodyBudget, request: Request):
        self.budget = budget
        self.request = request
        self.taken = 0

    def release(self) -> None:
        self.budget.give(self.taken)
        self.taken = 0

    async def read(self, limit: int, what: str = "request body") -> bytes:
        """The request body, refused when it is more than ``limit`` bytes.

        An oversized body is still read (and thrown away, up to :data:`DRAIN_LIMIT`) so that
        the client, which is busy sending it, gets to read the 413 instead of a reset
        connection. A client that asked ``Expect: 100-continue`` is answered at once.

        Raises
        ------
        BadRequest
            A malformed ``Content-Length`` header.
        TooLargeError
            More than ``limit`` bytes.
        RequestTimeout
            No byte for ``timeout`` seconds.
        Busy
            The body does not fit in the budget left.
        """
        request = self.request
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                declared_n = int(declared)
            except ValueError:
                raise BadRequest("malformed Content-Length header") from None
            if declared_n > limit and request.headers.get("expect", "").lower() == "100-continue":
                raise TooLargeError(f"{what} is {declared_n} bytes, more than the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        stream = request.stream().__aiter__()
        while True:
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), self.budget.timeout)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise RequestTimeout(f"the {what} stalled for {self.budget.timeout:g} s; send it again") from None
            size += len(chunk)
            if size > limit:
                if chunks:
                    chunks = []
                    self.release()
                if size > DRAIN_LIMIT:
                    break
                continue
            self.budget.take(len(chunk))
            self.taken += len(chunk)
            chunks.append(chunk)
        if size > limit:
            shown = size if size <= DRAIN_LIMIT else f"over {DRAIN_LIMIT}"
            raise TooLargeError(f"{what} is {shown} bytes, more than the limit of {limit} bytes")
        return b"".join(chunks)

    async def json(self, limit: int) -> dict[str, Any]:
        """A JSON object body (Content-Type application/json); an empty body reads as ``{}``.

        Raises
        ------
        TooLargeError, RequestTimeout, Busy
            See :meth:`read`.
        UnsupportedFormatError
            A body that is not sent as ``application/json``.
        BadRequest
            Malformed JSON (including nesting too deep to parse).
        InputError
            JSON that is not an object.
        """
        ctype = content_type(self.request)
        body = await self.read(limit)
        if not body.strip():
            return {}
        if ctype != "application/json":
            raise UnsupportedFormatError("send the request body as JSON with Content-Type: application/json")
        async with self.budget.parsing:
            return await run_in_threadpool(parse_json_object, body)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object.

    Raises
    ------
    BadRequest
        Malformed JSON (including nesting too deep to parse).
    InputError
        JSON that is not an object.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON body: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise InputError(f"the JSON body must be an object, got {type(data).__name__}")
    return data


def encode_rle(labels: np.ndarray) -> list[int]:
    """Row-major run-length code ``[value, count, value, count, ...]`` of a uint8 label map."""
    flat = np.ascontiguousarray(labels, dtype=np.uint8).ravel()
    if flat.size == 0:
        return []
    starts = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1])
    counts = np.diff(np.concatenate([starts, [flat.size]]))
    out = np.empty(2 * len(starts), dtype=np.int64)
    out[0::2] = flat[starts]
    out[1::2] = counts
    return out.tolist()


def decode_rle(value: dict[str, Any], shape: tuple[int, int]) -> np.ndarray:
    """The label map of ``{"width", "height", "rle"}`` (see :func:`encode_rle`) as ``(H, W) uint8``.

    Only the code is checked here (types, size, run lengths, values 0..255); whether the
    values are classes is the caller's business.

    Raises
    ------
    InputError
        Anything that is not a run-length code of an image of ``shape``.
    """
    H, W = shape
    w, h, rle = value.get("width"), value.get("height"), value.get("rle")
    # type() rather than isinstance(): JSON true/false must not pass as 1/0
    if type(w) is not int or type(h) is not int:
        raise InputError("labels.width and labels.height must be integers")
    if (h, w) != (H, W):
        raise InputError(f"labels are {w}x{h} but the image is {W}x{H}")
    if not isinstance(rle, list) or not rle or len(rle) % 2:
        raise InputError("labels.rle must be a non-empty flat list [value, count, value, count, ...]")
    if any(type(x) is not int for x in rle):
        raise InputError("labels.rle must be a flat list of integers [value, count, ...]")
    try:
        arr = np.asarray(rle, dtype=np.int64)
    except OverflowError:
        raise InputError("labels.rle must be a flat list of integers [value, count, ...]") from None
    values, counts = arr[0::2], arr[1::2]
    if counts.min() < 1 or counts.max() > H * W:
        raise InputError("labels.rle run lengths must be between 1 and width*height")
    total = int(counts.sum())
    if total != H * W:
        raise InputError(f"labels.rle runs cover {total} pixels, not width*height = {H * W}")
    bad = (values < 0) | (values > 255)
    if bad.any():
        raise InputError(f"label value {int(values[bad][0])} is not a class (labels.rle values are 0..255, 255 = unlabelled)")
    return np.repeat(values.astype(np.uint8), counts).reshape(H, W)


def decode_data_url(text: str, what: str = "labels") -> bytes:
    """The bytes of a base64 data URL (``data:image/png;base64,...``) or of bare base64.

    Raises
    ------
    InputError
        A data URL that is not base64, or text that is not valid base64.
    """
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if not head.endswith(";base64"):
            raise InputError(f"a {what} data URL must be base64-encoded (data:image/png;base64,...)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{what}: not valid base64") from None


def data_url(png: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URL."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event: ``event`` with ``data`` as compact JSON."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
