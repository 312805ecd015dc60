"""The ``Reject`` a server the allowlist leaves out gets for its Follow (design §1).

In allowlist mode a server that is not listed is refused at the inbox (403) before
anything is fetched or stored, as for any of its activities. For a ``Follow`` of one of
our communities that leaves its user waiting forever, so after the 403 has gone out::

    403 sent ──task──> policy: not on the allowlist (a suspended domain: nothing, ever)
             ──> the Follow's object is one of our federated groups
             ──> the signer's key fetched from that domain (for this only) and the
                 request's signature verified (actor = signer)
             ──> outbox event follow.reject (the group's signed Reject, embedding the
                 Follow with plain URIs), delivered to that domain by the usual queue:
                 ``delivery.deliverable(refusal=True)`` lets a Reject through

Nothing is stored before the signature verifies but the signer's actor document (as
for any signer). A stranger could name any domain in its key id and make us fetch
from it: at most one answer per domain per ``INTERVAL`` and ``MAX_RUNNING`` at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from starlette.requests import Request

from federation import actors, policy, signatures
from federation.errors import FederationError
from federation.handlers.base import emit
from federation.policy import host_of
from node import communities, events
from node.settings import Settings
from node.web.requests import state_of

log = logging.getLogger(__name__)

INTERVAL = 60.0  # seconds between two answers to one domain
MAX_RUNNING = 4
_last: dict[str, float] = {}
_running: set[asyncio.Task[None]] = set()


def answer_later(
    request: Request, doc: dict[str, Any], body: bytes, params: signatures.SignatureParams, domain: str
) -> None:
    """Start answering a refused Follow (see the module docstring); returns at once."""
    now = time.monotonic()
    if (
        doc.get("type") != "Follow"
        or len(_running) >= MAX_RUNNING
        or now - _last.get(domain, -INTERVAL) < INTERVAL
    ):
        return
    if len(_last) > 10_000:
        _last.clear()
    _last[domain] = now
    from federation.inbox import Signed, request_headers

    state = state_of(request)
    signed = Signed(request.scope, request_headers(request.scope), body, params, state.settings)
    task = asyncio.create_task(_answer(state.pool, state.settings, signed, doc, domain))
    _running.add(task)
    task.add_done_callback(_running.discard)


async def _answer(
    pool: asyncpg.Pool, settings: Settings, signed: Any, doc: dict[str, Any], domain: str
) -> None:
    try:
        await answer(pool, settings, signed, doc, domain)
    except (FederationError, asyncpg.PostgresError, OSError) as exc:
        log.info("refused follow from %s left unanswered: %s", domain, exc)


async def answer(
    pool: asyncpg.Pool, settings: Settings, signed: Any, doc: dict[str, Any], domain: str
) -> bool:
    """Verify the refused Follow in ``signed`` (its body set) and queue the group's
    Reject; False (and nothing queued) when any check fails."""
    async with pool.acquire() as conn:
        if (await policy.decision(conn, domain, own_domain=settings.domain)).reason != "not_allowlisted":
            return False  # suspended (or allowed meanwhile): nothing
        group = await _our_group(conn, settings, doc.get("object"))
        if group is None:
            return False
    from federation.fetcher import Fetcher

    async def only_this_domain(host: str) -> bool:
        return host == domain

    fetcher = Fetcher(
        settings, signer=actors.instance_signer(pool, settings), domain_allowed=only_this_domain
    )
    try:
        async with pool.acquire() as conn:
            actor = await actors.by_key_id(conn, fetcher, signed.params.key_id)
            signed.verify(actor)
            same_host = host_of(str(doc.get("id", ""))) == host_of(actor.uri) == domain
            if doc.get("actor") != actor.uri or not same_host:
                return False
            await emit(
                conn,
                "follow.reject",
                events.FollowAnswer(group, None, doc, actor.id),
            )
    finally:
        await fetcher.close()
    log.info("refused follow from %s (not on the allowlist): Reject queued", domain)
    return True


async def _our_group(conn: asyncpg.Connection, settings: Settings, target: object) -> int | None:
    """The id of the federated community a Follow's object names on our host."""
    if not isinstance(target, str) or host_of(target) != host_of(settings.base_url):
        return None
    parts = urlsplit(target).path.strip("/").split("/")
    if len(parts) != 2 or parts[0] != "c":
        return None
    row = await communities.find_federated(conn, parts[1])
    return int(row["id"]) if row is not None else None
