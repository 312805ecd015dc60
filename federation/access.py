"""Who may read what over ActivityPub (design §1 and §3).

    actors (Person, Group) ── anyone, in both modes: unsigned GETs are allowed, or nobody
                              could verify our signatures (the instance actor is served
                              to every GET, signed or not: two authorized-fetch servers
                              would deadlock otherwise); a GET signed by a domain our
                              instance policy refuses gets nothing
    public content         ── open mode: as actors.
                              allowlist mode ("only listed instances may talk to us or
                              read anything", design §1): only a verified GET signed by
                              an instance the policy lets in. Browsers still read the
                              HTML pages of public communities: that is the forum's side.
    members-only content   ── only a GET signed by an APPROVED instance (``instances.approved``)
                              that the instance policy still lets in, signature verified
    local content          ── never

A refusal is answered by the caller exactly like a missing object (404): no oracle.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import asyncpg
from starlette.requests import Request

from federation import actors, policy, signatures
from federation.errors import FederationError, SignatureError
from node.settings import Settings

if TYPE_CHECKING:
    # aiohttp (~10 MB) is loaded only once a process fetches something: a web process
    # that serves pages and never meets a new key does without it.
    from federation.fetcher import Fetcher

log = logging.getLogger(__name__)

SELECT_APPROVED = "SELECT approved FROM instances WHERE domain = $1"


def fetcher_of(request: Request) -> Fetcher:
    """The app's guarded fetcher (``app.state.fetcher``), created on first need."""
    state = request.app.state
    fetcher: Fetcher | None = getattr(state, "fetcher", None)
    if fetcher is None:
        fetcher = make_fetcher(state.pool, state.settings)
        state.fetcher = fetcher
    return fetcher


def make_fetcher(pool: asyncpg.Pool, settings: Settings) -> Fetcher:
    """A fetcher signing as our instance actor and honouring the instance policy."""
    from federation.fetcher import Fetcher

    async def domain_allowed(host: str) -> bool:
        return await policy.outbound_allowed(pool, host, own_domain=settings.domain)

    return Fetcher(settings, signer=actors.instance_signer(pool, settings), domain_allowed=domain_allowed)


def _target(request: Request) -> str:
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode("latin-1")
    return signatures.path_with_query(raw_path, request.scope.get("query_string", b""))


def _verify(
    request: Request, settings: Settings, params: signatures.SignatureParams, actor: actors.Actor
) -> None:
    if not actor.public_key_pem:
        raise SignatureError(f"{actor.uri} has no public key")
    key = signatures.load_public_key(actor.public_key_pem)
    signatures.verify_fetch(
        request.method,
        _target(request),
        request.headers,
        params,
        key,
        expected_host=settings.domain,
        origin=settings.base_url,
        header_lines=signatures.header_lines(request.headers.raw),
    )


async def verified_signer(
    request: Request, conn: asyncpg.Connection, settings: Settings
) -> actors.Actor | None:
    """The remote actor whose signature this GET carries, verified; None when unsigned,
    refused by the instance policy, or not verifiable (a failed check refetches the key once)."""
    try:
        params = signatures.parse(request.headers)
    except SignatureError:
        return None
    domain = actors.host_of(params.key_id)
    if not domain or not await policy.inbound_allowed(conn, domain, own_domain=settings.domain):
        return None
    fetcher = fetcher_of(request)
    try:
        actor = await actors.by_key_id(conn, fetcher, params.key_id)
        try:
            _verify(request, settings, params, actor)
        except SignatureError:
            actor = await actors.by_key_id(conn, fetcher, params.key_id, refresh=True)
            _verify(request, settings, params, actor)
    except FederationError as exc:
        log.info("signed GET of %s refused: %s", request.url.path, exc)
        return None
    return actor


async def _signed_by_refused_domain(request: Request, conn: asyncpg.Connection, settings: Settings) -> bool:
    """A signature naming a domain the policy refuses (checked without verifying: a
    forger naming a blocked domain only refuses itself)."""
    try:
        params = signatures.parse(request.headers)
    except SignatureError:
        return False
    domain = actors.host_of(params.key_id)
    return not domain or not await policy.inbound_allowed(conn, domain, own_domain=settings.domain)


async def instance_approved(conn: asyncpg.Connection, domain: str) -> bool:
    approved: bool | None = await conn.fetchval(SELECT_APPROVED, domain)
    return bool(approved)


async def may_read_actor(request: Request, conn: asyncpg.Connection, settings: Settings) -> bool:
    """May the sender of this GET read an actor document (Person, Group) and its key?"""
    return not await _signed_by_refused_domain(request, conn, settings)


async def may_read(request: Request, conn: asyncpg.Connection, settings: Settings, visibility: str) -> bool:
    """May the sender of this GET read content of this visibility (``public``, ``members``, ``local``)?"""
    if visibility == "public":
        if (await policy.current_policy(conn)).mode == "open":
            return not await _signed_by_refused_domain(request, conn, settings)
        return await verified_signer(request, conn, settings) is not None
    if visibility != "members":
        return False
    signer = await verified_signer(request, conn, settings)
    if signer is None:
        return False
    return await instance_approved(conn, signer.domain) and await policy.outbound_allowed(
        conn, signer.domain, own_domain=settings.domain
    )
