"""Password recovery pages.

Routes::

    POST     /admin/membres/{id}/lien-de-reinitialisation  an admin issues a one-time link (shown once,
                                                           to pass on by phone or in person)
    GET/POST /reinitialiser/{token}                        choose a new password through a live link
                                                           (ends every session of the account)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from node import accounts, recovery
from node.errors import BadRequest
from node.web import forms
from node.web.accounts_views import FormReader
from node.web.requests import path_id, pool_of, require_admin, settings_of
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


routes: list[BaseRoute] = [
    Route(
        "/admin/membres/{id:int}/lien-de-reinitialisation",
        issue_link,
        methods=["POST"],
        name="admin_member_reset_link",
    ),
    Route("/reinitialiser/{token}", reset_page, methods=["GET"], name="password_reset_page"),
    Route("/reinitialiser/{token}", reset, methods=["POST"], name="password_reset"),
]
