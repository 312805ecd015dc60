"""Delete: an author removes a post, or an actor removes itself.

- Delete{object id | Tombstone} by the author: the post is soft-deleted as the forum
  does for a local post (a tombstone stays in the thread, the thread stays in place)
  and the group relays the Delete. The object id is remembered in ``remote_tombstones`` in every case, so a
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

SOFT_DELETE_POST = "UPDATE posts SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL"
# As the forum does for a local reply (node.threads.DROP_REPLY): the tombstone stays, the count drops.
DROP_REPLY = "UPDATE threads SET reply_count = greatest(reply_count - 1, 0) WHERE id = $1"

MARK_ACTOR_DELETED = "UPDATE actors SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL"
SOFT_DELETE_ACTOR_POSTS = """
UPDATE posts SET deleted_at = now() WHERE remote_author_id = $1 AND deleted_at IS NULL
RETURNING thread_id
"""
# Reply counts and last activity of the threads it answered (migration 0072).
RECOUNT_THREADS = "SELECT vbg_threads_recount($1::bigint[])"
SOFT_DELETE_ACTOR_THREADS = """
UPDATE threads SET deleted_at = now() WHERE remote_author_id = $1 AND deleted_at IS NULL
"""
RECOUNT_LIKES = """
UPDATE posts p SET likes_count = (SELECT count(*) FROM post_likes l WHERE l.post_id = p.id)
WHERE p.id = ANY($1::bigint[])
"""
DELETE_ACTOR_LIKES = "DELETE FROM post_likes WHERE actor_id = $1 RETURNING post_id"
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
    await ctx.conn.execute(SOFT_DELETE_POST, post.id)
    if not post.is_opening:
        await ctx.conn.execute(DROP_REPLY, post.thread_id)
    await relay(ctx, post.community_id)
    return done(f"post {post.id} deleted")


async def _delete_actor(ctx: Context) -> Outcome:
    await remember(ctx, ctx.sender.uri, "deleted")
    await ctx.conn.execute(MARK_ACTOR_DELETED, ctx.sender.id)
    threads = [r["thread_id"] for r in await ctx.conn.fetch(SOFT_DELETE_ACTOR_POSTS, ctx.sender.id)]
    await ctx.conn.execute(RECOUNT_THREADS, sorted(set(threads)))
    await ctx.conn.execute(SOFT_DELETE_ACTOR_THREADS, ctx.sender.id)
    liked = [r["post_id"] for r in await ctx.conn.fetch(DELETE_ACTOR_LIKES, ctx.sender.id)]
    await ctx.conn.execute(RECOUNT_LIKES, liked)
    await ctx.conn.execute(DELETE_ACTOR_FOLLOWS, ctx.sender.id)
    return done(f"actor deleted ({len(threads)} posts)")
