"""The moderator console: three static files served from the package at /moderation/, with a
strict Content-Security-Policy (no inline script, nothing from elsewhere)."""

from __future__ import annotations

from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

_FILES: Final = {
    "": ("index.html", "text/html; charset=utf-8"),
    "console.js": ("console.js", "text/javascript; charset=utf-8"),
    "console.css": ("console.css", "text/css; charset=utf-8"),
}
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def console_routes() -> list[BaseRoute]:
    folder = resources.files(__package__).joinpath("console")
    bodies = {path: (folder.joinpath(name).read_bytes(), kind) for path, (name, kind) in _FILES.items()}

    async def redirect(request: Request) -> Response:
        return RedirectResponse("/moderation/", status_code=308)

    def serve(path: str) -> Route:
        body, kind = bodies[path]

        async def endpoint(request: Request) -> Response:
            return Response(body, media_type=kind, headers=HEADERS)

        return Route(f"/moderation/{path}", endpoint, methods=["GET"])

    return [Route("/moderation", redirect, methods=["GET"]), *(serve(p) for p in bodies)]
