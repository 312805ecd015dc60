"""Pages that belong to no area: the charter, the about page, the health check."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from node.web.requests import pool_of
from node.web.templating import render


async def charter(request: Request) -> Response:
    return render(request, "pages/charter.html")


async def about(request: Request) -> Response:
    return render(request, "pages/about.html")


async def health(request: Request) -> Response:
    await pool_of(request).fetchval("SELECT 1")
    return PlainTextResponse("ok")


routes: list[BaseRoute] = [
    Route("/charte", charter, name="charter"),
    Route("/a-propos", about, name="about"),
    Route("/healthz", health, name="health"),
]
