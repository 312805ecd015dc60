"""Shares: remote actors' boosts (``Announce``) of posts we store, counted on the post.

Owns ``post_shares`` (one share per post and actor, whatever its activity id) and
``posts.shares_count``, which follows it. The federation inbox calls these functions
once it has verified the boost; a group's relay of a post is not a share (the caller
decides that). Nothing here leaves the node: shares are not relayed.
"""

from __future__ import annotations

import asyncpg

INSERT_SHARE = """
INSERT INTO post_shares (post_id, actor_id, activity_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING post_id
"""
DELETE_SHARE_BY_ID = "DELETE FROM post_shares WHERE activity_id = $1 AND actor_id = $2 RETURNING post_id"
DELETE_SHARE = "DELETE FROM post_shares WHERE post_id = $1 AND actor_id = $2 RETURNING post_id"
ADD_TO_COUNT = "UPDATE posts SET shares_count = greatest(shares_count + $2, 0) WHERE id = $1"


async def record_share(conn: asyncpg.Connection, post_id: int, actor_id: int, activity_id: str) -> bool:
    """Count ``actor_id``'s boost of ``post_id``; False when that actor had already shared it."""
    async with conn.transaction():
        if await conn.fetchval(INSERT_SHARE, post_id, actor_id, activity_id) is None:
            return False
        await conn.execute(ADD_TO_COUNT, post_id, 1)
    return True


async def undo_share(
    conn: asyncpg.Connection, actor_id: int, activity_id: str | None, post_id: int | None = None
) -> int | None:
    """Take back ``actor_id``'s boost, matched by the Announce's id or else by the post;
    the post id, or None when there was nothing to take back."""
    async with conn.transaction():
        found = None
        if activity_id:
            found = await conn.fetchval(DELETE_SHARE_BY_ID, activity_id, actor_id)
        if found is None and post_id is not None:
            found = await conn.fetchval(DELETE_SHARE, post_id, actor_id)
        if found is not None:
            await conn.execute(ADD_TO_COUNT, found, -1)
    return int(found) if found is not None else None
