"""Two-factor authentication pages (node/two_factor.py).

Routes::

    GET  /compte/double-authentification              state: off, pending (QR code) or on
    POST /compte/double-authentification/commencer    a new secret (password)
    POST /compte/double-authentification/activer      turn it on with a first code; recovery codes shown once
    POST /compte/double-authentification/desactiver   turn it off (password and code; not when required)
    POST /connexion/code                              second step of a login (a code after the password)
    POST /admin/membres/{id}/double-authentification/desactiver   an admin turns it off (lost phone)
"""

from __future__ import annotations

import hashlib
import hmac
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from node import ratelimit, two_factor
from node.errors import BadRequest
from node.web import forms
from node.web.accounts_views import (
    LOGIN_PER_ACCOUNT,
    check_limit,
    loose,
    open_session,
    safe_next,
)
from node.web.csrf import csrf_binding
from node.web.requests import path_id, pool_of, require_admin, require_member, settings_of
from node.web.templating import redirect, render

PAGE = "/compte/double-authentification"
TICKET_LIFETIME = 5 * 60  # seconds between the password and the code


def _secret(request: Request) -> str:
    return settings_of(request).secret_key.reveal()


def _issuer(request: Request) -> str:
    return settings_of(request).node_name


async def render_page(request: Request, status: int = 200, **context: object) -> Response:
    user = require_member(request)
    pool = pool_of(request)
    context.setdefault("errors", {})
    context.setdefault("enrolment", await two_factor.pending(pool, _secret(request), user, _issuer(request)))
    return render(
        request,
        "accounts/two_factor.html",
        status_code=status,
        on=await two_factor.enabled(pool, user.id),
        codes_left=await two_factor.recovery_codes_left(pool, user.id),
        required=two_factor.required_for(user.role, settings_of(request).require_2fa),
        asked=request.query_params.get("requise") == "1",
        **context,
    )


async def page(request: Request) -> Response:
    return await render_page(request)


async def start(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    try:
        async with pool_of(request).acquire() as conn:
            enrolment = await two_factor.start(
                conn, _secret(request), user, loose(data, "password"), _issuer(request)
            )
    except BadRequest as exc:
        return await render_page(request, 400, errors=exc.fields)
    return await render_page(request, enrolment=enrolment)


async def activate(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    try:
        async with pool_of(request).acquire() as conn:
            codes = await two_factor.activate(conn, _secret(request), user, loose(data, "totp_code", 40))
    except BadRequest as exc:
        return await render_page(request, 400, errors=exc.fields)
    return render(request, "accounts/recovery_codes.html", codes=codes)


async def disable(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    try:
        async with pool_of(request).acquire() as conn:
            await two_factor.disable(
                conn,
                _secret(request),
                user,
                loose(data, "password"),
                loose(data, "totp_code", 40),
                settings_of(request).require_2fa,
            )
    except BadRequest as exc:
        return await render_page(request, 400, errors=exc.fields or {"totp_code": exc.message})
    return redirect(PAGE)


async def admin_disable(request: Request) -> Response:
    admin = require_admin(request)
    await forms.form(request)
    user_id = path_id(request)
    async with pool_of(request).acquire() as conn:
        await two_factor.disable_by_admin(conn, admin, user_id)
    return redirect(f"/admin/membres/{user_id}?fait=2fa")


# ---------------------------------------------------------------- login, second step


def _mac(request: Request, user_id: int, expires: int) -> str:
    message = f"2fa-login:{user_id}:{expires}:{csrf_binding(request)}".encode()
    return hmac.new(_secret(request).encode(), message, hashlib.sha256).hexdigest()


def ticket_for(request: Request, user_id: int) -> str:
    """Proof, for this browser only and for a few minutes, that the password was right."""
    expires = int(time.time()) + TICKET_LIFETIME
    return f"{user_id}.{expires}.{_mac(request, user_id, expires)}"


def _ticket_user(request: Request, ticket: str) -> int | None:
    try:
        user_id_text, expires_text, mac = ticket.split(".")
        user_id, expires = int(user_id_text), int(expires_text)
    except ValueError:
        return None
    if expires < time.time() or not hmac.compare_digest(mac, _mac(request, user_id, expires)):
        return None
    return user_id


def render_code(request: Request, ticket: str, next_url: str, status: int = 200, error: str = "") -> Response:
    return render(
        request, "accounts/login_code.html", status_code=status, ticket=ticket, next=next_url, error=error
    )


async def login_code(request: Request) -> Response:
    data = await forms.form(request)
    ticket = loose(data, "ticket", 200)
    next_url = safe_next(data.get("next"))
    user_id = _ticket_user(request, ticket)
    if user_id is None:
        return redirect("/connexion?fait=code-expire")
    key = f"login:2fa:{user_id}"
    await check_limit(request, key, LOGIN_PER_ACCOUNT)
    async with pool_of(request).acquire() as conn:
        ok = await two_factor.check(conn, _secret(request), user_id, loose(data, "totp_code", 40))
    if not ok:
        return render_code(
            request,
            ticket,
            next_url,
            400,
            "Ce code ne correspond pas. Réessayez avec le code affiché maintenant, ou un code de secours.",
        )
    await ratelimit.refund(pool_of(request), key, LOGIN_PER_ACCOUNT[1])
    await open_session(request, user_id)
    return redirect(next_url)


routes: list[BaseRoute] = [
    Route(PAGE, page, methods=["GET"], name="two_factor"),
    Route(PAGE + "/commencer", start, methods=["POST"], name="two_factor_start"),
    Route(PAGE + "/activer", activate, methods=["POST"], name="two_factor_activate"),
    Route(PAGE + "/desactiver", disable, methods=["POST"], name="two_factor_disable"),
    Route("/connexion/code", login_code, methods=["POST"], name="login_code"),
    Route(
        "/admin/membres/{id:id}/double-authentification/desactiver",
        admin_disable,
        methods=["POST"],
        name="admin_member_two_factor_disable",
    ),
]
