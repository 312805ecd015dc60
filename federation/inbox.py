"""The inboxes (shared ``/inbox`` and per actor): verify, validate, store, answer 202.

Nothing slow happens here (style rule 1); a worker runs the handlers
(``federation.inbox_worker``). Every step refuses with a status and stores nothing::

    size (Content-Length, then the bytes read) ─────────── 413
    Content-Type JSON-ish ─────────────────────────────── 415
    JSON object ───────────────────────────────────────── 400
    Signature header: draft-cavage or RFC 9421 ─────────── 401
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.requests import ClientDisconnect, Request
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from federation import (
    access,
    actors,
    policy,
    private_messages,
    refusals,
    signatures,
    synchronization,
    urls,
    validation,
)
from federation.app_state import federation_of
from federation.errors import FetchError, SignatureError, ValidationError
from federation.handlers.base import foreign_id, ref
from node import accounts, communities, metrics
from node.errors import AppError, Forbidden, NotFound, PayloadTooLarge
from node.settings import Settings
from node.web.headers import NEGOTIATED_PREFIXES, STATIC_HEADERS
from node.web.requests import pool_of, settings_of

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
JSON_MEDIA_TYPES = frozenset({"application/activity+json", "application/ld+json", "application/json"})


class UnsupportedMediaType(AppError):
    status = 415
    default_message = "Type de contenu non pris en charge : ActivityStreams JSON attendu."


# -- endpoints --------------------------------------------------------------------------


async def shared_inbox(request: Request) -> str:
    return ""


async def person_inbox(request: Request) -> str:
    username = request.path_params["username"]
    async with pool_of(request).acquire() as conn:
        if await accounts.approved_member(conn, username) is None:
            raise NotFound()
    return urls.person(settings_of(request), username)


async def group_inbox(request: Request) -> str:
    async with pool_of(request).acquire() as conn:
        community = await communities.find_federated(conn, request.path_params["name"])
    if community is None:
        raise NotFound()
    return urls.group(settings_of(request), community["name"])


async def instance_inbox(request: Request) -> str:
    return urls.instance_actor(settings_of(request))


Recipient = Callable[[Request], Awaitable[str]]


class Inbox:
    """One inbox as a bare ASGI endpoint: the pipeline of the module's docstring, then
    a prepared 202. Being an ASGI app rather than a view function, it skips Starlette's
    per-request Request/Response wrapping (the busiest route of a federated node); a
    refusal is still an AppError, turned into its answer by the app's exception handlers.
    ``recipient`` names the local actor whose inbox it is ('' for the shared inbox)."""

    csrf_exempt = True  # signed requests, never a browser form

    def __init__(self, recipient: Recipient) -> None:
        self.recipient = recipient

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            recipient = await self.recipient(request)
            await accept(request, recipient=recipient)
        except AppError as exc:
            metrics.count_inbox("refused", f"{exc.status} {type(exc).__name__}")
            raise
        metrics.count_inbox("accepted")
        negotiated = scope["path"].startswith(NEGOTIATED_PREFIXES)
        await send(ACCEPTED_START_VARY if negotiated else ACCEPTED_START)
        await send(ACCEPTED_BODY)


# The 202 with the headers SecurityHeadersMiddleware would add (it leaves them as they
# are; the app answers inboxes without it: node.web.app.NodeApp).
ACCEPTED_START: Message = {
    "type": "http.response.start",
    "status": 202,
    "headers": [
        (b"content-length", b"0"),
        *((k.encode(), v.encode()) for k, v in STATIC_HEADERS.items()),
        (b"cache-control", b"private, no-store"),
    ],
}
# … and on a URL that is also an HTML page (/u/…/inbox, /c/…/inbox)
ACCEPTED_START_VARY: Message = {
    **ACCEPTED_START,
    "headers": [*ACCEPTED_START["headers"], (b"vary", b"Accept")],
}
ACCEPTED_BODY: Message = {"type": "http.response.body", "body": b""}

routes = [
    Route("/inbox", Inbox(shared_inbox), methods=["POST"]),
    Route("/u/{username}/inbox", Inbox(person_inbox), methods=["POST"]),
    Route("/c/{name}/inbox", Inbox(group_inbox), methods=["POST"]),
    Route("/actor/inbox", Inbox(instance_inbox), methods=["POST"]),
]


# -- the pipeline -----------------------------------------------------------------------


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers, names in lower case, read once (a repeated header: its
    last value, for every check and for the signed string alike)."""
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


async def accept(request: Request, *, recipient: str) -> None:
    """Verify and store one incoming activity; returns once stored (or already
    stored, or dropped as the docstring says), else raises its refusal."""
    writer = _state(request).writer
    writer.verifying += 1
    try:
        item = await _verified(request, recipient)
    finally:
        writer.done_verifying()
    if item is not None:
        await writer.store(item)


async def _verified(request: Request, recipient: str) -> Incoming | None:
    """The activity of ``request``, verified and validated, ready to store; None when
    it is dropped as the module's docstring says; else its refusal."""
    headers = request_headers(request.scope)
    _check_content_type(headers)
    body = await read_body(request.receive, headers)
    doc = parse_json(body)
    params = signatures.parse(headers)
    settings = settings_of(request)
    pool = pool_of(request)
    state = _state(request)
    domain = _key_domain(params.key_id)
    try:
        await state.gate.check(pool, domain)
    except SignatureError:
        # A Follow from a server the allowlist leaves out gets a Reject, once verified
        # (federation.refusals; a suspended one gets nothing): after this 403.
        refusals.answer_later(request, doc, body, params, domain)
        raise
    try:
        signed = Signed(request.scope, headers, body, params, settings)
        actor = await _signer(request, pool, state.gate, signed, doc, domain)
        if actor is None:
            return None
        check_actor(doc, actor.uri)
        if validation.canonicalise(doc):
            # A type array or an inReplyTo list/Link/object: stored in the one shape
            # handlers read (the signature was checked on the body as received).
            body = json.dumps(doc, ensure_ascii=False).encode()
        kind = _validate(doc)
        if kind is None:
            await state.gate.confirm(pool, domain)
            return None
    except AppError:
        # Refused on a policy read from the process's cache: a blocked domain is told
        # 403 whatever else is wrong, as when the policy is read on every request.
        await state.gate.confirm(pool, domain)
        raise
    activity_id = ref(doc)
    if activity_id is None:
        raise ValidationError("activity without id", message="Activité sans identifiant.")
    if kind == "Create" and private_messages.is_direct(settings, doc):
        # A private message waits for the worker sealed, never readable in inbox_items.
        doc = private_messages.seal_document(settings, doc)
        body = json.dumps(doc).encode("utf-8")
    sync = synchronization.received_header(headers, params.headers)
    return Incoming(activity_id, kind, actor.uri, recipient, doc, body, domain, sync)


def _key_domain(key_id: str) -> str:
    domain = _key_domains.get(key_id)
    if domain is None:
        domain = policy.domain_of_url(key_id)
        if not domain:
            raise SignatureError.blocked("?")
        if len(_key_domains) >= SIGNER_CACHE_MAX:
            _key_domains.clear()
        _key_domains[key_id] = domain
    return domain


_key_domains: dict[str, str] = {}  # a pure function of the key id, cached


async def _signer(
    request: Request, pool: asyncpg.Pool, gate: PolicyGate, signed: Signed, doc: dict[str, Any], domain: str
) -> actors.Actor | None:
    """The actor whose key signed the request (SignatureError otherwise); None when the
    activity is to be dropped unseen (an unknown actor deleting itself).

    The usual case costs no database round trip: a key cached in this process that
    verifies. Anything else first re-reads the policy (403 before any key fetch)."""
    key_id = signed.params.key_id
    cached = _cached_signer(key_id)
    if cached is not None and signed.verifies(cached):
        return cached
    await gate.confirm(pool, domain)
    if cached is None:
        async with pool.acquire() as conn:
            cached = await stored_signer(conn, key_id)
        if cached is None and _deletes_itself(doc):
            return None
        if cached is not None and signed.verifies(cached):
            return cached
    actor = await fetched_signer(request, pool, key_id, refresh=cached is not None)
    signed.verify(actor)
    return actor


def _check_content_type(headers: dict[str, str]) -> None:
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType()


async def read_body(receive: Receive, headers: dict[str, str], limit: int = MAX_BODY) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed ``limit``."""
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: thousands of nested arrays or objects (the decoder recurses)
        raise ValidationError("malformed JSON", message="JSON illisible.") from exc
    if not isinstance(doc, dict):
        raise ValidationError("JSON body is not an object", message="Un objet JSON est attendu.")
    return doc


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


def _cached_signer(key_id: str) -> actors.Actor | None:
    hit = _signers.get(key_id)
    return hit[1] if hit is not None and hit[0] > time.monotonic() else None


async def stored_signer(conn: asyncpg.Connection, key_id: str) -> actors.Actor | None:
    """The remote actor owning ``key_id`` if we already have its key."""
    row = await conn.fetchrow(actors.SELECT_BY_KEY_ID, key_id)
    if row is None or row["local"]:
        return None
    return _remember_signer(key_id, actors.Actor.from_row(row))


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
    parts = federation_of(request)
    if parts.key_fetch_slots is None:
        parts.key_fetch_slots = asyncio.Semaphore(KEY_FETCH_SLOTS)
    return parts.key_fetch_slots


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
        self,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
        params: signatures.SignatureParams,
        settings: Settings,
    ) -> None:
        self.scope = scope
        self.method, self.headers, self.body, self.params = scope["method"], headers, body, params
        self.settings = settings
        self.path = signatures.path_with_query(
            scope.get("raw_path") or scope["path"].encode("latin-1"), scope.get("query_string", b"")
        )

    def verify(self, actor: actors.Actor) -> None:
        """SignatureError (401) unless ``actor``'s key signed this request as docs/architecture.md §4 says."""
        if not actor.public_key_pem:
            raise SignatureError("signer without public key")
        signatures.verify_request(
            self.method,
            self.path,
            self.headers,
            self.body,
            self.params,
            signatures.load_public_key(actor.public_key_pem),
            expected_host=self.settings.domain,
            origin=self.settings.base_url,
            header_lines=(
                signatures.header_lines(self.scope["headers"]) if self.params.scheme == "rfc9421" else None
            ),
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


# -- storing: the policy gate and the group-committing writer ---------------------------


DECISIONS_MAX = 10_000


class PolicyGate:
    """The instance policy as this process last read it, with its version token.

    Deciding costs no round trip; the version is checked where it matters: by the
    INSERT that stores an activity (nothing is stored under a policy that changed
    since), and by :meth:`confirm` before any key fetch or refusal."""

    def __init__(self, own_domain: str) -> None:
        self.own_domain = own_domain
        self.version: str | None = None
        self.policy: policy.Policy | None = None
        self._allowed: dict[str, bool] = {}  # decisions under this version

    def allows(self, domain: str) -> bool:
        allowed = self._allowed.get(domain)
        if allowed is None:
            assert self.policy is not None
            allowed = policy.decide(self.policy, domain, self.own_domain).allowed_inbound
            if len(self._allowed) >= DECISIONS_MAX:
                self._allowed.clear()
            self._allowed[domain] = allowed
        return allowed

    async def check(self, pool: asyncpg.Pool, domain: str) -> None:
        """403 if the policy refuses ``domain``. An allowance read from the cache is
        trusted (the storing INSERT re-checks the version); a refusal is confirmed on
        the policy read now, so a domain allowed a moment ago is not turned away."""
        if self.policy is None or not self.allows(domain):
            await self.confirm(pool, domain)

    async def confirm(self, pool: asyncpg.Pool, domain: str) -> None:
        """403 if the policy, read now, refuses ``domain``."""
        async with pool.acquire() as conn:
            await self.reload(conn)
        if not self.allows(domain):
            raise SignatureError.blocked(domain)

    async def reload(self, conn: asyncpg.Connection) -> None:
        # The version first: if the policy changes in between, the next INSERT sees a
        # newer version than ours and reloads again (never the reverse).
        version = await conn.fetchval(policy.SELECT_VERSION) or ""
        self.policy = await policy.current_policy(conn)
        if version != self.version:
            self._allowed = {}
        self.version = version


@dataclass(frozen=True)
class Incoming:
    """A verified, validated activity waiting for its INSERT."""

    activity_id: str
    kind: str
    actor_uri: str
    recipient: str
    document: dict[str, Any]
    body: bytes
    domain: str  # the signing key's, for the policy
    sync: str | None = None  # a signed Collection-Synchronization header (FEP-8fcf), as received

    def text(self) -> str | None:
        """The JSON text to store: the body as received when it is UTF-8 (PostgreSQL
        parses it again; keys and values are those validated), else None."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return None


# One statement for a whole batch: stored only if the policy version is the one the
# batch was decided under; the version read is returned so that a stale batch is
# decided again. NOTIFY once for the batch.
INSERT_ITEMS = """
WITH current AS (
    SELECT coalesce((SELECT value #>> '{}' FROM node_settings WHERE key = 'policy_version'), '') AS version
), inserted AS (
    INSERT INTO inbox_items (activity_id, activity_type, actor_uri, recipient, document, sync_header)
    SELECT i.activity_id, i.kind, i.actor_uri, i.recipient, i.document::jsonb, i.sync
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $7::text[])
        AS i (activity_id, kind, actor_uri, recipient, document, sync)
    WHERE (SELECT version FROM current) = $6
    ON CONFLICT (activity_id) DO NOTHING
    RETURNING 1
)
SELECT version, (SELECT count(*) FROM inserted) AS stored,
       CASE WHEN EXISTS (SELECT FROM inserted) THEN pg_notify('vbg_inbox', '') END AS notified
FROM current
"""
INSERT_ITEM = """
WITH inserted AS (
    INSERT INTO inbox_items (activity_id, activity_type, actor_uri, recipient, document, sync_header)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (activity_id) DO NOTHING
    RETURNING id
)
SELECT id, pg_notify('vbg_inbox', '') FROM inserted
"""


# Before each batch, unless GATHER_UNTIL items already wait or no other request of the
# process is being verified: the requests being verified join the batch, for at most
# GATHER_FOR (a COMMIT, its WAL flush and its round trip cost more than the rows).
# Measured with 16 senders and two web processes (phase B of bench/inbox.py, both
# versions served side by side on one PostgreSQL, 8 alternating rounds of 2,000
# activities, twice): waiting up to 3 ms for the requests on their way, instead of
# sleeping 1 ms in any case, took web + PostgreSQL from ~395 to ~350 µs of CPU per
# accepted activity (2 ms: ~370), p99 within its usual spread; a lone request no
# longer waits at all.
GATHER_FOR = 0.003  # seconds
GATHER_UNTIL = 16


class Writer:
    """Group commit: the activities of concurrent requests go into ``inbox_items`` with
    one statement (one round trip, one COMMIT); each request gets its answer only once
    that COMMIT is done. One batch at a time: what arrives meanwhile is the next batch.
    A batch first waits for the requests being verified (:attr:`verifying`, counted by
    :func:`accept`), until the last of them is stored or refused, GATHER_UNTIL items
    wait, or GATHER_FOR has passed.

    A batch the database refuses as data (a JSON text PostgreSQL does not take, such as
    ``\\u0000``) is stored again item by item, so one bad activity fails alone (400)."""

    def __init__(self, pool: asyncpg.Pool, gate: PolicyGate) -> None:
        self.pool, self.gate = pool, gate
        self.verifying = 0  # requests of this process between arrival and store()
        self._queue: list[tuple[Incoming, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._gathering: asyncio.Future[None] | None = None

    def done_verifying(self) -> None:
        """One request less on its way to :meth:`store` (stored next, or refused)."""
        self.verifying -= 1
        if self.verifying == 0:
            self._stop_gathering()

    def _stop_gathering(self) -> None:
        if self._gathering is not None and not self._gathering.done():
            self._gathering.set_result(None)

    async def store(self, item: Incoming) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if len(self._queue) >= GATHER_UNTIL:
            self._stop_gathering()
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        await future

    async def _gather(self) -> None:
        """Until the requests being verified are stored or refused (GATHER_UNTIL, GATHER_FOR)."""
        loop = asyncio.get_running_loop()
        self._gathering = loop.create_future()
        timer = loop.call_later(GATHER_FOR, self._stop_gathering)
        try:
            await self._gathering
        finally:
            timer.cancel()
            self._gathering = None

    async def _drain(self) -> None:
        try:
            while self._queue:
                if self.verifying and len(self._queue) < GATHER_UNTIL:
                    await self._gather()
                batch, self._queue = self._queue, []
                try:
                    async with self.pool.acquire() as conn:
                        await self._store_batch(conn, batch)
                except Exception as exc:  # every waiting request gets the failure
                    for _item, future in batch:
                        _settle(future, exc)
        finally:
            self._task = None

    async def _store_batch(
        self, conn: asyncpg.Connection, batch: list[tuple[Incoming, asyncio.Future[None]]]
    ) -> None:
        while batch:
            if self.gate.version is None:
                await self.gate.reload(conn)
            texts = [item.text() for item, _ in batch]
            if any(t is None for t in texts):
                return await self._store_each(conn, batch)
            items = [item for item, _ in batch]
            try:
                row = await conn.fetchrow(
                    INSERT_ITEMS,
                    [i.activity_id for i in items],
                    [i.kind for i in items],
                    [i.actor_uri for i in items],
                    [i.recipient for i in items],
                    texts,
                    self.gate.version,
                    [i.sync for i in items],
                )
            except asyncpg.DataError:
                return await self._store_each(conn, batch)
            if row["version"] == self.gate.version:
                for _, future in batch:
                    _settle(future)
                return None
            # The policy changed since these were decided: decide them again.
            await self.gate.reload(conn)
            kept = []
            for item, future in batch:
                if self.gate.allows(item.domain):
                    kept.append((item, future))
                else:
                    _settle(future, SignatureError.blocked(item.domain))
            batch = kept
        return None

    async def _store_each(
        self, conn: asyncpg.Connection, batch: list[tuple[Incoming, asyncio.Future[None]]]
    ) -> None:
        """One statement per item, the document encoded by the connection's codec (the fallback)."""
        await self.gate.reload(conn)
        for item, future in batch:
            if not self.gate.allows(item.domain):
                _settle(future, SignatureError.blocked(item.domain))
                continue
            try:
                await conn.fetchrow(
                    INSERT_ITEM,
                    item.activity_id,
                    item.kind,
                    item.actor_uri,
                    item.recipient,
                    item.document,
                    item.sync,
                )
            except asyncpg.DataError as exc:
                refused = ValidationError(
                    f"document refused by the database: {exc}", message="JSON illisible."
                )
                _settle(future, refused)
            else:
                _settle(future)


def _settle(future: asyncio.Future[None], error: BaseException | None = None) -> None:
    """Answer a waiting request (unless it went away: its client disconnected)."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


@dataclass
class InboxState:
    gate: PolicyGate
    writer: Writer


def _state(request: Request) -> InboxState:
    """This app's policy gate and writer (created on first use)."""
    parts = federation_of(request)
    if parts.inbox is None:
        gate = PolicyGate(settings_of(request).domain)
        parts.inbox = InboxState(gate, Writer(pool_of(request), gate))
    return parts.inbox
