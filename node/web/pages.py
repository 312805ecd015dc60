"""Pages that belong to no area: the charter, the about page, the legal and privacy
page (admins edit it at ``/admin/mentions-legales``), the health checks.

``/healthz`` says the process is up (it answers without the database: a supervisor
restarts a process that stops answering it); ``/readyz`` says the node can serve —
PostgreSQL answers within ``READY_TIMEOUT`` and every migration file is applied — and
answers 503 with the reason otherwise (a load balancer stops sending it traffic).
"""

from __future__ import annotations

import asyncio

import asyncpg
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from node import db, site_pages
from node.errors import BadRequest
from node.web import forms
from node.web.requests import pool_of, require_admin
from node.web.templating import redirect, render

READY_TIMEOUT = 3.0  # seconds
PLAIN_HEADERS = {"cache-control": "no-store"}


async def charter(request: Request) -> Response:
    return render(request, "pages/charter.html")


async def about(request: Request) -> Response:
    return render(request, "pages/about.html")


async def legal(request: Request) -> Response:
    return render(request, "pages/legal.html", page=await site_pages.page(pool_of(request), site_pages.LEGAL))


async def legal_edit_page(request: Request) -> Response:
    require_admin(request)
    page = await site_pages.page(pool_of(request), site_pages.LEGAL)
    saved = request.query_params.get("fait") == "1"
    return render(request, "admin/legal.html", source=page.source, errors={}, saved=saved)


async def legal_edit(request: Request) -> Response:
    admin = require_admin(request)
    data = await forms.form(request)
    raw = data.get("source")
    source = raw if isinstance(raw, str) else ""
    try:
        async with pool_of(request).acquire() as conn:
            await site_pages.save(conn, site_pages.LEGAL, source, admin)
    except BadRequest as exc:
        return render(request, "admin/legal.html", 400, source=source, errors=exc.fields, saved=False)
    return redirect("/admin/mentions-legales?fait=1")


async def health(request: Request) -> Response:
    return PlainTextResponse("ok", headers=PLAIN_HEADERS)


async def ready(request: Request) -> Response:
    try:
        async with asyncio.timeout(READY_TIMEOUT), pool_of(request).acquire() as conn:
            pending = await db.pending_migrations(conn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return PlainTextResponse("base de données injoignable", status_code=503, headers=PLAIN_HEADERS)
    if pending:
        listed = ", ".join(f"{v:04d}" for v in pending)
        return PlainTextResponse(f"migrations en attente : {listed}", status_code=503, headers=PLAIN_HEADERS)
    return PlainTextResponse("prêt", headers=PLAIN_HEADERS)


routes: list[BaseRoute] = [
    Route("/charte", charter, name="charter"),
    Route("/a-propos", about, name="about"),
    Route("/mentions-legales", legal, methods=["GET"], name="legal"),
    Route("/admin/mentions-legales", legal_edit_page, methods=["GET"], name="admin_legal_page"),
    Route("/admin/mentions-legales", legal_edit, methods=["POST"], name="admin_legal"),
    Route("/healthz", health, name="health"),
    Route("/readyz", ready, name="ready"),
]
