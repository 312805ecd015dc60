"""The moderators' reports page (Flags received from other servers, ``node.reports``).

Routes (anyone but moderators and admins gets a missing page)::

    GET  /moderation/signalements?etat=ouverts|traites|classes[&avant=|&apres=CURSOR]
    POST /moderation/signalements/{id}/traiter      resolved (optional note), audited
    POST /moderation/signalements/{id}/classer      dismissed (optional note), audited

Targets that are not our posts come from another server: they are shown as text,
and as links only with ``rel="nofollow noopener noreferrer"`` (http and https only).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from node import reports
from node.i18n import _
from node.web import forms
from node.web.requests import path_id, pool_of, require_moderator, settings_of
from node.web.templating import redirect, render

PATH = "/moderation/signalements"
# Filter names in the URL (French) and the states they stand for.
FILTERS = {"ouverts": "open", "traites": "resolved", "classes": "dismissed"}
DONE = {"traite": "Signalement marqué comme traité.", "classe": "Signalement classé sans suite."}


@dataclass(frozen=True)
class Target:
    """How to show a reported id: ``local`` (a path on this node), ``external``
    (an http(s) URL of another server) or ``text`` (anything else)."""

    kind: str
    href: str
    text: str


def describe_target(uri: str, base_url: str) -> Target:
    try:
        parts = urlsplit(uri)
        base = urlsplit(base_url)
        same_origin = (parts.scheme, parts.netloc.lower()) == (base.scheme, base.netloc.lower())
    except ValueError:
        return Target("text", "", uri)
    if same_origin and parts.path.startswith("/"):
        return Target("local", parts.path, uri)
    if parts.scheme in ("http", "https") and parts.netloc:
        return Target("external", uri, uri)
    return Target("text", "", uri)


def _done_message(key: str) -> str:
    message = DONE.get(key)
    return _(message) if message else ""


async def reports_page(request: Request) -> Response:
    require_moderator(request)
    filter_name = request.query_params.get("etat", "ouverts")
    state = FILTERS.get(filter_name, "open")
    at = reports.Position.from_query(request.query_params.get("avant"), request.query_params.get("apres"))
    base_url = settings_of(request).base_url
    listing = await reports.list_reports(pool_of(request), state, at, base_url)
    return render(
        request,
        "moderation/reports.html",
        listing=listing,
        state=state,
        filter_name=next(name for name, s in FILTERS.items() if s == state),
        describe=lambda uri: describe_target(uri, base_url),
        done=_done_message(request.query_params.get("fait", "")),
        note_max=reports.NOTE_MAX,
    )


async def _decide(request: Request, decision: str, done: str) -> Response:
    moderator = require_moderator(request)
    data = await forms.form(request)
    note = forms.field(data, "note", max_length=reports.NOTE_MAX, required=False)
    async with pool_of(request).acquire() as conn:
        await reports.decide(conn, path_id(request), decision, moderator, note)
    return redirect(f"{PATH}?fait={done}")


async def resolve(request: Request) -> Response:
    return await _decide(request, "resolved", "traite")


async def dismiss(request: Request) -> Response:
    return await _decide(request, "dismissed", "classe")


routes: list[BaseRoute] = [
    Route(PATH, reports_page, methods=["GET"], name="moderation_reports"),
    Route(PATH + "/{id:id}/traiter", resolve, methods=["POST"], name="report_resolve"),
    Route(PATH + "/{id:id}/classer", dismiss, methods=["POST"], name="report_dismiss"),
]
