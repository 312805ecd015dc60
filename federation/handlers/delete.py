"""Delete: an author removes a post, or an actor removes itself.

- Delete{object id | Tombstone} by the author: the post is soft-deleted as the forum
  does for a local post (a tombstone stays in the thread) and the group relays the
  Delete. The Delete of a thread's opening post removes the whole thread
  (``node.threads.remove_thread``), as NodeBB and Lemmy remove the topic: its title may
  be the deleted text's first line. The object id is remembered in ``remote_tombstones`` in every case, so a
  Create or Update arriving later is ignored (the first Delete wins).
- Delete{actor} by that actor: the actor is marked deleted, its posts and the
  threads it opened are soft-deleted (titles included), its follows of our communities and its likes are dropped.
- A Delete by someone who is not the author (a remote group moderator) is ignored
  here: moderation of remote groups comes with remote communities.
"""

from __future__ import annotations

from federation.handlers.base import (
    Context,
    Outcome,
    done,
    find_post,
    ignored,
    ref,
    relay,
    remember,
)
from node import threads

MARK_ACTOR_DELETED = "UPDATE actors SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL"
DELETE_ACTOR_FOLLOWS = "DELETE FROM community_followers WHERE actor_id = $1"


async def handle(ctx: Context) -> Outcome:
    object_id = ref(ctx.activity.get("object"))
    if not object_id:
        return ignored("delete without an object id")
    if object_id == ctx.sender.uri:
        return await _delete_actor(ctx)
    await remember(ctx, object_id, "deleted")
    post = await find_post(ctx, object_id)
    if post is None:
        return done("unknown object remembered as deleted")
    if post.remote_author_id != ctx.sender.id:
        return ignored("only the author may delete")
    if post.deleted:
        return ignored("post already deleted")
    await threads.remove_remote_post(ctx.conn, post)
    await relay(ctx, post.community_id)
    return done(f"post {post.id} deleted")


async def _delete_actor(ctx: Context) -> Outcome:
    await remember(ctx, ctx.sender.uri, "deleted")
    await ctx.conn.execute(MARK_ACTOR_DELETED, ctx.sender.id)
    removed = await threads.remove_remote_author(ctx.conn, ctx.sender.id)
    await ctx.conn.execute(DELETE_ACTOR_FOLLOWS, ctx.sender.id)
    return done(f"actor deleted ({removed} posts)")
