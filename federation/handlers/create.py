"""Create{Page|Article|Note}: a new thread in one of our communities, or a reply.

- Addressed to (``to``/``cc``/``audience``) or mentioning (a ``Mention`` tag) one of our
  groups, without ``inReplyTo``: a new thread (a Note's first line is its title).
- ``inReplyTo`` one of our posts (ours by URL, or a remote post we store by its id):
  a reply in that thread, wherever the activity arrived (group, member or shared inbox).
- ``inReplyTo`` a post we do not store: dropped ("reply to a post we do not store")
  unless addressed to one of our groups; then it waits ``ORPHAN_WAIT`` for its parent
  and becomes a thread of its own if the parent never comes.
Relayed by the Group of a remote community we follow (``ctx.via``): stored into that
community only, by ``handlers.remote_group``. A reply's Mention tags naming our members
notify them. Refused (ignored) when the community is ``local``, when a members-only community's
instance is not approved, when the thread is locked or deleted, or when a Delete of
the object already arrived. Accepted content is relayed by the group (FEP-1b12);
a new thread or reply of a public community is also announced by id for Mastodon.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from federation import private_messages
from federation.handlers import content, remote_group
from federation.handlers.base import (
    Community,
    Context,
    Outcome,
    RetryLater,
    community_by_id,
    done,
    find_post,
    ignored,
    local_group,
    may_interact,
    ref,
    refs,
    relay,
    same_host,
    tombstoned,
)
from federation.objects import PUBLIC
from node import events

log = logging.getLogger(__name__)

POST_TYPES = {"Note", "Page", "Article"}


async def handle(ctx: Context) -> Outcome:
    if ctx.via is None and private_messages.is_direct(ctx.settings, ctx.activity):
        return await private_messages.receive(ctx)
    obj = await embedded_object(ctx)
    if obj is None:
        return ignored("object missing or not on the author's server")
    if obj.get("type") not in POST_TYPES:
        return ignored(f"{obj.get('type')} objects are not stored")
    if ctx.sender.uri not in refs(obj.get("attributedTo")):
        return ignored("object attributed to another actor")
    return await store(ctx, obj)


async def embedded_object(ctx: Context) -> dict[str, Any] | None:
    """The activity's object; a bare URI is fetched from its origin (the sender's host)."""
    obj = ctx.activity.get("object")
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, str) and same_host(obj, ctx.sender.uri):
        fetched: dict[str, Any] = await ctx.fetcher.fetch_object(obj)
        return fetched
    return None


async def store(ctx: Context, obj: dict[str, Any]) -> Outcome:
    """Store a remote post (also used by Update for an object we never saw)."""
    if ctx.via is not None:  # relayed by the group of a remote community: into it only
        return await remote_group.store_post(ctx, obj)
    if ref(obj.get("inReplyTo")) is None:
        # The usual new thread in one statement; anything else (a reply, a deleted or
        # known object, a group that refuses it) takes the checked path below.
        community = await addressed_group(ctx, obj)
        if community is not None and await may_interact(ctx, community):
            public = community.visibility == "public"
            thread_id = await content.store_new_thread(
                ctx, community.id, content.from_ap(obj), announce_page=public
            )
            if thread_id is not None:
                return done(f"thread {thread_id}")
    return await _store_checked(ctx, obj)


async def new_thread(ctx: Context, item_id: int) -> content.NewThread | None:
    """The usual Create decided without writing anything: a new thread, with its
    object embedded, in one of our groups that takes it. The worker stores many at
    once (``content.store_new_threads``), then calls :func:`store_late` for those
    whose object turned out deleted or stored already. None: :func:`handle` decides
    (a reply, an object to fetch, a refused group …), with the same checks."""
    obj = ctx.activity.get("object")
    if not isinstance(obj, dict) or obj.get("type") not in POST_TYPES:
        return None
    if private_messages.is_direct(ctx.settings, ctx.activity):
        return None
    if ctx.sender.uri not in refs(obj.get("attributedTo")) or ref(obj.get("inReplyTo")) is not None:
        return None
    community = await addressed_group(ctx, obj)
    if community is None or not await may_interact(ctx, community):
        return None
    public = community.visibility == "public"
    return content.NewThread(item_id, community.id, ctx.sender.id, content.from_ap(obj), public)


async def store_late(ctx: Context) -> Outcome:
    """The outcome of a :func:`new_thread` that stored nothing."""
    obj: dict[str, Any] = ctx.activity["object"]
    return await _store_checked(ctx, obj)


async def _store_checked(ctx: Context, obj: dict[str, Any]) -> Outcome:
    object_id = ref(obj)
    if await tombstoned(ctx, object_id):
        return ignored("object already deleted")
    if await find_post(ctx, object_id) is not None:
        return ignored("object already stored")
    parent_uri = ref(obj.get("inReplyTo"))
    if parent_uri:
        return await _store_reply(ctx, obj, parent_uri)
    community = await addressed_group(ctx, obj)
    if community is None:
        return ignored("not addressed to one of our communities")
    if not await may_interact(ctx, community):
        return ignored(f"instance may not post in a {community.visibility} community")
    public = community.visibility == "public"
    thread_id = await content.store_new_thread(ctx, community.id, content.from_ap(obj), announce_page=public)
    if thread_id is None:  # stored or deleted meanwhile by another worker
        return ignored("object already stored")
    return done(f"thread {thread_id}")


async def _store_reply(ctx: Context, obj: dict[str, Any], parent_uri: str) -> Outcome:
    parent = await find_post(ctx, parent_uri)
    if parent is None:
        return await _orphan(ctx, obj)
    if parent.thread_deleted or parent.thread_locked:
        return ignored("thread locked or deleted")
    community = await community_by_id(ctx.conn, parent.community_id)
    if not await may_interact(ctx, community):
        return ignored(f"instance may not post in a {community.visibility} community")
    mentioned = remote_group.local_mentions(ctx, obj)
    post_id = await content.store_reply(ctx, parent.thread_id, parent.id, content.from_ap(obj), mentioned)
    # A public reply in a public community: also the group's boost of its id, what
    # Mastodon-API servers show (never a boost of what its author addressed to a few).
    boost = None
    if community.visibility == "public" and _addressed_to_public(obj):
        boost = events.RelayAnnounceObject(community.id, post_id)
    await relay(ctx, community.id, also=boost)
    return done(f"reply {post_id} in thread {parent.thread_id}")


# How long a reply addressed to one of our groups waits for the post it answers (the
# inbox worker retries after 30 s, 2 min, 10 min: it is decided at the fourth attempt).
ORPHAN_WAIT = timedelta(minutes=10)
SELECT_WAITED = "SELECT now() - received_at FROM inbox_items WHERE activity_id = $1"


async def _orphan(ctx: Context, obj: dict[str, Any]) -> Outcome:
    """A reply to a post we do not store: dropped (with its reason) unless addressed to
    one of our groups; then it waits for its parent, and becomes a thread of its own
    when the parent has not come within ``ORPHAN_WAIT``."""
    community = await addressed_group(ctx, obj)
    if community is None:
        return ignored("reply to a post we do not store")
    waited = await ctx.conn.fetchval(SELECT_WAITED, ref(ctx.activity))
    if waited is None or waited < ORPHAN_WAIT:
        raise RetryLater("parent post not known yet")
    if not await may_interact(ctx, community):
        return ignored(f"instance may not post in a {community.visibility} community")
    public = community.visibility == "public"
    thread_id = await content.store_new_thread(ctx, community.id, content.from_ap(obj), announce_page=public)
    if thread_id is None:
        return ignored("object already stored")
    log.info("reply %s: its parent never arrived, stored as thread %s", ref(obj), thread_id)
    return done(f"thread {thread_id}: parent never arrived")


PUBLIC_NAMES = {PUBLIC, "as:Public", "Public"}


def _addressed_to_public(obj: dict[str, Any]) -> bool:
    return not PUBLIC_NAMES.isdisjoint([*refs(obj.get("to")), *refs(obj.get("cc"))])


def _mentions(obj: dict[str, Any]) -> list[str]:
    tags = obj.get("tag")
    tags = tags if isinstance(tags, list) else [tags]
    return [
        str(t["href"])
        for t in tags
        if isinstance(t, dict) and t.get("type") == "Mention" and isinstance(t.get("href"), str)
    ]


def _candidates(obj: dict[str, Any], activity: dict[str, Any]) -> Iterator[str]:
    """Where a post may be addressed to one of our groups, in the order they are tried
    (read as far as needed: the usual post names its group among its own first ones)."""
    for source in (obj, activity):
        for key in ("audience", "to", "cc"):
            value = source.get(key)
            if value is not None:
                yield from refs(value)
    yield from _mentions(obj)


async def addressed_group(ctx: Context, obj: dict[str, Any]) -> Community | None:
    """The first of our groups the object is addressed to, has as audience, or mentions."""
    seen: set[str] = set()
    for uri in _candidates(obj, ctx.activity):
        if uri in seen:
            continue
        seen.add(uri)
        community = await local_group(ctx, uri)
        if community is not None:
            return community
    return None
