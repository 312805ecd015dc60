"""Collections we serve: a thread's context (FEP-7888/f228), a post's replies, a group's outbox,
followers (a count only, for privacy), featured (pinned threads) and moderators.

Pages go by keyset, as Mastodon's do: the first is ``?page=1``, each next one names the
last item shown (``?min_id=`` in the collections read oldest first, ``?max_id=`` in the
outbox, newest first), so a page deep in an old community or a long thread costs what the
first one does; collections give ``first`` and pages ``next`` (no ``last``, no ``prev``).
An old numbered link (``?page=N``, N > 1) is sent to the first page by the caller. Who may
see a collection is decided by the caller (``federation.access``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import asyncpg

from federation import objects, policy, urls
from node import published
from node.errors import NotFound
from node.settings import Settings

CONTEXT_PAGE_SIZE = 50
OUTBOX_PAGE_SIZE = 20

# --- thread context -------------------------------------------------------------


@dataclass(frozen=True)
class ContextState:
    """What the context collection of one thread looks like now, and its ETag."""

    thread_id: int
    community_id: int
    community_name: str
    visibility: str
    total: int
    etag: str
    origin: str | None = None  # the host of the remote group of a followed community
    group_uri: str | None = None  # that group


async def context_state(conn: asyncpg.Connection, thread_id: int) -> ContextState:
    row = await published.context_state(conn, thread_id)
    if row is None or row["deleted_at"] is not None:
        raise NotFound()
    if row["origin"] is not None and row["ap_id"] is not None:
        raise NotFound()  # a thread written elsewhere: its context is its origin's to serve
    # Any new, edited or deleted post changes the tag; so does the thread's activity.
    basis = f"{row['last_activity_at'].timestamp()}|{row['total']}|{row['changed_at']}"
    etag = 'W/"' + hashlib.sha256(basis.encode()).hexdigest()[:24] + '"'
    return ContextState(
        row["id"], row["community_id"], row["community_name"], row["visibility"], row["total"], etag,
        row["origin"], row["group_uri"],
    )  # fmt: skip


@dataclass(frozen=True)
class PageAsk:
    """A page of a collection: the first (``after`` None) or the one after an item."""

    after: int | None = None


FIRST_PAGE = PageAsk()


def _first_url(collection: str) -> str:
    return f"{collection}?page=1"


def _page_url(collection: str, cursor: str, ask: PageAsk) -> str:
    return _first_url(collection) if ask.after is None else f"{collection}?{cursor}={ask.after}"


def _collection_page(
    collection: str, cursor: str, ask: PageAsk, items: list[Any], last_id: int | None, more: bool
) -> dict[str, Any]:
    """An ``OrderedCollectionPage`` of ``items``; ``next`` names the last item's id."""
    doc: dict[str, Any] = {
        "id": _page_url(collection, cursor, ask),
        "type": "OrderedCollectionPage",
        "partOf": collection,
        "orderedItems": items,
    }
    if more and last_id is not None:
        doc["next"] = _page_url(collection, cursor, PageAsk(last_id))
    return doc


def context_to_ap(settings: Settings, state: ContextState) -> dict[str, Any]:
    cid = urls.thread_context(settings, state.thread_id)
    return {
        "id": cid,
        "type": "OrderedCollection",
        "attributedTo": state.group_uri or urls.group(settings, state.community_name),
        "totalItems": state.total,
        "first": _first_url(cid),
    }


async def context_page(
    conn: asyncpg.Connection, settings: Settings, state: ContextState, ask: PageAsk
) -> dict[str, Any]:
    """A page of the thread's posts, oldest first (the opening post leads the first)."""
    cid = urls.thread_context(settings, state.thread_id)
    rows = await published.context_items(conn, state.thread_id, CONTEXT_PAGE_SIZE + 1, ask.after)
    shown = rows[:CONTEXT_PAGE_SIZE]
    doc = _collection_page(
        cid, "min_id", ask, [objects.post_id(settings, r) for r in shown],
        shown[-1]["id"] if shown else None, len(rows) > CONTEXT_PAGE_SIZE,
    )  # fmt: skip
    return {**doc, "attributedTo": state.group_uri or urls.group(settings, state.community_name),
            "totalItems": state.total}  # fmt: skip


# --- replies of a post ----------------------------------------------------------

REPLIES_PAGE_SIZE = 50


# Direct answers to a post; for an opening post also the replies stored without a
# parent (they answer the thread). Hidden authors stay out, as in the context.
async def replies(
    conn: asyncpg.Connection, settings: Settings, view: objects.PostView, ask: PageAsk | None
) -> dict[str, Any]:
    """The ``replies`` collection of one of our posts (who may read it is the caller's
    decision): an ``OrderedCollection`` of the direct answers' ids, oldest first, in
    pages of ``REPLIES_PAGE_SIZE`` (``?page=1``, then ``?min_id=``)."""
    row = view.row
    args = (row["thread_id"], row["id"], view.is_opening)
    uri = urls.replies(objects.post_id(settings, row))
    if ask is None:
        return {
            "id": uri,
            "type": "OrderedCollection",
            "partOf": objects.post_id(settings, row),
            "totalItems": await published.count_replies(conn, *args),
            "first": _first_url(uri),
        }
    rows = await published.replies(conn, *args, REPLIES_PAGE_SIZE + 1, ask.after)
    shown = rows[:REPLIES_PAGE_SIZE]
    return _collection_page(
        uri, "min_id", ask, [objects.post_id(settings, r) for r in shown],
        shown[-1]["id"] if shown else None, len(rows) > REPLIES_PAGE_SIZE,
    )  # fmt: skip


# --- group collections ----------------------------------------------------------

COUNT_REMOTE_FOLLOWERS = (
    "SELECT count(*) FROM community_followers WHERE community_id = $1 AND state = 'accepted'"
)


def _announce(settings: Settings, view: objects.PostView) -> dict[str, Any]:
    """The group's relay of a new thread (FEP-1b12): ``Announce{Create{Page}}``, or
    ``Announce{Page id}`` for a thread written elsewhere (its Create is not ours to show)."""
    group = urls.group(settings, view.community_name)
    page_id = objects.post_id(settings, view.row)
    announced: str | dict[str, Any]
    if view.remote:
        announced = page_id
    else:
        page = objects.post_to_ap(settings, view)
        announced = {
            "id": f"{page_id}#create",
            "type": "Create",
            "actor": page["attributedTo"],
            "to": page["to"],
            "cc": page["cc"],
            "audience": group,
            "published": page["published"],
            "object": page,
        }
    followers = f"{group}/followers"
    public = view.visibility == "public"
    return {
        "id": f"{group}/outbox#t{view.row['thread_id']}",
        "type": "Announce",
        "actor": group,
        "to": [objects.PUBLIC] if public else [group, followers],
        "cc": [followers] if public else [],
        "audience": group,
        "published": objects.iso(view.row["created_at"]),
        "object": announced,
    }


def empty_collection(uri: str) -> dict[str, Any]:
    return {"id": uri, "type": "OrderedCollection", "totalItems": 0, "orderedItems": []}


def _outbox_listed(visibility: str) -> bool:
    """Does the outbox list a group of this ``visibility``'s threads? (The caller has
    checked that the requester may read it; a members-only one: an approved partner.)"""
    return visibility in ("public", "members")


async def outbox_total(conn: asyncpg.Connection, community_id: int, visibility: str) -> int:
    """How many threads the outbox lists (the caller checked who may read it)."""
    if not _outbox_listed(visibility):
        return 0
    return await published.outbox_count(conn, community_id)


async def outbox(
    conn: asyncpg.Connection,
    settings: Settings,
    community: asyncpg.Record,
    ask: PageAsk | None,
) -> dict[str, Any]:
    """A group's outbox, newest first, to whoever may read the group (a members-only
    one: an approved partner, which backfills from it), each item addressed as the
    group's own delivery was (members-only: the group and its followers, never Public)."""
    uri = f"{urls.group(settings, community['name'])}/outbox"
    if ask is None:
        total = await outbox_total(conn, community["id"], community["visibility"])
        if total == 0:
            return empty_collection(uri)
        return {"id": uri, "type": "OrderedCollection", "totalItems": total, "first": _first_url(uri)}
    rows = (
        await published.outbox_rows(conn, community["id"], OUTBOX_PAGE_SIZE + 1, ask.after)
        if _outbox_listed(community["visibility"])
        else []
    )
    shown = rows[:OUTBOX_PAGE_SIZE]
    return _collection_page(
        uri, "max_id", ask, [_announce(settings, objects.PostView(r)) for r in shown],
        shown[-1]["thread_id"] if shown else None, len(rows) > OUTBOX_PAGE_SIZE,
    )  # fmt: skip


async def group_followers(
    conn: asyncpg.Connection, settings: Settings, community: asyncpg.Record
) -> dict[str, Any]:
    """Followers as a count only: who follows a community is nobody else's business."""
    remote: int = await conn.fetchval(COUNT_REMOTE_FOLLOWERS, community["id"])
    total = remote + await published.member_follow_count(conn, community["id"])
    return {
        "id": f"{urls.group(settings, community['name'])}/followers",
        "type": "OrderedCollection",
        "totalItems": total,
    }


# Does an instance follow the group (an accepted follower there; for a members-only
# group, on an instance our moderators approved)?
INSTANCE_FOLLOWS = """
SELECT EXISTS (
    SELECT 1 FROM community_followers f
    JOIN actors a ON a.id = f.actor_id
    LEFT JOIN instances i ON i.domain = a.domain
    WHERE f.community_id = $1 AND f.state = 'accepted' AND a.domain = $2 AND NOT a.local AND a.deleted_at IS NULL
      AND ($3::boolean IS FALSE OR coalesce(i.approved, false))
)
"""


async def instance_follows(conn: asyncpg.Connection, community: asyncpg.Record, actor_uri: str) -> bool:
    """Does the instance of ``actor_uri`` follow ``community``? What a partner holding
    its members' posts in our members-only group asks before serving them to a third
    server (``?is_follower=``, as Lemmy asks a private community's origin)."""
    domain = policy.host_of(actor_uri)
    if not domain:
        return False
    found: bool = await conn.fetchval(
        INSTANCE_FOLLOWS, community["id"], domain, community["visibility"] == "members"
    )
    return found


def count_only(uri: str, total: int) -> dict[str, Any]:
    return {"id": uri, "type": "OrderedCollection", "totalItems": total}


async def featured(conn: asyncpg.Connection, settings: Settings, community: asyncpg.Record) -> dict[str, Any]:
    """Pinned threads, as ``Page`` objects (ids only for threads written elsewhere)."""
    views = await objects.pinned_threads(conn, community["id"])
    items = [objects.post_id(settings, v.row) if v.remote else objects.post_to_ap(settings, v) for v in views]
    return {
        "id": f"{urls.group(settings, community['name'])}/featured",
        "type": "OrderedCollection",
        "totalItems": len(items),
        "orderedItems": items,
    }


async def moderators(
    conn: asyncpg.Connection, settings: Settings, community: asyncpg.Record
) -> dict[str, Any]:
    """The community's experts and the node's moderators: who may moderate its content
    (the group's ``attributedTo``)."""
    items = [urls.person(settings, name) for name in await published.moderator_names(conn, community["id"])]
    return {
        "id": f"{urls.group(settings, community['name'])}/moderators",
        "type": "OrderedCollection",
        "totalItems": len(items),
        "orderedItems": items,
    }
