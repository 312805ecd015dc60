"""Undo: the sender takes back one of its own activities.

- Undo{Follow}: the follower row goes (matched by the Follow's id, or by the pair
  (sender, followed group) when the Follow is given without a usable id).
- Undo{Like}: the like goes and the count follows (``like.undo_like``).
- Undo{Announce}: the boost is no longer counted (``node.shares``).
- Undo{Dislike} and others: understood, nothing to do.
The undone activity's id is remembered in every case, so when the Undo overtakes its
Follow or Like, the late original is ignored.
"""

from __future__ import annotations

from typing import Any

from federation.handlers import like
from federation.handlers.base import (
    Context,
    Outcome,
    done,
    find_post,
    ignored,
    local_group,
    ref,
    remember,
)
from node import shares

DELETE_FOLLOW_BY_ID = """
DELETE FROM community_followers WHERE follow_activity_id = $1 AND actor_id = $2 RETURNING community_id
"""
DELETE_FOLLOW_BY_PAIR = """
DELETE FROM community_followers WHERE community_id = $1 AND actor_id = $2 RETURNING community_id
"""
SELECT_UNDONE_TYPE = "SELECT activity_type, document FROM inbox_items WHERE activity_id = $1"


async def handle(ctx: Context) -> Outcome:
    inner = await _inner(ctx)
    if inner is None:
        return ignored("undo of an unknown activity")
    inner_actor = ref(inner.get("actor"))
    if inner_actor is not None and inner_actor != ctx.sender.uri:
        return ignored("undo of another actor's activity")
    inner_id = ref(inner)
    if inner_id:
        await remember(ctx, inner_id, "undone")
    kind = inner.get("type")
    if kind == "Follow":
        return await _undo_follow(ctx, inner_id, ref(inner.get("object")))
    if kind == "Like":
        return await like.undo_like(ctx, inner_id, ref(inner.get("object")))
    if kind == "Announce":
        return await _undo_share(ctx, inner_id, ref(inner.get("object")))
    if kind is None:
        return done("undo of an activity not received yet: remembered")
    return ignored(f"undo of {kind}: nothing to do")


async def _inner(ctx: Context) -> dict[str, Any] | None:
    """The undone activity: embedded, or the one we stored under that id."""
    obj = ctx.activity.get("object")
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, str):
        row = await ctx.conn.fetchrow(SELECT_UNDONE_TYPE, obj)
        if row is not None and isinstance(row["document"], dict):
            return dict(row["document"])
        return {"id": obj}
    return None


async def _undo_share(ctx: Context, announce_id: str | None, object_uri: str | None) -> Outcome:
    post = await find_post(ctx, object_uri) if object_uri else None
    post_id = await shares.undo_share(ctx.conn, ctx.sender.id, announce_id, post.id if post else None)
    if post_id is None:
        return done("boost not found: undo remembered")
    return done(f"boost of post {post_id} undone")


async def _undo_follow(ctx: Context, follow_id: str | None, object_uri: str | None) -> Outcome:
    if follow_id and await ctx.conn.fetchval(DELETE_FOLLOW_BY_ID, follow_id, ctx.sender.id):
        return done("follow undone")
    community = await local_group(ctx, object_uri)
    if community and await ctx.conn.fetchval(DELETE_FOLLOW_BY_PAIR, community.id, ctx.sender.id):
        return done("follow undone (matched by actor and object)")
    return done("follow not found: undo remembered")
