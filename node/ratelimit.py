"""Rate limits kept in PostgreSQL, shared by every web process.

Each key counts its attempts in fixed windows (one row per key and window), and an
attempt is judged on a sliding estimate: the current window's count plus the previous
window's, weighted by how much of it still lies within one window length of now. A
plain fixed window forgets everything at its boundary (an attacker could try twice the
limit across it, and a burst that straddles it was judged on half its size); the
estimate does not, and still needs two rows per key.
"""

from __future__ import annotations

from node.db import Conn

WINDOW = "to_timestamp(floor(extract(epoch FROM now()) / $2::integer) * $2::integer)"
HIT = f"""
WITH counted AS (
    INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, {WINDOW}, 1)
    ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_limits.hits + 1
    RETURNING hits, window_start
)
SELECT c.hits + coalesce(p.hits, 0) * greatest(0, 1 - extract(epoch FROM now() - c.window_start) / $2::integer)
FROM counted c
LEFT JOIN rate_limits p ON p.key = $1 AND p.window_start = c.window_start - $2::integer * interval '1 second'
"""
REFUND = f"""
UPDATE rate_limits SET hits = hits - 1
WHERE key = $1 AND window_start = {WINDOW} AND hits > 0
"""
PURGE = (
    "DELETE FROM rate_limits WHERE window_start < now() - interval '1 day'"  # windows last an hour at most
)


async def hit(conn: Conn, key: str, limit: int, window_seconds: int) -> bool:
    """Count one attempt for ``key``; False once the attempts of the last
    ``window_seconds`` (the sliding estimate) go past ``limit``."""
    attempts = await conn.fetchval(HIT, key, window_seconds)
    return bool(attempts <= limit)


async def refund(conn: Conn, key: str, window_seconds: int) -> None:
    """Take back one attempt counted by :func:`hit` in the current window (it succeeded)."""
    await conn.execute(REFUND, key, window_seconds)


async def purge(conn: Conn) -> None:
    """Forget windows older than a day (no limit looks that far back)."""
    await conn.execute(PURGE)
