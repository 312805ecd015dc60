"""What the node publishes to other servers, read for federation's documents and
collections: posts with everything their ActivityStreams form names (author, thread,
community, parent), a thread's context, a post's replies, a group's outbox, pinned
threads, moderators, and the state of a post an activity is about.

Read-only; the tables' owners are in ``node/tables.py``. These reads join ``actors``
(federation's table) for remote authors' ids and for authors whose instance is hidden
(suspended) or silenced, as the forum's own pages do (``node.communities.author_shown_sql``).
"""

from __future__ import annotations

import asyncpg

from node.communities import author_listed_publicly_sql, author_shown_sql
from node.db import Conn

POST_COLUMNS = """
p.id, p.thread_id, p.is_opening, p.parent_id, p.source, p.content_html, p.created_at, p.updated_at,
p.deleted_at, p.ap_id, (p.remote_author_id IS NOT NULL) AS remote_post, p.author_id,
t.title, t.pinned, t.locked, t.deleted_at AS thread_deleted_at, t.ap_id AS thread_ap_id,
(t.remote_author_id IS NOT NULL) AS remote_thread,
c.id AS community_id, c.name AS community_name, c.visibility,
ga.uri AS group_uri, ga.username AS group_username, ga.domain AS group_domain,
u.username AS author_username, ra.uri AS remote_author_uri,
pp.id AS parent_post_id, pp.is_opening AS parent_is_opening, pp.ap_id AS parent_ap_id,
pu.username AS parent_username, pa.uri AS parent_remote_uri, pa.username AS parent_remote_username,
pa.domain AS parent_remote_domain
"""
POST_JOINS = """
FROM posts p
JOIN threads t ON t.id = p.thread_id
JOIN communities c ON c.id = t.community_id
LEFT JOIN actors ga ON ga.id = c.actor_id
LEFT JOIN users u ON u.id = p.author_id
LEFT JOIN actors ra ON ra.id = p.remote_author_id
LEFT JOIN posts pp ON pp.id = p.parent_id
LEFT JOIN users pu ON pu.id = pp.author_id
LEFT JOIN actors pa ON pa.id = pp.remote_author_id
"""
SELECT_POST = f"SELECT {POST_COLUMNS} {POST_JOINS} WHERE p.id = $1"
SELECT_OPENING = f"SELECT {POST_COLUMNS} {POST_JOINS} WHERE p.thread_id = $1 AND p.is_opening"
SELECT_PINNED = f"""
SELECT {POST_COLUMNS} {POST_JOINS}
WHERE t.community_id = $1 AND t.pinned AND p.is_opening AND t.deleted_at IS NULL AND p.deleted_at IS NULL
ORDER BY t.last_activity_at DESC, t.id DESC
LIMIT 50
"""

SELECT_CONTEXT_STATE = """
SELECT t.id, t.ap_id, t.last_activity_at, t.deleted_at, c.id AS community_id, c.name AS community_name,
       c.visibility, ga.domain AS origin, ga.uri AS group_uri,
       count(p.id) FILTER (WHERE p.deleted_at IS NULL AND ha.hidden IS NOT TRUE) AS total,
       max(greatest(p.created_at, p.updated_at, p.deleted_at)) AS changed_at
FROM threads t
JOIN communities c ON c.id = t.community_id
LEFT JOIN actors ga ON ga.id = c.actor_id
LEFT JOIN posts p ON p.thread_id = t.id
LEFT JOIN actors ha ON ha.id = p.remote_author_id
WHERE t.id = $1
GROUP BY t.id, c.id, ga.id
"""
# Collection pages go by keyset — "the items after the last one shown", the cursor being
# an item's id whose (date, id) key is read once as an InitPlan (an index condition, never
# OFFSET): a page deep in a long thread or an old community costs what the first one does.
# Posts of authors from suspended instances leave the collections as they leave pages;
# looked up per post (author_shown_sql), as is the thread's id (one thread: no join).
_SHOWN = f"p.deleted_at IS NULL AND {author_shown_sql('p.remote_author_id')}"


def _after_post(cursor: str) -> str:
    """The posts after the post ``cursor`` (a parameter) of the thread $1."""
    return f"(p.created_at, p.id) > ((SELECT created_at FROM posts WHERE id = {cursor} AND thread_id = $1), {cursor})"


_ITEM_COLUMNS = """SELECT p.id, p.thread_id, p.is_opening, p.ap_id,
       (SELECT ap_id FROM threads WHERE id = $1) AS thread_ap_id"""
# $1 the thread, $2 how many replies, $3 the cursor (the last post shown; first page: none).
# The opening post leads the first page (by posts_one_opening), then the replies oldest
# first (by posts_thread).
SELECT_CONTEXT_ITEMS = {
    "first": f"""
({_ITEM_COLUMNS} FROM posts p WHERE p.thread_id = $1 AND p.is_opening AND {_SHOWN})
UNION ALL
({_ITEM_COLUMNS} FROM posts p WHERE p.thread_id = $1 AND NOT p.is_opening AND {_SHOWN}
 ORDER BY p.created_at, p.id LIMIT $2)
""",
    "after": f"""
{_ITEM_COLUMNS} FROM posts p
WHERE p.thread_id = $1 AND NOT p.is_opening AND {_SHOWN} AND {_after_post("$3")}
ORDER BY p.created_at, p.id
LIMIT $2
""",
}

_REPLIES_OF = f"""
FROM posts p
WHERE p.thread_id = $1 AND NOT p.is_opening AND {_SHOWN}
  AND (p.parent_id = $2 OR ($3::boolean AND p.parent_id IS NULL))
"""
COUNT_REPLIES = f"SELECT count(*) {_REPLIES_OF}"
# $4 how many, then on a page after the first $5 the cursor (the last reply shown).
SELECT_REPLIES = {
    page: f"""
{_ITEM_COLUMNS} {_REPLIES_OF}
  {cursor}
ORDER BY p.created_at, p.id
LIMIT $4
"""
    for page, cursor in (
        ("first", ""),
        ("after", f"AND {_after_post('$5')}"),
    )
}

# The outbox is a public list: threads of silenced (or suspended) instances stay out, as
# from a visitor's lists (a per-row lookup: a NOT EXISTS became an anti-join reading every
# actor, 3 ms at 10,000).
OUTBOX_LISTED = author_listed_publicly_sql("t.remote_author_id")
COUNT_OUTBOX = f"""
SELECT count(*) FROM threads t JOIN posts p ON p.thread_id = t.id AND p.is_opening
WHERE t.community_id = $1 AND t.deleted_at IS NULL AND p.deleted_at IS NULL AND {OUTBOX_LISTED}
"""
# Newest threads first, by threads_community_created (migration 0160); $2 how many, then
# on a page after the first $3 the cursor (the last thread shown). A thread's opening post
# is written with it, at the same time.
SELECT_OUTBOX = {
    page: f"""
SELECT {POST_COLUMNS} {POST_JOINS}
WHERE t.community_id = $1 AND p.is_opening AND t.deleted_at IS NULL AND p.deleted_at IS NULL
  AND {OUTBOX_LISTED} {cursor}
ORDER BY t.created_at DESC, t.id DESC
LIMIT $2
"""
    for page, cursor in (
        ("first", ""),
        ("after", "AND (t.created_at, t.id) < ((SELECT created_at FROM threads WHERE id = $3), $3)"),
    )
}
COUNT_MEMBER_FOLLOWS = "SELECT count(*) FROM community_follows WHERE community_id = $1"
SELECT_MODERATORS = """
SELECT username FROM users
WHERE status = 'approved'
  AND (role IN ('moderator', 'admin')
       OR id IN (SELECT user_id FROM community_experts WHERE community_id = $1))
ORDER BY id
"""

_POST_STATE = """
SELECT c.visibility, (p.deleted_at IS NOT NULL OR t.deleted_at IS NOT NULL) AS deleted,
       ga.domain AS origin, ga.uri AS group_uri
FROM posts p JOIN threads t ON t.id = p.thread_id JOIN communities c ON c.id = t.community_id
LEFT JOIN actors ga ON ga.id = c.actor_id
"""
SELECT_BY_THREAD = _POST_STATE + "WHERE t.id = $1 AND p.is_opening"
SELECT_BY_POST = _POST_STATE + "WHERE p.id = $1"
SELECT_BY_AP_ID = _POST_STATE + "WHERE p.ap_id = $1"


async def post_row(conn: Conn, post_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_POST, post_id)


async def opening_row(conn: Conn, thread_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_OPENING, thread_id)


async def pinned_rows(conn: Conn, community_id: int) -> list[asyncpg.Record]:
    """The community's pinned threads (opening posts), most active first, 50 at most."""
    result: list[asyncpg.Record] = await conn.fetch(SELECT_PINNED, community_id)
    return result


async def context_state(conn: Conn, thread_id: int) -> asyncpg.Record | None:
    """The thread, its community and what its context collection holds now (count of
    shown posts, last change)."""
    return await conn.fetchrow(SELECT_CONTEXT_STATE, thread_id)


async def context_items(conn: Conn, thread_id: int, limit: int, after: int | None) -> list[asyncpg.Record]:
    """The thread's shown posts, the opening post first (on the first page, ``after``
    None), then up to ``limit`` replies oldest first, after the post ``after``."""
    if after is None:
        result: list[asyncpg.Record] = await conn.fetch(SELECT_CONTEXT_ITEMS["first"], thread_id, limit)
    else:
        result = await conn.fetch(SELECT_CONTEXT_ITEMS["after"], thread_id, limit, after)
    return result


async def count_replies(conn: Conn, thread_id: int, post_id: int, is_opening: bool) -> int:
    total: int = await conn.fetchval(COUNT_REPLIES, thread_id, post_id, is_opening)
    return total


async def replies(
    conn: Conn, thread_id: int, post_id: int, is_opening: bool, limit: int, after: int | None
) -> list[asyncpg.Record]:
    """Direct answers to a post, oldest first (see ``_REPLIES_OF``), after the reply ``after``."""
    args = (thread_id, post_id, is_opening, limit) + (() if after is None else (after,))
    result: list[asyncpg.Record] = await conn.fetch(
        SELECT_REPLIES["first" if after is None else "after"], *args
    )
    return result


async def outbox_count(conn: Conn, community_id: int) -> int:
    total: int = await conn.fetchval(COUNT_OUTBOX, community_id)
    return total


async def outbox_rows(conn: Conn, community_id: int, limit: int, before: int | None) -> list[asyncpg.Record]:
    """The community's threads (opening posts), newest first, silenced instances left
    out, older than the thread ``before``."""
    if before is None:
        result: list[asyncpg.Record] = await conn.fetch(SELECT_OUTBOX["first"], community_id, limit)
    else:
        result = await conn.fetch(SELECT_OUTBOX["after"], community_id, limit, before)
    return result


async def member_follow_count(conn: Conn, community_id: int) -> int:
    """How many of our members follow the community."""
    total: int = await conn.fetchval(COUNT_MEMBER_FOLLOWS, community_id)
    return total


async def moderator_names(conn: Conn, community_id: int) -> list[str]:
    """Usernames of the community's experts and of the node's moderators and admins."""
    return [r["username"] for r in await conn.fetch(SELECT_MODERATORS, community_id)]


async def post_state(
    conn: Conn, *, thread_id: int | None = None, post_id: int | None = None, ap_id: str = ""
) -> asyncpg.Record | None:
    """(visibility, deleted, origin, group_uri) of a thread's opening post, a post, or a
    post stored under its ActivityPub id; ``origin`` and ``group_uri``: the host and id
    of the remote group whose community it belongs to (None: one of our communities)."""
    if thread_id is not None:
        return await conn.fetchrow(SELECT_BY_THREAD, thread_id)
    if post_id is not None:
        return await conn.fetchrow(SELECT_BY_POST, post_id)
    return await conn.fetchrow(SELECT_BY_AP_ID, ap_id)


SELECT_AUTHOR_DOMAINS = """
SELECT p.id, a.domain FROM posts p LEFT JOIN actors a ON a.id = p.remote_author_id
WHERE p.id = ANY($1::bigint[])
"""


async def author_domains(conn: Conn, post_ids: list[int]) -> dict[int, str | None]:
    """The instance of each post's remote author (None: a local author)."""
    return {r["id"]: r["domain"] for r in await conn.fetch(SELECT_AUTHOR_DOMAINS, post_ids)}
