"""HTTP endpoints of the federation: discovery, actors, objects and collections.

``node.web.app`` puts these routes FIRST. The ``APRoute`` ones share their paths with
the forum's HTML pages and match only ActivityPub requests (``Accept``); the others
exist only for ActivityPub. Every refusal is a 404 identical to a missing object.

    /.well-known/webfinger  /.well-known/nodeinfo  /nodeinfo/2.0  /nodeinfo/2.1  /.well-known/host-meta
    /actor  /actor/outbox
    /u/{username}  /u/{username}/outbox  /u/{username}/followers
    /c/{name}  /c/{name}/outbox  /c/{name}/followers  /c/{name}/followers_synchronization
    /c/{name}/featured  /c/{name}/moderators
    /t/{id}  /t/{id}/context  /t/{id}/replies  /p/{id}  /p/{id}/replies  /activities/{uuid}
"""

from __future__ import annotations

from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from federation import (
    access,
    actors,
    collections,
    discovery,
    inbox,
    objects,
    served_activities,
    synchronization,
    urls,
)
from federation.negotiation import ActivityResponse, APRoute
from node import access as node_access
from node import accounts, communities, threads
from node.access import Decision
from node.db import MAX_BIGINT
from node.errors import BadRequest, NotFound
from node.settings import Settings
from node.web.requests import pool_of, settings_of

MAX_ID = MAX_BIGINT


def _digits(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) <= MAX_ID:
        raise NotFound()
    return int(raw)


def _page(request: Request, cursor: str) -> collections.PageAsk | None:
    """The page of a collection asked for: None (the collection itself), the first
    (``?page=1``, or ``?page=true`` as Mastodon writes it) or the one after the item
    ``?{cursor}=ID``. (An old numbered page is :func:`_old_page`'s.)"""
    params = request.query_params
    after = params.get(cursor)
    if after is not None:
        return collections.PageAsk(_digits(after))
    if params.get("page") is None:
        return None
    return collections.FIRST_PAGE


def _old_page(request: Request) -> Response | None:
    """A numbered page from before keyset pages (``?page=N``, N > 1, a link a peer may
    still hold) goes to the first page, whose ``next`` links lead on; another value of
    ``page`` is a missing page. None: not such a request."""
    raw = request.query_params.get("page")
    if raw is None or raw in ("1", "true"):
        return None
    _digits(raw)
    return RedirectResponse(f"{request.url.path}?page=1", status_code=302)


class JRDResponse(JSONResponse):
    media_type = discovery.JRD


# --- discovery ------------------------------------------------------------------


async def webfinger(request: Request) -> Response:
    resource = request.query_params.get("resource", "")
    if not resource or len(resource) > 500:
        raise BadRequest("Paramètre « resource » manquant ou invalide.")
    settings = settings_of(request)
    async with pool_of(request).acquire() as conn:
        found = await discovery.find(conn, settings, resource)
        if found is not None and found.kind != "Application":
            requester = await access.requester(request, conn, settings)
            if not node_access.may_discover(requester, found.visibility):
                found = None
    cors = {"access-control-allow-origin": "*"}
    if found is None:
        return JSONResponse({"error": "Ressource introuvable."}, status_code=404, headers=cors)
    return JRDResponse(discovery.webfinger_to_jrd(settings, found), headers=cors)


async def nodeinfo_links(request: Request) -> Response:
    return JSONResponse(
        discovery.nodeinfo_links(settings_of(request)), headers={"access-control-allow-origin": "*"}
    )


async def nodeinfo(request: Request) -> Response:
    version = request.path_params["version"]
    if version not in discovery.NODEINFO_VERSIONS:
        raise NotFound()
    async with pool_of(request).acquire() as conn:
        doc = await discovery.nodeinfo(conn, settings_of(request), version)
    return JSONResponse(
        doc,
        media_type=discovery.nodeinfo_content_type(version),
        headers={"access-control-allow-origin": "*"},
    )


async def host_meta(request: Request) -> Response:
    return Response(
        discovery.host_meta(settings_of(request)), media_type="application/xrd+xml; charset=utf-8"
    )


# --- actors ---------------------------------------------------------------------


async def _refuse_unless(
    request: Request,
    conn: asyncpg.Connection,
    visibility: str,
    origin: str | None = None,
    group_uri: str | None = None,
) -> None:
    """404 (like a missing object) unless the sender may read content of ``visibility``
    (``origin``, ``group_uri``: of a remote community, whose group is on that host)."""
    if not await access.may_read(request, conn, settings_of(request), visibility, origin, group_uri):
        raise NotFound()


async def _actor_form(
    request: Request, conn: asyncpg.Connection, visibility: str, origins: frozenset[str] = frozenset()
) -> Decision:
    requester = await access.requester(request, conn, settings_of(request))
    decision = node_access.actor_decision(requester, visibility, origins)
    if decision is Decision.NONE:
        raise NotFound()
    return decision


async def application_actor(request: Request) -> Response:
    """Always served, signed or not: a server verifying our signed fetch must be able to
    get this key without signing itself (two authorized-fetch servers would deadlock)."""
    settings = settings_of(request)
    async with pool_of(request).acquire() as conn:
        actor = await actors.instance_actor(conn, settings)
    return ActivityResponse(objects.application_to_ap(settings, actor))


async def _member(conn: asyncpg.Connection, username: str) -> asyncpg.Record:
    user = await accounts.approved_member(conn, username)
    if user is None:
        raise NotFound()
    return user


async def _community(conn: asyncpg.Connection, name: str) -> asyncpg.Record:
    """A federated community (public or members-only); a local one does not exist here."""
    community = await communities.find_federated(conn, name)
    if community is None:
        raise NotFound()
    return community


async def person(request: Request) -> Response:
    settings = settings_of(request)
    async with pool_of(request).acquire() as conn:
        user = await _member(conn, request.path_params["username"])
        visibility = await threads.member_visibility(conn, user["id"])
        form = await _actor_form(request, conn, visibility, await threads.member_origins(conn, user["id"]))
        actor = await actors.ensure_local_actor(conn, settings, "Person", user_id=user["id"])
    if form is Decision.KEY_ONLY:
        return ActivityResponse(objects.key_only_actor(actor, "Person", user["username"]))
    return ActivityResponse(objects.person_to_ap(settings, actor, user))


async def group(request: Request) -> Response:
    settings = settings_of(request)
    async with pool_of(request).acquire() as conn:
        community = await _community(conn, request.path_params["name"])
        form = await _actor_form(request, conn, community["visibility"])
        actor = await actors.ensure_local_actor(conn, settings, "Group", community_id=community["id"])
    if form is Decision.KEY_ONLY:
        return ActivityResponse(objects.key_only_actor(actor, "Group", community["name"]))
    return ActivityResponse(objects.group_to_ap(settings, actor, community))


# --- collections of actors ------------------------------------------------------


async def application_outbox(request: Request) -> Response:
    return ActivityResponse(
        collections.empty_collection(urls.instance_actor(settings_of(request)) + "/outbox")
    )


async def _readable_member(request: Request, conn: asyncpg.Connection) -> asyncpg.Record:
    """The member of the path, if the sender may read what their actor shows in full."""
    user = await _member(conn, request.path_params["username"])
    await _refuse_unless(request, conn, await threads.member_visibility(conn, user["id"]))
    return user


async def person_outbox(request: Request) -> Response:
    # A member's activity is not aggregated anywhere: their posts live in communities.
    async with pool_of(request).acquire() as conn:
        user = await _readable_member(request, conn)
    uri = urls.person(settings_of(request), user["username"])
    return ActivityResponse(collections.empty_collection(f"{uri}/outbox"))


async def person_followers(request: Request) -> Response:
    async with pool_of(request).acquire() as conn:
        user = await _readable_member(request, conn)
    uri = urls.person(settings_of(request), user["username"])
    return ActivityResponse(collections.count_only(f"{uri}/followers", 0))


async def _readable_community(request: Request, conn: asyncpg.Connection) -> asyncpg.Record:
    """The community of the path, if the sender may read its content (its real
    visibility: a members-only group's collections are 404 to all but partners)."""
    community = await _community(conn, request.path_params["name"])
    await _refuse_unless(request, conn, community["visibility"])
    return community


async def group_outbox(request: Request) -> Response:
    settings = settings_of(request)
    page = _page(request, "max_id")
    async with pool_of(request).acquire() as conn:
        community = await _readable_community(request, conn)
        if (moved := _old_page(request)) is not None:
            return moved
        doc = await collections.outbox(conn, settings, community, page)
    return ActivityResponse(doc)


async def group_followers(request: Request) -> Response:
    """The count; with ``?is_follower=ACTOR`` (asked by a server holding its members'
    posts in this group, before it serves them to ACTOR's server): 200 when ACTOR's
    instance follows the group, else 404."""
    asked = request.query_params.get("is_follower")
    async with pool_of(request).acquire() as conn:
        community = await _readable_community(request, conn)
        if asked is not None and not await collections.instance_follows(conn, community, asked[:2048]):
            raise NotFound()
        doc = await collections.group_followers(conn, settings_of(request), community)
    return ActivityResponse(doc)


async def group_followers_synchronization(request: Request) -> Response:
    """FEP-8fcf: the group's followers on the signer's own server, to a signed GET of a
    server that may read the group (a members-only one: an approved partner), else
    404 like a missing object."""
    settings = settings_of(request)
    async with pool_of(request).acquire() as conn:
        community = await _readable_community(request, conn)
        signer = await access.verified_signer(request, conn, settings)
        if signer is None:
            raise NotFound()
        group = urls.group(settings, community["name"])
        doc = await synchronization.partial_followers(conn, community["id"], group, signer.uri)
    return ActivityResponse(doc, headers={"cache-control": "private, no-store"})


async def group_featured(request: Request) -> Response:
    async with pool_of(request).acquire() as conn:
        community = await _readable_community(request, conn)
        doc = await collections.featured(conn, settings_of(request), community)
    return ActivityResponse(doc)


async def group_moderators(request: Request) -> Response:
    async with pool_of(request).acquire() as conn:
        community = await _readable_community(request, conn)
        doc = await collections.moderators(conn, settings_of(request), community)
    return ActivityResponse(doc)


# --- objects --------------------------------------------------------------------


def _object_response(settings: Settings, view: objects.PostView) -> Response:
    doc: dict[str, Any] = objects.post_to_ap(settings, view)
    return ActivityResponse(doc, status_code=410 if doc["type"] == "Tombstone" else 200)


async def _readable(request: Request, conn: asyncpg.Connection, view: objects.PostView) -> None:
    """404 unless the sender may read the post; posts written elsewhere are not ours to serve."""
    if view.remote:
        raise NotFound()
    await _refuse_unless(request, conn, view.visibility, view.origin, view.group_uri)


async def thread(request: Request) -> Response:
    async with pool_of(request).acquire() as conn:
        view = await objects.load_thread(conn, request.path_params["thread_id"])
        await _readable(request, conn, view)
    return _object_response(settings_of(request), view)


async def post(request: Request) -> Response:
    settings = settings_of(request)
    async with pool_of(request).acquire() as conn:
        view = await objects.load_post(conn, request.path_params["post_id"])
        await _readable(request, conn, view)
    if view.is_opening:
        # An opening post's id is its thread's URL.
        return RedirectResponse(urls.thread(settings, view.row["thread_id"]), status_code=301)
    return _object_response(settings, view)


async def _replies(request: Request, view: objects.PostView) -> Response:
    page = _page(request, "min_id")
    async with pool_of(request).acquire() as conn:
        await _readable(request, conn, view)
        if view.deleted:
            raise NotFound()
        if (moved := _old_page(request)) is not None:
            return moved
        doc = await collections.replies(conn, settings_of(request), view, page)
    return ActivityResponse(doc, headers={"vary": "Accept"})


async def thread_replies(request: Request) -> Response:
    async with pool_of(request).acquire() as conn:
        view = await objects.load_thread(conn, request.path_params["thread_id"])
    return await _replies(request, view)


async def post_replies(request: Request) -> Response:
    async with pool_of(request).acquire() as conn:
        view = await objects.load_post(conn, request.path_params["post_id"])
    if view.is_opening:
        raise NotFound()  # an opening post's collection is its thread's
    return await _replies(request, view)


def _etag_matches(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match", "")
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    return "*" in tags or etag.removeprefix("W/") in tags


async def thread_context(request: Request) -> Response:
    settings = settings_of(request)
    page = _page(request, "min_id")
    async with pool_of(request).acquire() as conn:
        state = await collections.context_state(conn, request.path_params["thread_id"])
        await _refuse_unless(request, conn, state.visibility, state.origin, state.group_uri)
        if (moved := _old_page(request)) is not None:
            return moved
        headers = {"etag": state.etag, "vary": "Accept"}
        if _etag_matches(request, state.etag):
            return Response(status_code=304, headers=headers)
        if page is None:
            doc = collections.context_to_ap(settings, state)
        else:
            doc = await collections.context_page(conn, settings, state, page)
    return ActivityResponse(doc, headers=headers)


routes: list[BaseRoute] = [
    # First: the busiest route of a federated node, matched before every other pattern.
    *inbox.routes,  # POST /inbox, /u/{username}/inbox, /c/{name}/inbox, /actor/inbox
    Route("/.well-known/webfinger", webfinger, name="webfinger"),
    Route("/.well-known/nodeinfo", nodeinfo_links, name="nodeinfo_links"),
    Route("/nodeinfo/{version}", nodeinfo, name="nodeinfo"),
    Route("/.well-known/host-meta", host_meta, name="host_meta"),
    Route("/actor", application_actor, name="ap_instance_actor"),
    Route("/actor/outbox", application_outbox, name="ap_instance_outbox"),
    APRoute("/u/{username}", person, name="ap_person"),
    Route("/u/{username}/outbox", person_outbox, name="ap_person_outbox"),
    Route("/u/{username}/followers", person_followers, name="ap_person_followers"),
    APRoute("/c/{name}", group, name="ap_group"),
    Route("/c/{name}/outbox", group_outbox, name="ap_group_outbox"),
    Route("/c/{name}/followers", group_followers, name="ap_group_followers"),
    Route(
        f"/c/{{name}}/{synchronization.PARTIAL_PATH}",
        group_followers_synchronization,
        name="ap_group_followers_synchronization",
    ),
    Route("/c/{name}/featured", group_featured, name="ap_group_featured"),
    Route("/c/{name}/moderators", group_moderators, name="ap_group_moderators"),
    APRoute("/t/{thread_id:id}", thread, name="ap_thread"),
    Route("/t/{thread_id:id}/context", thread_context, name="ap_thread_context"),
    Route("/t/{thread_id:id}/replies", thread_replies, name="ap_thread_replies"),
    Route("/p/{post_id:id}/replies", post_replies, name="ap_post_replies"),
    APRoute("/p/{post_id:id}", post, name="ap_post"),
    Route("/activities/{uuid}", served_activities.activity, name="ap_activity"),
]
