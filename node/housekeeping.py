"""Rows that have served their purpose, deleted on a schedule.

Expired sessions (with the address and browser they recorded), spent or expired
password-reset links and old rate-limit windows are never read again; keeping them
would only keep personal data longer than needed. :func:`tidy` runs from the mail
worker's loop (every worker process has one), at most once every :data:`EVERY`.
"""

from __future__ import annotations

import logging
import time

import asyncpg

from node import ratelimit, recovery, sessions

log = logging.getLogger(__name__)

EVERY = 10 * 60.0  # seconds between two runs in one process
_last_run: float | None = None


async def purge(pool: asyncpg.Pool) -> None:
    """Delete what no query reads any more."""
    expired = await sessions.purge_expired(pool)
    dead = await recovery.purge_dead(pool)
    await ratelimit.purge(pool)
    if expired or dead:
        log.info("housekeeping: %d expired session(s), %d dead reset link(s) deleted", expired, dead)


async def tidy(pool: asyncpg.Pool) -> bool:
    """Run :func:`purge` when the last run in this process is :data:`EVERY` old; True if it ran."""
    global _last_run
    now = time.monotonic()
    if _last_run is not None and now - _last_run < EVERY:
        return False
    _last_run = now
    await purge(pool)
    return True
