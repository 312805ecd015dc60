"""``GET /activities/{uuid}``: the activities we sent, served at their ids.

A group's relay (FEP-1b12 ``Announce{activity}``) is never trusted as embedded by its
receivers (ours refetch it from its origin, see ``handlers.announce``), so every
activity we send must be fetchable at its id, or partner nodes can never accept what
our groups relay. Who may read one is decided NOW, not when it was sent:

    the post it is about (``activities.object_uri``), when we store it
        deleted                    ── only a Delete is still served (it reveals nothing)
        otherwise                  ── its community's current visibility (``access.may_read``;
                                      a remote community's members-only post: its group's host only)
    anything else (a reply sent to a remote group …) ── ``activities.audience``
    'direct' (Follow, Accept, Reject: meant for one actor) ── never

Every refusal is a 404, as for a missing activity.
"""

from __future__ import annotations

import uuid

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from federation import access
from federation.handlers.base import local_path
from federation.negotiation import ActivityResponse
from node import published
from node.errors import NotFound
from node.settings import Settings
from node.web.requests import pool_of, settings_of

SELECT_ACTIVITY = "SELECT json, object_uri, audience FROM activities WHERE uri = $1"


async def _post_state(conn: asyncpg.Connection, settings: Settings, uri: str) -> asyncpg.Record | None:
    """(visibility, deleted) of the post named by ``uri`` (ours by URL, or a remote one we store)."""
    path = local_path(settings, uri) or ""
    for prefix in ("/t/", "/p/"):
        rest = path[len(prefix) :]
        if path.startswith(prefix) and rest.isdigit() and len(rest) < 19:
            if prefix == "/t/":
                return await published.post_state(conn, thread_id=int(rest))
            return await published.post_state(conn, post_id=int(rest))
    return await published.post_state(conn, ap_id=uri)


async def visibility_of(
    conn: asyncpg.Connection, settings: Settings, row: asyncpg.Record
) -> tuple[str | None, str | None, str | None]:
    """Who may read this sent activity now: ('public' | 'members' | None (nobody), and the
    host and id of the remote group when the post is in a followed community of another
    server)."""
    if row["audience"] == "direct":
        return None, None, None
    state = await _post_state(conn, settings, row["object_uri"]) if row["object_uri"] else None
    if state is None:
        audience: str = row["audience"]
        return audience, None, None
    if state["deleted"] and row["json"].get("type") != "Delete":
        return None, None, None
    return state["visibility"], state["origin"], state["group_uri"]


async def activity(request: Request) -> Response:
    settings = settings_of(request)
    raw = request.path_params["uuid"]
    try:
        uri = f"{settings.base_url}/activities/{uuid.UUID(raw)}"
    except ValueError:
        raise NotFound() from None
    # the id scheme of federation.urls.new_activity (a lower-case uuid4)
    async with pool_of(request).acquire() as conn:
        row = await conn.fetchrow(SELECT_ACTIVITY, uri)
        if row is None or uri != f"{settings.base_url}/activities/{raw}":
            raise NotFound()
        visibility, origin, group_uri = await visibility_of(conn, settings, row)
        if visibility is None or not await access.may_read(
            request, conn, settings, visibility, origin, group_uri
        ):
            raise NotFound()
    return ActivityResponse(row["json"], context=False)
