"""« Signaler » : a member reports a post to the node's moderators (``node.reports``).

Routes (anyone but an approved member who may read the post, not its author, gets
a missing page)::

    GET  /p/{id}/signaler    the form: reason, and for a remote author « Transmettre
                             aussi au serveur de l'auteur » (checked by default; in a
                             remote community, « … à la modération de la communauté »)
    POST /p/{id}/signaler    files the report, then back to the thread with a thank-you
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from node import markup, reports, threads
from node.errors import BadRequest, Conflict
from node.web import forms
from node.web.requests import path_id, pool_of, require_member, settings_of
from node.web.templating import redirect, render

EXCERPT_CHARS = 300


def _form(
    request: Request,
    target: reports.Reportable,
    status: int = 200,
    *,
    reason: str = "",
    forward: bool = True,
    errors: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "forum/report.html",
        status,
        post=target.post,
        remote=target.forwardable,
        remote_community=target.remote_community,
        excerpt=markup.to_plain(target.post["source"], EXCERPT_CHARS),
        reason=reason,
        forward=forward,
        errors=errors or {},
        reason_max=reports.REASON_MAX,
    )


async def report_page(request: Request) -> Response:
    member = require_member(request)
    target = await reports.reportable(
        pool_of(request), path_id(request), member, settings_of(request).base_url
    )
    return _form(request, target)


async def report(request: Request) -> Response:
    member = require_member(request)
    data = await forms.form(request)
    pool = pool_of(request)
    target = await reports.reportable(pool, path_id(request), member, settings_of(request).base_url)
    raw = data.get("reason")
    kept = raw[: reports.REASON_MAX] if isinstance(raw, str) else ""
    forward = data.get("forward") == "1"
    try:
        reason = forms.field(data, "reason", max_length=reports.REASON_MAX)
        async with pool.acquire() as conn:
            await reports.file_report(conn, target, member, reason, forward=forward)
            thread_id, page = await threads.post_location(conn, target.id, member)
    except BadRequest as exc:
        errors = exc.fields or {"_": exc.message}
        return _form(request, target, 400, reason=kept, forward=forward, errors=errors)
    except Conflict as exc:
        return _form(request, target, 409, reason=kept, forward=forward, errors={"_": exc.message})
    return redirect(f"/t/{thread_id}?page={page}&signale=1#p{target.id}")


routes: list[BaseRoute] = [
    Route("/p/{id:id}/signaler", report_page, methods=["GET"], name="post_report_page"),
    Route("/p/{id:id}/signaler", report, methods=["POST"], name="post_report"),
]
