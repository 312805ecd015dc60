"""ASGI middleware: the member's session and the security headers on every answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node import metrics, sessions
from node.security import new_token
from node.web.headers import NEGOTIATED_PREFIXES, STATIC_HEADERS, session_cookie
from node.web.requests import RECENT_WRITE_COOKIE, RECENT_WRITE_SECONDS
from node.web.templating import use_zone

_STATIC_RAW = [(k.encode(), v.encode()) for k, v in STATIC_HEADERS.items()]


def _varies_on_accept(headers: MutableHeaders) -> bool:
    return "accept" in (v.strip().lower() for v in headers.get("vary", "").split(","))


def _cookies(scope: Scope) -> dict[str, str]:
    for name, value in scope["headers"]:
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is treated as no cookie
                return {}
            return {k: m.value for k, m in jar.items()}
    return {}


def _is_inbox_post(scope: Scope) -> bool:
    """A POST to an ActivityPub inbox (``/inbox`` or ``…/inbox``: routes of federation.inbox)."""
    result: bool = scope["method"] == "POST" and (
        scope["path"] == "/inbox" or scope["path"].endswith("/inbox")
    )
    return result


# Paths a moderator or admin without a required second factor may still use.
ENROLMENT_PATHS = (
    "/compte/double-authentification",
    "/deconnexion",
    "/mentions-legales",
    "/a-propos",
    "/charte",
)


def _must_enrol(user: sessions.User | None, require_2fa: bool, path: str) -> bool:
    return (
        require_2fa
        and user is not None
        and user.is_moderator
        and not user.totp_enabled
        and not path.startswith(ENROLMENT_PATHS)
    )


async def _redirect(send: Send, location: str, cookies: list[str]) -> None:
    headers = [(b"location", location.encode()), (b"content-length", b"0")]
    headers += [(b"set-cookie", c.encode()) for c in cookies]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


class SessionMiddleware:
    """Loads the session named by the cookie into ``request.state``:

    ``user`` (``sessions.User`` or None), ``session`` and ``csrf_binding`` (the
    session token, or a random anonymous cookie so anonymous forms have a CSRF
    token too). Views that log in or out set ``request.state.set_cookie``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/") or _is_inbox_post(scope):
            # Static files and ActivityPub inboxes (servers, not browsers): no session,
            # no cookie set on the answer.
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        settings = scope["app"].state.settings
        pool = scope["app"].state.pool
        cookies = _cookies(scope)
        state["user"] = None
        state["session"] = None
        state["set_cookies"] = []
        token = cookies.get(sessions.COOKIE)
        if token:
            cache = getattr(scope["app"].state, "session_cache", None)
            session = await sessions.lookup_cached(pool, cache, token, datetime.now(UTC))
            if session is not None:
                state["session"] = session
                state["user"] = session.user
                state["csrf_binding"] = "s:" + token
            else:
                state["set_cookies"].append(
                    session_cookie(sessions.COOKIE, "", secure=settings.secure_cookies, max_age=0)
                )
        if state["session"] is None:
            anon = cookies.get(sessions.ANON_COOKIE)
            if not anon or len(anon) > 64:
                anon = new_token()
                state["set_cookies"].append(
                    session_cookie(sessions.ANON_COOKIE, anon, secure=settings.secure_cookies)
                )
            state["csrf_binding"] = "a:" + anon

        if (
            scope["method"] not in ("GET", "HEAD")
            and getattr(scope["app"].state, "read_pool", None) is not None
        ):
            # This browser writes: its next pages read the primary (node.web.requests.read_pool_of)
            state["set_cookies"].append(
                session_cookie(
                    RECENT_WRITE_COOKIE, "1", secure=settings.secure_cookies, max_age=RECENT_WRITE_SECONDS
                )
            )

        user = state["user"]
        use_zone(user.timezone if user is not None and user.timezone else settings.timezone)
        if _must_enrol(user, settings.require_2fa, scope["path"]):
            # The node requires a second factor of moderators and admins: until she has
            # one, every page leads to the enrolment page (logging out still works).
            await _redirect(send, "/compte/double-authentification?requise=1", state["set_cookies"])
            return

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for cookie in state["set_cookies"]:
                    headers.append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookies)


class SecurityHeadersMiddleware:
    """CSP without inline scripts, no framing, nosniff, a referrer policy, and
    ``Cache-Control: private, no-store`` on every page that is not a static file."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(message, path)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_security_headers(start: Message, path: str) -> None:
    """What :class:`SecurityHeadersMiddleware` adds to the ``http.response.start``
    message of an answer to ``path`` (headers already there are left as they are)."""
    headers = MutableHeaders(scope=start)
    for key, value in STATIC_HEADERS.items():
        if key not in headers:
            headers[key] = value
    if not path.startswith("/static/") and "cache-control" not in headers:
        headers["cache-control"] = "private, no-store"
    if path.startswith(NEGOTIATED_PREFIXES) and not _varies_on_accept(headers):
        headers.add_vary_header("Accept")


class MetricsMiddleware:
    """Counts every answer and its latency by route template (``node.metrics``): the
    template (``/t/{thread_id}``), never the URL, so no label names a member or a post."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.observe_request(template, scope["method"], status, time.perf_counter() - started)
