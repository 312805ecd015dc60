"""Rate limits judged on a sliding window, and dead rows deleted on a schedule."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from node import housekeeping, ratelimit, recovery, sessions
from tests.helpers import make_user

LIMIT = 10


async def window_ending_now(pool: asyncpg.Pool, fraction: float) -> int:
    """A window length (seconds) whose current window began ``fraction`` of a window ago.

    Windows start at multiples of their length since the epoch, so the time into the
    current one depends on the clock; a length about ``epoch / (1 + fraction)`` puts
    now at ``fraction`` of the first window after the epoch's, whatever the clock says,
    and the window before it starts at the epoch itself.
    """
    epoch = await pool.fetchval("SELECT extract(epoch FROM now())::float8")
    return int(epoch / (1 + fraction))


async def fill_previous_window(pool: asyncpg.Pool, key: str, hits: int) -> None:
    await pool.execute(
        "INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, to_timestamp(0), $2)", key, hits
    )


async def attempts_allowed(pool: asyncpg.Pool, key: str, window: int) -> int:
    allowed = 0
    while await ratelimit.hit(pool, key, LIMIT, window):
        allowed += 1
        assert allowed <= LIMIT
    return allowed


async def test_attempts_of_the_window_that_just_ended_still_count(pool: asyncpg.Pool) -> None:
    # Given a key that used its whole budget in a window that ended a moment ago
    window = await window_ending_now(pool, 0.000001)
    await fill_previous_window(pool, "login:account:amina", LIMIT)
    # Then a new window does not give a new budget: the next attempt is refused
    assert not await ratelimit.hit(pool, "login:account:amina", LIMIT, window)


async def test_the_previous_window_weighs_what_still_lies_within_one_window(pool: asyncpg.Pool) -> None:
    # Given ten attempts in the previous window, and now half-way through the current one
    await fill_previous_window(pool, "post:user:1:60", LIMIT)
    window = await window_ending_now(pool, 0.5)
    # Then about five of them still count: five more attempts pass, the sixth does not
    assert await attempts_allowed(pool, "post:user:1:60", window) == 5
    # And a key with nothing before it has its whole budget
    assert await attempts_allowed(pool, "post:user:2:60", window) == LIMIT


async def test_a_refund_gives_back_an_attempt_of_the_current_window(pool: asyncpg.Pool) -> None:
    window = await window_ending_now(pool, 0.5)  # no boundary falls within the test
    for _ in range(LIMIT):
        assert await ratelimit.hit(pool, "login:ip:198.51.100.1", LIMIT, window)
    await ratelimit.refund(pool, "login:ip:198.51.100.1", window)
    assert await ratelimit.hit(pool, "login:ip:198.51.100.1", LIMIT, window)
    assert not await ratelimit.hit(pool, "login:ip:198.51.100.1", LIMIT, window)


async def test_expired_sessions_dead_links_and_old_windows_are_deleted(pool: asyncpg.Pool) -> None:
    # Given a live and an expired session, live, spent and long-expired reset links,
    # and a rate-limit window from two days ago beside a current one
    user_id = await make_user(pool, "amina")
    live = await sessions.create(pool, user_id, "Firefox", "198.51.100.1")
    await sessions.create(pool, user_id, "Chromium", "198.51.100.2")
    await pool.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_agent = 'Chromium'"
    )
    async with pool.acquire() as conn:
        kept = await recovery.issue(conn, user_id, via="cli", lifetime=timedelta(hours=1))
        await recovery.issue(conn, user_id, via="cli", lifetime=timedelta(hours=1))
        await recovery.issue(conn, user_id, via="cli", lifetime=timedelta(hours=1))
    ids = await pool.fetch("SELECT id FROM password_resets ORDER BY id")
    await pool.execute(
        "UPDATE password_resets SET used_at = now() - interval '2 days' WHERE id = $1", ids[1]["id"]
    )
    await pool.execute(
        "UPDATE password_resets SET expires_at = now() - interval '25 hours' WHERE id = $1", ids[2]["id"]
    )
    await pool.execute(
        "INSERT INTO rate_limits (key, window_start, hits) VALUES ('old', now() - interval '2 days', 3)"
    )
    assert await ratelimit.hit(pool, "current", LIMIT, 900)

    # When the housekeeping runs
    await housekeeping.purge(pool)

    # Then only what can still be read remains
    assert [r["user_agent"] for r in await pool.fetch("SELECT user_agent FROM sessions")] == ["Firefox"]
    assert await sessions.lookup(pool, live) is not None
    assert [r["id"] for r in await pool.fetch("SELECT id FROM password_resets")] == [ids[0]["id"]]
    assert await recovery.find(pool, kept.token) is not None
    assert [r["key"] for r in await pool.fetch("SELECT key FROM rate_limits")] == ["current"]


async def test_the_housekeeping_runs_at_most_once_every_few_minutes(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(housekeeping, "_last_run", None)
    assert await housekeeping.tidy(pool)
    assert not await housekeeping.tidy(pool)
    last_run = housekeeping._last_run
    assert last_run is not None
    monkeypatch.setattr(housekeeping, "_last_run", last_run - housekeeping.EVERY)
    assert await housekeeping.tidy(pool)
