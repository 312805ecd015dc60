"""What a Group of another server that this node follows announces: applied into its
remote community (issue 11; the model is in ``node.communities``: a remote community is
a row of ``communities`` whose ``actor_id`` is the Group's actor).

An Announce whose sender is such a Group, followed by this node (``group_follows``
pending — Lemmy announces before its Accept reaches us — or accepted), is handled
here instead of as a boost or a relay to one of our groups::

    Announce{Create|Update{Page|Article|Note}}  a new thread, a reply in a thread of
                                                that community, an edit by the author
    Announce{Page|Article|Note | its id}        Lemmy's, PieFed's and Mbin's bare shape
                                                for Mastodon: the same as its Create
    Announce{Like | Undo{Like} | Dislike}       a like counted (dislikes are not)
    Announce{Delete{post}} (author or moderator) the post removed (a thread with its
                                                opening post); a moderator's reason shown
    Announce{Undo{Delete|Remove{post}}}         restored, when the origin removed it (a
                                                local moderator's removal stays)
    Announce{Remove{post} without target}       older Lemmy's moderator removal: the same
    Announce{Add|Remove{post, target featured}} the thread pinned / unpinned
    Announce{Lock | Undo{Lock}}                 the thread locked / unlocked
    Announce{Block{person, target group}}       a ban: with ``removeData``, that person's
                                                posts there removed

Trust: the group is the authority of its own community, and of nothing else. Everything
applies only to posts of that community (a reply's parent, an edited, liked, removed,
pinned or locked post); a new thread always goes into it. Content is taken as embedded
only when the group's own server vouches for it (the object, and the activity, on the
group's host); an object from another server is fetched again from its origin (the
guarded fetcher checks that the id is the URL asked), and its ``attributedTo`` must be
on that origin; a third server's like or undo is fetched again as an activity. An
object its origin does not have (404/410), a refused fetch, or an id on another host
than its author's: ignored, nothing stored. Moderation (Delete, Remove, Add, Lock,
Block) is applied on the group's word alone: a moderator's removal on Lemmy leaves
the comment on its author's server, so a refetch could not confirm it.

Our rules still apply: an author whose server our policy refuses is not stored (silenced
and suspended authors' content is hidden where it is read, by their actor flags); a
post a local moderator removed stays removed (a later Update is ignored); nothing of a
remote community is ever relayed or announced by us (``base.relay``), its origin group
does that. A server that stopped answering is not asked again for ``SILENT_FOR``: the
activities needing it wait in the inbox (``RetryLater``), and a batch of the inbox
worker costs at most one fetch deadline per silent server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from federation import actors, attachments, remote, validation
from federation.errors import FetchError, FetchRefused, ValidationError
from federation.handlers import content
from federation.handlers.base import (
    Community,
    Context,
    Outcome,
    PostRef,
    RetryLater,
    VerifiedActor,
    Via,
    done,
    find_post,
    ignored,
    local_path,
    ref,
    refs,
    remember,
    same_host,
    tombstoned,
)
from federation.policy import decision, host_of
from node import backfill, communities, documents, threads

log = logging.getLogger(__name__)
_T = TypeVar("_T")

POST_TYPES = {"Note", "Page", "Article"}
ACTOR_TYPES = {"Person", "Group", "Service", "Application", "Organization"}
CONTENT_VERBS = {"Create", "Update"}
VOTE_VERBS = {"Like", "Dislike"}
MODERATION_VERBS = {"Delete", "Remove", "Add", "Lock", "Block"}
FOLLOWED_STATES = ("pending", "accepted")
SELECT_FOLLOW_STATE = "SELECT state FROM group_follows WHERE community_id = $1"
SELECT_ACTOR_URI = "SELECT uri FROM actors WHERE id = $1"
FORGET_TOMBSTONE = "DELETE FROM remote_tombstones WHERE object_id = $1 AND reason = 'deleted'"
SELECT_WAITED = "SELECT now() - received_at FROM inbox_items WHERE activity_id = $1"

# A reply whose parent we lack waits this long for it (the inbox worker retries after
# 30 s), then its thread is fetched in the background (node.backfill).
PARENT_WAIT = timedelta(seconds=25)
# A server whose fetch timed out or could not be reached is not asked again for this long.
SILENT_FOR = 60.0
_silent_until: dict[str, float] = {}
SILENT_MAX = 10_000
MODERATION_REASON = "Retiré par la modération de {host}"


# -- who is a followed group ------------------------------------------------------------


async def followed_community(ctx: Context) -> Community | None:
    """The remote community whose Group is the sender, if this node follows it."""
    key = ("followed-group", ctx.sender.id)
    if key not in ctx.cache:
        community = await communities.by_actor(ctx.conn, ctx.sender.id)
        if community is not None:
            state = await ctx.conn.fetchval(SELECT_FOLLOW_STATE, community.id)
            if state not in FOLLOWED_STATES:
                community = None
        ctx.cache[key] = community
    found: Community | None = ctx.cache[key]
    return found


async def handle_announce(ctx: Context, community: Community) -> Outcome:
    """The Announce of a followed group (``ctx.sender``), applied into ``community``."""
    obj = ctx.activity.get("object")
    kind = obj.get("type") if isinstance(obj, dict) else None
    if isinstance(obj, str) or kind in POST_TYPES:
        return await _announced_post(ctx, community, obj)
    inner_id = ref(obj)
    if not isinstance(obj, dict) or inner_id is None:
        return ignored("relayed activity without id")
    if same_host(inner_id, ctx.settings.base_url):
        return ignored("our own activity, relayed back")
    try:
        validation.validate_incoming(obj)
    except ValidationError:
        return ignored("relayed activity does not validate")
    if kind in MODERATION_VERBS:
        return await _moderate(ctx, community, obj, undo=False)
    if kind == "Undo":
        undone = obj.get("object")
        if isinstance(undone, dict) and undone.get("type") in MODERATION_VERBS:
            return await _moderate(ctx, community, undone, undo=True)
    if kind in CONTENT_VERBS:
        return await _content(ctx, community, obj)
    if kind in VOTE_VERBS or kind == "Undo":
        return await _vote(ctx, community, obj)
    return ignored(f"{kind} relayed by a group: nothing to do")


# -- content: threads, replies, edits -----------------------------------------------------


async def _announced_post(ctx: Context, community: Community, obj: Any) -> Outcome:
    """``Announce{Page}`` or ``Announce{id}``: the post itself, as its Create."""
    object_id = ref(obj)
    if object_id is None:
        return ignored("announced object without id")
    if same_host(object_id, ctx.settings.base_url):
        return ignored("our own post, announced back")
    if await find_post(ctx, object_id) is not None:
        return ignored("object already stored")
    post = await _vouched_or_fetched(ctx, obj)
    if post is None:
        return ignored("announced object not found at its origin")
    if post.get("type") not in POST_TYPES:
        return ignored(f"announced {post.get('type')}: not stored")
    author = next((a for a in refs(post.get("attributedTo")) if same_host(a, object_id)), None)
    if author is None:
        return ignored("object not attributed to an actor of its own server")
    create = {"id": object_id, "type": "Create", "actor": author, "object": post}
    return await _as(ctx, community, author, create)


async def _content(ctx: Context, community: Community, activity: dict[str, Any]) -> Outcome:
    """A relayed Create or Update: its object taken as vouched by the group's server, or
    fetched from its origin; then handled as its author's own activity."""
    actor_uri = ref(activity.get("actor"))
    obj = activity.get("object")
    object_id = ref(obj)
    if actor_uri is None or object_id is None:
        return ignored("relayed activity without actor or object")
    if isinstance(obj, dict) and obj.get("type") in ACTOR_TYPES:
        if object_id != ctx.sender.uri:
            return ignored("update of another actor relayed by a group")
        group = await _guarded(ctx.sender.uri, actors.refresh(ctx.conn, ctx.fetcher, ctx.sender.uri))
        if group is None:
            return ignored("group not found at its origin")
        await remote.refresh_community(ctx.conn, group)  # title, description, visibility
        return done("group refreshed")
    if not same_host(object_id, actor_uri) or not same_host(ref(activity), actor_uri):
        return ignored("relayed activity touches another server's object")
    post = await _vouched_or_fetched(ctx, obj)
    if post is None:
        return ignored("relayed object not found at its origin")
    if post.get("type") not in POST_TYPES:
        return ignored(f"{post.get('type')} objects are not stored")
    if actor_uri not in refs(post.get("attributedTo")):
        return ignored("object attributed to another actor")
    return await _as(ctx, community, actor_uri, dict(activity, object=post))


async def _vouched_or_fetched(ctx: Context, obj: Any) -> dict[str, Any] | None:
    """The object as embedded when the group's own server vouches for it, else as its
    origin serves it (None: the origin does not have it, or our guards refuse it)."""
    object_id = ref(obj)
    if object_id is None:
        return None
    if isinstance(obj, dict) and same_host(object_id, ctx.sender.uri):
        try:
            validation.validate_object(obj)
        except ValidationError:
            return None
        return obj
    return await fetch(ctx, object_id)


async def fetch(ctx: Context, uri: str) -> dict[str, Any] | None:
    """A document from its origin through the guarded fetcher (see :func:`_guarded`)."""
    doc: dict[str, Any] | None = await _guarded(uri, ctx.fetcher.fetch_object(uri))
    return doc


async def _guarded(uri: str, call: Awaitable[_T]) -> _T | None:
    """``call``, a fetch from ``uri``'s server. None when asking again cannot help (404,
    410, another 4xx, refused by our guards or policy, a document we refuse: an id that
    is not the URL asked …); a server that does not answer (or answers 408/429: busy) is
    left alone ``SILENT_FOR`` and the activity waits (RetryLater); a 5xx is an error the
    inbox retries."""
    host = host_of(uri)
    if _silent_until.get(host, 0.0) > time.monotonic():
        close = getattr(call, "close", None)
        if close is not None:
            close()  # the coroutine never awaited
        raise RetryLater(f"{host} did not answer lately")
    try:
        return await call
    except (FetchRefused, actors.ActorInvalid):
        return None
    except FetchError as exc:
        status = exc.remote_status
        if status in (408, 429) or (
            status is None and exc.reason.startswith(("deadline exceeded", "fetch failed"))
        ):
            if len(_silent_until) >= SILENT_MAX:
                _silent_until.clear()
            _silent_until[host] = time.monotonic() + SILENT_FOR
            raise RetryLater(f"{host} does not answer: {exc.reason}") from exc
        if status is None or status < 500:
            return None
        raise


async def _as(ctx: Context, community: Community, actor_uri: str, activity: dict[str, Any]) -> Outcome:
    """``activity`` handled as sent by ``actor_uri`` (its server allowed by our policy),
    into ``community`` only."""
    from federation.handlers import dispatch  # the registry imports this module: resolved at call time

    host = host_of(actor_uri)
    key = ("inbound-allowed", host)
    if key not in ctx.cache:  # one decision per server and batch
        ctx.cache[key] = (await decision(ctx.conn, host, own_domain=ctx.settings.domain)).allowed_inbound
    if not ctx.cache[key]:
        return ignored("author's server refused by our policy")
    actor = await _actor(ctx, actor_uri)
    if actor is None:
        return ignored("author not found at its origin")
    inner = Context(
        conn=ctx.conn,
        settings=ctx.settings,
        fetcher=ctx.fetcher,
        sender=actor,
        activity=activity,
        recipient=ctx.recipient,
        depth=ctx.depth + 1,
        via=Via(community, str(ctx.activity.get("id", ""))),
        cache=ctx.cache,
    )
    return await dispatch(inner)


async def _actor(ctx: Context, uri: str) -> VerifiedActor | None:
    """The author, from our cache (any age: its key is not used here) or its origin."""
    key = ("author", uri)
    if key in ctx.cache:
        known: VerifiedActor = ctx.cache[key]
        return known
    actor = await actors.get_cached(ctx.conn, uri)
    if actor is None:
        actor = await _guarded(uri, actors.get_or_fetch(ctx.conn, ctx.fetcher, uri))
    if actor is None or actor.local:
        return None
    verified = ctx.cache[key] = VerifiedActor(actor.id, actor.uri, actor.domain)
    return verified


async def store_post(ctx: Context, obj: dict[str, Any]) -> Outcome:
    """A Page, Article or Note relayed by the group of ``ctx.via``: a new thread of that
    community, or a reply in one of its threads (``create.store`` comes here)."""
    assert ctx.via is not None
    community = ctx.via.community
    object_id = ref(obj)
    if object_id is None:
        return ignored("object without id")
    post = content.from_ap(obj)
    parent_uri = ref(obj.get("inReplyTo"))
    if parent_uri is None:  # the statement checks tombstones and ids itself
        new = threads.RemoteThread(
            0, community.id, ctx.sender.id, post.ap_id, post.title, post.source, post.content_html, False
        )
        thread_id = await threads.store_remote_thread(ctx.conn, new, None)
        if thread_id is None:
            return ignored("object already stored or deleted")
        if post.media:
            await attachments.store_for_objects(ctx.conn, {post.ap_id: post.media})
        if post.document is not None:  # a file attachment: the thread joins the community's library
            await documents.record_remote(ctx.conn, post.document, ctx.settings.remote_documents)
        return done(f"thread {thread_id} in {community.name}")
    if await tombstoned(ctx, object_id):
        return ignored("object already deleted")
    if await find_post(ctx, object_id) is not None:
        return ignored("object already stored")
    parent = await find_post(ctx, parent_uri)
    if parent is None:
        return await _orphan(ctx, object_id)
    if parent.community_id != community.id:
        return ignored("reply to a post of another community")
    if parent.thread_deleted:
        return ignored("thread deleted")
    post_id = await content.store_reply(ctx, parent.thread_id, parent.id, post, local_mentions(ctx, obj))
    return done(f"reply {post_id} in thread {parent.thread_id}")


async def _orphan(ctx: Context, object_id: str) -> Outcome:
    """A reply whose parent we do not store. It first waits ``PARENT_WAIT`` (counted from
    the group's Announce: one retry of the inbox) for a parent just behind it; then its
    thread is fetched in the background from the reply itself (``node.backfill``: the
    inReplyTo chain up to what we store or the root, then the thread's context or
    replies; one job per object), and this activity is done with."""
    assert ctx.via is not None
    waited = await ctx.conn.fetchval(SELECT_WAITED, ctx.via.announce_id)
    if waited is not None and waited < PARENT_WAIT:
        raise RetryLater("parent post not known yet")
    await backfill.schedule_thread(ctx.conn, object_id, community_id=ctx.via.community.id)
    return ignored("parent post unknown: the thread is fetched in the background")


def local_mentions(ctx: Context, obj: dict[str, Any]) -> list[str]:
    """Usernames of our members the object's ``Mention`` tags name (``/u/{name}``)."""
    tags = obj.get("tag")
    found: list[str] = []
    for tag in tags if isinstance(tags, list) else [tags]:
        if not isinstance(tag, dict) or tag.get("type") != "Mention":
            continue
        path = local_path(ctx.settings, ref(tag.get("href")))
        if path and path.startswith("/u/") and path.count("/") == 2 and len(path) <= 40:
            found.append(path[3:])
    return found[:50]


def in_community(ctx: Context, post: PostRef) -> bool:
    """Whether ``post`` belongs to the remote community the activity came by (always
    true when it did not come by a group)."""
    return ctx.via is None or post.community_id == ctx.via.community.id


# -- likes ------------------------------------------------------------------------------------


async def _vote(ctx: Context, community: Community, activity: dict[str, Any]) -> Outcome:
    """A Like, Dislike or Undo{Like}: as embedded when the group's server vouches for it,
    else fetched again as an activity from its own server."""
    activity_id = ref(activity)
    actor_uri = ref(activity.get("actor"))
    if activity_id is None or actor_uri is None or not same_host(activity_id, actor_uri):
        return ignored("relayed activity not from its actor's server")
    if not same_host(activity_id, ctx.sender.uri):
        fetched = await fetch(ctx, activity_id)
        if fetched is None:
            return ignored("relayed activity not found at its origin")
        if ref(fetched.get("actor")) != actor_uri or fetched.get("type") != activity.get("type"):
            return ignored("relayed activity differs from its origin's")
        try:
            validation.validate_incoming(fetched)
        except ValidationError:
            return ignored("relayed activity does not validate")
        activity = fetched
    undone = activity.get("object")
    if (
        activity.get("type") == "Undo"
        and isinstance(undone, dict)
        and (ref(undone.get("actor")) not in (None, actor_uri) or not same_host(ref(undone), actor_uri))
    ):
        return ignored("undo of another actor's activity")
    return await _as(ctx, community, actor_uri, activity)


# -- moderation by the group ------------------------------------------------------------------


async def _moderate(ctx: Context, community: Community, activity: dict[str, Any], *, undo: bool) -> Outcome:
    kind = activity.get("type")
    target = ref(activity.get("target"))
    group = await actors.get_cached(ctx.conn, ctx.sender.uri)
    assert group is not None  # the verified sender
    if kind == "Block":
        return await _ban(ctx, community, activity, target, undo=undo)
    object_id = ref(activity.get("object"))
    if object_id is None:
        return ignored(f"{kind} without object")
    if kind in ("Add", "Remove") and target is not None:
        if target != group.featured:
            return ignored(f"{kind} to {target}: not the group's featured posts")
        if undo:
            return ignored(f"undo of {kind}: its opposite is sent instead")
        return await _pin(ctx, community, object_id, pinned=kind == "Add")
    post = await find_post(ctx, object_id)
    if kind in ("Delete", "Remove"):
        if undo:
            return await _restore(ctx, community, object_id, post)
        return await _remove(ctx, community, activity, object_id, post)
    if kind == "Lock":
        if post is None or post.community_id != community.id or not post.is_opening:
            return ignored("lock of a thread we do not store there")
        changed = await threads.set_remote_locked(ctx.conn, post.thread_id, not undo)
        verb = "unlocked" if undo else "locked"
        return done(f"thread {post.thread_id} {verb}") if changed else ignored(f"thread already {verb}")
    return ignored(f"{kind}: nothing to do")


async def _remove(
    ctx: Context, community: Community, activity: dict[str, Any], object_id: str, post: PostRef | None
) -> Outcome:
    actor_uri = ref(activity.get("actor"))
    if object_id == actor_uri:
        return ignored("an account deletion comes from the account's own server")
    if post is None:
        # Order-tolerant: a Create relayed after the group removed it is ignored.
        if not same_host(object_id, ctx.settings.base_url):
            await remember(ctx, object_id, "deleted")
        return done("unknown object remembered as removed")
    if post.community_id != community.id:
        return ignored("removal of a post of another community")
    if post.deleted:
        return ignored("post already deleted")
    author = await _author_uri(ctx, post)
    by_author = author is not None and author == actor_uri
    reason = ""
    if not by_author:
        summary = activity.get("summary")
        reason = MODERATION_REASON.format(host=host_of(ctx.sender.uri))
        if isinstance(summary, str) and summary.strip():
            reason += f" : {summary.strip()}"
    await threads.remove_by_origin(ctx.conn, post, reason)
    return done(f"post {post.id} {'deleted by its author' if by_author else 'removed by the group'}")


async def _restore(ctx: Context, community: Community, object_id: str, post: PostRef | None) -> Outcome:
    """Undo{Delete}: the origin restores what it removed (never what was removed here)."""
    if post is None:
        await ctx.conn.execute(FORGET_TOMBSTONE, object_id)  # a Create relayed later is taken again
        return done("unknown object no longer remembered as removed")
    if post.community_id != community.id:
        return ignored("restore of a post of another community")
    if not await threads.restore_by_origin(ctx.conn, post):
        return ignored("not removed by its origin: stays as it is")
    await ctx.conn.execute(FORGET_TOMBSTONE, object_id)
    return done(f"post {post.id} restored")


async def _author_uri(ctx: Context, post: PostRef) -> str | None:
    if post.remote_author_id is None:
        return None  # our member's post: only the origin's moderators remove it this way
    uri: str | None = await ctx.conn.fetchval(SELECT_ACTOR_URI, post.remote_author_id)
    return uri


async def _pin(ctx: Context, community: Community, object_id: str, *, pinned: bool) -> Outcome:
    post = await find_post(ctx, object_id)
    if post is None or post.community_id != community.id or not post.is_opening:
        return ignored("pin of a thread we do not store there")
    changed = await threads.set_remote_pinned(ctx.conn, post.thread_id, pinned)
    verb = "pinned" if pinned else "unpinned"
    return done(f"thread {post.thread_id} {verb}") if changed else ignored(f"thread already {verb}")


async def _ban(
    ctx: Context, community: Community, activity: dict[str, Any], target: str | None, *, undo: bool
) -> Outcome:
    if target is not None and target != ctx.sender.uri:
        return ignored("ban from somewhere else than the group")
    if undo:
        return ignored("ban lifted: removed posts stay removed")
    banned_uri = ref(activity.get("object"))
    banned = await actors.get_cached(ctx.conn, banned_uri) if banned_uri else None
    if banned is None or banned.local:
        return ignored("ban of an actor we do not know")
    if activity.get("removeData") is not True:
        return done("ban noted: its posts stay")
    reason = MODERATION_REASON.format(host=host_of(ctx.sender.uri))
    summary = activity.get("summary")
    if isinstance(summary, str) and summary.strip():
        reason += f" : {summary.strip()}"
    removed = await threads.remove_author_in_community(ctx.conn, banned.id, community.id, reason)
    return done(f"ban: {removed} posts removed")
