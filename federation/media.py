"""The media worker: remote images fetched, cleaned and stored (docs/architecture.md §4 and §5).

Each ``remote_media`` row of kind ``image`` (migration 0075, listed by
``federation.attachments`` when its post arrived) is a small state machine — the
only place where its states and delays are written down::

    link ── kind 'link': shown as an outbound link, never fetched (final)

    pending ──claim (SKIP LOCKED; attempts + 1; next_attempt_at = now + LEASE)──> fetching
      ▲   fetching ─ the media URL's or the author's domain: reject_media, ──────> refused
      │              suspended or not allowed (nothing is fetched)
      │            ─ FetchRefused (URL, address, a redirect's domain, ─────────────> refused
      │              Content-Type, size) or not an image (Pillow)
      │            ─ 4xx other than 408 / 429 ──────────────────────────────────────> failed
      │            ─ cleaned (node.images) and written ─────────────────────────────> stored
      └─────────── ─ network error, deadline, 5xx, 408, 429: retry after
                     RETRY_DELAYS[attempts - 1]; no delay left ───────────────────> failed
    (a worker that dies mid-way leaves the row pending: due again when its lease ends)

Every change of status bumps the thread's ``version`` in the same statement, so cached
thread pages show it. Files are written atomically (temporary file, then rename) under
``<data_dir>/media/`` with random names; a file whose row is gone by the time it is
written is removed at once. Rows deleted later (post deleted, attachment replaced by an
Update) leave their file names in ``remote_media_trash`` (a trigger, in the deleting
transaction): the worker deletes those files, then the names.

The worker sleeps until ``NOTIFY vbg_media`` (rows inserted) or ``POLL_INTERVAL``
(retries that fell due), claims up to ``BATCH`` due rows and handles them concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncpg

from federation import policy
from federation.attachments import IMAGE_TYPES
from federation.errors import FetchError, FetchRefused
from federation.fetcher import Fetcher
from node import images, published, threads
from node.media import media_dir, new_name
from node.queues import QueueSpec
from node.settings import Settings

log = logging.getLogger(__name__)

MEDIA = QueueSpec(
    name="media",
    table="remote_media",
    channel="vbg_media",
    lease=timedelta(minutes=2),  # longer than a fetch (fetcher.Limits.media_deadline) and its cleaning
    retry_delays=(timedelta(minutes=1), timedelta(minutes=10), timedelta(hours=1), timedelta(hours=6)),
    poll_interval=30.0,
    batch=4,
)  # 5 attempts over about 7 hours
CHANNEL, LEASE, RETRY_DELAYS = MEDIA.channel, MEDIA.lease, MEDIA.retry_delays
BATCH, POLL_INTERVAL = MEDIA.batch, MEDIA.poll_interval
MAX_BYTES = 10 * 1024 * 1024  # what a remote image may weigh before cleaning
RETRY_STATUSES = frozenset({408, 429})
ERROR_MAX = 500

CLAIM = """
WITH due AS (
    SELECT m.id FROM remote_media m
    WHERE m.status = 'pending' AND m.next_attempt_at <= now()
    ORDER BY m.next_attempt_at, m.id
    LIMIT $1
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE remote_media m SET attempts = m.attempts + 1, next_attempt_at = now() + $2::interval, updated_at = now()
FROM due WHERE m.id = due.id
RETURNING m.id, m.remote_url, m.attempts, m.post_id
"""
# A final status for the claim ``attempts`` = $2 (a later claim, after the lease, wins):
# returns the post id, none when the row is gone (then the thread's version is bumped
# by node.threads, in the same transaction).
_FINISH = """
UPDATE remote_media SET {set}, updated_at = now()
WHERE id = $1 AND attempts = $2 AND status = 'pending'
RETURNING post_id
"""
FINISH = _FINISH.format(set="status = $3, error = $4")
STORE = _FINISH.format(
    set="status = 'stored', error = '', stored_name = $3, stored_type = $4, width = $5, height = $6, size = $7"
)
RETRY = """
UPDATE remote_media SET next_attempt_at = now() + $3::interval, error = $4, updated_at = now()
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
CLAIM_TRASH = "SELECT stored_name FROM remote_media_trash LIMIT $1 FOR UPDATE SKIP LOCKED"
DELETE_TRASH = "DELETE FROM remote_media_trash WHERE stored_name = ANY($1::text[])"


@dataclass(frozen=True)
class Claim:
    id: int
    url: str
    attempts: int
    author_domain: str | None


@dataclass(frozen=True)
class MediaStep:
    """What an attempt leads to: a final status, or ``pending`` again after ``delay``."""

    status: str
    error: str
    delay: timedelta | None = None


def after_fetch_error(exc: FetchError, attempts: int) -> MediaStep:
    """The next step after a failed fetch (attempt number ``attempts``)."""
    if isinstance(exc, FetchRefused):
        return MediaStep("refused", exc.reason)
    status = exc.remote_status
    if status is not None and 400 <= status < 500 and status not in RETRY_STATUSES:
        return MediaStep("failed", exc.reason)
    if attempts <= len(RETRY_DELAYS):
        return MediaStep("pending", exc.reason, RETRY_DELAYS[attempts - 1])
    return MediaStep("failed", exc.reason)


# ---------------------------------------------------------------- one row


@dataclass
class MediaContext:
    pool: asyncpg.Pool
    settings: Settings
    fetcher: Fetcher
    # One image decoded at a time: a batch's fetches overlap, but a decoded image may
    # take ~130 MB (node.images.MAX_PIXELS) and decoding is CPU-bound anyway.
    cleaning: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    @property
    def directory(self) -> Path:
        return media_dir(self.settings)

    async def media_allowed(self, domain: str) -> bool:
        """May media be fetched from ``domain`` (or be kept for an author of it)?"""
        decision = await policy.decision(self.pool, domain, own_domain=self.settings.domain)
        return decision.allowed_outbound and not decision.reject_media


async def _policy_refusal(ctx: MediaContext, claim: Claim) -> str | None:
    try:
        url_domain = policy.domain_of_url(claim.url)
    except policy.InvalidDomain:
        return "invalid media URL"
    for domain in (url_domain, claim.author_domain):
        if domain is not None and not await ctx.media_allowed(domain):
            return f"media refused by instance policy: {domain}"
    return None


async def handle(ctx: MediaContext, claim: Claim) -> str:
    """Fetch, clean and store one claimed row; returns its new status."""
    refusal = await _policy_refusal(ctx, claim)
    if refusal is not None:
        return await _finish(ctx, claim, MediaStep("refused", refusal))
    try:
        fetched = await ctx.fetcher.fetch_media(
            claim.url, IMAGE_TYPES, MAX_BYTES, domain_ok=ctx.media_allowed
        )
        async with ctx.cleaning:
            image = await asyncio.to_thread(images.clean, fetched.body)
    except FetchError as exc:
        return await _finish(ctx, claim, after_fetch_error(exc, claim.attempts))
    except images.ImageRefused as exc:
        return await _finish(ctx, claim, MediaStep("refused", str(exc)))
    return await _store(ctx, claim, image)


async def _finish(ctx: MediaContext, claim: Claim, step: MediaStep) -> str:
    error = step.error[:ERROR_MAX]
    if step.delay is not None:
        await ctx.pool.execute(RETRY, claim.id, claim.attempts, step.delay, error)
    else:
        await _finished(ctx.pool, FINISH, claim.id, claim.attempts, step.status, error)
    log.info("remote media %d: %s (%s)", claim.id, step.status, error)
    return step.status


async def _finished(pool: asyncpg.Pool, statement: str, *args: object) -> int | None:
    """Run FINISH or STORE and bump the post's thread version, in one transaction; the
    thread id, None when the row is gone."""
    async with pool.acquire() as conn, conn.transaction():
        post_id = await conn.fetchval(statement, *args)
        return None if post_id is None else await threads.bump_version_of_post(conn, post_id)


async def _store(ctx: MediaContext, claim: Claim, image: images.CleanImage) -> str:
    name = new_name(image.extension)
    path = ctx.directory / name
    await asyncio.to_thread(write_atomically, path, image.data)
    thread_id = await _finished(
        ctx.pool,
        STORE,
        claim.id,
        claim.attempts,
        name,
        image.media_type,
        image.width,
        image.height,
        len(image.data),
    )
    if thread_id is None:  # deleted or claimed again meanwhile: the file belongs to nobody
        path.unlink(missing_ok=True)
        return "gone"
    return "stored"


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` at ``path``, whole or not at all (a temporary file renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


# ---------------------------------------------------------------- batches


async def empty_trash(pool: asyncpg.Pool, directory: Path, limit: int = 100) -> int:
    """Delete the files of removed rows, then their names; returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        names = [r["stored_name"] for r in await conn.fetch(CLAIM_TRASH, limit)]
        for name in names:
            (directory / name).unlink(missing_ok=True)
        if names:
            await conn.execute(DELETE_TRASH, names)
    return len(names)


async def process_due(pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher, limit: int = BATCH) -> int:
    """Empty the trash, then claim up to ``limit`` due rows and handle them
    concurrently; returns how many rows and files were handled."""
    ctx = MediaContext(pool, settings, fetcher)
    removed = await empty_trash(pool, ctx.directory)
    rows = await pool.fetch(CLAIM, limit, LEASE)
    domains = await published.author_domains(pool, [r["post_id"] for r in rows]) if rows else {}
    claims = [Claim(r["id"], r["remote_url"], r["attempts"], domains.get(r["post_id"])) for r in rows]
    results = await asyncio.gather(*(handle(ctx, c) for c in claims), return_exceptions=True)
    for claim, result in zip(claims, results, strict=True):
        if isinstance(result, BaseException):  # the lease brings the row back later
            log.error("remote media %d: %r", claim.id, result, exc_info=result)
    return removed + len(claims)
