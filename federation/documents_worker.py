"""The documents worker: files of remote documents fetched, checked, cleaned and stored.

The version rows are ``node.documents``' (their state machine is drawn there); this
worker is the network side of it::

    claim a pending version (SKIP LOCKED, leased)
      ├─ the file's or the author's domain: reject_media, suspended or not allowed ──> refused
      ├─ fetch_media: guarded fetcher, signed GET (members-only files are served to
      │  approved partners only), at most VBG_UPLOAD_MAX_MB, a document Content-Type
      │    FetchRefused (address, redirect, type, size) ────────────────────────────> refused
      │    4xx other than 408/429 ─────────────────────────────────────────────────> failed
      │    network error, deadline, 5xx, 408, 429 ─> pending after RETRY_DELAYS[n], then failed
      ├─ node.uploads.clean: the bytes decide the type (HTML, SVG … refused), metadata
      │  stripped again, images re-encoded ────────────────────────────────────────> refused
      └─ stored under <data_dir>/documents with a thumbnail ───────────────────────> stored

It also empties ``document_trash`` (files of deleted documents, whatever deleted them).
One file is fetched and cleaned at a time: a small node's memory holds one document.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg

from federation import policy
from federation.errors import FetchError, FetchRefused
from federation.fetcher import Fetcher
from node import documents, uploads
from node.errors import BadRequest
from node.queues import QueueSpec
from node.settings import Settings
from node.storage import storage_for

log = logging.getLogger(__name__)

DOCUMENTS = QueueSpec(
    name="documents",
    table="document_versions",
    channel="vbg_documents",
    lease=timedelta(minutes=5),
    retry_delays=(timedelta(minutes=1), timedelta(minutes=10), timedelta(hours=1), timedelta(hours=6)),
    poll_interval=30.0,
)
CHANNEL, LEASE, RETRY_DELAYS, POLL_INTERVAL = (
    DOCUMENTS.channel,
    DOCUMENTS.lease,
    DOCUMENTS.retry_delays,
    DOCUMENTS.poll_interval,
)
DEADLINE = 180.0  # seconds for one file: 25 MB over a slow link
RETRY_STATUSES = frozenset({408, 429})
ACCEPTED_TYPES = frozenset(
    {k.media_type for k in uploads.KINDS.values()}
    | {"application/octet-stream", "binary/octet-stream", "application/zip", "application/x-zip-compressed"}
)


async def _media_allowed(pool: asyncpg.Pool, settings: Settings, domain: str) -> bool:
    decision = await policy.decision(pool, domain, own_domain=settings.domain)
    return decision.allowed_outbound and not decision.reject_media


async def _policy_refusal(pool: asyncpg.Pool, settings: Settings, claim: documents.RemoteClaim) -> str | None:
    try:
        url_domain = policy.domain_of_url(claim.url)
    except policy.InvalidDomain:
        return "invalid file URL"
    for domain in (url_domain, claim.author_domain):
        if domain is not None and not await _media_allowed(pool, settings, domain):
            return f"refused by instance policy: {domain}"
    return None


def _write_temp(directory: Path, body: bytes) -> Path:
    path = directory / f"fetched-{secrets.token_urlsafe(16)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(body)
    return path


async def _clean_and_store(settings: Settings, body: bytes, name: str) -> documents.NewFile:
    directory = uploads.temp_dir(settings)
    received = await asyncio.to_thread(_write_temp, directory, body)
    try:
        clean = await uploads.clean_in_thread(received, directory)
    finally:
        received.unlink(missing_ok=True)
    store = storage_for(settings, "documents")
    try:
        thumb = await uploads.thumbnail_in_thread(clean.path, clean.kind.key)
        stored = await store.put_file(clean.path, clean.kind.extension)
    finally:
        clean.discard()
    thumb_name = await store.put(_once(thumb), "jpg") if thumb is not None else None
    return documents.NewFile(
        stored, clean.kind.media_type, clean.size, name, clean.text, clean.carried, thumb_name
    )


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def after_fetch_error(exc: FetchError, attempts: int) -> tuple[str, timedelta | None]:
    """(status, retry delay) after a failed fetch: the worker's transitions, in one place."""
    if isinstance(exc, FetchRefused):
        return "refused", None
    status = exc.remote_status
    if status is not None and 400 <= status < 500 and status not in RETRY_STATUSES:
        return "failed", None
    if attempts <= len(RETRY_DELAYS):
        return "pending", RETRY_DELAYS[attempts - 1]
    return "failed", None


async def handle(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher, claim: documents.RemoteClaim
) -> str:
    refusal = await _policy_refusal(pool, settings, claim)
    if refusal is not None:
        await documents.finish_remote(pool, claim, "refused", refusal)
        return "refused"

    async def domain_ok(domain: str) -> bool:
        return await _media_allowed(pool, settings, domain)

    try:
        fetched = await fetcher.fetch_media(
            claim.url, ACCEPTED_TYPES, settings.upload_max_bytes, domain_ok=domain_ok,
            accept="*/*", deadline=DEADLINE,
        )  # fmt: skip
        file = await _clean_and_store(settings, fetched.body, Path(claim.url).name[:200] or "document")
    except FetchError as exc:
        status, delay = after_fetch_error(exc, claim.attempts)
        await documents.finish_remote(pool, claim, status, exc.reason, delay)
        return status
    except BadRequest as exc:  # refused by node.uploads: not a document we accept
        await documents.finish_remote(pool, claim, "refused", exc.message)
        return "refused"
    if not await documents.store_remote(pool, claim, file):  # deleted meanwhile
        store = storage_for(settings, "documents")
        await store.delete(file.stored_name)
        if file.thumbnail_name:
            await store.delete(file.thumbnail_name)
        return "gone"
    return "stored"


async def process_due(pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher, limit: int = 2) -> int:
    """Drop drafts left unconfirmed, empty the trash, then fetch up to ``limit`` due
    files, one at a time."""
    await documents.purge_stale_drafts(pool)
    removed = await documents.empty_trash(pool, storage_for(settings, "documents"))
    claims = await documents.claim_remote(pool, limit, LEASE)
    for claim in claims:
        try:
            status = await handle(pool, settings, fetcher, claim)
            log.info("remote document version %d: %s", claim.version_id, status)
        except (OSError, asyncpg.PostgresError) as exc:  # the lease brings it back later
            log.error("remote document version %d: %r", claim.version_id, exc)
    return removed + len(claims)
