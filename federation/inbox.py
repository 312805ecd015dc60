"""The inboxes (shared ``/inbox`` and per actor): verify, validate, store, answer 202.

Nothing slow happens here (style rule 1); a worker runs the handlers
(``federation.processing``). Every step refuses with a status and stores nothing::

    size (Content-Length, then the bytes read) ─────────── 413
    Content-Type JSON-ish ─────────────────────────────── 415
    JSON object ───────────────────────────────────────── 400
    Signature header draft-cavage (RFC 9421 alone: 401) ── 401
    keyId's domain allowed by the instance policy ─────── 403 (before any key fetch)
    signer's key (cached, else fetched, at most
      KEY_FETCH_SLOTS at once; refetched once when it
      does not verify: keys rotate) ──────────────────── 401
    Date window, Digest, signed headers, RSA ──────────── 401
    body ``actor`` is the key's owner ─────────────────── 401
    ids created/updated/deleted on the actor's host ───── 403
    JSON Schema (unknown verb: 202, dropped) ──────────── 400
    INSERT inbox_items (same activity id again: no row) ─ 202
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from federation import access, actors, policy, signatures, urls, validation
from federation.errors import FetchError, SignatureError, ValidationError
from federation.handlers.base import foreign_id, ref
from node.errors import AppError, Forbidden, NotFound, PayloadTooLarge
from node.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
JSON_MEDIA_TYPES = frozenset({"application/activity+json", "application/ld+json", "application/json"})


class UnsupportedMediaType(AppError):
    status = 415
    default_message = "Type de contenu non pris en charge : ActivityStreams JSON attendu."


INSERT_ITEM = """
WITH inserted AS (
    INSERT INTO inbox_items (activity_id, activity_type, actor_uri, recipient, document)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (activity_id) DO NOTHING
    RETURNING id
)
SELECT id, pg_notify('vbg_inbox', '') FROM inserted
"""
SELECT_MEMBER = "SELECT 1 FROM users WHERE lower(username) = lower($1) AND status = 'approved'"
SELECT_FEDERATED_COMMUNITY = (
    "SELECT name FROM communities WHERE lower(name) = lower($1) AND visibility <> 'local'"
)


# -- endpoints --------------------------------------------------------------------------


async def shared_inbox(request: Request) -> Response:
    return await receive(request, recipient="")


async def person_inbox(request: Request) -> Response:
    username = request.path_params["username"]
    async with request.app.state.pool.acquire() as conn:
        if await conn.fetchval(SELECT_MEMBER, username) is None:
            raise NotFound()
    return await receive(request, recipient=urls.person(_settings(request), username))


async def group_inbox(request: Request) -> Response:
    async with request.app.state.pool.acquire() as conn:
        name = await conn.fetchval(SELECT_FEDERATED_COMMUNITY, request.path_params["name"])
    if name is None:
        raise NotFound()
    return await receive(request, recipient=urls.group(_settings(request), name))


async def instance_inbox(request: Request) -> Response:
    return await receive(request, recipient=urls.instance_actor(_settings(request)))


for _endpoint in (shared_inbox, person_inbox, group_inbox, instance_inbox):
    _endpoint.csrf_exempt = True  # type: ignore[attr-defined]  # signed requests, never a browser form

routes = [
    Route("/inbox", shared_inbox, methods=["POST"]),
    Route("/u/{username}/inbox", person_inbox, methods=["POST"]),
    Route("/c/{name}/inbox", group_inbox, methods=["POST"]),
    Route("/actor/inbox", instance_inbox, methods=["POST"]),
]


# -- the pipeline -----------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def receive(request: Request, *, recipient: str) -> Response:
    """Verify and store one incoming activity; 202 when stored (or already stored)."""
    _check_content_type(request)
    body = await read_body(request)
    doc = parse_json(body)
    params = signatures.parse(request.headers)
    settings = _settings(request)
    pool: asyncpg.Pool = request.app.state.pool
    signed = Signed(request, body, params, settings)
    async with pool.acquire() as conn:
        await check_policy(conn, settings, params.key_id)
        cached = await cached_signer(conn, params.key_id)
        if cached is None and _deletes_itself(doc):
            return _accepted()
        if cached is not None and signed.verifies(cached):
            # The usual case, on one connection: known key, good signature.
            return await _accept(conn, doc, cached, recipient)
    actor = await fetched_signer(request, pool, params.key_id, refresh=cached is not None)
    signed.verify(actor)
    async with pool.acquire() as conn:
        return await _accept(conn, doc, actor, recipient)


async def _accept(
    conn: asyncpg.Connection, doc: dict[str, Any], actor: actors.Actor, recipient: str
) -> Response:
    check_actor(doc, actor.uri)
    kind = _validate(doc)
    if kind is not None:
        await store(conn, doc, kind, actor.uri, recipient)
    return _accepted()


def _accepted() -> Response:
    return Response(status_code=202)


def _check_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType()


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed ``limit``."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError("malformed JSON", message="JSON illisible.") from exc
    if not isinstance(doc, dict):
        raise ValidationError("JSON body is not an object", message="Un objet JSON est attendu.")
    return doc


async def check_policy(conn: asyncpg.Connection, settings: Settings, key_id: str) -> None:
    """Refuse a key from a suspended or (allowlist mode) unlisted domain: 403, no fetch."""
    domain = policy.domain_of_url(key_id)
    if not domain or not (await policy.decision(conn, domain, own_domain=settings.domain)).allowed_inbound:
        raise SignatureError.blocked(domain or "?")


def _deletes_itself(doc: dict[str, Any]) -> bool:
    """An account deletion. From an actor we never knew there is nothing to delete, and
    its key is gone with it (the actor answers 410): drop it without fetching (as Mastodon)."""
    actor = ref(doc.get("actor"))
    return doc.get("type") == "Delete" and actor is not None and ref(doc.get("object")) == actor


# Known signers kept in-process for a few minutes: a busy sender then costs no lookup.
# A stale entry is harmless: a key that no longer verifies is refetched (keys rotate),
# and the instance policy is checked before, on every request.
SIGNER_CACHE_TTL = 300.0
SIGNER_CACHE_MAX = 10_000
_signers: dict[str, tuple[float, actors.Actor]] = {}


async def cached_signer(conn: asyncpg.Connection, key_id: str) -> actors.Actor | None:
    """The remote actor owning ``key_id`` if we already have its key."""
    now = time.monotonic()
    hit = _signers.get(key_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = await conn.fetchrow(actors.SELECT_BY_KEY_ID, key_id)
    if row is None or row["local"]:
        return None
    return _remember_signer(key_id, actors.Actor.from_row(row), now)


def _remember_signer(key_id: str, actor: actors.Actor, now: float | None = None) -> actors.Actor:
    if len(_signers) >= SIGNER_CACHE_MAX:
        _signers.clear()
    _signers[key_id] = ((now or time.monotonic()) + SIGNER_CACHE_TTL, actor)
    return actor


# Requests waiting on a key fetch each hold one pool connection, and the fetcher's signer
# needs one more: bounding them below the pool size keeps a burst of unknown senders from
# starving the pool (every connection held, every fetch waiting for one).
KEY_FETCH_SLOTS = 4


def _key_fetch_slots(request: Request) -> asyncio.Semaphore:
    state = request.app.state
    slots: asyncio.Semaphore | None = getattr(state, "inbox_key_fetch_slots", None)
    if slots is None:
        slots = state.inbox_key_fetch_slots = asyncio.Semaphore(KEY_FETCH_SLOTS)
    return slots


async def fetched_signer(request: Request, pool: asyncpg.Pool, key_id: str, *, refresh: bool) -> actors.Actor:
    """The signer's actor fetched (``refresh``: refetched, keys rotate) and cached."""
    fetcher = access.fetcher_of(request)
    async with _key_fetch_slots(request), pool.acquire() as conn:
        try:
            actor = await actors.by_key_id(conn, fetcher, key_id, refresh=refresh)
        except (FetchError, actors.ActorInvalid) as exc:
            raise SignatureError(f"signer key unavailable: {exc}") from exc
    if actor.local or not actor.public_key_pem:
        raise SignatureError("key of a local actor or without public key")
    return _remember_signer(key_id, actor)


class Signed:
    """The signature of one request, checked against a candidate signer's key."""

    def __init__(
        self, request: Request, body: bytes, params: signatures.SignatureParams, settings: Settings
    ) -> None:
        self.request, self.body, self.params, self.settings = request, body, params, settings
        self.path = signatures.path_with_query(
            request.scope.get("raw_path") or request.scope["path"].encode("latin-1"),
            request.scope.get("query_string", b""),
        )

    def verify(self, actor: actors.Actor) -> None:
        """SignatureError (401) unless ``actor``'s key signed this request as design §4 says."""
        if not actor.public_key_pem:
            raise SignatureError("signer without public key")
        signatures.verify_request(
            self.request.method,
            self.path,
            self.request.headers,
            self.body,
            self.params,
            signatures.load_public_key(actor.public_key_pem),
            expected_host=self.settings.domain,
        )

    def verifies(self, actor: actors.Actor) -> bool:
        try:
            self.verify(actor)
        except SignatureError:
            return False
        return True


def check_actor(doc: dict[str, Any], signer_uri: str) -> None:
    """The body speaks for the signer only, and touches only its own server's objects."""
    if ref(doc.get("actor")) != signer_uri:
        raise SignatureError("activity actor is not the signer")
    foreign = foreign_id(doc, signer_uri)
    if foreign is not None:
        raise Forbidden("Cet objet n'appartient pas au serveur de l'acteur.")


def _validate(doc: dict[str, Any]) -> str | None:
    """The activity's type, or None for a well-formed verb we do not handle (dropped)."""
    try:
        return validation.validate_incoming(doc)
    except validation.UnsupportedType:
        return None


async def store(
    conn: asyncpg.Connection, doc: dict[str, Any], kind: str, actor_uri: str, recipient: str
) -> bool:
    """Queue the activity for the worker; False if this activity id was already stored."""
    activity_id = ref(doc)
    if activity_id is None:
        raise ValidationError("activity without id", message="Activité sans identifiant.")
    row = await conn.fetchrow(INSERT_ITEM, activity_id, kind, actor_uri, recipient, doc)
    return row is not None
