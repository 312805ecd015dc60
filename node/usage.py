"""What the node says about itself in numbers (NodeInfo's ``usage``): read-only counts
over the forum's tables, kept honest (approved members, members active lately, local
threads and replies still online)."""

from __future__ import annotations

import asyncpg

from node.db import Conn

COUNT_USAGE = """
SELECT
    (SELECT count(*) FROM users WHERE status = 'approved') AS total,
    (SELECT count(*) FROM users u WHERE u.status = 'approved' AND (
        EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.last_seen_at > now() - interval '30 days')
        OR EXISTS (SELECT 1 FROM posts p WHERE p.author_id = u.id AND p.created_at > now() - interval '30 days')
    )) AS active_month,
    (SELECT count(*) FROM users u WHERE u.status = 'approved' AND (
        EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.last_seen_at > now() - interval '180 days')
        OR EXISTS (SELECT 1 FROM posts p WHERE p.author_id = u.id AND p.created_at > now() - interval '180 days')
    )) AS active_halfyear,
    (SELECT count(*) FROM threads t JOIN posts p ON p.thread_id = t.id AND p.is_opening
     WHERE p.remote_author_id IS NULL AND t.remote_author_id IS NULL
       AND t.deleted_at IS NULL AND p.deleted_at IS NULL) AS local_posts,
    (SELECT count(*) FROM posts p
     WHERE NOT p.is_opening AND p.remote_author_id IS NULL AND p.deleted_at IS NULL) AS local_comments
"""


async def counts(conn: Conn) -> asyncpg.Record:
    """total, active_month, active_halfyear (a session or a post), local_posts (threads),
    local_comments (replies)."""
    row: asyncpg.Record = await conn.fetchrow(COUNT_USAGE)
    return row
