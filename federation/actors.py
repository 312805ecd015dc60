"""ActivityPub actors: ours (a member's ``Person``, a community's ``Group``, the
instance ``Application``) and remote ones cached from their documents.

Local actors get their row, and their key pair, on first need
(``ensure_local_actor``, ``instance_actor``). Remote actors are fetched through the
guarded fetcher and cached (``get_or_fetch``); a signature's ``keyId`` resolves to
its actor with ``by_key_id``, which checks the key really belongs to that actor::

    keyId ──(cached public_key_id?)──> actor row
      └─ fetch keyId (fragment stripped) ──> actor document ──> owner check ──> upsert
         or key document {owner, publicKeyPem} ──> fetch owner ──┘
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urldefrag, urlsplit

import asyncpg
from cryptography.hazmat.primitives.asymmetric import rsa

from federation import keys, remote_html, urls, validation
from federation.errors import SignatureError, ValidationError
from federation.policy import host_of
from node import accounts, communities, db
from node.errors import NotFound
from node.settings import Settings

ACTOR_TYPES = frozenset({"Person", "Group", "Application", "Service", "Organization"})
REFRESH_AFTER = timedelta(days=1)


class ObjectFetcher(Protocol):
    """What this module needs of the guarded fetcher (``federation.fetcher.Fetcher``)."""

    async def fetch_object(self, url: str) -> dict[str, Any]: ...


class ActorInvalid(ValidationError):
    """A remote actor or key document is unusable (not an actor, no inbox, a bad key…)."""


@dataclass(frozen=True)
class Actor:
    id: int
    uri: str
    kind: str
    local: bool
    username: str
    domain: str
    display_name: str
    summary_html: str
    url: str | None
    inbox: str | None
    shared_inbox: str | None
    outbox: str | None
    followers: str | None
    featured: str | None
    moderators: str | None
    public_key_id: str | None
    public_key_pem: str | None
    private_key_enc: bytes | None
    manually_approves_followers: bool
    user_id: int | None
    community_id: int | None
    fetched_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Actor:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    @property
    def delivery_inbox(self) -> str | None:
        """Where to deliver: the shared inbox when there is one."""
        return self.shared_inbox or self.inbox


# --- local actors ---------------------------------------------------------------

ACTOR_COLUMNS = """
id, uri, kind, local, username, domain, display_name, summary_html, url, inbox, shared_inbox, outbox,
followers, featured, moderators, public_key_id, public_key_pem, private_key_enc,
manually_approves_followers, user_id, community_id, fetched_at
"""
SELECT_BY_USER = f"SELECT {ACTOR_COLUMNS} FROM actors WHERE user_id = $1"
SELECT_BY_COMMUNITY = f"SELECT {ACTOR_COLUMNS} FROM actors WHERE community_id = $1"
SELECT_BY_URI = f"SELECT {ACTOR_COLUMNS} FROM actors WHERE uri = $1"
SELECT_BY_KEY_ID = f"SELECT {ACTOR_COLUMNS} FROM actors WHERE public_key_id = $1"
INSERT_LOCAL = f"""
INSERT INTO actors (uri, kind, local, user_id, community_id, username, domain, display_name, url,
                    inbox, shared_inbox, outbox, followers, featured, moderators, public_key_id,
                    public_key_pem, private_key_enc, manually_approves_followers)
VALUES ($1, $2, true, $3, $4, $5, $6, $7, $1, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT DO NOTHING
RETURNING {ACTOR_COLUMNS}
"""
SYNC_LOCAL = f"""
UPDATE actors SET display_name = $2, manually_approves_followers = $3
WHERE id = $1
RETURNING {ACTOR_COLUMNS}
"""


@dataclass(frozen=True)
class _LocalSpec:
    uri: str
    kind: str
    username: str
    display_name: str
    inbox: str
    outbox: str
    followers: str | None
    featured: str | None
    moderators: str | None
    manually_approves: bool


async def _spec(
    conn: asyncpg.Connection, settings: Settings, kind: str, user_id: int | None, community_id: int | None
) -> _LocalSpec:
    if kind == "Person" and user_id is not None and community_id is None:
        user = await accounts.member(conn, user_id)
        uri = urls.person(settings, user["username"])
        return _LocalSpec(
            uri, kind, user["username"], user["display_name"], f"{uri}/inbox", f"{uri}/outbox",
            f"{uri}/followers", None, None, False,
        )  # fmt: skip
    if kind == "Group" and community_id is not None and user_id is None:
        community = await communities.by_id(conn, community_id)
        if community is None or community.remote:
            raise NotFound()  # a community of another server has its Group there, never here
        uri = urls.group(settings, community.name)
        return _LocalSpec(
            uri, kind, community.name, community.title, f"{uri}/inbox", f"{uri}/outbox",
            f"{uri}/followers", f"{uri}/featured", f"{uri}/moderators",
            community.visibility == "members",
        )  # fmt: skip
    if kind == "Application" and user_id is None and community_id is None:
        uri = urls.instance_actor(settings)
        return _LocalSpec(
            uri, kind, settings.domain, settings.node_name, f"{uri}/inbox", f"{uri}/outbox",
            None, None, None, True,
        )  # fmt: skip
    raise ValueError(f"bad local actor request: {kind} user={user_id} community={community_id}")


async def _existing_local(
    conn: asyncpg.Connection, settings: Settings, kind: str, user_id: int | None, community_id: int | None
) -> asyncpg.Record | None:
    if user_id is not None:
        return await conn.fetchrow(SELECT_BY_USER, user_id)
    if community_id is not None:
        return await conn.fetchrow(SELECT_BY_COMMUNITY, community_id)
    return await conn.fetchrow(SELECT_BY_URI, urls.instance_actor(settings))


async def ensure_local_actor(
    conn: asyncpg.Connection,
    settings: Settings,
    kind: str,
    *,
    user_id: int | None = None,
    community_id: int | None = None,
) -> Actor:
    """Our actor for a member (``Person``), a community (``Group``) or the node
    (``Application``), created with a fresh key pair on first need."""
    row = await _existing_local(conn, settings, kind, user_id, community_id)
    spec = await _spec(conn, settings, kind, user_id, community_id)
    if row is None:
        # Key generation is slow (~50 ms) and needs no lock; a concurrent creator may
        # win the insert, in which case its row (and key) is the one kept.
        pair = keys.generate(settings, spec.uri)
        row = await conn.fetchrow(
            INSERT_LOCAL, spec.uri, spec.kind, user_id, community_id, spec.username, settings.domain,
            spec.display_name, spec.inbox, urls.shared_inbox(settings), spec.outbox, spec.followers,
            spec.featured, spec.moderators, urls.key_id(spec.uri), pair.public_pem, pair.private_key_enc,
            spec.manually_approves,
        )  # fmt: skip
        if row is None:
            row = await _existing_local(conn, settings, kind, user_id, community_id)
            assert row is not None, "actor insert conflicted but no row exists"
    elif (row["display_name"], row["manually_approves_followers"]) != (
        spec.display_name,
        spec.manually_approves,
    ):
        row = await conn.fetchrow(SYNC_LOCAL, row["id"], spec.display_name, spec.manually_approves)
    return Actor.from_row(row)


async def instance_actor(conn: asyncpg.Connection, settings: Settings) -> Actor:
    """The node's ``Application`` actor (``/actor``): signs fetches and server-level activities."""
    return await ensure_local_actor(conn, settings, "Application")


@db.on_first_start
async def _instance_actor_at_start(conn: asyncpg.Connection, settings: Settings) -> None:
    """The instance actor exists before any process needs it (see ``node.db.FIRST_START``)."""
    await instance_actor(conn, settings)


def private_key(settings: Settings, actor: Actor) -> rsa.RSAPrivateKey:
    """The decrypted private key of one of our actors (cached in-process)."""
    if not actor.local or actor.private_key_enc is None:
        raise ValueError(f"{actor.uri} is not a local actor with a key")
    return keys.decrypt_private_key(settings, actor.uri, actor.private_key_enc)


async def local_signer(pool: asyncpg.Pool, settings: Settings) -> tuple[str, rsa.RSAPrivateKey]:
    """``(keyId, private key)`` of the instance actor: what the fetcher signs GETs with."""
    async with pool.acquire() as conn:
        actor = await instance_actor(conn, settings)
    assert actor.public_key_id is not None
    return actor.public_key_id, private_key(settings, actor)


def instance_signer(
    pool: asyncpg.Pool, settings: Settings
) -> Callable[[], Awaitable[tuple[str, rsa.RSAPrivateKey]]]:
    """The ``signer`` argument of ``federation.fetcher.Fetcher``: signs as the instance actor."""

    async def signer() -> tuple[str, rsa.RSAPrivateKey]:
        return await local_signer(pool, settings)

    return signer


# --- remote actors ---------------------------------------------------------------

UPSERT_REMOTE = f"""
INSERT INTO actors (uri, kind, local, username, domain, display_name, summary_html, url, inbox,
                    shared_inbox, outbox, followers, featured, moderators, public_key_id, public_key_pem,
                    manually_approves_followers, document, fetched_at)
VALUES ($1, $2, false, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, now())
ON CONFLICT (uri) DO UPDATE SET
    kind = EXCLUDED.kind, username = EXCLUDED.username, domain = EXCLUDED.domain,
    display_name = EXCLUDED.display_name, summary_html = EXCLUDED.summary_html, url = EXCLUDED.url,
    inbox = EXCLUDED.inbox, shared_inbox = EXCLUDED.shared_inbox, outbox = EXCLUDED.outbox,
    followers = EXCLUDED.followers, featured = EXCLUDED.featured, moderators = EXCLUDED.moderators,
    public_key_id = EXCLUDED.public_key_id, public_key_pem = EXCLUDED.public_key_pem,
    manually_approves_followers = EXCLUDED.manually_approves_followers,
    document = EXCLUDED.document, fetched_at = now()
WHERE NOT actors.local
RETURNING {ACTOR_COLUMNS}
"""
# Two processes storing the same new actor at once (two first requests from it) would
# race on the unique uri, key id and handle: each store takes these transaction locks
# first, always in this order (uri, key id, handle), so the second waits and updates.
LOCK_NAME = "SELECT pg_advisory_xact_lock(hashtextextended($1, 8))"
# A key id moves with its actor; if another (stale) row still claims it, release it first.
RELEASE_KEY_ID = "UPDATE actors SET public_key_id = NULL WHERE public_key_id = $1 AND uri <> $2 AND NOT local"
# Same for the (username, domain, kind) handle: an actor that moved leaves its old row behind.
RELEASE_HANDLE = """
UPDATE actors SET username = username || '~' || id
WHERE lower(username) = lower($1) AND domain = $2 AND kind = $3 AND uri <> $4 AND NOT local
"""


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _link(value: Any) -> str | None:
    """A URL property that may be a string, a Link object, or a list of either."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("href") or value.get("id")
    return _str(value)


def _pick_key(doc: dict[str, Any], wanted: str | None) -> dict[str, Any] | None:
    found = doc.get("publicKey")
    candidates: list[dict[str, Any]] = [
        k for k in (found if isinstance(found, list) else [found]) if isinstance(k, dict)
    ]
    for key in candidates:
        if wanted is not None and key.get("id") == wanted:
            return key
    return candidates[0] if candidates else None


@dataclass(frozen=True)
class _Parsed:
    uri: str
    kind: str
    username: str
    domain: str
    display_name: str
    summary_html: str
    url: str | None
    inbox: str
    shared_inbox: str | None
    outbox: str | None
    followers: str | None
    featured: str | None
    moderators: str | None
    key_id: str | None
    key_pem: str | None
    manually_approves: bool


def parse_actor(doc: dict[str, Any], uri: str, *, wanted_key: str | None = None) -> _Parsed:
    """Read the fields we keep from a remote actor document; refuse an unusable one."""
    if doc.get("id") != uri:
        raise ActorInvalid(f"actor id {doc.get('id')!r} is not {uri!r}")
    kind = doc.get("type")
    if kind not in ACTOR_TYPES:
        raise ActorInvalid(f"{uri} is not an actor (type {kind!r})")
    inbox = _str(doc.get("inbox"))
    if inbox is None:
        raise ActorInvalid(f"{uri} has no inbox")
    key = _pick_key(doc, wanted_key)
    key_id = key_pem = None
    if key is not None:
        key_id, key_pem = _str(key.get("id")), _str(key.get("publicKeyPem"))
        if key.get("owner", uri) != uri:
            raise SignatureError(f"key {key_id!r} is owned by {key.get('owner')!r}, not {uri!r}")
        if key_id is None or key_pem is None or host_of(key_id) != host_of(uri):
            raise ActorInvalid(f"unusable public key in {uri}")
        try:
            keys.load_public_key(key_pem)
        except ValueError as exc:
            raise ActorInvalid(f"public key of {uri} is not an RSA key") from exc
    endpoints: dict[str, Any] = doc["endpoints"] if isinstance(doc.get("endpoints"), dict) else {}
    path_tail = urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]
    moderators = _link(doc.get("moderators"))
    if kind == "Group" and moderators is None:
        moderators = _link(doc.get("attributedTo"))  # FEP-1b12 / Lemmy: attributedTo = moderators
    return _Parsed(
        uri=uri,
        kind=kind,
        username=(_str(doc.get("preferredUsername")) or path_tail)[:200],
        domain=host_of(uri),
        display_name=(_str(doc.get("name")) or "")[:200],
        summary_html=remote_html.sanitize(_str(doc.get("summary")) or "")[:20000],
        url=_link(doc.get("url")),
        inbox=inbox,
        shared_inbox=_str(endpoints.get("sharedInbox")),
        outbox=_str(doc.get("outbox")),
        followers=_str(doc.get("followers")),
        featured=_link(doc.get("featured")),
        moderators=moderators,
        key_id=key_id,
        key_pem=key_pem,
        manually_approves=doc.get("manuallyApprovesFollowers") is True,
    )


async def store_remote(
    conn: asyncpg.Connection, doc: dict[str, Any], uri: str, *, wanted_key: str | None = None
) -> Actor:
    """Validate, parse and upsert a remote actor document (already fetched from ``uri``)."""
    if host_of(uri) == "" or urlsplit(uri).scheme not in {"https", "http"}:
        raise ActorInvalid(f"bad actor URI {uri!r}")
    validation.validate_object(doc)
    p = parse_actor(doc, uri, wanted_key=wanted_key)
    async with conn.transaction():
        for name in (uri, p.key_id, f"{p.username.lower()}@{p.domain}/{p.kind}"):
            if name is not None:
                await conn.execute(LOCK_NAME, f"actor:{name}")
        if p.key_id is not None:
            await conn.execute(RELEASE_KEY_ID, p.key_id, uri)
        await conn.execute(RELEASE_HANDLE, p.username, p.domain, p.kind, uri)
        row = await conn.fetchrow(
            UPSERT_REMOTE, uri, p.kind, p.username, p.domain, p.display_name, p.summary_html, p.url,
            p.inbox, p.shared_inbox, p.outbox, p.followers, p.featured, p.moderators, p.key_id,
            p.key_pem, p.manually_approves, doc,
        )  # fmt: skip
    if row is None:
        raise ActorInvalid(f"{uri} is one of our own actors")
    return Actor.from_row(row)


def _fresh(actor: Actor) -> bool:
    if actor.local:
        return True
    return actor.fetched_at is not None and datetime.now(UTC) - actor.fetched_at < REFRESH_AFTER


async def get_cached(conn: asyncpg.Connection, uri: str) -> Actor | None:
    row = await conn.fetchrow(SELECT_BY_URI, uri)
    return Actor.from_row(row) if row else None


async def get_or_fetch(
    conn: asyncpg.Connection, fetcher: ObjectFetcher, uri: str, *, refresh: bool = False
) -> Actor:
    """The actor at ``uri``: from the cache when fresh, else fetched (signed) and cached.
    Our own actors are never fetched."""
    cached = await get_cached(conn, uri)
    if cached is not None and (cached.local or (not refresh and _fresh(cached))):
        return cached
    doc = await fetcher.fetch_object(uri)
    return await store_remote(conn, doc, uri)


async def by_key_id(
    conn: asyncpg.Connection, fetcher: ObjectFetcher, key_id: str, *, refresh: bool = False
) -> Actor:
    """The actor owning ``key_id`` (a signature's keyId), with its current public key.

    ``refresh=True`` refetches once, for a key that fails to verify (keys rotate).
    Raises ``SignatureError`` when the key's owner is not the actor or not on its host,
    ``ActorInvalid`` for an unusable document, ``FetchError`` when it cannot be fetched."""
    if not refresh:
        row = await conn.fetchrow(SELECT_BY_KEY_ID, key_id)
        if row is not None:
            return Actor.from_row(row)
    actor_uri, fragment = urldefrag(key_id)
    if fragment:
        doc = await fetcher.fetch_object(actor_uri)
    else:
        # A key without fragment is its own document: either a key {owner, publicKeyPem}
        # (GoToSocial, Mastodon's /users/x#main-key served alone) or the actor itself.
        key_doc = await fetcher.fetch_object(key_id)
        actor_uri = _owner_of(key_doc, key_id)
        doc = key_doc if actor_uri == key_id else await fetcher.fetch_object(actor_uri)
    if host_of(key_id) != host_of(actor_uri):
        raise SignatureError(f"key {key_id!r} is not on the host of {actor_uri!r}")
    actor = await store_remote(conn, doc, actor_uri, wanted_key=key_id)
    if actor.public_key_id != key_id:
        raise SignatureError(f"{actor_uri} does not own key {key_id!r}")
    return actor


async def refresh(conn: asyncpg.Connection, fetcher: ObjectFetcher, uri: str) -> Actor:
    """Refetch a remote actor now (an ``Update`` of the actor arrived, or its key changed)."""
    return await get_or_fetch(conn, fetcher, uri, refresh=True)


def _owner_of(doc: dict[str, Any], key_id: str) -> str:
    if doc.get("type") in ACTOR_TYPES:
        key = _pick_key(doc, key_id)
        owner = _str(key.get("owner")) if key else None
        return owner or _str(doc.get("id")) or key_id
    owner = _str(doc.get("owner"))
    if owner is None:
        raise ActorInvalid(f"key document {key_id!r} names no owner")
    return owner
