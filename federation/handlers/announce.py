"""Announce: a boost of an object, or a group relaying someone's activity (FEP-1b12).

A boost (``object`` is a URI or an object, not an activity) of a post we store is
counted on that post (``node.shares``, shown « partagé N fois »), once per actor; a
group's Announce of a post is its relay, not a boost, and is not counted. A relayed activity from another server than the group's is
never trusted as embedded: it is fetched again from its own origin (the guarded
fetcher checks that the returned id is the URL asked for), its actor must be on that
origin, and it is then handled as if its actor had sent it. When the activity's id
and actor are on the group's own (verified) server, that server vouches for it as a
refetch would: the embedded copy is validated and used. One level only: an Announce
inside an Announce is ignored.

An Announce from a Group this node follows (a remote community) is neither a boost nor
a relay to one of our groups: ``handlers.remote_group`` applies it into that community.
"""

from __future__ import annotations

from typing import Any

from federation import actors, validation
from federation.errors import ValidationError
from federation.handlers import remote_group
from federation.handlers.base import (
    Context,
    Outcome,
    VerifiedActor,
    community_by_id,
    done,
    find_post,
    foreign_id,
    ignored,
    may_interact,
    ref,
    same_host,
    tombstoned,
)
from node import shares

RELAYED_TYPES = {"Create", "Update", "Delete", "Like", "Dislike", "Undo"}
SELECT_KIND = "SELECT kind FROM actors WHERE id = $1"


async def _boost(ctx: Context, object_uri: str | None) -> Outcome:
    """A boost: counted when it is a person's (or a bot's) boost of a post we store."""
    activity_id = ref(ctx.activity)
    if activity_id is None or await tombstoned(ctx, activity_id):
        return ignored("boost already undone")
    post = await find_post(ctx, object_uri)
    if post is None or post.deleted or post.thread_deleted:
        return ignored("boost of a post we do not store")
    if await ctx.conn.fetchval(SELECT_KIND, ctx.sender.id) == "Group":
        return ignored("a group's relay of a post, not a boost")
    if not await may_interact(ctx, await community_by_id(ctx.conn, post.community_id)):
        return ignored("instance may not interact with this community")
    if not await shares.record_share(ctx.conn, post.id, ctx.sender.id, activity_id):
        return ignored("already shared")
    return done(f"post {post.id} shared")


async def handle(ctx: Context) -> Outcome:
    obj = ctx.activity.get("object")
    if ctx.depth > 0:
        return ignored("announce inside an announce")
    followed = await remote_group.followed_community(ctx)
    if followed is not None:
        return await remote_group.handle_announce(ctx, followed)
    if not isinstance(obj, dict) or obj.get("type") not in RELAYED_TYPES:
        return await _boost(ctx, ref(obj))
    inner_id = ref(obj)
    if inner_id is None:
        return ignored("relayed activity without id")
    if same_host(inner_id, ctx.settings.base_url):
        # A group elsewhere relays what one of our members did there (it relays to every
        # follower instance, the author's too): we sent it, we have it.
        return ignored("our own activity, relayed back")
    if same_host(inner_id, ctx.sender.uri) and same_host(ref(obj.get("actor")), ctx.sender.uri):
        try:
            validation.validate_incoming(obj)
        except ValidationError:
            return ignored("relayed activity does not validate")
        return await _handle_refetched(ctx, obj)
    if obj.get("type") == "Delete":
        return ignored("relayed Delete cannot be refetched (remote moderation is not built yet)")
    fetched: dict[str, Any] = await ctx.fetcher.fetch_object(inner_id)
    return await _handle_refetched(ctx, fetched)


async def _handle_refetched(ctx: Context, activity: dict[str, Any]) -> Outcome:
    from federation.handlers import dispatch  # the registry imports this module: resolved at call time

    actor_uri = ref(activity.get("actor"))
    if actor_uri is None or not same_host(actor_uri, ref(activity)):
        return ignored("relayed activity not from its actor's server")
    if foreign_id(activity, actor_uri) is not None:
        return ignored("relayed activity touches another server's object")
    actor = await actors.get_or_fetch(ctx.conn, ctx.fetcher, actor_uri)
    inner = Context(
        conn=ctx.conn,
        settings=ctx.settings,
        fetcher=ctx.fetcher,
        sender=VerifiedActor(actor.id, actor.uri, actor.domain),
        activity=activity,
        recipient=ctx.recipient,
        depth=ctx.depth + 1,
    )
    return await dispatch(inner)
