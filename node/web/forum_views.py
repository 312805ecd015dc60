"""Forum pages: home, communities, threads and replies, search, community admin.

Routes::

    GET      /                              home (member: followed activity; visitor: presentation)
    GET      /communautes                   communities the viewer may read (``?adresse=``: find a
                                            remote community by its address, for members)
    GET      /c/{name}                      community page and its threads (``?page=``)
    POST     /c/{name}/suivre               follow or unfollow (``action``)
    GET/POST /c/{name}/nouveau              start a thread
    GET      /t/{id}                        thread page (``?page=``), marks it read
    POST     /t/{id}/repondre               reply to the thread
    POST     /t/{id}/animer                 pin / unpin / lock / unlock (experts, moderators)
    GET      /p/{id}                        permalink: 303 to the thread page holding the post
    GET/POST /p/{id}/repondre               reply to a given post
    GET/POST /p/{id}/modifier               edit own post
    GET/POST /p/{id}/supprimer              delete a post (confirmation page)
    GET/POST /p/{id}/signaler               report a post to the moderators (``report_form_views``)
    GET      /p/{id}/historique             edit history (moderators, community experts)
    POST     /p/{id}/expert                 mark / unmark the expert answer
    POST     /p/{id}/aimer                  like / unlike a post (``action``)
    GET      /recherche                     full-text search (``?q=&page=``)
    GET/POST /admin/communautes             list and create communities (admins)
    GET/POST /admin/communautes/{name}      edit a community's texts and experts (admins)
    POST     /admin/communautes-distantes   follow a remote community for the node, or drop one

Whatever the viewer may not read answers like a missing page (NotFound).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import asyncpg
from markupsafe import Markup, escape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from node import backfill, communities, documents, markup, media, ratelimit, search, threads
from node.accounts import PROFESSIONS
from node.communities import Community
from node.errors import AppError, BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from node.i18n import _
from node.sessions import User
from node.web import forms
from node.web.notification_views import forget_count
from node.web.requests import (
    current_user,
    int_param,
    path_id,
    pool_of,
    read_pool_of,
    require_admin,
    require_member,
    state_of,
)
from node.web.templating import current_zone, redirect, render, render_spliced, templates

VISIBILITY_LABELS = {
    "public": "Publique",
    "members": "Membres",
    "local": "Locale",
}


def _page(request: Request) -> int:
    return int_param(request.query_params.get("page"))


def _list_position(request: Request) -> threads.ListPosition:
    params = request.query_params
    return threads.ListPosition.from_query(params.get("avant"), params.get("apres"))


def _viewer(request: Request) -> User | None:
    """The person reading: pending, refused or suspended accounts read like visitors."""
    user = current_user(request)
    return user if user is not None and user.is_approved else None


def _preview(data: FormData, body: str) -> str | None:
    """The rendered text when « Aperçu » was pressed (nothing is saved), else None."""
    return markup.render(body[: threads.MAX_BODY]) if data.get("apercu") else None


def _errors(exc: BadRequest) -> dict[str, str]:
    return exc.fields or {"_": exc.message}


def _text(data: FormData, name: str) -> str:
    """A raw text field (length and content are checked by the services)."""
    value = data.get(name)
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------- home and communities


async def home(request: Request) -> Response:
    user = current_user(request)
    if user is not None and not user.is_approved:
        return redirect("/en-attente")
    pool = read_pool_of(request)
    if user is None:
        return render(
            request,
            "home.html",
            communities=await communities.list_readable(pool, None),
            latest=await threads.public_threads(pool),
        )
    listing = await threads.followed_threads(pool, user, _list_position(request))
    return render(request, "home.html", listing=listing)


async def community_list(request: Request) -> Response:
    viewer = _viewer(request)
    rows = await communities.list_readable(read_pool_of(request), viewer)
    address = request.query_params.get("adresse", "").replace("\x00", "").strip()[:MAX_ADDRESS]
    remote = await _remote_card(request, viewer, address) if address else RemoteSearch()
    return render(
        request,
        "forum/communities.html",
        communities=rows,
        labels=VISIBILITY_LABELS,
        address=address,
        remote=remote,
        follow_labels=FOLLOW_LABELS,
    )


# A remote community's address typed in a search box: at most this many look-ups (each
# is a few requests to another server) per member in the window.
REMOTE_LOOKUPS = (20, 10 * 60)
MAX_ADDRESS = 2000
FOLLOW_LABELS = {
    "pending": "Abonnement du nœud en attente d'acceptation par le serveur d'origine",
    "accepted": "Suivie par ce nœud",
    "rejected": "Abonnement refusé par le serveur d'origine",
    "undone": "Ce nœud ne suit plus cette communauté",
    None: "Pas encore suivie par ce nœud",
}


@dataclass
class RemoteSearch:
    """The card of a remote community found by its address, or why none was found."""

    card: communities.RemoteCard | None = None
    error: str = ""
    recent: list[Any] | None = None
    following: bool = False


async def _remote_card(request: Request, viewer: User | None, address: str) -> RemoteSearch:
    """Resolve ``address`` for an approved member (visitors get an invitation to log in:
    the look-up asks another server, so it is for members only)."""
    if viewer is None:
        return RemoteSearch(error=_("Connectez-vous pour chercher une communauté d'un autre serveur."))
    if not await ratelimit.hit(pool_of(request), f"remote-lookup:user:{viewer.id}", *REMOTE_LOOKUPS):
        return RemoteSearch(
            error=_("Trop de recherches d'autres serveurs : réessayez dans quelques minutes.")
        )
    try:
        card = await state_of(request).find_remote_community(request, address)
    except AppError as exc:
        return RemoteSearch(error=exc.message)
    pool = pool_of(request)
    listing = await threads.community_threads(pool, card.community, viewer)
    following = await communities.is_following(pool, viewer, card.community.id)
    return RemoteSearch(card=card, recent=listing.threads[:5], following=following)


async def community_page(request: Request) -> Response:
    viewer = _viewer(request)
    pool = read_pool_of(request)
    community = await communities.get_readable(pool, request.path_params["name"], viewer)
    listing = await threads.community_threads(pool, community, viewer, _list_position(request))
    following = viewer is not None and await communities.is_following(pool, viewer, community.id)
    return render(
        request,
        "forum/community.html",
        community=community,
        origin=await communities.remote_origin(pool, community),
        moderators=await communities.remote_moderators(pool, community),
        listing=listing,
        experts=await communities.experts_of(pool, community.id),
        following=following,
        labels=VISIBILITY_LABELS,
        follow_labels=FOLLOW_LABELS,
        professions=PROFESSIONS,
    )


async def follow(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    pool = pool_of(request)
    community = await communities.get_readable(pool, request.path_params["name"], user)
    state = state_of(request)
    if data.get("action") == "unfollow":
        if community.remote:
            await state.unsubscribe_remote(request, community, user)
        else:
            await communities.unfollow(pool, user, community)
    elif community.remote:
        await state.subscribe_remote(request, community, user)
    else:
        await communities.follow(pool, user, community)
    back = "/communautes" if data.get("from") == "list" else f"/c/{community.name}"
    return redirect(back)


# ---------------------------------------------------------------- threads

# Posting limits per member, (posts, window in seconds): a person writing fast is never
# stopped, a runaway script or a stolen session flooding a community is.
POSTS_PER_MINUTE = (8, 60)
POSTS_PER_HOUR = (60, 60 * 60)
POSTING_TOO_FAST = (
    "Vous publiez très vite : pour protéger les communautés, le nombre de messages par minute "
    "et par heure est limité. Attendez une minute, puis publiez de nouveau."
)


async def check_posting_limit(request: Request, user: User) -> None:
    """Count one post of ``user``; TooManyRequests (the view keeps the text) past a limit."""
    pool = pool_of(request)
    for limit in (POSTS_PER_MINUTE, POSTS_PER_HOUR):
        if not await ratelimit.hit(pool, f"post:user:{user.id}:{limit[1]}", *limit):
            raise TooManyRequests(POSTING_TOO_FAST)


async def new_thread_page(request: Request) -> Response:
    user = require_member(request)
    community = await communities.get_readable(pool_of(request), request.path_params["name"], user)
    return render(request, "forum/new_thread.html", community=community, values={}, errors={})


async def new_thread(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    pool = pool_of(request)
    community = await communities.get_readable(pool, request.path_params["name"], user)
    title, body = _text(data, "title"), _text(data, "body")
    preview = _preview(data, body)
    if preview is not None:
        values = {"title": title[: threads.MAX_TITLE], "body": body[: threads.MAX_BODY]}
        return render(
            request, "forum/new_thread.html", community=community, values=values, errors={}, preview=preview
        )
    try:
        await check_posting_limit(request, user)
        async with pool.acquire() as conn:
            created = await threads.create_thread(conn, community, user, title, body)
    except (BadRequest, TooManyRequests) as exc:
        values = {"title": title[: threads.MAX_TITLE], "body": body[: threads.MAX_BODY]}
        errors = _errors(exc) if isinstance(exc, BadRequest) else {"form": exc.message}
        return render(
            request, "forum/new_thread.html", exc.status, community=community, values=values, errors=errors
        )
    return redirect(f"/t/{created.thread_id}")


async def thread_page(request: Request) -> Response:
    viewer = _viewer(request)
    # a member's visit marks the thread read (a write): the primary; visitors: the replica
    pool = read_pool_of(request) if viewer is None else pool_of(request)
    head = await threads.thread_head(pool, path_id(request), viewer, _page(request), last_numbers(request))
    key = (
        head.thread["id"],
        head.page,
        head.thread["version"],
        head.thread["policy_version"],
        current_zone(),
    )
    cache = pages_cache(request)
    posts = cache.get(key)
    if posts is None:
        rows = await threads.page_posts(pool, head)
        shown = await media.for_posts(pool, [r["id"] for r in rows])  # attachments: one query
        posts = [_cached_post(post, head.thread, shown.get(post["id"], ())) for post in rows]
        cache.put(key, posts)
    # Which posts the viewer likes: one query, only when some post of the page has likes.
    liked = await threads.liked_by(pool, viewer.id, [p.id for p in posts if p.likes]) if viewer else set()
    # The document this thread discusses (documents space), shown above page 1: read with the head.
    document = documents.of_thread_head(head.thread) if head.page == 1 else None
    if viewer is not None and viewer.unread_notifications:  # thread_head marked this thread's read
        forget_count(request, viewer.id)
    fetching = False
    if viewer is not None and head.thread["remote_thread"]:
        # A thread of a followed remote community: fetch what its origin holds in the
        # background (a row insert, at most once per backfill.RECENT; asked of the database
        # at most every few minutes by this process); the page shows what is here, and
        # says so when it has just asked.
        fetching = await backfill.thread_opened(pool_of(request), head.thread["id"])
    return render_spliced(
        request,
        "forum/thread.html",
        "posts",
        _posts_html(head, posts, viewer, liked),
        page=head,
        thread=head.thread,
        document=document,
        human_size=documents.human_size,
        action_form=ACTION_FORM,
        fetching=fetching,
        # A page whose numbers all belong to hidden authors (threads.SELECT_PAGE_POSTS:
        # they keep their numbers): said, with the pager, rather than shown blank. Only
        # between two pages (page 1 holds the opening post, the last a post shown).
        hidden_page=not posts,
    )


async def reply(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    thread_id = path_id(request)
    return await _reply(
        request, user, thread_id, _text(data, "body"), None, _preview(data, _text(data, "body"))
    )


async def _reply(
    request: Request, user: User, thread_id: int, body: str, parent_id: int | None, preview: str | None = None
) -> Response:
    pool = pool_of(request)
    if preview is not None:
        ref = await threads.load_thread(pool, thread_id, user)
        return render(
            request,
            "forum/reply.html",
            thread=ref,
            parent=None,
            body=body[: threads.MAX_BODY],
            errors={},
            preview=preview,
            action=f"/p/{parent_id}/repondre" if parent_id else f"/t/{thread_id}/repondre",
        )
    try:
        await check_posting_limit(request, user)
        async with pool.acquire() as conn:
            post_id = await threads.create_reply(conn, thread_id, user, body, parent_id)
            _, page = await threads.post_location(conn, post_id, user)
    except (BadRequest, Forbidden, TooManyRequests) as exc:
        # Validation, a lock set while the member was writing, a posting limit: the
        # reply page comes back with the text as typed (nothing typed is lost).
        ref = await threads.load_thread(pool, thread_id, user)
        return render(
            request,
            "forum/reply.html",
            exc.status,
            thread=ref,
            parent=None,
            body=body[: threads.MAX_BODY],
            errors=_errors(exc) if isinstance(exc, BadRequest) else {},
            refusal="" if isinstance(exc, BadRequest) else exc.message,
            locked=exc.message == threads.LOCKED_MESSAGE,
            action=f"/p/{parent_id}/repondre" if parent_id else f"/t/{thread_id}/repondre",
        )
    return redirect(f"/t/{thread_id}?page={page}#p{post_id}")


async def animate_thread(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    thread_id = path_id(request)
    action = data.get("action")
    async with pool_of(request).acquire() as conn:
        if action in ("pin", "unpin"):
            await threads.set_pinned(conn, thread_id, user, action == "pin")
        elif action in ("lock", "unlock"):
            await threads.set_locked(conn, thread_id, user, action == "lock")
        else:
            await threads.load_thread(conn, thread_id, user)
            raise BadRequest("Action inconnue.")
    return redirect(f"/t/{thread_id}")


# ---------------------------------------------------------------- posts


async def permalink(request: Request) -> Response:
    thread_id, page = await threads.post_location(pool_of(request), path_id(request), _viewer(request))
    return redirect(f"/t/{thread_id}?page={page}#p{path_id(request)}")


async def reply_to_post_page(request: Request) -> Response:
    user = require_member(request)
    post = await threads.load_post(pool_of(request), path_id(request), user)
    if post["deleted_at"] is not None:
        raise NotFound()
    thread = await threads.load_thread(pool_of(request), post["thread_id"], user)
    return render(
        request,
        "forum/reply.html",
        locked=thread["locked"] and not threads.may_animate(user, thread),
        thread=thread,
        parent=post,
        excerpt=markup.to_plain(post["source"], 300),
        body="",
        errors={},
        action=f"/p/{post['id']}/repondre",
    )


async def reply_to_post(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    post = await threads.load_post(pool_of(request), path_id(request), user)
    body = _text(data, "body")
    return await _reply(request, user, post["thread_id"], body, post["id"], _preview(data, body))


async def _own_post(request: Request, user: User) -> asyncpg.Record:
    post = await threads.load_post(pool_of(request), path_id(request), user)
    if post["deleted_at"] is not None or post["author_id"] != user.id:
        raise NotFound()
    return post


async def edit_page(request: Request) -> Response:
    user = require_member(request)
    post = await _own_post(request, user)
    values = {"title": post["title"], "body": post["source"]}
    return render(request, "forum/edit.html", post=post, values=values, errors={})


async def edit(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    post = await _own_post(request, user)
    body = _text(data, "body")
    title = _text(data, "title") if post["is_opening"] else None
    preview = _preview(data, body)
    if preview is not None:
        values = {"title": (title or "")[: threads.MAX_TITLE], "body": body[: threads.MAX_BODY]}
        return render(request, "forum/edit.html", post=post, values=values, errors={}, preview=preview)
    try:
        async with pool_of(request).acquire() as conn:
            await threads.edit_post(conn, post["id"], user, body, title)
    except BadRequest as exc:
        values = {"title": (title or "")[: threads.MAX_TITLE], "body": body[: threads.MAX_BODY]}
        return render(request, "forum/edit.html", 400, post=post, values=values, errors=_errors(exc))
    return redirect(f"/p/{post['id']}")


async def _deletable(request: Request, user: User) -> asyncpg.Record:
    post = await threads.load_post(pool_of(request), path_id(request), user)
    if post["deleted_at"] is not None or (post["author_id"] != user.id and not user.is_moderator):
        raise NotFound()
    return post


async def delete_page(request: Request) -> Response:
    user = require_member(request)
    post = await _deletable(request, user)
    return render(
        request,
        "forum/delete.html",
        post=post,
        excerpt=markup.to_plain(post["source"], 300),
        errors={},
        rules=threads.REMOVAL_RULES,
    )


async def delete(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    post = await _deletable(request, user)
    rule_field = _text(data, "rule").strip()
    rule = (
        int(rule_field) if rule_field.isdigit() and len(rule_field) < 3 else (None if not rule_field else -1)
    )
    try:
        async with pool_of(request).acquire() as conn:
            await threads.delete_post(conn, post["id"], user, _text(data, "reason"), rule)
    except BadRequest as exc:
        excerpt = markup.to_plain(post["source"], 300)
        return render(
            request,
            "forum/delete.html",
            400,
            post=post,
            excerpt=excerpt,
            errors=_errors(exc),
            rules=threads.REMOVAL_RULES,
        )
    return redirect(f"/t/{post['thread_id']}")


async def history_page(request: Request) -> Response:
    post, edits = await threads.history(pool_of(request), path_id(request), _viewer(request))
    return render(request, "forum/history.html", post=post, edits=edits)


async def expert_answer(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    async with pool_of(request).acquire() as conn:
        await threads.set_expert_answer(conn, path_id(request), user, data.get("action") != "unmark")
    return redirect(f"/p/{path_id(request)}")


async def like(request: Request) -> Response:
    """« J'aime » / « Je n'aime plus » on a post (``action`` = like | unlike)."""
    user = require_member(request)
    data = await forms.form(request)
    post_id = path_id(request)
    action = data.get("action")
    async with pool_of(request).acquire() as conn:
        if action not in ("like", "unlike"):
            await threads.load_post(conn, post_id, user)
            raise BadRequest("Action inconnue.")
        await threads.set_liked(conn, post_id, user, action == "like")
        thread_id, page = await threads.post_location(conn, post_id, user)
    return redirect(f"/t/{thread_id}?page={page}#p{post_id}")


# ---------------------------------------------------------------- search


async def search_page(request: Request) -> Response:
    query = request.query_params.get("q", "").replace("\x00", "")
    viewer = _viewer(request)
    results = await search.search(read_pool_of(request), query, viewer, _page(request))
    if results.page > 1 and not results.results:
        raise NotFound()  # a page past the last one, as a listing's cursor past its end
    remote = RemoteSearch()
    if viewer is not None and _page(request) == 1 and communities.looks_like_remote_address(query):
        remote = await _remote_card(request, viewer, query.strip())
    return render(
        request,
        "forum/search.html",
        results=results,
        remote=remote,
        labels=VISIBILITY_LABELS,
        follow_labels=FOLLOW_LABELS,
    )


# ---------------------------------------------------------------- community admin


def _community_values(data: FormData) -> dict[str, str]:
    return {k: _text(data, k) for k in ("name", "title", "description", "rules", "visibility")}


async def admin_communities(request: Request) -> Response:
    require_admin(request)
    pool = pool_of(request)
    return render(
        request,
        "forum/admin_communities.html",
        communities=[c for c in await communities.list_all(pool) if not c.remote],
        values={"visibility": "members"},
        errors={},
        labels=VISIBILITY_LABELS,
        **await _remote_admin(pool),
    )


async def _remote_admin(pool: asyncpg.Pool, error: str = "", address: str = "") -> dict[str, Any]:
    return {
        "remote_rows": await communities.list_remote(pool),
        "remote_error": error,
        "remote_address": address,
        "follow_labels": FOLLOW_LABELS,
    }


async def admin_remote_communities(request: Request) -> Response:
    """An administrator follows a remote community for the whole node, or drops one."""
    user = require_admin(request)
    data = await forms.form(request)
    pool = pool_of(request)
    state = state_of(request)
    address = _text(data, "adresse").strip()[:MAX_ADDRESS]
    try:
        if data.get("action") == "drop":
            community = await communities.find(pool, _text(data, "name"))
            if community is None or not community.remote:
                raise BadRequest(_("Communauté distante inconnue."))
            await state.admin_drop_remote(request, community, user)
        elif data.get("action") == "follow":
            community = await state.admin_follow_remote(request, address, user)
        else:
            raise BadRequest(_("Action inconnue."))
    except AppError as exc:
        return render(
            request,
            "forum/admin_communities.html",
            exc.status if exc.status < 500 else 502,
            communities=[c for c in await communities.list_all(pool) if not c.remote],
            values={"visibility": "members"},
            errors={},
            labels=VISIBILITY_LABELS,
            **await _remote_admin(pool, exc.message, address),
        )
    return redirect("/admin/communautes#distantes")


async def admin_create_community(request: Request) -> Response:
    user = require_admin(request)
    data = await forms.form(request)
    values = _community_values(data)
    pool = pool_of(request)
    try:
        async with pool.acquire() as conn:
            await communities.create_community(
                conn,
                values["name"],
                values["title"],
                description=values["description"],
                rules=values["rules"],
                visibility=values["visibility"],
                created_by=user.id,
                audit_label=user.username,
            )
    except (BadRequest, Conflict) as exc:
        rows = [c for c in await communities.list_all(pool) if not c.remote]
        return render(
            request,
            "forum/admin_communities.html",
            exc.status,
            communities=rows,
            values=values,
            errors=exc.fields or {"_": exc.message},
            labels=VISIBILITY_LABELS,
            **await _remote_admin(pool),
        )
    return redirect(f"/admin/communautes/{values['name'].strip().lower()}")


async def _admin_community(request: Request) -> Community:
    community = await communities.find(pool_of(request), request.path_params["name"])
    if community is None or community.remote:  # a remote community's texts are its server's
        raise NotFound()
    return community


async def admin_community_page(request: Request) -> Response:
    require_admin(request)
    community = await _admin_community(request)
    return _render_admin_community(
        request, community, await communities.experts_of(pool_of(request), community.id)
    )


def _render_admin_community(
    request: Request,
    community: Community,
    experts: list[asyncpg.Record],
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    values = values or {
        "title": community.title,
        "description": community.description,
        "rules": community.rules,
    }
    return render(
        request,
        "forum/admin_community.html",
        status,
        community=community,
        experts=experts,
        values=values,
        errors=errors or {},
        labels=VISIBILITY_LABELS,
        saved=request.query_params.get("fait") == "1",
    )


async def admin_update_community(request: Request) -> Response:
    user = require_admin(request)
    data = await forms.form(request)
    community = await _admin_community(request)
    pool = pool_of(request)
    values = _community_values(data)
    try:
        async with pool.acquire() as conn:
            if data.get("action") in ("add_expert", "remove_expert"):
                await communities.set_expert(
                    conn,
                    community.id,
                    _text(data, "expert"),
                    expert=data.get("action") == "add_expert",
                    actor=user,
                )
            else:
                await communities.update_community(
                    conn,
                    community.id,
                    title=values["title"],
                    description=values["description"],
                    rules=values["rules"],
                    actor=user,
                )
    except BadRequest as exc:
        experts = await communities.experts_of(pool, community.id)
        shown = values if data.get("action") not in ("add_expert", "remove_expert") else None
        return _render_admin_community(request, community, experts, 400, _errors(exc), shown)
    return redirect(f"/admin/communautes/{community.name}?fait=1")


# ---------------------------------------------------------------- post fragments

# Rendered post fragments (author line, reply context, body), shared by every
# viewer; rendering 50 posts through jinja2 dominated the page's cost. Per-viewer
# links (reply, edit, delete …) are added outside the fragment.
FRAGMENT_CACHE_SIZE = 2000
PAGES_CACHE_SIZE = 200


class FragmentCache:
    """A small in-process LRU of rendered HTML; entries older than ``ttl`` seconds are
    rendered again (an author's new display name shows within that delay)."""

    def __init__(self, size: int, ttl: float = 60.0) -> None:
        self.size = size
        self.ttl = ttl
        self._items: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        if time.monotonic() - item[0] > self.ttl:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        self._items[key] = (time.monotonic(), value)
        if len(self._items) > self.size:
            self._items.popitem(last=False)


fragments = FragmentCache(FRAGMENT_CACHE_SIZE)


def pages_cache(request: Request) -> FragmentCache:
    """Whole pages of rendered posts, keyed by (thread, page, thread version): while the
    version holds (any change to the thread or its posts bumps it), a page is served
    without reading its posts again. One per app, as versions are per database."""
    state = request.app.state
    cache: FragmentCache | None = getattr(state, "thread_pages", None)
    if cache is None:
        cache = state.thread_pages = FragmentCache(PAGES_CACHE_SIZE)
    return cache


def last_numbers(request: Request) -> threads.LastNumbers:
    """The number of each thread's last post shown (its page count) by (thread, version,
    policy version), one dict per app."""
    state = request.app.state
    numbers: threads.LastNumbers | None = getattr(state, "thread_last_numbers", None)
    if numbers is None:
        numbers = state.thread_last_numbers = {}
    return numbers


_post_template = templates.get_template("forum/_post.html")


def _fragment(
    post: asyncpg.Record, thread: asyncpg.Record, shown: tuple[media.ShownMedia, ...] = ()
) -> Markup:
    expert = thread["expert_answer_id"] == post["id"]
    # The key holds every value the fragment shows, so a hit is right by construction
    # (an edit, a deletion, a renamed author or a new expert answer make a new key).
    key = (
        post["id"],
        post["created_at"],
        post["updated_at"],
        post["deleted_at"],
        post["content_html"],
        post["author_name"],
        post["author_username"],
        post["removal_reason"],
        post["author_profession"],
        post["remote_username"],
        post["remote_domain"],
        expert,
        post["parent_id"],
        post["parent_is_opening"],
        post["parent_deleted_at"],
        post["parent_source"],
        post["parent_author"],
        post["likes_count"],
        post["shares_count"],
        shown,
        current_zone(),  # dates are shown in the reader's time zone
    )
    cached = fragments.get(key)
    if cached is None:
        context = None
        if post["parent_id"] is not None and not post["parent_is_opening"]:
            context = markup.to_plain(post["parent_source"] or "", 120)
        html = _post_template.render(
            post=post, expert=expert, context=context, professions=PROFESSIONS, media=shown
        )
        cached = Markup(html)
        fragments.put(key, cached)
    result: Markup = cached
    return result


ACTION_FORM = "actions-form"
_LABELS = {
    "reply": "Répondre",
    "edit": "Modifier",
    "delete": "Supprimer",
    "history": "Historique",
    "mark": "Marquer « réponse de l'expert·e »",
    "unmark": "Retirer « réponse de l'expert·e »",
    "like": "J'aime",
    "unlike": "Je n'aime plus",
    "report": "Signaler",
    "save": "Enregistrer",
}


@dataclass(frozen=True)
class PostLinks:
    """Every link or button a viewer may get under one post, rendered (and encoded) once
    with the post's cached page; each request only picks the ones that viewer is allowed."""

    reply: bytes
    edit: bytes
    delete: bytes
    history: bytes
    like: bytes
    unlike: bytes
    mark: bytes
    unmark: bytes
    report: bytes
    save: bytes

    @classmethod
    def of(cls, pid: int) -> PostLinks:
        labels = {k: escape(_(v)) for k, v in _LABELS.items()}

        def link(path: str, key: str) -> bytes:
            return f'<a href="/p/{pid}/{path}">{labels[key]}</a>'.encode()

        def button(path: str, key: str) -> bytes:
            # A button of the page's one action form (ACTION_FORM in thread.html, which
            # carries the CSRF token): formaction and value say what it does. Plain
            # HTML5, no script, and ~90 bytes a post instead of a form with its token.
            return (
                f'<button class="link" form="{ACTION_FORM}" formaction="/p/{pid}/{path}" '
                f'name="action" value="{key}">{labels[key]}</button>'
            ).encode()

        return cls(
            link("repondre", "reply"),
            link("modifier", "edit"),
            link("supprimer", "delete"),
            link("historique", "history"),
            button("aimer", "like"),
            button("aimer", "unlike"),
            button("expert", "mark"),
            button("expert", "unmark"),
            link("signaler", "report"),
            button("enregistrer", "save"),
        )


@dataclass(frozen=True)
class CachedPost:
    """What the viewer's links need to know of a post, beside its shared fragment
    (``html``, encoded: the page is joined as bytes)."""

    id: int
    author_id: int | None
    is_opening: bool
    updated: bool
    deleted: bool
    html: bytes
    likes: int
    links: PostLinks


def _cached_post(
    post: asyncpg.Record, thread: asyncpg.Record, shown: tuple[media.ShownMedia, ...] = ()
) -> CachedPost:
    return CachedPost(
        post["id"],
        post["author_id"],
        post["is_opening"],
        post["updated_at"] is not None,
        post["deleted_at"] is not None,
        _fragment(post, thread, shown).encode(),
        post["likes_count"],
        PostLinks.of(post["id"]),
    )


_END = b"</article>\n"


def _posts_html(
    head: threads.ThreadHead, posts: list[CachedPost], viewer: User | None, liked: set[int]
) -> bytes:
    """Every post of the page, encoded: cached shared fragments plus the viewer's own
    links, joined here as bytes rather than looped over in the template (the page's hot
    path: render_spliced puts them in the page without copying or encoding them again)."""
    if viewer is None:
        return _END.join([post.html for post in posts]) + _END if posts else b""
    actions = _Actions(head, viewer, liked)
    return b"".join([part for post in posts for part in (post.html, actions.html(post), _END)])


class _Actions:
    """The viewer's links under a post: picked from the post's pre-rendered ones."""

    def __init__(self, page: threads.ThreadHead, viewer: User, liked: set[int]) -> None:
        self.viewer_id = viewer.id
        self.moderator = viewer.is_moderator
        self.can_reply = page.can_reply
        self.can_animate = page.can_animate
        self.expert_answer_id = page.thread["expert_answer_id"]
        self.liked = liked

    def html(self, post: CachedPost) -> bytes:
        if post.deleted:
            return b""
        links = post.links
        own = post.author_id == self.viewer_id
        parts = []
        if self.can_reply:
            parts.append(links.reply)
        if own:
            parts.append(links.edit)
        if own or self.moderator:
            parts.append(links.delete)
        if not own:
            parts.append(links.unlike if post.id in self.liked else links.like)
        if post.updated and (self.can_animate or own):
            parts.append(links.history)
        if self.can_animate and not post.is_opening:
            parts.append(links.unmark if self.expert_answer_id == post.id else links.mark)
        if not own:
            parts.append(links.report)
        parts.append(links.save)
        return b'<p class="actions">' + b" ".join(parts) + b"</p>" if parts else b""


routes: list[BaseRoute] = [
    Route("/", home, methods=["GET"], name="home"),
    Route("/communautes", community_list, methods=["GET"], name="communities"),
    Route("/c/{name}", community_page, methods=["GET"], name="community"),
    Route("/c/{name}/suivre", follow, methods=["POST"], name="community_follow"),
    Route("/c/{name}/nouveau", new_thread_page, methods=["GET"], name="new_thread_page"),
    Route("/c/{name}/nouveau", new_thread, methods=["POST"], name="new_thread"),
    Route("/t/{id:id}", thread_page, methods=["GET"], name="thread"),
    Route("/t/{id:id}/repondre", reply, methods=["POST"], name="thread_reply"),
    Route("/t/{id:id}/animer", animate_thread, methods=["POST"], name="thread_animate"),
    Route("/p/{id:id}", permalink, methods=["GET"], name="post"),
    Route("/p/{id:id}/repondre", reply_to_post_page, methods=["GET"], name="post_reply_page"),
    Route("/p/{id:id}/repondre", reply_to_post, methods=["POST"], name="post_reply"),
    Route("/p/{id:id}/modifier", edit_page, methods=["GET"], name="post_edit_page"),
    Route("/p/{id:id}/modifier", edit, methods=["POST"], name="post_edit"),
    Route("/p/{id:id}/supprimer", delete_page, methods=["GET"], name="post_delete_page"),
    Route("/p/{id:id}/supprimer", delete, methods=["POST"], name="post_delete"),
    Route("/p/{id:id}/historique", history_page, methods=["GET"], name="post_history"),
    Route("/p/{id:id}/expert", expert_answer, methods=["POST"], name="post_expert"),
    Route("/p/{id:id}/aimer", like, methods=["POST"], name="post_like"),
    Route("/recherche", search_page, methods=["GET"], name="search"),
    Route("/admin/communautes", admin_communities, methods=["GET"], name="admin_communities"),
    Route("/admin/communautes", admin_create_community, methods=["POST"], name="admin_create_community"),
    Route(
        "/admin/communautes-distantes",
        admin_remote_communities,
        methods=["POST"],
        name="admin_remote_communities",
    ),
    Route("/admin/communautes/{name}", admin_community_page, methods=["GET"], name="admin_community"),
    Route(
        "/admin/communautes/{name}", admin_update_community, methods=["POST"], name="admin_update_community"
    ),
]
