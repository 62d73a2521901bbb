"""ASGI middleware of the app: who may talk to the server, and who may change things.

* :class:`HostCheck` -- the Host header must be a loopback name when bound to localhost
  (DNS rebinding);
* :class:`TokenCheck` -- when listening beyond localhost, every request must show the
  server's token (no token, no access);
* :class:`PageOnly` -- requests that change state (uploads, fits, saves, cancels) must come
  from the page itself: not from another site (``Origin`` / ``Sec-Fetch-Site``), and with the
  ``X-Dipseg-Token`` header, which a page of another origin cannot send without a CORS
  preflight that this server never grants.

Each answers a refused request with JSON ``{"detail": ...}`` and never calls the app.
"""

from __future__ import annotations

import secrets
from typing import Iterable
from urllib.parse import parse_qs

from fastapi.responses import JSONResponse, RedirectResponse

TOKEN_HEADER = "x-dipseg-token"
"""Header that carries the server's token (lower case, as ASGI spells header names)."""
TOKEN_COOKIE = "dipseg_token"
"""Cookie set by opening ``/?token=...`` on a server that requires its token."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing; every other method needs the page's token."""


def host_name(host: str) -> str:
    """The name part of a Host header, lower case (``[::1]:8000`` -> ``::1``)."""
    name = host.lower()
    return name[1:].split("]")[0] if name.startswith("[") else name.rsplit(":", 1)[0]


def _headers(scope) -> dict[str, str]:
    # the last value wins; the headers read here are never legitimately repeated
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _refuse(scope, receive, send, status: int, detail: str) -> None:
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


def _same(a: str | None, b: str) -> bool:
    return a is not None and secrets.compare_digest(a.encode(), b.encode())


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _cookie(headers: dict[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class HostCheck:
    """Answer 400 to requests whose Host header is not an allowed name.

    A page on another site can make the browser send requests to a name it resolves to
    127.0.0.1 (DNS rebinding); such requests carry that site's name as Host, so a server
    bound to localhost accepts only the loopback names.
    """

    def __init__(self, app, allowed: Iterable[str]):
        self.app = app
        self.allowed = {h.lower() for h in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = _headers(scope).get("host", "")
            if host_name(host) not in self.allowed:
                await _refuse(scope, receive, send, 400,
                              f"unexpected Host header {host!r}; open the URL the server printed")
                return
        await self.app(scope, receive, send)


class TokenCheck:
    """Answer 401 to requests that do not show the server's token (servers beyond localhost).

    The token is accepted as ``X-Dipseg-Token``, ``Authorization: Bearer``, or the cookie
    that opening ``/?token=TOKEN`` sets (then redirected to ``/``, so the token leaves the
    address bar and the history). The cookie is ``HttpOnly`` and ``SameSite=Strict``: other
    sites' requests never carry it.
    """

    def __init__(self, app, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        shown = headers.get(TOKEN_HEADER) or _bearer(headers) or _cookie(headers, TOKEN_COOKIE)
        if _same(shown, self.token):
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope["path"] == "/" and scope["method"] in ("GET", "HEAD") and _same((query.get("token") or [None])[0], self.token):
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
            await response(scope, receive, send)
            return
        await _refuse(scope, receive, send, 401,
                      "this server needs its access token: open the URL `dipseg serve` printed (…/?token=…), "
                      "or send the token as X-Dipseg-Token or Authorization: Bearer")


class PageOnly:
    """Answer 403 to state-changing requests that do not come from the page itself.

    A page of another site can POST here with ``fetch(..., {mode: "no-cors"})`` or a form
    (multipart and empty bodies need no CORS preflight); the browser then sends its
    ``Origin`` and ``Sec-Fetch-Site: cross-site``. Scripts that are no browser send neither,
    so the token header is what every writer must show: the page reads the token from
    ``/api/config``, which CORS keeps from other sites.
    """

    def __init__(self, app, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        site = headers.get("sec-fetch-site")
        origin = headers.get("origin")
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
        if site is not None and site not in ("same-origin", "none"):
            await _refuse(scope, receive, send, 403, f"refused a {site} request: only the dipseg page may change things")
        elif origin is not None and origin.lower() != own:
            await _refuse(scope, receive, send, 403,
                          f"refused a request from {origin}: only the dipseg page ({own}) may change things")
        elif not (_same(headers.get(TOKEN_HEADER), self.token) or _same(_bearer(headers), self.token)):
            await _refuse(scope, receive, send, 403,
                          "missing or wrong X-Dipseg-Token header: GET /api/config gives the token "
                          "(reload the page if the server was restarted)")
        else:
            await self.app(scope, receive, send)
