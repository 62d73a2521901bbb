"""What can go wrong in the app, and the one place that turns it into an HTTP answer.

The store, the job queue and the request readers raise the errors below or the
:class:`dipseg.io.InputError` family; none of them knows about HTTP. :func:`install` maps
each to a status code and a JSON body ``{"detail": message}``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from ..io import InputError, TooLargeError, UnsupportedFormatError

log = logging.getLogger("dipseg.web")


class WebError(Exception):
    """An error of the annotation server with the HTTP status it is answered with."""

    status = 500

    def headers(self) -> dict[str, str] | None:
        """Extra response headers (none by default)."""
        return None


class BadRequest(WebError):
    """The request itself is malformed (JSON, headers, an empty upload)."""

    status = 400


class NotFound(WebError):
    """No image or job with that id."""

    status = 404


class RequestTimeout(WebError):
    """The request body stalled for longer than the server waits."""

    status = 408


class Conflict(WebError):
    """The request is valid but the server's state does not allow it (nothing to save yet)."""

    status = 409


class CannotTransfer(WebError):
    """Every preset the server offers fits networks that never see the image, so none can start another image."""

    status = 422


class Busy(WebError):
    """Every worker is busy and the queue is full; the client may retry after a while.

    Parameters
    ----------
    message : str
    retry_after : int
        Seconds the client is asked to wait (``Retry-After`` header).
    """

    status = 429

    def __init__(self, message: str, retry_after: int = 2):
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ShuttingDown(WebError):
    """The server stops and takes no new fits."""

    status = 503


class StorageError(WebError):
    """The output folder cannot be created or written (a server-side problem the user can fix)."""

    status = 500


INPUT_STATUS: tuple[tuple[type[InputError], int], ...] = (
    (TooLargeError, 413),
    (UnsupportedFormatError, 415),
    (InputError, 422),
)
"""Status of each :class:`dipseg.io.InputError` kind, most specific first."""


def status_of(exc: Exception) -> int:
    """The HTTP status that answers ``exc`` (500 for anything unexpected)."""
    if isinstance(exc, WebError):
        return exc.status
    for kind, status in INPUT_STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def error_response(exc: Exception) -> JSONResponse:
    """``{"detail": str(exc)}`` with the status (and headers) of ``exc``."""
    headers = exc.headers() if isinstance(exc, WebError) else None
    return JSONResponse({"detail": str(exc)}, status_code=status_of(exc), headers=headers)


def install(app: FastAPI) -> None:
    """Register the exception handlers of :class:`WebError`, ``InputError`` and the rest."""

    async def known(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def gone(request: Request, exc: Exception) -> Response:
        # the client hung up mid-request (a cancelled upload, a closed tab): nobody reads
        # the answer and nothing went wrong here, so one quiet line, no traceback
        log.info("client went away during %s %s", request.method, request.url.path)
        return Response(status_code=400)

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal server error ({exc.__class__.__name__})"}, status_code=500)

    app.add_exception_handler(WebError, known)
    app.add_exception_handler(InputError, known)
    app.add_exception_handler(ClientDisconnect, gone)
    app.add_exception_handler(Exception, internal)
