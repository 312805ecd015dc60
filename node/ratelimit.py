"""Fixed-window rate limits kept in PostgreSQL, shared by every web process."""

from __future__ import annotations

from node.db import Conn

HIT = """
INSERT INTO rate_limits (key, window_start, hits)
VALUES ($1, to_timestamp(floor(extract(epoch FROM now()) / $2) * $2), 1)
ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + 1
RETURNING hits
"""
PEEK = """
SELECT coalesce(sum(hits), 0) FROM rate_limits
WHERE key = $1 AND window_start = to_timestamp(floor(extract(epoch FROM now()) / $2) * $2)
"""
PURGE = "DELETE FROM rate_limits WHERE window_start < now() - interval '1 day'"


async def hit(conn: Conn, key: str, limit: int, window_seconds: int) -> bool:
    """Count one attempt for ``key``; False once more than ``limit`` fall in the window."""
    hits: int = await conn.fetchval(HIT, key, window_seconds)
    return hits <= limit


REFUND = """
UPDATE rate_limits SET hits = hits - 1
WHERE key = $1 AND window_start = to_timestamp(floor(extract(epoch FROM now()) / $2) * $2) AND hits > 0
"""


async def refund(conn: Conn, key: str, window_seconds: int) -> None:
    """Take back one attempt counted by :func:`hit` in the current window (it succeeded)."""
    await conn.execute(REFUND, key, window_seconds)


async def exceeded(conn: Conn, key: str, limit: int, window_seconds: int) -> bool:
    """True when ``key`` already used up its window, without counting an attempt."""
    hits: int = await conn.fetchval(PEEK, key, window_seconds)
    return hits >= limit


async def purge(conn: Conn) -> None:
    await conn.execute(PURGE)
