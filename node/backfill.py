"""Backfill jobs: what a followed remote community already holds, fetched in the background
(migration 0135; this module owns ``backfill_jobs`` and ``remote_moderators``).

A job is a row; scheduling one is a cheap insert any part of the node may do in its own
transaction (the worker that runs it is ``federation.backfill``, where the states and
delays are drawn)::

    schedule_outbox(conn, community_id)      on first accepted follow: recent threads,
                                             pinned threads, moderators of the group
    schedule_thread(conn, thread_id)         a remote thread opened (at most once per
                                             ``RECENT``): its context, replies or chain
    schedule_thread(conn, "https://…")       an unknown object (a reply whose parent we
                                             lack), ``community_id`` the group it came by

At most one job per target waits at a time (a unique index): scheduling it again is a
no-op, so callers need no check of their own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from node.db import Conn

# A thread opened again within this time is not fetched again.
RECENT = timedelta(hours=6)
# A web process asks the database about a thread it saw opened at most this often (seconds).
OPENED_RECHECK = 600.0
OPENED_MEMORY = 4096
KEEP_FINISHED = timedelta(days=7)
NOTE_MAX = 500

INSERT_OUTBOX = """
INSERT INTO backfill_jobs (kind, community_id) VALUES ('outbox', $1)
ON CONFLICT DO NOTHING
RETURNING id
"""
# Only a remote thread (it has an ActivityPub id) of a remote community, and not when a
# job for it waits or was created within $2.
INSERT_THREAD = """
INSERT INTO backfill_jobs (kind, thread_id, community_id)
SELECT 'thread', t.id, t.community_id
FROM threads t JOIN communities c ON c.id = t.community_id
WHERE t.id = $1 AND t.ap_id IS NOT NULL AND t.deleted_at IS NULL AND c.actor_id IS NOT NULL
  AND NOT EXISTS (SELECT FROM backfill_jobs j
                  WHERE j.thread_id = t.id AND (j.status = 'pending' OR j.created_at > now() - $2::interval))
ON CONFLICT DO NOTHING
RETURNING id
"""
INSERT_OBJECT = """
INSERT INTO backfill_jobs (kind, object_uri, community_id)
SELECT 'thread', $1, $2
WHERE NOT EXISTS (SELECT FROM backfill_jobs j
                  WHERE j.object_uri = $1 AND (j.status = 'pending' OR j.created_at > now() - $3::interval))
ON CONFLICT DO NOTHING
RETURNING id
"""
CLAIM = """
WITH due AS (
    SELECT j.id FROM backfill_jobs j
    WHERE j.status = 'pending' AND j.next_attempt_at <= now()
    ORDER BY j.next_attempt_at, j.id
    LIMIT $1
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE backfill_jobs j SET attempts = j.attempts + 1, next_attempt_at = now() + $2::interval
FROM due WHERE j.id = due.id
RETURNING j.id, j.kind, j.community_id, j.thread_id, j.object_uri, j.attempts
"""
# The end of the claim ``attempts`` = $2 (a later claim, after the lease, wins).
FINISH = """
UPDATE backfill_jobs SET status = $3, note = $4, stored = stored + $5, finished_at = now()
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
RETRY = """
UPDATE backfill_jobs SET next_attempt_at = now() + $3::interval, note = $4, stored = stored + $5
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
PRUNE = "DELETE FROM backfill_jobs WHERE status <> 'pending' AND finished_at < now() - $1::interval"
SELECT_JOB = """
SELECT id, kind, community_id, thread_id, object_uri, status, attempts, stored, note, next_attempt_at,
       created_at, finished_at
FROM backfill_jobs WHERE id = $1
"""
SELECT_LATEST_FOR_THREAD = """
SELECT id, kind, community_id, thread_id, object_uri, status, attempts, stored, note, next_attempt_at,
       created_at, finished_at
FROM backfill_jobs WHERE thread_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1
"""
DELETE_MODERATORS = (
    "DELETE FROM remote_moderators WHERE community_id = $1 AND NOT actor_id = ANY($2::bigint[])"
)
INSERT_MODERATORS = """
INSERT INTO remote_moderators (community_id, actor_id) SELECT $1, unnest($2::bigint[])
ON CONFLICT DO NOTHING
"""
SELECT_MODERATORS = "SELECT actor_id FROM remote_moderators WHERE community_id = $1 ORDER BY actor_id"
IS_MODERATOR = "SELECT EXISTS (SELECT FROM remote_moderators WHERE community_id = $1 AND actor_id = $2)"


@dataclass(frozen=True)
class Job:
    """A claimed job: ``kind`` 'outbox' (``community_id``) or 'thread' (``thread_id``,
    or ``object_uri`` with the community it came by when known)."""

    id: int
    kind: str
    community_id: int | None
    thread_id: int | None
    object_uri: str | None
    attempts: int


async def schedule_outbox(conn: Conn, community_id: int) -> bool:
    """Fetch the remote community's recent threads, pinned threads and moderators in
    the background; False when such a job already waits."""
    return await conn.fetchval(INSERT_OUTBOX, community_id) is not None


async def schedule_thread(
    conn: Conn, target: int | str, *, community_id: int | None = None, recent: timedelta = RECENT
) -> bool:
    """Fetch a remote thread's posts in the background: ``target`` is a thread id (a
    remote thread of a remote community; else nothing is scheduled) or the ActivityPub
    id of an object we do not store (``community_id``: the remote community it came
    by). False when nothing was scheduled: a job for it waits or ran within ``recent``."""
    if isinstance(target, int):
        return await conn.fetchval(INSERT_THREAD, target, recent) is not None
    if not target.startswith(("https://", "http://")) or len(target) > 2000:
        return False
    return await conn.fetchval(INSERT_OBJECT, target, community_id, recent) is not None


_opened: dict[int, float] = {}  # thread id → when this process last asked (time.monotonic)


async def thread_opened(conn: Conn, thread_id: int) -> bool:
    """A member opened a remote thread: :func:`schedule_thread`, asked of the database at
    most once per ``OPENED_RECHECK`` per thread by this process (the thread page's hot
    path stays free of it). True when a job was scheduled."""
    now = time.monotonic()
    last = _opened.get(thread_id)
    if last is not None and now - last < OPENED_RECHECK:
        return False
    if len(_opened) >= OPENED_MEMORY:
        _opened.clear()
    _opened[thread_id] = now
    return await schedule_thread(conn, thread_id)


def forget_opened() -> None:
    """Forget which threads this process saw opened (tests: each has its own database)."""
    _opened.clear()


async def claim(conn: Conn, limit: int, lease: timedelta) -> list[Job]:
    """Up to ``limit`` due jobs, each held for ``lease`` (attempts counted)."""
    rows = await conn.fetch(CLAIM, limit, lease)
    return [
        Job(r["id"], r["kind"], r["community_id"], r["thread_id"], r["object_uri"], r["attempts"])
        for r in rows
    ]


async def finish(conn: Conn, job: Job, status: str, note: str, stored: int) -> None:
    """``status`` 'done' or 'failed': the job is over (``stored`` posts more)."""
    await conn.execute(FINISH, job.id, job.attempts, status, note[:NOTE_MAX], stored)


async def retry(conn: Conn, job: Job, delay: timedelta, note: str, stored: int) -> None:
    """Try the job again after ``delay``."""
    await conn.execute(RETRY, job.id, job.attempts, delay, note[:NOTE_MAX], stored)


async def prune(conn: Conn, keep: timedelta = KEEP_FINISHED) -> int:
    """Forget jobs finished more than ``keep`` ago; returns how many."""
    result: str = await conn.execute(PRUNE, keep)
    return int(result.split()[-1])


async def job(conn: Conn, job_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_JOB, job_id)
    return row


async def latest_for_thread(conn: Conn, thread_id: int) -> asyncpg.Record | None:
    """The thread's last backfill job (its status, when it ran), None if never."""
    row: asyncpg.Record | None = await conn.fetchrow(SELECT_LATEST_FOR_THREAD, thread_id)
    return row


# --- a remote community's moderators ---------------------------------------------------


async def set_remote_moderators(conn: asyncpg.Connection, community_id: int, actor_ids: list[int]) -> None:
    """The group's moderators are exactly ``actor_ids`` (rows of ``actors``)."""
    async with conn.transaction():
        await conn.execute(DELETE_MODERATORS, community_id, actor_ids)
        await conn.execute(INSERT_MODERATORS, community_id, actor_ids)


async def remote_moderators(conn: Conn, community_id: int) -> list[int]:
    return [r["actor_id"] for r in await conn.fetch(SELECT_MODERATORS, community_id)]


async def is_remote_moderator(conn: Conn, community_id: int, actor_id: int) -> bool:
    return bool(await conn.fetchval(IS_MODERATOR, community_id, actor_id))
