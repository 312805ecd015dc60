"""Our members acting in a community of another server (a remote group our node follows).

A new thread, reply, edit, deletion or like of one of our members in a remote community
(``communities.actor_id`` set) is stored here as ours by ``node.threads``, which writes
the usual post event; ``federation.outbox`` hands the events of such a community to the
builders here, and every activity goes to the GROUP's inbox. The group is the relay
(FEP-1b12): nothing of a remote community ever goes to followers of ours, nor as an
Announce of ours::

    post.created   P: Create{Page (a new thread) | Note (a reply)}  → the group's inbox (+, in a
                      public community, the people the post mentions on other hosts)
    post.updated   P: Update{Page | Note}                           → the same
    post.deleted   A: Delete{Tombstone} (A: the post's author, even  → the group's inbox ∪ every
                      when one of our moderators removed it)            inbox that received it
    post.liked     P: Like{post id}                                 → the group's inbox
    post.unliked   P: Undo{the Like sent}                           → the group's inbox
    thread.pinned / thread.unpinned                                 → nothing (a choice of ours)

(``P``: the acting member's Person.) The post addresses the group (``to``), with Public in
``cc`` when the community is public (Lemmy refuses a post to a public community without
Public in ``to`` or ``cc``) and the author of the post answered in ``cc``; its
``audience`` is the group, which is also ``Mention``ed (Lemmy, PieFed and Mbin find the
community by ``audience``, microblog servers by the Mention). A members-only community's
posts go to the group alone: whom it relays them to is its moderators' decision.

A post written elsewhere (a remote member's, in that community) never leaves from here:
a removal of one by our moderators is ours alone. What is sent is stored in
``activities`` and served at its id only to who may read the post
(``node.access.may_read`` with the group's host as ``origin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from federation import actors, delivery, objects
from federation.objects import PUBLIC
from federation.outbox import (
    LAST_LIKE,
    SELECT_ACTOR,
    SELECT_MENTIONED,
    BuildContext,
    Builder,
    Outgoing,
    envelope,
)
from node import communities, events


@dataclass(frozen=True)
class _Scene:
    """A post of a remote community, the member who acts on it and the group."""

    view: objects.PostView
    object_uri: str
    person_uri: str
    group: asyncpg.Record  # uri, inbox, shared_inbox, domain, local

    @property
    def group_uri(self) -> str:
        value: str = self.group["uri"]
        return value

    @property
    def audience(self) -> str:
        """``activities.audience``: who may fetch what we stored (the post decides, see
        ``federation.served_activities``)."""
        return "public" if self.view.visibility == "public" else "members"

    def addressing(self) -> tuple[list[str], list[str]]:
        return [self.group_uri], [PUBLIC] if self.view.visibility == "public" else []

    def group_inboxes(self, own_domain: str) -> list[str]:
        # The group's own inbox: it names the community for servers that route by inbox.
        return delivery.pick_inboxes([(self.group["inbox"] or self.group["shared_inbox"], None)], own_domain)


async def _scene(
    ctx: BuildContext, payload: dict[str, Any], *, acting_user_id: int | None = None
) -> _Scene | None:
    event = events.PostEvent.from_json(payload)
    if event.post_id is None:
        return None
    view = await objects.load_post(ctx.conn, event.post_id)
    group = await remote_group(ctx, view.community_id)
    if group is None:
        return None
    user_id = event.actor_user_id if acting_user_id is None else acting_user_id
    person = await actors.ensure_local_actor(ctx.conn, ctx.settings, "Person", user_id=user_id)
    return _Scene(view, objects.post_id(ctx.settings, view.row), person.uri, group)


async def remote_group(ctx: BuildContext, community_id: int) -> asyncpg.Record | None:
    """The remote group (uri, inbox, shared_inbox, domain) of a community of another
    server; None for one of ours."""
    community = await communities.by_id(ctx.conn, community_id)
    if community is None or community.actor_id is None:
        return None
    group = await ctx.conn.fetchrow(SELECT_ACTOR, community.actor_id)
    return None if group is None or group["local"] else group


async def _mentioned_elsewhere(ctx: BuildContext, scene: _Scene, obj: dict[str, Any]) -> list[str]:
    """The inboxes of the people a public post mentions (the author answered …) on other
    hosts than the group's (the group relays to its own host); none for a members-only
    community, whose followers only its group knows."""
    if scene.view.visibility != "public":
        return []
    hrefs = [
        tag["href"]
        for tag in obj.get("tag", [])
        if isinstance(tag, dict) and tag.get("type") == "Mention" and tag.get("href") != scene.group_uri
    ]
    rows = await ctx.conn.fetch(SELECT_MENTIONED, hrefs, False) if hrefs else []
    inboxes = delivery.pick_inboxes([(r["inbox"], r["shared_inbox"]) for r in rows], ctx.settings.domain)
    return [url for url in inboxes if delivery.domain_of(url) != scene.group["domain"]]


def _union(*lists: list[str]) -> list[str]:
    return list(dict.fromkeys(url for urls_ in lists for url in urls_))


def _post_activity(kind: str) -> Builder:
    """``Create`` or ``Update`` of our member's post."""

    async def build(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
        scene = await _scene(ctx, payload)
        if scene is None or scene.view.remote or scene.view.deleted:
            return []  # not ours to send; deleted before it left: the Delete speaks for it
        obj = objects.post_to_ap(ctx.settings, scene.view)
        # The Mentions on the activity too, as Lemmy sends them (it notifies from there).
        mentions = [t for t in obj["tag"] if t.get("type") == "Mention"]
        activity = envelope(
            ctx.settings,
            kind,
            scene.person_uri,
            obj,
            obj["to"],
            obj["cc"],
            audience=scene.group_uri,
            tag=mentions,
        )
        inboxes = _union(
            scene.group_inboxes(ctx.settings.domain), await _mentioned_elsewhere(ctx, scene, obj)
        )
        return [Outgoing(activity, inboxes, scene.object_uri, scene.audience)]

    return build


async def post_deleted(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    """Spoken by the post's author (the group accepts a Delete from its author; our
    moderators' removal of one of our members' posts is still a deletion for it)."""
    event = events.PostEvent.from_json(payload)
    if event.post_id is None:
        return []
    view = await objects.load_post(ctx.conn, event.post_id)
    author_id = view.row["author_id"]
    if view.remote or author_id is None:
        return []  # a remote member's post removed here, or an author gone (person.deleted)
    scene = await _scene(ctx, payload, acting_user_id=author_id)
    if scene is None:
        return []
    tombstone = objects.tombstone(ctx.settings, scene.view) if scene.view.deleted else _tombstone_now(scene)
    to, cc = scene.addressing()
    delete = envelope(ctx.settings, "Delete", scene.person_uri, tombstone, to, cc, audience=scene.group_uri)
    ledger = await delivery.ledger_inboxes(ctx.conn, scene.object_uri)
    return [
        Outgoing(
            delete, _union(scene.group_inboxes(ctx.settings.domain), ledger), scene.object_uri, scene.audience
        )
    ]


def _tombstone_now(scene: _Scene) -> dict[str, Any]:
    return {
        "id": scene.object_uri,
        "type": "Tombstone",
        "formerType": "Page" if scene.view.is_opening else "Note",
    }


async def post_liked(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    scene = await _scene(ctx, payload)
    if scene is None or scene.view.deleted:
        return []
    to, cc = scene.addressing()
    like = envelope(
        ctx.settings, "Like", scene.person_uri, scene.object_uri, to, cc, audience=scene.group_uri
    )
    return [Outgoing(like, scene.group_inboxes(ctx.settings.domain), scene.object_uri, scene.audience)]


async def post_unliked(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    scene = await _scene(ctx, payload)
    if scene is None:
        return []
    like = await ctx.conn.fetchval(LAST_LIKE, scene.person_uri, scene.object_uri)
    if like is None:
        return []  # the Like never left: nothing to undo
    to, cc = scene.addressing()
    bare = {k: v for k, v in like.items() if k != "@context"}
    undo = envelope(ctx.settings, "Undo", scene.person_uri, bare, to, cc, audience=scene.group_uri)
    return [Outgoing(undo, scene.group_inboxes(ctx.settings.domain), scene.object_uri, scene.audience)]


async def _nothing(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    return []


BUILDERS: dict[str, Builder] = {
    "post.created": _post_activity("Create"),
    "post.updated": _post_activity("Update"),
    "post.deleted": post_deleted,
    "post.liked": post_liked,
    "post.unliked": post_unliked,
    "thread.pinned": _nothing,
    "thread.unpinned": _nothing,
}


async def build(ctx: BuildContext, kind: str, payload: dict[str, Any]) -> list[Outgoing]:
    """The activities a post event of a remote community becomes (every post kind is listed)."""
    return await BUILDERS[kind](ctx, payload)
