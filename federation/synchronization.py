"""Followers collection synchronization (FEP-8fcf), sent and honoured.

Sent: a delivery from one of our Groups addressed to its followers carries a signed
``Collection-Synchronization`` header for the receiving server::

    Collection-Synchronization: collectionId="https://node/c/aide/followers",
        url="https://node/c/aide/followers_synchronization", digest="<hex>"

``digest`` is the XOR of the SHA-256 of the ids of the group's accepted followers on
that server (those whose id is the inbox URL's ``scheme://authority`` or starts with it
followed by ``/``, as Mastodon computes ``remote_followers_hash``); 32 zero bytes when
there is none. ``url`` lists exactly those ids to a GET signed by an actor of that
server (:func:`partial_followers`), nobody else's.

Honoured: a delivery whose signer's ``followers`` collection is named by the header
(``collectionId`` its followers, ``url`` on its own authority) is compared with our
own view — which of our actors follow it (``group_follows``, accepted). On a mismatch
the partial collection is fetched (signed, through the guarded fetcher) and our side
brought in line (:func:`reconcile`): a follow of ours it no longer lists is dropped
(« refusé »), a pending one it lists is taken as accepted, an actor of ours it lists
that follows nothing there gets an ``Undo{Follow}``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import asyncpg

from federation import actors, delivery, objects, policy, remote, urls
from federation.errors import FetchError
from node import communities
from node.db import Conn
from node.settings import Settings

log = logging.getLogger(__name__)

HEADER = "Collection-Synchronization"
SIGNED_NAME = HEADER.lower()  # its name in a draft-cavage ``headers`` list
PARTIAL_PATH = "followers_synchronization"  # /c/{name}/followers_synchronization
EMPTY_DIGEST = "0" * 64
MAX_HEADER = 2048


# ── pure parts ────────────────────────────────────────────────────────────────


def url_prefix(url: str) -> str | None:
    """``scheme://authority`` of an http(s) URL, as written (Mastodon's ``URL_PREFIX_RE``)."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def under_prefix(uri: str, prefix: str) -> bool:
    """Is ``uri`` an id of the server at ``prefix`` (the FEP's partial collection rule)?"""
    return uri == prefix or uri.startswith(prefix + "/")


def digest_of(ids: Iterable[str]) -> str:
    """The partial collection digest: XOR of the SHA-256 of each id, in hex."""
    value = 0
    for item in set(ids):
        value ^= int.from_bytes(hashlib.sha256(item.encode("utf-8")).digest(), "big")
    return value.to_bytes(32, "big").hex()


def partial_url(group_uri: str) -> str:
    return f"{group_uri}/{PARTIAL_PATH}"


def followers_url(actor_uri: str) -> str:
    """Our actors' followers collection (a Group's: ``/c/{name}/followers``)."""
    return f"{actor_uri}/followers"


@dataclass(frozen=True)
class SyncHeader:
    collection_id: str
    url: str
    digest: str

    def value(self) -> str:
        return f'collectionId="{self.collection_id}", url="{self.url}", digest="{self.digest}"'


_PARAM = re.compile(r'\s*([A-Za-z]+)="([^"\\]*)"\s*(?:,|$)')
_HEX64 = re.compile(r"[0-9a-f]{64}")


def parse_header(raw: str | None) -> SyncHeader | None:
    """The header's three parameters (the ``Signature`` syntax); None when absent or
    malformed (a bad header is ignored, never an error: the activity stands alone)."""
    if not raw or len(raw) > MAX_HEADER:
        return None
    values: dict[str, str] = {}
    pos = 0
    while pos < len(raw):
        match = _PARAM.match(raw, pos)
        if match is None or match.end() == pos:
            return None
        values[match.group(1)] = match.group(2)
        pos = match.end()
    header = SyncHeader(
        values.get("collectionId", ""), values.get("url", ""), values.get("digest", "").lower()
    )
    if not header.collection_id or not header.url or not _HEX64.fullmatch(header.digest):
        return None
    return header


def is_group_uri(actor_uri: str, settings: Settings) -> bool:
    """One of our Groups (``/c/{name}``), from its id alone."""
    prefix = f"{settings.base_url}/c/"
    return actor_uri.startswith(prefix) and "/" not in actor_uri[len(prefix) :]


def synchronised_group(activity: dict[str, Any], settings: Settings) -> str | None:
    """The group whose followers an activity of ours synchronises: its actor when the
    actor is one of our Groups and the activity is addressed to the group's followers
    (the FEP: at least every activity addressed to the followers); else None."""
    actor = activity.get("actor")
    if not isinstance(actor, str) or not is_group_uri(actor, settings):
        return None
    followers = followers_url(actor)
    for key in ("to", "cc"):
        audience = activity.get(key)
        if audience == followers or (isinstance(audience, list) and followers in audience):
            return actor
    return None


def received_header(headers: Mapping[str, str], signed_headers: Sequence[str]) -> str | None:
    """The request's ``Collection-Synchronization`` value (``headers``: lower-case names)
    when the signature covered it (the FEP honours it only then) and it is of sane size."""
    raw = headers.get(SIGNED_NAME)
    if raw is None or SIGNED_NAME not in signed_headers or len(raw) > MAX_HEADER:
        return None
    return raw


def acceptable(header: SyncHeader, sender_uri: str, sender_followers: str | None) -> bool:
    """The FEP's two checks: ``collectionId`` is the sender's followers collection and
    ``url`` is on the sender's own authority (no third party's list is ever fetched)."""
    prefix = url_prefix(sender_uri)
    return (
        sender_followers is not None
        and header.collection_id == sender_followers
        and prefix is not None
        and under_prefix(header.url, prefix)
    )


# ── sent: the digests and the partial collection of our groups ────────────────

# The accepted followers of the batch's groups on the batch's servers, read from the
# group's side (its accepted followers, by index) then narrowed to those domains; the
# exact prefix rule of the FEP is applied in Python.
FOLLOWERS_ON_DOMAINS = """
SELECT g.uri AS group_uri, a.domain, a.uri
FROM actors g
JOIN community_followers f ON f.community_id = g.community_id AND f.state = 'accepted'
JOIN actors a ON a.id = f.actor_id
WHERE g.uri = ANY($1::text[]) AND g.local AND g.kind = 'Group' AND NOT a.local AND a.domain = ANY($2::text[])
"""
FOLLOWERS_ON_SERVER = """
SELECT a.uri
FROM community_followers f
JOIN actors a ON a.id = f.actor_id
WHERE f.community_id = $1 AND f.state = 'accepted' AND NOT a.local AND a.domain = $2
  AND (a.uri = $3 OR starts_with(a.uri, $3 || '/'))
ORDER BY a.uri
"""


async def digests(conn: Conn, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The digest for each ``(group uri, inbox url prefix)`` pair, in one statement."""
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    groups = sorted({g for g, _ in wanted})
    domains = sorted({policy.host_of(prefix) for _g, prefix in wanted})
    found: dict[tuple[str, str], list[str]] = {}
    for row in await conn.fetch(FOLLOWERS_ON_DOMAINS, groups, domains):
        found.setdefault((row["group_uri"], row["domain"]), []).append(row["uri"])
    return {
        (group, prefix): digest_of(
            uri for uri in found.get((group, policy.host_of(prefix)), []) if under_prefix(uri, prefix)
        )
        for group, prefix in wanted
    }


async def headers_for(conn: Conn, deliveries: Iterable[tuple[int, str, str]]) -> dict[int, str]:
    """The header value of each delivery ``(job id, inbox url, group uri)``, by job id
    (the group's followers on the inbox's server, one statement for them all)."""
    wanted: dict[int, tuple[str, str]] = {}
    for job_id, inbox, group in deliveries:
        prefix = url_prefix(inbox)
        if prefix is not None:
            wanted[job_id] = (group, prefix)
    if not wanted:
        return {}
    found = await digests(conn, wanted.values())
    return {
        job_id: SyncHeader(followers_url(group), partial_url(group), found[(group, prefix)]).value()
        for job_id, (group, prefix) in wanted.items()
    }


async def partial_followers(
    conn: asyncpg.Connection, community_id: int, group_uri: str, signer_uri: str
) -> dict[str, Any]:
    """The group's followers on the signer's server: what that server may compare with
    its own view (each id is one of its own actors)."""
    prefix = url_prefix(signer_uri) or ""
    rows = await conn.fetch(FOLLOWERS_ON_SERVER, community_id, policy.host_of(signer_uri), prefix)
    items = [r["uri"] for r in rows]
    return {
        "id": partial_url(group_uri),
        "type": "OrderedCollection",
        "totalItems": len(items),
        "orderedItems": items,
    }


# ── honoured: a remote actor's header about its followers here ────────────────

MAX_PAGES = 10  # pages of a partial collection read (Mastodon: MAX_COLLECTION_PAGES)
MAX_ITEMS = 10_000  # ids kept from it
MAX_UNDOS = 20  # Undo{Follow} sent per synchronization
RECHECK_AFTER = 600.0  # seconds before the same sender's collection is fetched again

# Our follow of the remote community whose Group is the sender, with its follower's id.
OUR_FOLLOW = """
SELECT g.state, g.follow_activity_id, a.uri AS follower_uri
FROM group_follows g JOIN actors a ON a.id = g.follower_id
WHERE g.community_id = $1
"""
OUR_ACTORS = "SELECT uri FROM actors WHERE local AND uri = ANY($1::text[])"


class Fetches(Protocol):
    async def fetch_object(self, url: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class OurFollow:
    """Our follow of the sender (the remote community's ``group_follows`` row)."""

    community_id: int
    state: str  # pending | accepted | rejected | undone
    follow_id: str
    follower_uri: str

    @property
    def active(self) -> bool:
        return self.state in ("pending", "accepted")


async def our_follow(conn: asyncpg.Connection, sender: actors.Actor) -> OurFollow | None:
    community = await communities.by_actor(conn, sender.id)
    if community is None:
        return None
    row = await conn.fetchrow(OUR_FOLLOW, community.id)
    if row is None:
        return None
    return OurFollow(community.id, row["state"], row["follow_activity_id"], row["follower_uri"])


def local_digest(follow: OurFollow | None) -> str:
    """Our view of the sender's followers on our server: the follower of an accepted follow."""
    return digest_of([follow.follower_uri] if follow is not None and follow.state == "accepted" else [])


_checked: dict[str, float] = {}  # sender uri -> when its collection was last fetched (monotonic)


def _due(sender_uri: str, now: float) -> bool:
    last = _checked.get(sender_uri)
    if last is not None and now - last < RECHECK_AFTER:
        return False
    if len(_checked) > 10_000:
        _checked.clear()
    _checked[sender_uri] = now
    return True


async def honour(
    conn: asyncpg.Connection, settings: Settings, fetcher: Fetches, sender_uri: str, raw: str
) -> str:
    """Compare a received header with our view and, on a mismatch, reconcile with the
    sender's partial collection; returns what was done (for the log and the tests).
    Never raises for the peer's faults: a bad header or collection changes nothing."""
    header = parse_header(raw)
    if header is None:
        return "malformed header"
    sender = await actors.get_cached(conn, sender_uri)
    if sender is None or sender.local or not acceptable(header, sender.uri, sender.followers):
        return "header not about the sender's followers"
    follow = await our_follow(conn, sender)
    if local_digest(follow) == header.digest:
        return "in sync"
    if not _due(sender.uri, time.monotonic()):
        return "checked recently"
    try:
        listed = await fetch_partial(fetcher, header.url, url_prefix(sender.uri) or "")
    except (FetchError, ValueError) as exc:
        log.info("followers synchronization with %s: collection unreadable (%s)", sender.uri, exc)
        return "collection unreadable"
    return await reconcile(conn, settings, sender, follow, listed)


async def fetch_partial(fetcher: Fetches, url: str, sender_prefix: str) -> set[str]:
    """The ids a partial followers collection lists (its pages followed on the sender's
    own server, at most MAX_PAGES pages and MAX_ITEMS ids)."""
    doc = await fetcher.fetch_object(url)
    found: set[str] = set()
    page: Any = doc
    for _ in range(MAX_PAGES):
        if isinstance(page, str):
            if not under_prefix(page, sender_prefix):
                raise ValueError("collection page on another server")
            page = await fetcher.fetch_object(page)
        if not isinstance(page, dict):
            break
        items = page.get("orderedItems", page.get("items", []))
        for item in items if isinstance(items, list) else []:
            ref = item.get("id") if isinstance(item, dict) else item
            if isinstance(ref, str) and len(found) < MAX_ITEMS:
                found.add(ref)
        page = page.get("first") if page is doc and "first" in page else page.get("next")
        if page is None:
            break
    return found


async def reconcile(
    conn: asyncpg.Connection,
    settings: Settings,
    sender: actors.Actor,
    follow: OurFollow | None,
    listed: set[str],
) -> str:
    """Bring our side in line with the sender's list of its followers on our server
    (the FEP's three rules); returns what changed."""
    ours = {uri for uri in listed if under_prefix(uri, settings.base_url)}
    done: list[str] = []
    if follow is not None and follow.state == "accepted" and follow.follower_uri not in ours:
        await remote.record_answer(conn, sender.id, follow.follow_id, follow.follower_uri, "reject")
        done.append("our follow dropped")
    if follow is not None and follow.state == "pending" and follow.follower_uri in ours:
        await remote.record_answer(conn, sender.id, follow.follow_id, follow.follower_uri, "accept")
        done.append("pending follow accepted")
    unwanted = ours - ({follow.follower_uri} if follow is not None and follow.active else set())
    known = [r["uri"] for r in await conn.fetch(OUR_ACTORS, sorted(unwanted)[:MAX_UNDOS])]
    for actor_uri in known:
        previous = follow.follow_id if follow is not None and follow.follower_uri == actor_uri else None
        await _undo_follow(conn, settings, sender, actor_uri, previous)
    if known:
        done.append(f"{len(known)} Undo{{Follow}} sent")
    log.info("followers synchronization with %s: %s", sender.uri, ", ".join(done) or "nothing to change")
    return ", ".join(done) or "nothing to change"


async def _undo_follow(
    conn: asyncpg.Connection, settings: Settings, group: actors.Actor, actor_uri: str, follow_id: str | None
) -> None:
    """``Undo{Follow}`` from our actor ``actor_uri`` to ``group``, queued for delivery
    (the Follow named by its id when we still know it, else by its actor and object)."""
    follow: dict[str, Any] = {"type": "Follow", "actor": actor_uri, "object": group.uri}
    if follow_id is not None:
        follow["id"] = follow_id
    undo = objects.with_context(
        {
            "id": urls.new_activity(settings),
            "type": "Undo",
            "actor": actor_uri,
            "object": follow,
            "to": [group.uri],
        }
    )
    inboxes = delivery.pick_inboxes([(group.inbox, None)], settings.domain)
    inboxes = await delivery.deliverable(conn, settings.domain, inboxes)
    async with conn.transaction():
        await delivery.enqueue(conn, undo, inboxes, object_uri=None, audience="direct")
