"""Like on one of our posts (a thread's ``Page`` counts as its opening post).

One like per (post, actor) in ``post_likes``, so a repeated Like changes nothing;
``posts.likes_count`` follows. A Like whose Undo already arrived is ignored. The group
relays accepted likes. Dislike is understood and ignored: the forum has no downvotes.
"""

from __future__ import annotations

from federation.handlers.base import (
    Context,
    Outcome,
    PostRef,
    community_by_id,
    done,
    find_post,
    ignored,
    may_interact,
    post_by_id,
    ref,
    relay,
    tombstoned,
)

INSERT_LIKE = """
INSERT INTO post_likes (post_id, actor_id, activity_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING post_id
"""
DELETE_LIKE = "DELETE FROM post_likes WHERE post_id = $1 AND actor_id = $2 RETURNING post_id"
DELETE_LIKE_BY_ID = "DELETE FROM post_likes WHERE activity_id = $1 AND actor_id = $2 RETURNING post_id"
ADD_TO_COUNT = "UPDATE posts SET likes_count = greatest(likes_count + $2, 0) WHERE id = $1"


async def handle(ctx: Context) -> Outcome:
    if await tombstoned(ctx, ctx.activity.get("id")):
        return ignored("like already undone")
    post = await find_post(ctx, ref(ctx.activity.get("object")))
    if post is None or post.deleted:
        return ignored("like of a post we do not store")
    if not await _may_like(ctx, post):
        return ignored("instance may not interact with this community")
    if await ctx.conn.fetchval(INSERT_LIKE, post.id, ctx.sender.id, ctx.activity.get("id")) is None:
        return ignored("already liked")
    await ctx.conn.execute(ADD_TO_COUNT, post.id, 1)
    await relay(ctx, post.community_id)
    return done(f"post {post.id} liked")


async def _may_like(ctx: Context, post: PostRef) -> bool:
    return await may_interact(ctx, await community_by_id(ctx.conn, post.community_id))


async def handle_dislike(ctx: Context) -> Outcome:
    return ignored("dislikes are not counted")


async def undo_like(ctx: Context, like_id: str | None, object_uri: str | None) -> Outcome:
    """Remove the sender's like, matched by the Like's id or by the liked post."""
    post_id = None
    if like_id:
        post_id = await ctx.conn.fetchval(DELETE_LIKE_BY_ID, like_id, ctx.sender.id)
    post = None
    if post_id is None and object_uri:
        post = await find_post(ctx, object_uri)
        if post is not None:
            post_id = await ctx.conn.fetchval(DELETE_LIKE, post.id, ctx.sender.id)
    if post_id is None:
        return done("like not found: undo remembered")
    await ctx.conn.execute(ADD_TO_COUNT, post_id, -1)
    post = post or await post_by_id(ctx, post_id)
    if post is not None:
        await relay(ctx, post.community_id)
    return done(f"like on post {post_id} undone")
