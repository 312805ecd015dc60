"""Backfill: what a followed remote community already holds, fetched in the background.

Jobs are rows of ``backfill_jobs`` (``node.backfill`` schedules, claims and ends them;
:func:`schedule_outbox` and :func:`schedule_thread` are re-exported here for federation's
callers). Each job is a small state machine — the only place its states are written::

    pending ──claim (SKIP LOCKED; attempts + 1; next_attempt_at = now + LEASE)──> running
      ▲   running ─ not a followed remote community, thread gone, its starting document
      │             refused (our guards, a 4xx other than 408/429), a reply chain that never
      │             reaches a known post within ``depth`` ───────────────────────────> failed
      │           ─ walked within the caps, what was found stored ────────────────> done
      │             (``note``: the cap reached, the collections that failed)
      └────────── ─ the starting document: network error, deadline, 5xx, 408, 429; or
                    ``failures`` fetches failing in a row (the server stopped answering):
                    what was found is stored, then retry after RETRY_DELAYS[attempts - 1];
                    none left ─────────────────────────────────────────────────────> failed
    (a worker that dies mid-way leaves the row pending: due again when its lease ends)

What a job reads:

- **outbox** (first accepted follow): the group's ``outbox`` (an OrderedCollection, inline
  or paged; Lemmy's holds ``Announce{Create{Page}}``, others ``Create`` or bare objects),
  newest first, until ``threads`` new threads; its ``featured`` collection (those threads
  stored too, and pinned exactly as listed); its ``moderators`` collection
  (``node.backfill.remote_moderators``). A thread stored whose object names a
  ``context`` or ``replies`` gets a thread job of its own.
- **thread** (a remote thread opened, an unknown reply arrived): the object, then up its
  ``inReplyTo`` chain to a post we store or to the thread's root; then the thread's
  ``context`` collection (FEP-7888 / FEP-f228: posts or activities, paged), else the root's
  ``replies`` (nested ones too, down to ``depth``); replies are stored under their parent.

Trust: an object embedded in a document is used as is only when its ``id`` is on the
host that document was fetched from; any other is fetched again from its own ``id``
(the guarded fetcher refuses a document whose ``id`` is not the URL asked), and its
author (``attributedTo``) must be on the object's host. Everything goes through the
guarded fetcher: signed GETs by the instance actor (members-only content of a group that
approved us is readable so; it is stored only in that members-only community), the
instance policy asked for every host. Stored posts get no outbox event: the origin
group federates its own content. Idempotent: objects stored already (by ``ap_id``) or
deleted already (``remote_tombstones``) are skipped.

Caps (:class:`Caps`) bound every job: pages per collection, objects looked at, depth of
chains and nesting, documents fetched (each at most ``document_bytes``: together the
bytes), and wall time. The collect phase runs under the wall time; what it gathered is
stored even when a cap or the deadline stopped it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from federation import actors, attachments, validation
from federation.errors import FetchError, FetchRefused, SignatureError, ValidationError
from federation.fetcher import Fetcher, Limits
from federation.handlers import content
from federation.handlers.base import ref, refs, same_host
from node import backfill as jobs
from node import communities, documents, threads
from node.backfill import schedule_outbox, schedule_thread
from node.queues import QueueSpec
from node.settings import Settings

__all__ = [
    "BACKFILL",
    "BackfillContext",
    "Caps",
    "own_fetcher",
    "process_due",
    "schedule_outbox",
    "schedule_thread",
]

log = logging.getLogger(__name__)

BACKFILL = QueueSpec(
    name="backfill",
    table="backfill_jobs",
    channel="vbg_backfill",
    lease=timedelta(minutes=5),  # longer than a job's wall time (Caps.wall_time) and its storing
    retry_delays=(timedelta(minutes=2), timedelta(minutes=20), timedelta(hours=2), timedelta(hours=12)),
    poll_interval=30.0,
    batch=2,
)  # 5 attempts over about 14 hours
RETRY_STATUSES = frozenset({408, 429})
POST_TYPES = frozenset({"Note", "Page", "Article", "Question"})
WRAPPERS = frozenset({"Create", "Announce"})
COLLECTIONS = frozenset({"Collection", "OrderedCollection"})
PAGES = frozenset({"CollectionPage", "OrderedCollectionPage"})


@dataclass(frozen=True)
class Caps:
    """What one job may do at most."""

    threads: int = 50  # new threads an outbox job stores
    pages: int = 5  # pages read of one collection
    items: int = 400  # items looked at, all collections of the job together
    depth: int = 40  # inReplyTo links walked up; replies collections nested
    documents: int = 250  # documents fetched (signed GETs), actors included
    document_bytes: int = 512 * 1024  # one document, decompressed
    wall_time: float = 120.0  # seconds for the collect phase
    fetch_deadline: float = 10.0  # seconds for one document
    failures: int = 3  # fetches failing in a row (network) before the server counts as gone
    moderators: int = 50
    concurrency: int = 4  # items of a collection looked at together (the fetcher's per-host limit)

    def limits(self) -> Limits:
        return Limits(max_body=self.document_bytes, deadline=self.fetch_deadline)


class CapReached(Exception):
    """A cap of :class:`Caps` stopped the walk (not an error: what was found is kept)."""


class ServerSilent(Exception):
    """Fetches keep failing: the job stops, stores what it found and is retried later."""

    def __init__(self, cause: FetchError) -> None:
        super().__init__(cause.reason)
        self.cause = cause


class GiveUp(Exception):
    """The job cannot succeed (final)."""


def transient(exc: FetchError) -> bool:
    """A failure that asking again later may cure (network, deadline, 5xx, 408, 429)."""
    if isinstance(exc, FetchRefused):
        return False
    status = exc.remote_status
    return status is None or status >= 500 or status in RETRY_STATUSES


# ---------------------------------------------------------------- one job's walk


@dataclass
class Walk:
    """One job's fetching, counted against its caps. Also the ``ObjectFetcher`` given to
    ``federation.actors`` for authors, so their documents count too."""

    fetcher: Fetcher
    caps: Caps
    documents: int = 0
    items: int = 0
    failures_in_row: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def count_item(self) -> None:
        if self.items >= self.caps.items:
            raise CapReached(f"item cap ({self.caps.items})")
        self.items += 1

    async def fetch_object(self, url: str) -> dict[str, Any]:
        if self.documents >= self.caps.documents:
            raise CapReached(f"document cap ({self.caps.documents})")
        self.documents += 1
        try:
            doc = await self.fetcher.fetch_object(url)
        except FetchError as exc:
            if transient(exc):
                self.failures_in_row += 1
                if self.failures_in_row >= self.caps.failures:
                    raise ServerSilent(exc) from exc
            raise
        self.failures_in_row = 0
        return doc


Authors = dict[str, "asyncio.Future[int]"]  # an author's URI → its actors.id, looked up once per job


@dataclass
class Found:
    """A post object accepted for storing, with its author's ``actors.id``."""

    obj: dict[str, Any]
    author_id: int

    @property
    def ap_id(self) -> str:
        return str(self.obj["id"])

    @property
    def parent(self) -> str | None:
        return ref(self.obj.get("inReplyTo"))


@dataclass
class BackfillContext:
    pool: asyncpg.Pool
    settings: Settings
    fetcher: Fetcher
    caps: Caps = field(default_factory=Caps)


def _published(obj: dict[str, Any]) -> datetime | None:
    value = obj.get("published")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _author(obj: dict[str, Any]) -> str | None:
    """The object's author: the first ``attributedTo`` on the object's own host."""
    object_id = ref(obj)
    for uri in refs(obj.get("attributedTo")):
        if same_host(uri, object_id):
            return uri
    return None


async def _document(walk: Walk, value: Any, source: str) -> tuple[dict[str, Any], str] | None:
    """``value`` (a URI, or an object embedded in a document fetched from ``source``) as a
    document to trust, with where it comes from: fetched again from its ``id`` unless it
    is on ``source``'s host."""
    if isinstance(value, str):
        return await walk.fetch_object(value), value
    object_id = ref(value)
    if object_id is None:
        return None
    if same_host(object_id, source):
        return value, source
    return await walk.fetch_object(object_id), object_id


async def _post(ctx: BackfillContext, walk: Walk, item: Any, source: str, authors: Authors) -> Found | None:
    """The post an item names (a post, or a Create/Announce of one, embedded or by URI),
    trusted as the module docstring says; None (and the reason logged) when it is not
    one we store. Fetch errors other than ServerSilent and the caps leave it out too.
    An embedded wrapper is only unwrapped: what is judged is the post inside it."""
    try:
        for _ in range(3):  # Announce{Create{Page}} at most
            if isinstance(item, str):
                doc, source = await walk.fetch_object(item), item
            elif isinstance(item, dict):
                doc = item
            else:
                return None
            if doc.get("type") in WRAPPERS:
                item = doc.get("object")
                continue
            got = await _document(walk, doc, source)
            return None if got is None else await _accept(ctx, walk, got[0], authors)
    except FetchError as exc:
        log.info("backfill: %s left out (%s)", ref(item) or "an item", exc.reason)
    return None


async def _accept(ctx: BackfillContext, walk: Walk, doc: dict[str, Any], authors: Authors) -> Found | None:
    if doc.get("type") not in POST_TYPES:
        return None
    try:
        validation.validate_object(doc)
    except ValidationError as exc:
        log.info("backfill: %s does not validate (%s)", ref(doc), exc.reason)
        return None
    author = _author(doc)
    if author is None:
        log.info("backfill: %s has no author on its own host", ref(doc))
        return None
    known = authors.get(author)
    if known is None:  # one look-up per author and job, shared by the posts looked at together
        known = authors[author] = asyncio.ensure_future(_actor_id(ctx, walk, author))
    try:
        author_id = await asyncio.shield(known)
    except (ValidationError, SignatureError) as exc:  # not an actor we can use (fetch errors: the caller's)
        log.info("backfill: author %s refused (%s)", author, exc.reason)
        return None
    return Found(doc, author_id)


async def _actor_id(ctx: BackfillContext, walk: Walk, uri: str) -> int:
    """The actor at ``uri``, cached or fetched, as ``actors.get_or_fetch`` gives it — but no
    pool connection is held while fetching (the fetcher itself asks the pool for the
    instance policy: held connections and concurrent fetches would starve it)."""
    async with ctx.pool.acquire() as conn:
        cached = await actors.get_cached(conn, uri)
    if cached is not None and (cached.local or _fresh(cached.fetched_at)):
        return cached.id
    document = await walk.fetch_object(uri)
    async with ctx.pool.acquire() as conn:
        return (await actors.store_remote(conn, document, uri)).id


def _fresh(fetched_at: datetime | None) -> bool:
    return fetched_at is not None and datetime.now(UTC) - fetched_at < actors.REFRESH_AFTER


async def _items(walk: Walk, collection: Any, source: str) -> AsyncIterator[tuple[Any, str]]:
    """The items of a collection (a URI, or embedded in a document from ``source``) with
    the URL of the document each was read from: inline items, then pages through
    ``first`` / ``next`` on the collection's host, at most ``caps.pages`` pages. Raises
    FetchError when the collection itself cannot be read, ValidationError when it is
    not a collection."""
    got = await _document(walk, collection, source)
    if got is None:
        raise ValidationError("collection without id")
    doc, source = got
    if doc.get("type") not in COLLECTIONS | PAGES:
        raise ValidationError(f"not a collection: {str(doc.get('type'))[:40]}")
    home = ref(doc) or source
    pages = 0
    seen: set[str] = set()
    while True:
        for item in _listed(doc):
            walk.count_item()
            yield item, source
        following = doc.get("first") if doc.get("type") in COLLECTIONS else doc.get("next")
        if following is None:
            return
        if pages >= walk.caps.pages:
            walk.note(f"page cap ({walk.caps.pages})")
            return
        following_id = ref(following)
        if following_id is None or following_id in seen or not same_host(following_id, home):
            return
        seen.add(following_id)
        pages += 1
        if isinstance(following, dict) and same_host(following_id, source):
            doc = following
        else:
            try:
                doc = await walk.fetch_object(following_id)
            except FetchError as exc:  # the pages read so far stay (ServerSilent goes up)
                walk.note(f"page refused: {exc.reason}")
                return
            source = following_id
        if doc.get("type") not in PAGES | COLLECTIONS:
            return


async def _posts(
    ctx: BackfillContext, walk: Walk, items: AsyncIterator[tuple[Any, str]], authors: Authors
) -> AsyncIterator[Found]:
    """The posts ``items`` name (:func:`_post`), in their order, ``caps.concurrency``
    looked at together (a collection of ids costs one round trip per few items, not
    per item). A cap reached by ``items`` stops it after the items already read."""
    batch: list[tuple[Any, str]] = []
    stopped: CapReached | None = None
    while True:
        try:
            batch.append(await anext(items))
            if len(batch) < walk.caps.concurrency:
                continue
        except StopAsyncIteration:
            pass
        except CapReached as exc:
            stopped = exc
        for found in await _post_all(ctx, walk, batch, authors):
            if found is not None:
                yield found
        if stopped is not None:
            raise stopped
        if len(batch) < walk.caps.concurrency:
            return
        batch = []


async def _post_all(
    ctx: BackfillContext, walk: Walk, batch: list[tuple[Any, str]], authors: Authors
) -> list[Found | None]:
    if len(batch) <= 1:
        return [await _post(ctx, walk, item, source, authors) for item, source in batch]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_post(ctx, walk, item, source, authors)) for item, source in batch]
    except BaseExceptionGroup as failed:  # ServerSilent, a cap: as if looked at one by one
        raise failed.exceptions[0] from None
    return [t.result() for t in tasks]


def _listed(doc: dict[str, Any]) -> list[Any]:
    items = doc.get("orderedItems", doc.get("items"))
    if items is None:
        return []
    return items if isinstance(items, list) else [items]


# ---------------------------------------------------------------- storing


def _stored_form(found: Found, *, opening: bool) -> tuple[threads.BackfilledPost, content.RemotePost]:
    post = content.from_ap(found.obj)
    return (
        threads.BackfilledPost(
            post.ap_id,
            found.author_id,
            post.title if opening else "",
            post.source,
            post.content_html,
            _published(found.obj),
        ),
        post,
    )


def _addressed_to_public(obj: dict[str, Any]) -> bool:
    return any(validation.is_public(a) for key in ("to", "cc", "audience") for a in refs(obj.get(key)))


async def _readable_by_all(conn: asyncpg.Connection, community_id: int, found: list[Found]) -> list[Found]:
    """``found`` without what its author did not address to Public when the community is
    public (anyone reads it here): a members-only group's content never lands in a
    community shown to all, whatever its row says."""
    community = await communities.by_id(conn, community_id)
    if community is None or community.visibility != "public":
        return found
    kept = [f for f in found if _addressed_to_public(f.obj)]
    if len(kept) < len(found):
        log.info("backfill: %d posts not addressed to Public left out of community %d", len(found) - len(kept),
                 community_id)  # fmt: skip
    return kept


async def _store_threads(ctx: BackfillContext, community_id: int, found: list[Found]) -> dict[str, int]:
    """New threads for these objects (attachments listed); ActivityPub id → thread id."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        found = await _readable_by_all(conn, community_id, found)
        forms = {f.ap_id: _stored_form(f, opening=True) for f in found}
        stored = await threads.store_backfilled_threads(conn, community_id, [b for b, _ in forms.values()])
        media = {ap_id: forms[ap_id][1].media for ap_id in stored if forms[ap_id][1].media}
        if media:
            await attachments.store_for_objects(conn, media)
        for ap_id in stored:
            document = forms[ap_id][1].document
            if document is not None:
                await documents.record_remote(conn, document, ctx.settings.remote_documents)
    return stored


async def _store_replies(ctx: BackfillContext, thread_id: int, replies: list[Found]) -> int:
    """Store the replies whose parent is a post of ``thread_id`` (known or stored here),
    parents first; returns how many were stored. The others are left out."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        where = await threads.backfill_thread(conn, thread_id)
        if where is None:
            return 0
        replies = await _readable_by_all(conn, where[1], replies)
        wanted = {f.ap_id: f for f in replies}
        known = await threads.post_ids_by_ap_ids(conn, [*wanted, *{f.parent for f in replies if f.parent}])
        in_thread: dict[str, int] = {}
        for ap_id, post_id in known.items():
            ref_ = await threads.post_ref(conn, post_id)
            if ref_ is not None and ref_.thread_id == thread_id:
                in_thread[ap_id] = post_id
        pending = sorted(
            (f for f in replies if f.ap_id not in known),
            key=lambda f: (_published(f.obj) is None, _published(f.obj) or datetime.min, f.ap_id),
        )
        stored = 0
        progress = True
        while pending and progress:
            progress = False
            later: list[Found] = []
            for found in pending:
                parent_id = in_thread.get(found.parent or "")
                if parent_id is None:
                    later.append(found)
                    continue
                form, post = _stored_form(found, opening=False)
                reply_id = await threads.store_backfilled_reply(conn, thread_id, parent_id, form)
                progress = True
                if reply_id is not None:
                    in_thread[found.ap_id] = reply_id
                    stored += 1
                    if post.media:
                        await attachments.store_for_post(conn, reply_id, post.media)
            pending = later
        if pending:
            log.info("backfill: %d replies of thread %d without a parent here", len(pending), thread_id)
        await threads.recount(conn, [thread_id])
    return stored


# ---------------------------------------------------------------- outbox jobs

SELECT_GROUP = f"SELECT {actors.ACTOR_COLUMNS} FROM actors WHERE id = $1"
SELECT_FOLLOW_STATE = "SELECT state FROM group_follows WHERE community_id = $1"


@dataclass
class Remote:
    """A remote community and its group."""

    community: communities.Community
    group: actors.Actor


async def _remote(conn: asyncpg.Connection, community_id: int) -> Remote:
    """The followed remote community ``community_id`` (GiveUp if not one)."""
    community = await communities.by_id(conn, community_id)
    if community is None or community.actor_id is None:
        raise GiveUp("not a remote community")
    state = await conn.fetchval(SELECT_FOLLOW_STATE, community_id)
    if state not in {"pending", "accepted"}:
        raise GiveUp("the group is not followed")
    row = await conn.fetchrow(SELECT_GROUP, community.actor_id)
    assert row is not None, "a remote community's group exists (foreign key)"
    return Remote(community, actors.Actor.from_row(row))


def _addressed_elsewhere(obj: dict[str, Any], group_uri: str) -> bool:
    """Does the object name another group as its ``audience``?"""
    audience = refs(obj.get("audience"))
    return bool(audience) and group_uri not in audience


async def _outbox(ctx: BackfillContext, walk: Walk, job: jobs.Job, authors: Authors) -> int:
    assert job.community_id is not None
    async with ctx.pool.acquire() as conn:
        remote = await _remote(conn, job.community_id)
    group = remote.group
    if not group.outbox:
        raise GiveUp("the group has no outbox")
    roots: dict[str, Found] = {}
    featured: list[str] | None = None
    moderators: list[int] | None = None
    silent: ServerSilent | None = None

    async def recent() -> None:
        assert group.outbox is not None
        try:
            async for found in _posts(ctx, walk, _items(walk, group.outbox, group.outbox), authors):
                if found.parent is not None or _addressed_elsewhere(found.obj, group.uri):
                    continue
                roots.setdefault(found.ap_id, found)
                if len(roots) >= walk.caps.threads:
                    return
        except FetchError as exc:  # the outbox itself
            if isinstance(exc, FetchRefused) or not transient(exc):
                raise GiveUp(f"outbox refused: {exc.reason}") from exc
            raise ServerSilent(exc) from exc
        except ValidationError as exc:
            raise GiveUp(f"outbox: {exc.reason}") from exc

    async def pinned() -> list[str]:
        assert group.featured is not None
        ids: list[str] = []
        async for item, source in _items(walk, group.featured, group.featured):
            found = await _post(ctx, walk, item, source, authors)
            if found is not None and found.parent is None and not _addressed_elsewhere(found.obj, group.uri):
                roots.setdefault(found.ap_id, found)
                ids.append(found.ap_id)
        return ids

    async def listed_moderators() -> list[int]:
        assert group.moderators is not None
        ids: list[int] = []
        async for item, _source in _items(walk, group.moderators, group.moderators):
            uri = ref(item)
            if uri is None or len(ids) >= walk.caps.moderators:
                continue
            try:
                ids.append(await _actor_id(ctx, walk, uri))
            except (FetchError, ValidationError, SignatureError) as exc:
                log.info("backfill: moderator %s left out (%s)", uri, exc.reason)
        return ids

    try:
        async with asyncio.timeout(walk.caps.wall_time):
            try:
                await recent()
            except CapReached as exc:
                walk.note(str(exc))
            if group.featured:
                try:
                    featured = await pinned()
                except (FetchError, ValidationError) as exc:
                    walk.note(f"featured: {exc.reason}")
                except CapReached as exc:
                    walk.note(str(exc))
            if group.moderators:
                try:
                    moderators = await listed_moderators()
                except (FetchError, ValidationError) as exc:
                    walk.note(f"moderators: {exc.reason}")
                except CapReached as exc:
                    walk.note(str(exc))
    except TimeoutError:
        walk.note(f"wall time cap ({walk.caps.wall_time:g} s)")
    except ServerSilent as exc:
        silent = exc

    stored = await _store_threads(ctx, remote.community.id, list(roots.values()))
    async with ctx.pool.acquire() as conn:
        if featured is not None:
            await threads.set_featured(conn, remote.community.id, featured)
        if moderators is not None:
            await jobs.set_remote_moderators(conn, remote.community.id, moderators)
        for ap_id, thread_id in stored.items():
            obj = roots[ap_id].obj
            if obj.get("context") is not None or obj.get("replies") is not None:
                await jobs.schedule_thread(conn, thread_id)
    if silent is not None:
        raise _Partial(len(stored), silent)
    return len(stored)


class _Partial(Exception):
    """The job stored ``stored`` posts, then ``cause`` stopped it (retried later)."""

    def __init__(self, stored: int, cause: ServerSilent) -> None:
        super().__init__(str(cause))
        self.stored = stored
        self.cause = cause


# ---------------------------------------------------------------- thread jobs


@dataclass
class Place:
    """Where a thread's posts go: its community, and the thread once stored."""

    community_id: int
    thread_id: int | None


async def _community_of(conn: asyncpg.Connection, job: jobs.Job, chain: list[Found]) -> int:
    """The followed remote community a thread we do not store belongs to: the one the
    job came by, else the group its root names (``audience``, ``to``, ``cc``)."""
    root = chain[-1].obj
    if job.community_id is not None:
        remote = await _remote(conn, job.community_id)
        if _addressed_elsewhere(root, remote.group.uri):
            raise GiveUp("the thread belongs to another group")
        return remote.community.id
    for uri in [*refs(root.get("audience")), *refs(root.get("to")), *refs(root.get("cc"))]:
        group = await actors.get_cached(conn, uri)
        if group is None or group.kind != "Group":
            continue
        community = await communities.by_actor(conn, group.id)
        if community is not None:
            return (await _remote(conn, community.id)).community.id
    raise GiveUp("the thread is in no community we follow")


async def _thread(ctx: BackfillContext, walk: Walk, job: jobs.Job, authors: Authors) -> int:
    place: Place | None = None
    start_uri = job.object_uri
    if job.thread_id is not None:
        async with ctx.pool.acquire() as conn:
            known_thread = await threads.backfill_thread(conn, job.thread_id)
            if known_thread is None or known_thread[0] is None:
                raise GiveUp("thread gone or not remote")
            await _remote(conn, known_thread[1])
        start_uri, place = known_thread[0], Place(known_thread[1], job.thread_id)
    assert start_uri is not None

    collected: dict[str, Found] = {}
    silent: ServerSilent | None = None
    try:
        async with asyncio.timeout(walk.caps.wall_time):
            try:
                first = await walk.fetch_object(start_uri)
            except FetchError as exc:
                if transient(exc):
                    raise ServerSilent(exc) from exc
                raise GiveUp(f"object refused: {exc.reason}") from exc
            start = await _post(ctx, walk, first, start_uri, authors)
            if start is None:
                raise GiveUp("the object is not a post we can store")
            if place is None:
                try:
                    place = await _climb(ctx, walk, job, start, authors, collected)
                except CapReached as exc:
                    raise GiveUp(f"reply chain: {exc}") from exc
            else:
                collected[start.ap_id] = start
            try:
                await _expand(ctx, walk, start, authors, collected)
            except CapReached as exc:
                walk.note(str(exc))
    except TimeoutError:
        walk.note(f"wall time cap ({walk.caps.wall_time:g} s)")
    except ServerSilent as exc:
        silent = exc

    stored = 0
    if place is not None and collected:
        stored = await _store_thread(ctx, place, collected)
    if silent is not None:
        raise _Partial(stored, silent)
    if place is None:
        raise GiveUp("; ".join(walk.notes) or "nothing found")
    return stored


async def _climb(
    ctx: BackfillContext,
    walk: Walk,
    job: jobs.Job,
    start: Found,
    authors: Authors,
    collected: dict[str, Found],
) -> Place:
    """Walk ``start``'s ``inReplyTo`` chain up to a post we store or to the root
    (collecting it); where the thread is. GiveUp when the chain is longer than ``depth``
    or broken (a parent that cannot be had)."""
    chain = [start]
    current = start
    for _ in range(walk.caps.depth + 1):
        collected[current.ap_id] = current
        parent_uri = current.parent
        async with ctx.pool.acquire() as conn:
            if parent_uri is None:
                community_id = await _community_of(conn, job, chain)
                stored = await threads.post_ref_by_ap_id(conn, current.ap_id)
                return Place(community_id, stored.thread_id if stored else None)
            anchor = await threads.post_ref_by_ap_id(conn, parent_uri)
            if anchor is not None:
                if anchor.thread_deleted:
                    raise GiveUp("the thread was deleted")
                remote = await _remote(conn, anchor.community_id)
                return Place(remote.community.id, anchor.thread_id)
        if len(chain) > walk.caps.depth:
            break
        walk.count_item()
        try:
            document = await walk.fetch_object(parent_uri)
        except FetchError as exc:
            if transient(exc):  # the chain is whole, the server did not answer: later
                raise ServerSilent(exc) from exc
            raise GiveUp(f"reply chain broken at {parent_uri[:200]}: {exc.reason}") from exc
        parent = await _post(ctx, walk, document, parent_uri, authors)
        if parent is None:
            raise GiveUp(f"reply chain broken at {parent_uri[:200]}")
        chain.append(parent)
        current = parent
    raise GiveUp(f"reply chain deeper than {walk.caps.depth}")


def _context_of(posts: list[Found]) -> str | None:
    """The first ``context`` of ``posts`` that is a URL on its post's own host."""
    for found in posts:
        uri = ref(found.obj.get("context"))
        if uri and uri.startswith(("https://", "http://")) and same_host(uri, found.ap_id):
            return uri
    return None


async def _expand(
    ctx: BackfillContext, walk: Walk, start: Found, authors: Authors, collected: dict[str, Found]
) -> None:
    """The thread's other posts: its ``context`` collection (the first the posts collected
    name, ``start`` first), else the ``replies`` of the posts collected (nested, down to
    ``depth``)."""
    context_uri = _context_of([start, *collected.values()])
    if context_uri is not None:
        before = len(collected)
        try:
            async for found in _posts(ctx, walk, _items(walk, context_uri, context_uri), authors):
                collected.setdefault(found.ap_id, found)
        except (FetchError, ValidationError) as exc:
            walk.note(f"context: {exc.reason}")
        if len(collected) > before:
            return
    queue: list[tuple[Found, int]] = [(f, 0) for f in list(collected.values())]
    while queue:
        found, depth = queue.pop(0)
        replies = found.obj.get("replies")
        if replies is None or depth >= walk.caps.depth:
            continue
        try:
            async for item, source in _items(walk, replies, found.ap_id):
                child = await _post(ctx, walk, item, source, authors)
                if child is not None and child.parent == found.ap_id and child.ap_id not in collected:
                    collected[child.ap_id] = child
                    queue.append((child, depth + 1))
        except (FetchError, ValidationError) as exc:
            walk.note(f"replies: {exc.reason}")


async def _store_thread(ctx: BackfillContext, place: Place, collected: dict[str, Found]) -> int:
    stored = 0
    thread_id = place.thread_id
    if thread_id is None:
        roots = [f for f in collected.values() if f.parent is None]
        if not roots:
            return 0
        new = await _store_threads(ctx, place.community_id, roots[:1])
        thread_id = new.get(roots[0].ap_id)
        if thread_id is None:
            async with ctx.pool.acquire() as conn:  # stored meanwhile, or deleted by its author
                known = await threads.post_ref_by_ap_id(conn, roots[0].ap_id)
            if known is None:
                return 0
            thread_id = known.thread_id
        else:
            stored += 1
    replies = [f for f in collected.values() if f.parent is not None]
    return stored + await _store_replies(ctx, thread_id, replies)


# ---------------------------------------------------------------- the queue


def _settle(authors: Authors) -> None:
    """Author look-ups still running when the job stopped (a cap, the deadline) are
    cancelled; the failures of the others count as seen."""
    for future in authors.values():
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()


async def handle(ctx: BackfillContext, job: jobs.Job) -> str:
    """Run one claimed job; returns its new status ('done', 'failed' or 'pending')."""
    walk = Walk(ctx.fetcher, ctx.caps)
    authors: Authors = {}
    status, stored, delay = "done", 0, None
    try:
        if job.kind == "outbox":
            stored = await _outbox(ctx, walk, job, authors)
        else:
            stored = await _thread(ctx, walk, job, authors)
    except GiveUp as exc:
        status = "failed"
        walk.notes.insert(0, str(exc))
    except _Partial as exc:
        stored = exc.stored
        delay = BACKFILL.retry_delay(job.attempts)
        status = "pending" if delay is not None else "failed"
        walk.notes.insert(0, f"server not answering: {exc.cause.cause.reason}")
    finally:
        _settle(authors)
    note = "; ".join(walk.notes)
    async with ctx.pool.acquire() as conn:
        if delay is not None:
            await jobs.retry(conn, job, delay, note, stored)
        else:
            await jobs.finish(conn, job, status, note, stored)
    log.info("backfill job %d (%s): %s, %d stored, %d fetched (%s)", job.id, job.kind, status, stored,
             walk.documents, note)  # fmt: skip
    return status


async def process_due(ctx: BackfillContext, limit: int = BACKFILL.batch) -> int:
    """Forget old finished jobs, then claim up to ``limit`` due jobs and run them
    concurrently; returns how many were claimed."""
    async with ctx.pool.acquire() as conn:
        await jobs.prune(conn)
        claimed = await jobs.claim(conn, limit, BACKFILL.lease)
    results = await asyncio.gather(*(handle(ctx, j) for j in claimed), return_exceptions=True)
    for job, result in zip(claimed, results, strict=True):
        if isinstance(result, Exception):  # a fault of ours: retried as a network error would be
            log.error("backfill job %d: %r", job.id, result, exc_info=result)
            delay = BACKFILL.retry_delay(job.attempts)
            async with ctx.pool.acquire() as conn:
                if delay is not None:
                    await jobs.retry(conn, job, delay, f"error: {result!r}", 0)
                else:
                    await jobs.finish(conn, job, "failed", f"error: {result!r}", 0)
    return len(claimed)


def own_fetcher(fetcher: Fetcher, caps: Caps) -> Fetcher:
    """A fetcher like ``fetcher`` (same signer, instance policy and address policy) with
    the backfill's per-document size and deadline."""
    return Fetcher(fetcher.settings, fetcher.signer, fetcher.domain_allowed, fetcher.policy, caps.limits())
