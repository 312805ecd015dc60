"""Like on one of our posts (a thread's ``Page`` counts as its opening post).

One like per (post, actor) in ``post_likes``, so a repeated Like changes nothing;
``posts.likes_count`` follows. A Like whose Undo already arrived is ignored. The group
relays accepted likes. Dislike is understood and ignored: the forum has no downvotes.
"""

from __future__ import annotations

from federation.handlers import remote_group
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
from node import threads


async def handle(ctx: Context) -> Outcome:
    if await tombstoned(ctx, ctx.activity.get("id")):
        return ignored("like already undone")
    post = await find_post(ctx, ref(ctx.activity.get("object")))
    if post is None or post.deleted:
        return ignored("like of a post we do not store")
    if not remote_group.in_community(ctx, post):
        return ignored("like of a post of another community than the group's")
    if ctx.via is None and not await _may_like(ctx, post):
        return ignored("instance may not interact with this community")
    if not await threads.set_remote_like(ctx.conn, post.id, ctx.sender.id, ctx.activity.get("id")):
        return ignored("already liked")
    await relay(ctx, post.community_id)
    return done(f"post {post.id} liked")


async def _may_like(ctx: Context, post: PostRef) -> bool:
    return await may_interact(ctx, await community_by_id(ctx.conn, post.community_id))


async def handle_dislike(ctx: Context) -> Outcome:
    return ignored("dislikes are not counted")


async def undo_like(ctx: Context, like_id: str | None, object_uri: str | None) -> Outcome:
    """Remove the sender's like, matched by the Like's id or by the liked post."""
    post_id = await threads.remove_remote_like(ctx.conn, ctx.sender.id, activity_id=like_id)
    post = None
    if post_id is None and object_uri:
        post = await find_post(ctx, object_uri)
        if post is not None:
            post_id = await threads.remove_remote_like(ctx.conn, ctx.sender.id, post_id=post.id)
    if post_id is None:
        return done("like not found: undo remembered")
    post = post or await post_by_id(ctx, post_id)
    if post is not None:
        await relay(ctx, post.community_id)
    return done(f"like on post {post_id} undone")
