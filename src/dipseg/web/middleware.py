"""ASGI middleware of the app."""

from __future__ import annotations

from typing import Iterable

from fastapi.responses import JSONResponse


def host_name(host: str) -> str:
    """The name part of a Host header, lower case (``[::1]:8000`` -> ``::1``)."""
    name = host.lower()
    return name[1:].split("]")[0] if name.startswith("[") else name.rsplit(":", 1)[0]


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
            host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
            if host_name(host) not in self.allowed:
                response = JSONResponse({"detail": f"unexpected Host header {host!r}; open the URL the server printed"},
                                        status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
