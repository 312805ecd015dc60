"""Who is asking, over ActivityPub: the requester that ``node.access`` decides for.

The rule (who may read what) lives in ``node.access``; this module only turns a GET
into a :class:`node.access.Requester`, once per request (kept on ``request.state``):

    no Signature header, or one that does not verify ── unsigned
    signed by a suspended domain                     ── blocked (not verified: a forger
                                                         naming a blocked domain only
                                                         refuses itself)
    signed by a domain the policy does not let in    ── refused (allowlist mode)
    signed, verified, let in                         ── allowed
    … and the instance approved by our moderators    ── partner (members-only content)

The node's federation mode travels with the requester (``open_mode``: public content
is then served to unsigned GETs too). A refusal is answered by the caller exactly
like a missing object (404): no oracle.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import asyncpg
from starlette.requests import Request

from federation import actors, policy, signatures
from federation.app_state import federation_of
from federation.errors import FederationError, SignatureError
from node import access
from node.access import Kind, Requester
from node.settings import Settings
from node.web.requests import state_of

if TYPE_CHECKING:
    # aiohttp (~10 MB) is loaded only once a process fetches something: a web process
    # that serves pages and never meets a new key does without it.
    from federation.fetcher import Fetcher

log = logging.getLogger(__name__)

SELECT_APPROVED = "SELECT approved FROM instances WHERE domain = $1"


def fetcher_of(request: Request) -> Fetcher:
    """The app's guarded fetcher (``FederationState.fetcher``), created on first need."""
    parts = federation_of(request)
    if parts.fetcher is None:
        state = state_of(request)
        parts.fetcher = make_fetcher(state.pool, state.settings)
    return parts.fetcher


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
    domain = policy.host_of(params.key_id)
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


async def instance_approved(conn: asyncpg.Connection, domain: str) -> bool:
    approved: bool | None = await conn.fetchval(SELECT_APPROVED, domain)
    return bool(approved)


async def _classify(request: Request, conn: asyncpg.Connection, settings: Settings) -> Requester:
    current = await policy.current_policy(conn)
    open_mode = current.mode == "open"
    try:
        params = signatures.parse(request.headers)
    except SignatureError:
        return Requester(Kind.UNSIGNED, open_mode)
    domain = policy.host_of(params.key_id)
    if not domain:
        return Requester(Kind.UNSIGNED, open_mode)
    decision = policy.decide(current, domain, settings.domain)
    if decision.reason == "suspended":
        return Requester(Kind.BLOCKED, open_mode, domain)
    if not decision.allowed_inbound:
        return Requester(Kind.REFUSED, open_mode, domain)
    signer = await verified_signer(request, conn, settings)
    if signer is None:
        return Requester(Kind.UNSIGNED, open_mode)
    request.state.ap_signer_uri = signer.uri
    partner = decision.allowed_outbound and await instance_approved(conn, signer.domain)
    return Requester(Kind.PARTNER if partner else Kind.ALLOWED, open_mode, signer.domain)


async def requester(request: Request, conn: asyncpg.Connection, settings: Settings) -> Requester:
    """Who sent this GET, decided once per request (the signature is verified at most once)."""
    known: Requester | None = getattr(request.state, "ap_requester", None)
    if known is None:
        known = await _classify(request, conn, settings)
        request.state.ap_requester = known
    return known


async def may_read(
    request: Request,
    conn: asyncpg.Connection,
    settings: Settings,
    visibility: str,
    origin: str | None = None,
    group_uri: str | None = None,
) -> bool:
    """May the sender of this GET read content of this visibility (``public``, ``members``, ``local``)?

    ``origin``, ``group_uri``: the content belongs to a community of another server,
    the group ``group_uri`` on host ``origin``. Members-only content there is the
    group's: another server than its host reads it once the group's server vouches
    that this server's instance follows the group (:func:`vouched_by_origin`)."""
    asking = await requester(request, conn, settings)
    if access.may_read(asking, visibility, origin):
        return True
    if origin is None or group_uri is None or visibility != "members" or asking.kind not in VOUCHABLE:
        return False
    vouched = await vouched_by_origin(request, conn, group_uri, asking)
    return access.may_read(asking, visibility, origin, vouched=vouched)


VOUCHABLE = frozenset({Kind.ALLOWED, Kind.PARTNER})
VOUCH_TTL = 600.0  # seconds an answer of the group's server is kept
VOUCH_CACHE_MAX = 10_000
_vouches: dict[tuple[str, str], tuple[float, bool]] = {}


def forget_vouches() -> None:
    """Drop every kept answer (an admin's policy change, the tests)."""
    _vouches.clear()


async def vouched_by_origin(
    request: Request, conn: asyncpg.Connection, group_uri: str, asking: Requester
) -> bool:
    """Does the group's server say the asking server's instance follows the group?
    Asked as Lemmy asks a private community's origin: a signed GET of the group's
    followers collection with ``?is_follower=<the signing actor>``, 200 meaning yes
    (anything else, or no answer: no). Kept ``VOUCH_TTL`` per (group, instance)."""
    signer: str | None = getattr(request.state, "ap_signer_uri", None)
    if signer is None or asking.domain is None:
        return False
    key = (group_uri, asking.domain)
    now = time.monotonic()
    known = _vouches.get(key)
    if known is not None and known[0] > now:
        return known[1]
    group = await actors.get_cached(conn, group_uri)
    if group is None or group.local or not group.followers:
        return False
    separator = "&" if "?" in group.followers else "?"
    try:
        await fetcher_of(request).fetch_json(
            f"{group.followers}{separator}{urlencode({'is_follower': signer})}"
        )
        answer = True
    except FederationError as exc:
        log.info("the group %s does not vouch for %s: %s", group_uri, asking.domain, exc)
        answer = False
    if len(_vouches) >= VOUCH_CACHE_MAX:
        _vouches.clear()
    _vouches[key] = (now + VOUCH_TTL, answer)
    return answer
