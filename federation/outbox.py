"""Outbox events → activities → delivery jobs (docs/architecture.md §2, FEP-1b12).

Node services write ``outbox_events`` rows in the transaction of the change they
describe; a worker consumes them here::

    outbox_events (processed_at IS NULL)
        ──claim, FOR UPDATE SKIP LOCKED──> BUILDERS[kind](ctx, payload) ──> [Outgoing …]
        ──> delivery.enqueue (one job per inbox) ──> processed_at = now()   (one transaction)

What each event becomes (``P`` = the author's or acting member's ``Person``,
``G`` = the community's ``Group``; followers = the group's accepted followers, one
inbox per shared inbox, members-only groups: approved instances only; mentioned =
the inboxes of the remote actors the post mentions, e.g. the author of the post
answered)::

                   to the followers                        P's own activity (stored, served
                   (in this order)                         at its id) only to
    post.created   G: Announce{Create}, then for a public  mentioned
                   post G: Announce{Page or Note id}
    post.updated   G: Announce{Update}                     mentioned
    post.deleted   G: Announce{Delete}                     followers ∪ the ledger's inboxes
    thread.pinned  G: Announce{Add{Page → featured}}       nobody      (unpinned: Remove)
    post.liked     G: Announce{Like{post}}                 nobody      (unliked: Undo{Like})
    relay.announce          G: Announce{activity, unmodified} to every follower instance, the origin's too
    relay.announce_page     G: Announce{Page id} (public groups) to every follower instance
    relay.announce_object   G: Announce{Page or Note id} (public groups) to every follower instance
    follow.accept / reject  G: Accept|Reject{Follow with plain URI actor/object} to the follower's inbox
    person.updated          P: Update{Person} (name or bio changed) to the followers of every community
                            where the member has a post, so other servers refresh their copy
    person.deleted          P: Delete{Person} (the member deleted her account) to the followers of
                            every community where she posted (listed in the event: her posts may
                            be gone by now), signed with her key one last time
    report.forwarded        I: Flag{[author, post]} with the member's reason, to the remote author's
                            instance; for a post of a remote community, I: Flag{post} to its group
                            (``I`` = the instance actor: the reporting member is never named)

The group is the relay (FEP-1b12, as Lemmy's ``send_activity_in_community`` for a
local community): a follower instance gets the member's activity once, inside the
group's Announce, never a second bare copy. Followers on our own kind of node trust
the embedded activity because the group's server is the activity's server
(``handlers.announce``); others may fetch it at its id (``federation.served_activities``). The
bare activity goes where the group's relay does not help: to the people a post
mentions (Mastodon notifies a reply to its user from a ``Create``, not from an
``Announce`` of one), and a ``Delete`` to every instance that received the post, so
Mastodon, which ignores a group's ``Announce{Delete}``, removes the boosted Page too.

Every follower instance gets the relay, the author's own included (Lemmy does the
same): a Mastodon user there who follows the group sees the group's boost only if it
comes. Two shapes go to every follower instance for a public post, because the
threadiverse and Mastodon-API servers read different ones (docs/federation.md):
``Announce{Create{…}}`` (FEP-1b12; Lemmy, PieFed, Mbin, vbg-node) and ``Announce`` of
the object's id (Mastodon and Takahē fetch it, store it as a status — a reply joins its
thread's context — and show the group's boost; an embedded activity they drop).

Public content is addressed to Public; members-only content to ``[group,
group/followers]`` and never to Public.

A post event of a community of ANOTHER server (``communities.actor_id``: a remote group
our node follows) is built by ``federation.remote_posts`` instead: the member's own
activity goes to that group's inbox, which relays it; our groups never relay nor
announce anything of a remote community (the relay builders here skip them).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, get_args

import asyncpg

from federation import actors, delivery, objects, remote, urls
from federation.objects import PUBLIC
from node import accounts, communities, events, reports, threads
from node.db import Conn
from node.errors import AppError
from node.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "vbg_outbox"  # NOTIFY on each new outbox event (the trigger of migration 0060)


@dataclass(frozen=True)
class Outgoing:
    """One activity to store and deliver."""

    activity: dict[str, Any]
    inboxes: list[str]
    object_uri: str | None
    audience: str  # 'public' | 'members' | 'direct'


@dataclass(frozen=True)
class BuildContext:
    conn: asyncpg.Connection
    settings: Settings


Builder = Callable[[BuildContext, dict[str, Any]], Awaitable[list[Outgoing]]]


# ── recipients ────────────────────────────────────────────────────────────────

FOLLOWERS = """
SELECT a.inbox, a.shared_inbox, a.domain
FROM community_followers f
JOIN actors a ON a.id = f.actor_id
LEFT JOIN instances i ON i.domain = a.domain
WHERE f.community_id = $1 AND f.state = 'accepted' AND NOT a.local AND a.deleted_at IS NULL
  AND ($2::boolean IS FALSE OR coalesce(i.approved, false))
ORDER BY f.created_at, a.id
"""


async def follower_inboxes(ctx: BuildContext, community_id: int, visibility: str) -> list[str]:
    """The inboxes of the community's accepted followers, one per shared inbox (so an
    instance with many followers gets one copy); for a members-only community,
    followers on approved instances only."""
    rows = await ctx.conn.fetch(FOLLOWERS, community_id, visibility == "members")
    return delivery.pick_inboxes([(r["inbox"], r["shared_inbox"]) for r in rows], ctx.settings.domain)


async def community_inboxes(ctx: BuildContext, community_id: int, visibility: str) -> list[str]:
    """Who learns of a member who wrote in this community: the followers of one of
    ours, the group's inbox for a community of another server (it relays to its own)."""
    from federation import remote_posts

    group = await remote_posts.remote_group(ctx, community_id)
    if group is not None:
        return delivery.pick_inboxes([(group["inbox"] or group["shared_inbox"], None)], ctx.settings.domain)
    return await follower_inboxes(ctx, community_id, visibility)


def _union(*lists: list[str]) -> list[str]:
    return list(dict.fromkeys(url for urls_ in lists for url in urls_))


# ── activity shapes ───────────────────────────────────────────────────────────


def envelope(
    settings: Settings, kind: str, actor: str, obj: Any, to: list[str], cc: list[str], **extra: Any
) -> dict[str, Any]:
    """An activity with a fresh id under ``/activities/``."""
    doc: dict[str, Any] = {
        "id": urls.new_activity(settings),
        "type": kind,
        "actor": actor,
        "object": obj,
        "to": to,
        "cc": cc,
        **extra,
    }
    return objects.with_context(doc)


def _bare(activity: dict[str, Any]) -> dict[str, Any]:
    """An activity to embed in another: without its ``@context``."""
    return {k: v for k, v in activity.items() if k != "@context"}


def group_addressing(group_uri: str, visibility: str) -> tuple[list[str], list[str]]:
    """``(to, cc)`` of what the group sends: never Public for members-only groups."""
    followers = f"{group_uri}/followers"
    if visibility == "public":
        return [PUBLIC], [followers]
    return [group_uri, followers], []


def announce(settings: Settings, group_uri: str, visibility: str, obj: Any) -> dict[str, Any]:
    """FEP-1b12: the group relays ``obj`` (an activity, or a Page) to its followers."""
    to, cc = group_addressing(group_uri, visibility)
    return envelope(settings, "Announce", group_uri, obj, to, cc, audience=group_uri)


def _audience(visibility: str) -> str:
    return "public" if visibility == "public" else "members"


# ── content events (local members' actions) ──────────────────────────────────


@dataclass(frozen=True)
class _Scene:
    """A local post and who speaks about it."""

    view: objects.PostView
    object_uri: str
    person_uri: str
    group_uri: str


async def _scene(ctx: BuildContext, payload: dict[str, Any]) -> _Scene | None:
    event = events.PostEvent.from_json(payload)
    if event.post_id is None:
        return None
    view = await objects.load_post(ctx.conn, event.post_id)
    if view.visibility == "local" or view.remote:
        return None  # never federated; remote posts travel as relay.announce
    person = await actors.ensure_local_actor(ctx.conn, ctx.settings, "Person", user_id=event.actor_user_id)
    group = await actors.ensure_local_actor(ctx.conn, ctx.settings, "Group", community_id=view.community_id)
    return _Scene(view, objects.post_id(ctx.settings, view.row), person.uri, group.uri)


def _relayed(
    ctx: BuildContext,
    scene: _Scene,
    activity: dict[str, Any],
    followers: list[str],
    direct: Sequence[str] = (),
) -> list[Outgoing]:
    """The group's Announce of the member's activity to the followers (first: its
    jobs are claimed first), and the member's activity itself, stored (it is served
    at its id) and sent only to the ``direct`` inboxes."""
    audience = _audience(scene.view.visibility)
    relayed = announce(ctx.settings, scene.group_uri, scene.view.visibility, _bare(activity))
    return [
        Outgoing(relayed, followers, scene.object_uri, audience),
        Outgoing(activity, list(direct), scene.object_uri, audience),
    ]


SELECT_MENTIONED = """
SELECT a.inbox, a.shared_inbox
FROM actors a LEFT JOIN instances i ON i.domain = a.domain
WHERE a.uri = ANY($1::text[]) AND NOT a.local AND a.deleted_at IS NULL
  AND ($2::boolean IS FALSE OR coalesce(i.approved, false))
"""


async def mentioned_inboxes(ctx: BuildContext, scene: _Scene, obj: dict[str, Any]) -> list[str]:
    """The inboxes of the remote actors a post mentions (not its group), one per
    shared inbox; for a members-only community, on approved instances only."""
    hrefs = [
        tag["href"]
        for tag in obj.get("tag", [])
        if isinstance(tag, dict) and tag.get("type") == "Mention" and tag.get("href") != scene.group_uri
    ]
    if not hrefs:
        return []
    rows = await ctx.conn.fetch(SELECT_MENTIONED, hrefs, scene.view.visibility == "members")
    return delivery.pick_inboxes([(r["inbox"], r["shared_inbox"]) for r in rows], ctx.settings.domain)


def _default(scene: _Scene) -> tuple[list[str], list[str]]:
    followers = f"{scene.group_uri}/followers"
    if scene.view.visibility == "public":
        return [PUBLIC], [scene.group_uri, followers]
    return [scene.group_uri, followers], []


async def post_created(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    scene = await _scene(ctx, payload)
    if scene is None or scene.view.deleted:
        return []  # deleted before it left: the Delete event speaks for it
    obj = objects.post_to_ap(ctx.settings, scene.view)
    to, cc = obj["to"], obj["cc"]
    create = envelope(ctx.settings, "Create", scene.person_uri, obj, to, cc, audience=scene.group_uri)
    inboxes = await follower_inboxes(ctx, scene.view.community_id, scene.view.visibility)
    out = _relayed(ctx, scene, create, inboxes, await mentioned_inboxes(ctx, scene, obj))
    if scene.view.visibility == "public":
        # Mastodon-API servers show a post as the group's boost of its id (a reply then
        # joins its thread's context); queued last, so every instance gets the
        # Announce{Create} before any boost.
        out.append(boost(ctx, scene.group_uri, scene.object_uri, inboxes))
    return out


def boost(ctx: BuildContext, group_uri: str, object_uri: str, inboxes: list[str]) -> Outgoing:
    """The group's ``Announce`` of a public post's id (not embedded: Takahē takes an
    embedded object's ``inReplyTo`` for the boosted post, Mastodon refetches it anyway)."""
    return Outgoing(announce(ctx.settings, group_uri, "public", object_uri), inboxes, object_uri, "public")


async def post_updated(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    scene = await _scene(ctx, payload)
    if scene is None or scene.view.deleted:
        return []
    obj = objects.post_to_ap(ctx.settings, scene.view)
    update = envelope(
        ctx.settings, "Update", scene.person_uri, obj, obj["to"], obj["cc"], audience=scene.group_uri
    )
    inboxes = await follower_inboxes(ctx, scene.view.community_id, scene.view.visibility)
    return _relayed(ctx, scene, update, inboxes, await mentioned_inboxes(ctx, scene, obj))


async def post_deleted(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    scene = await _scene(ctx, payload)
    if scene is None:
        return []
    tombstone = objects.tombstone(ctx.settings, scene.view) if scene.view.deleted else _tombstone_now(scene)
    to, cc = _default(scene)
    delete = envelope(ctx.settings, "Delete", scene.person_uri, tombstone, to, cc, audience=scene.group_uri)
    followers = await follower_inboxes(ctx, scene.view.community_id, scene.view.visibility)
    # Every instance that ever received the object, even one that stopped following;
    # the bare Delete to all of them: Mastodon ignores the group's Announce{Delete}.
    ledger = await delivery.ledger_inboxes(ctx.conn, scene.object_uri)
    # (The people the post mentioned got its Create, so they are in the ledger.)
    return _relayed(ctx, scene, delete, followers, _union(followers, ledger))


def _tombstone_now(scene: _Scene) -> dict[str, Any]:
    return {
        "id": scene.object_uri,
        "type": "Tombstone",
        "formerType": "Page" if scene.view.is_opening else "Note",
    }


def _featured_change(kind: str) -> Builder:
    async def build(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
        scene = await _scene(ctx, payload)
        if scene is None or not scene.view.is_opening or scene.view.deleted:
            return []
        to, cc = _default(scene)
        target = f"{scene.group_uri}/featured"
        change = envelope(
            ctx.settings,
            kind,
            scene.person_uri,
            scene.object_uri,
            to,
            cc,
            target=target,
            audience=scene.group_uri,
        )
        inboxes = await follower_inboxes(ctx, scene.view.community_id, scene.view.visibility)
        return _relayed(ctx, scene, change, inboxes)

    return build


LAST_LIKE = """
SELECT json FROM activities
WHERE actor_uri = $1 AND object_uri = $2 AND json->>'type' = 'Like'
ORDER BY id DESC LIMIT 1
"""


async def post_liked(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    scene = await _like_scene(ctx, payload)
    if scene is None:
        return []
    to, cc = _default(scene)
    like = envelope(
        ctx.settings, "Like", scene.person_uri, scene.object_uri, to, cc, audience=scene.group_uri
    )
    inboxes = await follower_inboxes(ctx, scene.view.community_id, scene.view.visibility)
    return _relayed(ctx, scene, like, inboxes)


async def post_unliked(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    scene = await _like_scene(ctx, payload)
    if scene is None:
        return []
    to, cc = _default(scene)
    like = await ctx.conn.fetchval(LAST_LIKE, scene.person_uri, scene.object_uri)
    if like is None:
        return []  # the Like never left: nothing to undo
    undo = envelope(ctx.settings, "Undo", scene.person_uri, _bare(like), to, cc, audience=scene.group_uri)
    inboxes = await follower_inboxes(ctx, scene.view.community_id, scene.view.visibility)
    return _relayed(ctx, scene, undo, inboxes)


async def _like_scene(ctx: BuildContext, payload: dict[str, Any]) -> _Scene | None:
    """Likes may be on remote posts too (the object keeps its own id)."""
    event = events.PostEvent.from_json(payload)
    if event.post_id is None:
        return None
    view = await objects.load_post(ctx.conn, event.post_id)
    if view.visibility == "local" or view.deleted:
        return None
    person = await actors.ensure_local_actor(ctx.conn, ctx.settings, "Person", user_id=event.actor_user_id)
    group = await actors.ensure_local_actor(ctx.conn, ctx.settings, "Group", community_id=view.community_id)
    return _Scene(view, objects.post_id(ctx.settings, view.row), person.uri, group.uri)


# ── relays and answers (events from the inbox) ────────────────────────────────

SELECT_ACTOR = "SELECT uri, inbox, shared_inbox, domain, local FROM actors WHERE id = $1"
SELECT_LOCAL_ACTOR = "SELECT uri FROM actors WHERE id = $1 AND local"


async def _visibility(ctx: BuildContext, community_id: int) -> str | None:
    """The visibility of a community our group relays for (None: missing, local, or a
    community of another server: its own group relays, never ours)."""
    community = await communities.by_id(ctx.conn, community_id)
    if community is None or community.visibility == "local" or community.remote:
        return None
    return community.visibility


async def _group_uri(ctx: BuildContext, community_id: int) -> str:
    group = await actors.ensure_local_actor(ctx.conn, ctx.settings, "Group", community_id=community_id)
    return group.uri


def _ref(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


async def relay_announce(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    """A remote activity accepted in one of our groups, relayed unmodified (nothing at
    all, not even a stored Announce, when no other instance follows the group)."""
    event = events.RelayAnnounce.from_json(payload)
    community_id, activity = event.community_id, event.activity
    visibility = await _visibility(ctx, community_id)
    if visibility is None or not activity:
        return []
    inboxes = await follower_inboxes(ctx, community_id, visibility)
    if not inboxes:
        return []
    relayed = announce(ctx.settings, await _group_uri(ctx, community_id), visibility, activity)
    return [Outgoing(relayed, inboxes, _ref(activity.get("object")), _audience(visibility))]


async def relay_announce_page(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    """A remote member's new thread in a public group, boosted for Mastodon."""
    event = events.RelayAnnouncePage.from_json(payload)
    view = await objects.load_thread(ctx.conn, event.thread_id)
    return await _boost_remote(ctx, event.community_id, view)


async def relay_announce_object(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    """A remote member's thread or reply in a public group, boosted for Mastodon-API servers."""
    event = events.RelayAnnounceObject.from_json(payload)
    view = await objects.load_post(ctx.conn, event.post_id)
    return await _boost_remote(ctx, event.community_id, view)


async def _boost_remote(ctx: BuildContext, community_id: int, view: objects.PostView) -> list[Outgoing]:
    """By id (the post is its author's server's to serve), to every follower instance,
    the author's own too; nothing when nobody follows or the post is gone."""
    if await _visibility(ctx, community_id) != "public" or view.deleted or view.community_id != community_id:
        return []
    inboxes = await follower_inboxes(ctx, community_id, "public")
    if not inboxes:
        return []
    group_uri = await _group_uri(ctx, community_id)
    return [boost(ctx, group_uri, objects.post_id(ctx.settings, view.row), inboxes)]


def _answer(kind: str) -> Builder:
    async def build(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
        event = events.FollowAnswer.from_json(payload)
        follower = await ctx.conn.fetchrow(SELECT_ACTOR, event.actor_id)
        speaker = await _answering_actor(ctx, event)
        follow = event.follow
        if follower is None or follower["local"] or speaker is None or not follow:
            return []
        # Plain URI strings: some servers cannot match a Follow whose actor is embedded.
        embedded = {
            "id": follow.get("id"),
            "type": "Follow",
            "actor": _ref(follow.get("actor")) or follower["uri"],
            "object": _ref(follow.get("object")) or speaker,
        }
        answer = envelope(ctx.settings, kind, speaker, embedded, [follower["uri"]], [])
        inbox = follower["inbox"] or follower["shared_inbox"]
        inboxes = delivery.pick_inboxes([(inbox, None)], ctx.settings.domain)
        return [Outgoing(answer, inboxes, None, "direct")]

    return build


async def _answering_actor(ctx: BuildContext, event: events.FollowAnswer) -> str | None:
    if event.local_actor_id is not None:
        uri: str | None = await ctx.conn.fetchval(SELECT_LOCAL_ACTOR, event.local_actor_id)
        if uri is not None:
            return uri
    if event.community_id is not None:
        group = await actors.ensure_local_actor(
            ctx.conn, ctx.settings, "Group", community_id=event.community_id
        )
        return group.uri
    return None


async def person_updated(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    member = await accounts.approved_member_by_id(ctx.conn, events.PersonUpdated.from_json(payload).user_id)
    if member is None:
        return []
    # The federated communities where the member has a post (their followers know the member).
    wrote_in = await threads.federated_communities_of_author(ctx.conn, member["id"])
    inboxes = _union(*[await community_inboxes(ctx, c["id"], c["visibility"]) for c in wrote_in])
    if not inboxes:
        return []
    actor = await actors.ensure_local_actor(ctx.conn, ctx.settings, "Person", user_id=member["id"])
    person = objects.person_to_ap(ctx.settings, actor, member)
    activity = envelope(ctx.settings, "Update", actor.uri, person, [PUBLIC], [actor.followers or actor.uri])
    return [Outgoing(activity, inboxes, actor.uri, "public")]


async def person_deleted(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    """``Delete{Person}`` as Mastodon sends it when an account is deleted: object = the
    actor's id, to Public; other servers then drop their copy of the member."""
    event = events.PersonDeleted.from_json(payload)
    # Her subscriptions are gone: a remote community nobody else follows is left (Undo{Follow}).
    await remote.undo_unused(ctx.conn, ctx.settings)
    # A follow held in her name (a server that wants a person) passes to another member.
    await remote.follow_again_without(ctx.conn, ctx.settings, event.user_id)
    inboxes = _union(*[await community_inboxes(ctx, c.id, c.visibility) for c in event.communities])
    if not inboxes:
        return []
    actor = await actors.ensure_local_actor(ctx.conn, ctx.settings, "Person", user_id=event.user_id)
    activity = envelope(ctx.settings, "Delete", actor.uri, actor.uri, [PUBLIC], [])
    return [Outgoing(activity, inboxes, actor.uri, "public")]


# The remote author of a member's reported post (node.reports.forwarded_report).
SELECT_REPORTED_AUTHOR = """
SELECT uri, inbox, shared_inbox, domain FROM actors WHERE id = $1 AND NOT local AND deleted_at IS NULL
"""


async def report_forwarded(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    """A member's report, forwarded from the instance actor (so the member stays
    anonymous) with the reason, never the post's text:

    - to the remote author's instance, the way Mastodon forwards one: a ``Flag`` of
      ``[author, post]`` (Mastodon files a report only against an account it is given);
    - for a post in a community of another server, to that community's group, whose
      moderators rule there: a ``Flag`` of the post's id alone, ``to`` and ``audience``
      the group (what Lemmy and PieFed read); the author's instance is told apart only
      when it is not the group's."""
    report = await reports.forwarded_report(ctx.conn, events.ReportForwarded.from_json(payload).report_id)
    if report is None:
        return []
    author = None
    if report["remote_author_id"] is not None:
        author = await ctx.conn.fetchrow(SELECT_REPORTED_AUTHOR, report["remote_author_id"])
    group = (
        await ctx.conn.fetchrow(SELECT_ACTOR, report["group_actor_id"]) if report["group_actor_id"] else None
    )
    instance = await actors.instance_actor(ctx.conn, ctx.settings)
    out: list[Outgoing] = []
    if group is not None and not group["local"]:
        flag = _flag(ctx, instance.uri, report["target_ids"][0], report["content"], to=[group["uri"]])
        flag["audience"] = group["uri"]
        inboxes = delivery.pick_inboxes(
            [(group["inbox"] or group["shared_inbox"], None)], ctx.settings.domain
        )
        out.append(Outgoing(flag, inboxes, None, "direct"))
    if author is not None and (group is None or author["domain"] != group["domain"]):
        flag = _flag(ctx, instance.uri, [author["uri"], *report["target_ids"]], report["content"])
        inboxes = delivery.pick_inboxes([(author["inbox"], author["shared_inbox"])], ctx.settings.domain)
        out.append(Outgoing(flag, inboxes, None, "direct"))
    return out


def _flag(
    ctx: BuildContext, actor: str, obj: str | list[str], reason: str, to: Sequence[str] = ()
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": urls.new_activity(ctx.settings),
        "type": "Flag",
        "actor": actor,
        "object": obj,
        "content": reason,
    }
    if to:
        # Lemmy reads the reason from ``summary`` (``content`` too since 0.19), and the
        # community from ``to``.
        doc.update({"to": list(to), "summary": reason})
    return objects.with_context(doc)


async def message_created(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    """A private message (``node.messages``): see ``federation.private_messages``."""
    from federation import private_messages

    return await private_messages.message_created(ctx, payload)


BUILDERS: dict[str, Builder] = {
    "post.created": post_created,
    "post.updated": post_updated,
    "post.deleted": post_deleted,
    "thread.pinned": _featured_change("Add"),
    "thread.unpinned": _featured_change("Remove"),
    "post.liked": post_liked,
    "post.unliked": post_unliked,
    "relay.announce": relay_announce,
    "relay.announce_page": relay_announce_page,
    "relay.announce_object": relay_announce_object,
    "follow.accept": _answer("Accept"),
    "follow.reject": _answer("Reject"),
    "person.updated": person_updated,
    "person.deleted": person_deleted,
    "report.forwarded": report_forwarded,
    "message.created": message_created,
}


# ── consuming the events ──────────────────────────────────────────────────────

CLAIM_EVENTS = """
SELECT id, kind, payload FROM outbox_events
WHERE processed_at IS NULL
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
"""
MARK_PROCESSED = "UPDATE outbox_events SET processed_at = now() WHERE id = ANY($1::bigint[])"
PURGE_PROCESSED = "DELETE FROM outbox_events WHERE processed_at < now() - $1::interval"
KEEP_PROCESSED = timedelta(days=7)
# What a malformed or dangling event raises; anything else is a real failure and
# rolls the whole batch back for a later retry.
SKIPPABLE = (AppError, KeyError, TypeError, ValueError)


POST_KINDS = frozenset(get_args(events.PostKind))


async def build(ctx: BuildContext, kind: str, payload: dict[str, Any]) -> list[Outgoing]:
    """The activities one event becomes (empty for a kind we do not federate). A post
    event of a community of another server goes to its group (``federation.remote_posts``)."""
    builder = BUILDERS.get(kind)
    if builder is None:
        return []
    if kind in POST_KINDS and await _of_remote_community(ctx, payload):
        from federation import remote_posts

        return await remote_posts.build(ctx, kind, payload)
    return await builder(ctx, payload)


async def _of_remote_community(ctx: BuildContext, payload: dict[str, Any]) -> bool:
    community = await communities.by_id(ctx.conn, events.PostEvent.from_json(payload).community_id)
    return community is not None and community.remote


async def process_pending(pool: asyncpg.Pool, settings: Settings, limit: int = 50) -> int:
    """Turn up to ``limit`` unprocessed events into delivery jobs, in one transaction
    (so an event is either fully enqueued or still pending); the number consumed."""
    async with pool.acquire() as conn, conn.transaction():
        events = await conn.fetch(CLAIM_EVENTS, limit)
        ctx = BuildContext(conn, settings)
        for event in events:
            await _process_one(ctx, event)
        if events:
            await conn.execute(MARK_PROCESSED, [e["id"] for e in events])
    return len(events)


async def _process_one(ctx: BuildContext, event: asyncpg.Record) -> None:
    try:
        async with ctx.conn.transaction():  # a savepoint: a bad event leaves no half-enqueued jobs
            for out in await build(ctx, event["kind"], event["payload"]):
                refusal = delivery.is_refusal(out.activity)
                inboxes = await delivery.deliverable(
                    ctx.conn, ctx.settings.domain, out.inboxes, refusal=refusal
                )
                await delivery.enqueue(
                    ctx.conn, out.activity, inboxes, object_uri=out.object_uri, audience=out.audience
                )
    except SKIPPABLE as exc:
        log.warning("outbox event %s (%s) skipped: %r", event["id"], event["kind"], exc)


async def purge_processed(conn: Conn) -> None:
    """Forget events consumed more than ``KEEP_PROCESSED`` ago (their activities stay)."""
    await conn.execute(PURGE_PROCESSED, KEEP_PROCESSED)
