"""What every handler shares: its context, its outcome, and lookups of our own objects.

A handler gets a :class:`Context` (a connection inside the worker's transaction, the
verified sender, the activity) and returns an :class:`Outcome`: ``done`` when the
activity changed something, ``ignored`` (with a reason) when it was understood and
deliberately dropped. Raising :class:`RetryLater` asks the worker to try again later
(a reply whose parent has not arrived yet); any other exception is a failure that the
worker records and retries (see ``federation.inbox_worker``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from federation.policy import host_of
from node import communities, events, threads
from node.communities import Community
from node.settings import Settings
from node.threads import PostRef

__all__ = ["Community", "PostRef"]  # re-exported: the handlers name them from here

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PUBLIC_ALIASES = {PUBLIC, "as:Public", "Public"}


class RetryLater(Exception):
    """The activity depends on something not here yet: process it again later."""


@dataclass(frozen=True)
class VerifiedActor:
    """The verified remote actor an activity comes from (a row of ``actors``)."""

    id: int
    uri: str
    domain: str


@dataclass(frozen=True)
class Outcome:
    state: str  # 'done' | 'ignored'
    note: str = ""


def done(note: str = "") -> Outcome:
    return Outcome("done", note)


def ignored(note: str) -> Outcome:
    return Outcome("ignored", note)


@dataclass(frozen=True)
class Via:
    """A remote community whose Group relayed the activity being handled
    (``handlers.remote_group``): it goes into that community, and nowhere else."""

    community: Community
    announce_id: str  # the group's Announce (its inbox row: when it arrived)


@dataclass
class Context:
    conn: asyncpg.Connection
    settings: Settings
    fetcher: Any
    sender: VerifiedActor
    activity: dict[str, Any]
    recipient: str = ""
    depth: int = 0
    via: Via | None = None
    # Lookups shared by the activities the worker processes in one transaction.
    cache: dict[Any, Any] = field(default_factory=dict)


# -- small JSON helpers ---------------------------------------------------------------


def ref(value: Any) -> str | None:
    """The id of an object given as a URI string or as an embedded object."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def refs(value: Any) -> list[str]:
    """Ids from a property that may be one value or a list (to, cc, object …)."""
    items = value if isinstance(value, list) else [value]
    return [r for r in (ref(item) for item in items) if r]


def same_host(a: str | None, b: str | None) -> bool:
    origin = _origin(b) if a and b else ""
    if origin and a and a.startswith(origin):
        # ``a`` begins with ``b``'s very "scheme://netloc/": both parse to one host.
        return bool(host_of(b))
    ha, hb = host_of(a), host_of(b)
    return bool(ha) and ha == hb


@lru_cache(maxsize=4096)
def _origin(uri: str) -> str:
    """``uri`` up to the first "/" after its "://" ("" if none). Two URIs that share
    this prefix share its netloc, whatever follows: ids of one actor's objects are
    compared without parsing them (each is new, so ``host_of``'s cache misses)."""
    start = uri.find("://")
    end = uri.find("/", start + 3) if start > 0 else -1
    return uri[: end + 1] if end > 0 else ""


# -- our own objects ------------------------------------------------------------------


def local_path(settings: Settings, uri: str | None) -> str | None:
    """The path of ``uri`` if it names something of this node, else None."""
    if not uri or not same_host(uri, settings.base_url):
        return None
    path = urlsplit(uri).path.rstrip("/")
    return path or "/"


async def local_group(ctx: Context, uri: str | None) -> Community | None:
    """Our community named by its actor URI (``/c/{name}``)."""
    path = local_path(ctx.settings, uri)
    if not path or not path.startswith("/c/") or path.count("/") != 2:
        return None
    key = ("group", path[3:])
    if key not in ctx.cache:
        ctx.cache[key] = await communities.find(ctx.conn, path[3:])
    community: Community | None = ctx.cache[key]
    # A remote community (``name@host``) is another server's Group, never one of ours.
    return None if community is not None and community.remote else community


async def community_by_id(conn: asyncpg.Connection, community_id: int) -> Community:
    community = await communities.by_id(conn, community_id)
    assert community is not None, "a stored post's community exists (foreign key)"
    return community


async def remote_community(ctx: Context, community_id: int) -> bool:
    """Whether the community is another server's Group that we follow (issue 11)."""
    key = ("remote-community", community_id)
    if key not in ctx.cache:
        ctx.cache[key] = (await community_by_id(ctx.conn, community_id)).remote
    return bool(ctx.cache[key])


async def post_by_id(ctx: Context, post_id: int) -> PostRef | None:
    return await threads.post_ref(ctx.conn, post_id)


def _local_id(path: str, prefix: str) -> int | None:
    rest = path[len(prefix) :]
    return int(rest) if path.startswith(prefix) and rest.isdigit() and len(rest) < 19 else None


async def find_post(ctx: Context, uri: str | None) -> PostRef | None:
    """A post we store, named by our URL (``/p/{id}``, ``/t/{id}`` = its opening
    post) or by the ActivityPub id of a remote post."""
    if not uri:
        return None
    path = local_path(ctx.settings, uri)
    if path is not None:
        post_id = _local_id(path, "/p/")
        if post_id is not None:
            return await threads.post_ref(ctx.conn, post_id)
        thread_id = _local_id(path, "/t/")
        if thread_id is not None:
            return await threads.opening_post_ref(ctx.conn, thread_id)
    return await threads.post_ref_by_ap_id(ctx.conn, uri)


# -- rules shared by several verbs -----------------------------------------------------

SELECT_INSTANCE_APPROVED = "SELECT approved FROM instances WHERE domain = $1"


async def instance_approved(conn: asyncpg.Connection, domain: str) -> bool:
    return bool(await conn.fetchval(SELECT_INSTANCE_APPROVED, domain))


async def may_interact(ctx: Context, community: Community) -> bool:
    """Whether the sender's instance may post to / like in this community:
    public → any instance the policy lets in; members → approved instances; local → none."""
    if community.visibility == "public":
        return True
    if community.visibility == "members":
        return await instance_approved(ctx.conn, ctx.sender.domain)
    return False


SELECT_TOMBSTONE = "SELECT reason FROM remote_tombstones WHERE object_id = $1"
INSERT_TOMBSTONE = """
INSERT INTO remote_tombstones (object_id, actor_uri, reason, activity_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (object_id) DO NOTHING
"""


async def tombstoned(ctx: Context, object_id: str | None) -> bool:
    """Whether a Delete or an Undo of ``object_id`` already arrived."""
    if not object_id:
        return False
    return await ctx.conn.fetchval(SELECT_TOMBSTONE, object_id) is not None


async def remember(ctx: Context, object_id: str, reason: str) -> None:
    """Remember a deletion ('deleted') or an undo ('undone') of ``object_id``."""
    await ctx.conn.execute(INSERT_TOMBSTONE, object_id, ctx.sender.uri, reason, ctx.activity.get("id", ""))


INSERT_TWO_EVENTS = "INSERT INTO outbox_events (kind, payload) VALUES ($1, $2), ($3, $4)"

emit = events.emit  # an outbox event for the delivery workers, in the caller's transaction


async def relay(ctx: Context, community_id: int, also: events.RelayAnnounceObject | None = None) -> None:
    """FEP-1b12: the group announces the accepted activity, unmodified, to its followers
    (``also``: the group's boost of the object too, written in the same statement).
    Never for a remote community (another server's Group): its origin relays its own."""
    if ctx.via is not None or await remote_community(ctx, community_id):
        return
    announce = events.RelayAnnounce(community_id, ctx.activity)
    if also is None:
        await emit(ctx.conn, "relay.announce", announce)
    else:
        await ctx.conn.execute(
            INSERT_TWO_EVENTS, "relay.announce", announce.to_json(), "relay.announce_object", also.to_json()
        )


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# -- origin rule (docs/architecture.md §4) ----------------------------------------------------------

ORIGIN_BOUND = {"Create", "Update", "Delete"}


def foreign_id(activity: dict[str, Any], actor_uri: str) -> str | None:
    """The first id that should be on the actor's host and is not, else None.

    The activity's own id, and for Create/Update/Delete the object created, updated
    or deleted; for an Undo, the undone activity's id. The object of an Announce is
    not checked here: it is never trusted as given (see ``handlers.announce``)."""
    checked = [ref(activity)]
    kind = activity.get("type")
    obj = activity.get("object")
    if kind in ORIGIN_BOUND or (kind == "Undo" and isinstance(obj, dict)):
        checked.append(ref(obj))
    for uri in checked:
        if uri is not None and not same_host(uri, actor_uri):
            return uri
    return None
