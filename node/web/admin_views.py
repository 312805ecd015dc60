"""Moderation of registrations and admin member management.

Routes (anyone without the role gets a missing page)::

    GET  /moderation                                queue of pending registrations and count of
                                                    open reports (moderators; reports: reports_views)
    POST /moderation/inscriptions/{id}/approuver    approve
    POST /moderation/inscriptions/{id}/refuser      refuse (reason required, shown to the person)
    GET  /admin                                     admin index (admins)
    GET  /admin/membres                             members, searchable by name
    GET  /admin/membres/{id}                        one member: role, expert communities, suspension
    POST /admin/membres/{id}/role                   change role
    POST /admin/membres/{id}/experts                set the communities the member animates
    POST /admin/membres/{id}/suspendre              suspend (ends every session)
    POST /admin/membres/{id}/reactiver              reactivate

Every decision is audited (``node.accounts`` records it in the same transaction).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from node import accounts, reports
from node.errors import BadRequest
from node.web import forms
from node.web.accounts_views import FormReader
from node.web.requests import (
    keyset_position,
    numbered_page,
    path_id,
    pool_of,
    require_admin,
    require_moderator,
)
from node.web.templating import redirect, render

ADMIN_DONE = {
    "role": "Le rôle a été changé.",
    "experts": "Les communautés animées ont été enregistrées.",
    "suspendu": "Le compte a été suspendu et ses sessions fermées.",
    "reexamen": "La demande est de nouveau dans la file de modération.",
    "reactive": "Le compte a été réactivé.",
    "2fa": "La double authentification de ce compte est désactivée.",
}

# ---------------------------------------------------------------- registrations queue


async def render_queue(
    request: Request, status: int = 200, errors: dict[int, str] | None = None, done: str = ""
) -> Response:
    require_moderator(request)
    pool = pool_of(request)
    return render(
        request,
        "moderation/queue.html",
        status_code=status,
        pending=await accounts.pending_registrations(pool, keyset_position(request, "apres", "avant")),
        pending_count=await accounts.pending_count(pool),
        open_reports=await reports.count_open(pool_of(request)),
        professions=accounts.PROFESSIONS,
        errors=errors or {},
        done={"approuve": "Inscription validée.", "refuse": "Inscription refusée."}.get(done, ""),
        reason_max=accounts.MAX_LENGTHS["reason"],
    )


async def queue(request: Request) -> Response:
    require_moderator(request)
    if numbered_page(request):
        return RedirectResponse("/moderation", status_code=302)
    return await render_queue(request, done=request.query_params.get("fait", ""))


async def approve(request: Request) -> Response:
    moderator = require_moderator(request)
    await forms.form(request)
    async with pool_of(request).acquire() as conn:
        await accounts.approve(conn, path_id(request), moderator)
    return redirect("/moderation?fait=approuve")


async def refuse(request: Request) -> Response:
    moderator = require_moderator(request)
    reader = FormReader(await forms.form(request))
    user_id = path_id(request)
    reason = reader.text("reason")
    try:
        if reader.errors:
            raise BadRequest(fields=reader.errors)
        async with pool_of(request).acquire() as conn:
            await accounts.refuse(conn, user_id, moderator, reason)
    except BadRequest as exc:
        return await render_queue(request, 400, {user_id: exc.fields.get("reason", exc.message)})
    return redirect("/moderation?fait=refuse")


# ---------------------------------------------------------------- admin


async def admin_index(request: Request) -> Response:
    require_admin(request)
    return render(request, "admin/index.html")


async def members(request: Request) -> Response:
    require_admin(request)
    query = request.query_params.get("q", "")[:100]
    params = request.query_params
    listing = await accounts.search_members(
        pool_of(request), query, after=params.get("apres", ""), before=params.get("avant")
    )
    return render(
        request,
        "admin/members.html",
        members=listing.members,
        listing=listing,
        query=query,
        role_labels=accounts.ROLE_LABELS,
        status_labels=accounts.STATUS_LABELS,
        erased=request.query_params.get("fait") == "efface",
    )


async def member(request: Request) -> Response:
    require_admin(request)
    pool = pool_of(request)
    user_id = path_id(request)
    row = await accounts.member(pool, user_id)
    return render(
        request,
        "admin/member.html",
        member=row,
        communities=await accounts.all_communities(pool),
        expert_ids={r["id"] for r in await accounts.expert_of(pool, user_id)},
        roles=accounts.ROLE_LABELS,
        status_labels=accounts.STATUS_LABELS,
        professions=accounts.PROFESSIONS,
        done=ADMIN_DONE.get(request.query_params.get("fait", ""), ""),
    )


def _back(user_id: int, done: str) -> Response:
    return redirect(f"/admin/membres/{user_id}?fait={done}")


async def change_role(request: Request) -> Response:
    admin = require_admin(request)
    data = await forms.form(request)
    user_id = path_id(request)
    role = data.get("role")
    async with pool_of(request).acquire() as conn:
        await accounts.set_role(conn, admin, user_id, role if isinstance(role, str) else "")
    return _back(user_id, "role")


def _community_ids(values: list[object]) -> set[int]:
    try:
        return {int(str(v)) for v in values}
    except ValueError as exc:
        raise BadRequest("Communauté inconnue.") from exc


async def set_experts(request: Request) -> Response:
    admin = require_admin(request)
    data = await forms.form(request)
    user_id = path_id(request)
    community_ids = _community_ids(list(data.getlist("community")))
    async with pool_of(request).acquire() as conn:
        await accounts.set_expert_communities(conn, admin, user_id, community_ids)
    return _back(user_id, "experts")


async def suspend(request: Request) -> Response:
    admin = require_admin(request)
    reader = FormReader(await forms.form(request))
    user_id = path_id(request)
    reason = reader.text("reason", required=False)
    if reader.errors:
        raise BadRequest(fields=reader.errors)
    async with pool_of(request).acquire() as conn:
        await accounts.suspend(conn, admin, user_id, reason)
    return _back(user_id, "suspendu")


async def reactivate(request: Request) -> Response:
    admin = require_admin(request)
    await forms.form(request)
    user_id = path_id(request)
    async with pool_of(request).acquire() as conn:
        await accounts.reactivate(conn, admin, user_id)
    return _back(user_id, "reactive")


async def reconsider(request: Request) -> Response:
    admin = require_admin(request)
    await forms.form(request)
    user_id = path_id(request)
    async with pool_of(request).acquire() as conn:
        await accounts.reconsider(conn, admin, user_id)
    return _back(user_id, "reexamen")


async def erase(request: Request) -> Response:
    admin = require_admin(request)
    await forms.form(request)
    async with pool_of(request).acquire() as conn:
        await accounts.erase_refused(conn, admin, path_id(request))
    return redirect("/admin/membres?fait=efface")


routes: list[BaseRoute] = [
    Route("/moderation", queue, methods=["GET"], name="moderation_queue"),
    Route(
        "/moderation/inscriptions/{id:id}/approuver", approve, methods=["POST"], name="registration_approve"
    ),
    Route("/moderation/inscriptions/{id:id}/refuser", refuse, methods=["POST"], name="registration_refuse"),
    Route("/admin", admin_index, methods=["GET"], name="admin_index"),
    Route("/admin/membres", members, methods=["GET"], name="admin_members"),
    Route("/admin/membres/{id:id}", member, methods=["GET"], name="admin_member"),
    Route("/admin/membres/{id:id}/role", change_role, methods=["POST"], name="admin_member_role"),
    Route("/admin/membres/{id:id}/experts", set_experts, methods=["POST"], name="admin_member_experts"),
    Route("/admin/membres/{id:id}/suspendre", suspend, methods=["POST"], name="admin_member_suspend"),
    Route("/admin/membres/{id:id}/reactiver", reactivate, methods=["POST"], name="admin_member_reactivate"),
    Route("/admin/membres/{id:id}/reexaminer", reconsider, methods=["POST"], name="admin_member_reconsider"),
    Route("/admin/membres/{id:id}/effacer", erase, methods=["POST"], name="admin_member_erase"),
]
