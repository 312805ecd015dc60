"""The ASGI application: routes, middleware, error pages and life cycle."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Lifespan, Message, Receive, Scope, Send

from federation import inbox, private_messages, remote_pages
from federation import web as federation_web
from federation.admin_pages import deliveries as delivery_pages
from federation.admin_pages import policy as policy_pages
from federation.app_state import FederationState
from node import db, metrics, sessions
from node import settings as settings_module
from node.errors import AppError
from node.settings import Settings
from node.web import (
    account_life_views,
    accounts_views,
    admin_views,
    directory_views,
    document_views,
    forum_views,
    kept_forms,
    media_views,
    messages_views,
    notification_views,
    pages,
    recovery_views,
    report_form_views,
    reports_views,
    status_views,
    two_factor_views,
)
from node.web.headers import STATIC_HEADERS
from node.web.middleware import (
    MetricsMiddleware,
    SecurityHeadersMiddleware,
    SessionMiddleware,
    add_security_headers,
)
from node.web.requests import AppState, current_user, pool_of, settings_of, state_of
from node.web.routing import SegmentRouter
from node.web.templating import render
from node.web.unreadable import UnreadableURL

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return (
        "application/activity+json" in accept
        or "application/ld+json" in accept
        or ("application/json" in accept and "text/html" not in accept)
    )


async def error_response(
    request: Request, status: int, message: str, fields: dict[str, str] | None = None
) -> Response:
    if _wants_json(request) or request.method == "POST" and "json" in request.headers.get("content-type", ""):
        return JSONResponse({"error": message, "fields": fields or {}}, status_code=status)
    if "state" not in request.scope or not hasattr(request.state, "csrf_binding"):
        return PlainTextResponse(message, status_code=status)
    data = await kept_forms.submitted(request) if request.method == "POST" else None
    if data is not None:
        return form_again(request, status, message, fields or {}, data)
    return render(
        request, "error.html", status_code=status, status=status, message=message, fields=fields or {}
    )


def form_again(
    request: Request, status: int, message: str, fields: dict[str, str], data: FormData
) -> Response:
    """The refused form, as typed, with a button to send it again (kept_forms)."""
    kept, dropped = kept_forms.kept_fields(data)
    # A multipart form carried a file: it is never kept (its fields are, above).
    dropped = dropped or request.headers.get("content-type", "").startswith("multipart/form-data")
    user = current_user(request)
    action = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(
        request,
        "form_again.html",
        status_code=status,
        message=message,
        fields=fields,
        kept=kept,
        dropped=dropped,
        action=action,
        # A logged-out member logs in in another tab, then sends again from here.
        can_resend=status != 404 or user is None,
        login_first=kept_forms.needs_login(request, user),
    )


async def app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return await error_response(request, exc.status, exc.message, exc.fields)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "Page introuvable.", 405: "Méthode non autorisée."}
    return await error_response(request, exc.status_code, messages.get(exc.status_code, "Requête invalide."))


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    headers = dict(STATIC_HEADERS, **{"cache-control": "private, no-store"})
    return PlainTextResponse("Une erreur interne est survenue.", status_code=500, headers=headers)


def all_routes() -> list[BaseRoute]:
    # First: a path or query string that is not text (NUL, not UTF-8) never reaches a view.
    routes: list[BaseRoute] = [
        UnreadableURL(),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    # Federation routes come first: they match only ActivityPub requests (Accept /
    # Content-Type) on URLs that are also HTML pages.
    routes.extend(private_messages.routes)
    # Then the busiest pages early: a request is matched against each route in turn.
    for module in (
        federation_web,
        document_views,
        pages,
        accounts_views,
        forum_views,
        admin_views,
        policy_pages,
    ):
        routes.extend(module.routes)
    routes.extend(delivery_pages.routes)
    routes.extend(reports_views.routes)
    routes.extend(report_form_views.routes)
    routes.extend(media_views.routes)
    routes.extend(recovery_views.routes)
    routes.extend(account_life_views.routes)
    routes.extend(two_factor_views.routes)
    routes.extend(status_views.routes)
    routes.extend(messages_views.routes)
    routes.extend(notification_views.routes)
    routes.extend(directory_views.routes)
    return routes


class NodeApp(Starlette):
    """Starlette, with the federation inboxes answered ahead of its middleware stack.

    An inbox POST (the busiest request of a federated node) goes straight to its
    endpoint, which sends its own 202 with the security headers; measured
    (bench/inbox.py), the stack and the router cost ~60 µs of a ~450 µs request. What the
    stack does for such a request still happens: a URL that is not readable text goes the
    usual way (UnreadableURL's refusal), a refusal is answered by the app's exception
    handlers with the security headers, and the answer is counted as MetricsMiddleware
    counts it. Sessions never apply to inboxes (SessionMiddleware skips them)."""

    fast_routes: Sequence[Route] = ()

    def __init__(self, *, routes: Sequence[BaseRoute], lifespan: Lifespan[Starlette], **options: Any) -> None:
        super().__init__(routes=routes, lifespan=lifespan, **options)
        self.router = SegmentRouter(routes, lifespan=lifespan)  # node.web.routing: fewer routes tried

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/inbox"):
            for route in self.fast_routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    if _READABLE.matches(scope)[0] is Match.NONE:
                        scope["app"] = self
                        scope["route"] = route
                        scope.update(child)
                        await self._answer_alone(route, scope, receive, send)
                        return
                    break
        await super().__call__(scope, receive, send)

    async def _answer_alone(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        started, status, answering = time.perf_counter(), 500, False

        async def send_counted(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
            await send(message)

        try:
            await route.handle(scope, receive, send_counted)
        except Exception as exc:
            if answering:
                raise
            await self._refuse(scope, receive, send_counted, exc)
        finally:
            metrics.observe_request(route.path, "POST", status, time.perf_counter() - started)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        """The answer the app's exception handlers give to ``exc``, with the security headers."""
        handler = next(
            (self.exception_handlers[c] for c in type(exc).__mro__ if c in self.exception_handlers),
            server_error,
        )
        response = await handler(Request(scope, receive), exc)
        path = scope["path"]

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(message, path)
            await send(message)

        await response(scope, receive, send_secured)


_READABLE = UnreadableURL()  # matches (Match.FULL) a URL that is not readable text


def create_app(
    settings: Settings | None = None, pool: asyncpg.Pool | None = None, read_pool: asyncpg.Pool | None = None
) -> Starlette:
    """Build the app. With ``pool`` given (tests), the caller owns the pool (and
    ``read_pool``, a read replica's); otherwise the app opens one on
    ``settings.database_url`` and migrates, and one on the replica when
    ``VBG_REPLICA_DATABASE_URL`` is set (pages and search read there:
    ``node.web.requests.read_pool_of``)."""
    settings = settings or settings_module.load()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = state_of(app)
        own_pool = pool is None
        if own_pool:
            if not settings.database_url:
                raise settings_module.SettingsError("DATABASE_URL is required to start the web app")
            state.pool = await db.create_pool(settings.database_url)
            async with state.pool.acquire() as conn:
                await db.migrate(conn, settings)
            # Sessions cached in this process, evicted by NOTIFY (see sessions.SessionCache).
            state.session_cache = sessions.SessionCache()
            await state.session_cache.start(settings.database_url)
            if settings.replica_database_url:
                state.read_pool = await db.create_pool(settings.replica_database_url)
        # Federation workers run in this process only when it owns its pool (serve).
        workers_here = own_pool and settings.workers_in_serve
        if workers_here:
            # Imported here, not at the top: the workers bring aiohttp (~10 MB), which a
            # web process that runs no worker (VBG_WORKERS_IN_SERVE=0) does without.
            from federation import worker

            await worker.start_in_app(app)
        try:
            yield
        finally:
            if workers_here:
                await worker.stop(app)
            await state.federation.close()
            if own_pool:
                await state.session_cache.stop()
                await state.pool.close()
                if state.read_pool is not None:
                    await state.read_pool.close()

    app = NodeApp(
        routes=all_routes(),
        middleware=[
            Middleware(MetricsMiddleware),
            Middleware(SecurityHeadersMiddleware),
            Middleware(SessionMiddleware),
        ],
        exception_handlers={AppError: app_error, HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.fast_routes = [r for r in inbox.routes if isinstance(r, Route)]
    state = app.state = AppState()
    state.settings = settings
    if pool is not None:
        state.pool = pool
    state.read_pool = read_pool
    state.server_may_read = server_may_read
    state.learn_remote_member = private_messages.learn_remote_member
    state.find_remote_community = remote_pages.find_card
    state.subscribe_remote = remote_pages.subscribe
    state.unsubscribe_remote = remote_pages.unsubscribe
    state.admin_follow_remote = remote_pages.admin_follow
    state.admin_drop_remote = remote_pages.admin_drop
    state.federation = FederationState()
    return app


async def server_may_read(request: Request, visibility: str) -> bool:
    """The federation's rule for a signed GET of content of ``visibility`` (files of the
    documents space ask it: node.web.document_views)."""
    from federation import access

    async with pool_of(request).acquire() as conn:
        return await access.may_read(request, conn, settings_of(request), visibility)


def app_from_env() -> Starlette:
    """Factory for ASGI servers (``granian --factory node.web.app:app_from_env``)."""
    return create_app()
