"""Password recovery pages.

Routes::

    POST     /admin/membres/{id}/lien-de-reinitialisation  an admin issues a one-time link (shown once,
                                                           to pass on by phone or in person)
    GET/POST /mot-de-passe-oublie                          ask for a link by e-mail (when the node sends
                                                           e-mail); the answer never says whether the
                                                           account exists
    GET/POST /reinitialiser/{token}                        choose a new password through a live link
                                                           (ends every session of the account)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from node import accounts, mail, ratelimit, recovery
from node.errors import BadRequest, TooManyRequests
from node.web import forms
from node.web.accounts_views import FormReader
from node.web.requests import client_ip, path_id, pool_of, require_admin, settings_of
from node.web.templating import redirect, render


async def issue_link(request: Request) -> Response:
    admin = require_admin(request)
    await forms.form(request)
    user_id = path_id(request)
    pool = pool_of(request)
    member = await accounts.member(pool, user_id)
    async with pool.acquire() as conn:
        link = await recovery.issue(conn, user_id, via="admin", actor_id=admin.id, actor_label=admin.username)
    return render(
        request,
        "admin/reset_link.html",
        member=member,
        url=settings_of(request).url(link.path()),
        expires_at=link.expires_at,
    )


def _token(request: Request) -> str:
    return str(request.path_params["token"])


def render_reset(
    request: Request, target: recovery.Target | None, errors: dict[str, str] | None = None, status: int = 200
) -> Response:
    if target is None:
        # Unknown, spent and expired links: one answer (no oracle).
        return render(request, "accounts/reset_dead.html", status_code=404)
    return render(
        request,
        "accounts/reset.html",
        status_code=status,
        target=target,
        errors=errors or {},
        token=_token(request),
        limits=accounts.MAX_LENGTHS,
    )


async def reset_page(request: Request) -> Response:
    return render_reset(request, await recovery.find(pool_of(request), _token(request)))


async def reset(request: Request) -> Response:
    reader = FormReader(await forms.form(request))
    new = reader.text("new_password")
    confirm = reader.text("new_password_confirm", required=False)
    pool = pool_of(request)
    if reader.errors:
        return render_reset(request, await recovery.find(pool, _token(request)), reader.errors, 400)
    try:
        async with pool.acquire() as conn:
            target = await recovery.use(conn, _token(request), new, confirm)
    except BadRequest as exc:
        return render_reset(request, await recovery.find(pool, _token(request)), exc.fields, 400)
    if target is None:
        return render_reset(request, None)
    return redirect("/connexion?fait=reinitialise")


# (requests, window in seconds): per client address, and per account asked about.
FORGOT_PER_ADDRESS = (10, 60 * 60)
FORGOT_PER_LOGIN = (3, 60 * 60)


def render_forgot(request: Request, status: int = 200, **context: object) -> Response:
    return render(
        request,
        "accounts/forgot.html",
        status_code=status,
        mail_enabled=mail.enabled(settings_of(request)),
        **context,
    )


async def forgot_page(request: Request) -> Response:
    return render_forgot(request, login="")


async def forgot(request: Request) -> Response:
    data = await forms.form(request)
    raw = data.get("login")
    login = raw.strip()[:254] if isinstance(raw, str) else ""
    settings = settings_of(request)
    if not mail.enabled(settings):
        return render_forgot(request, 400, login=login)
    if not login:
        return render_forgot(
            request,
            400,
            login="",
            errors={"login": "Indiquez votre adresse e-mail ou votre nom d'utilisateur."},
        )
    pool = pool_of(request)
    if not await ratelimit.hit(pool, f"forgot:ip:{client_ip(request)}", *FORGOT_PER_ADDRESS) or not (
        await ratelimit.hit(pool, f"forgot:login:{login.lower()[:64]}", *FORGOT_PER_LOGIN)
    ):
        raise TooManyRequests("Trop de demandes de nouveau mot de passe. Réessayez dans une heure.")
    async with pool.acquire() as conn:
        await recovery.send_by_email(conn, login, base_url=settings.base_url, node_name=settings.node_name)
    return render_forgot(request, sent=True, login="")


routes: list[BaseRoute] = [
    Route("/mot-de-passe-oublie", forgot_page, methods=["GET"], name="password_forgot_page"),
    Route("/mot-de-passe-oublie", forgot, methods=["POST"], name="password_forgot"),
    Route(
        "/admin/membres/{id:id}/lien-de-reinitialisation",
        issue_link,
        methods=["POST"],
        name="admin_member_reset_link",
    ),
    Route("/reinitialiser/{token}", reset_page, methods=["GET"], name="password_reset_page"),
    Route("/reinitialiser/{token}", reset, methods=["POST"], name="password_reset"),
]
