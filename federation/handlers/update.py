"""Update: an author edits a post, or an actor announces a new version of itself.

- Update{Page|Article|Note} from its author edits the stored post (the previous
  version goes to ``post_edits``, visible to moderators; its attachments replace the
  old ones; a document's new file becomes its new version) and is relayed by the group
  (never for a remote community: its own group relays). A post deleted or removed here
  (by a local moderator too) stays so: a later Update is ignored.
  An Update of an object we never stored is treated as its Create (Lemmy sends
  Update for posts edited before we followed); after a Delete it is ignored.
- Update{Person|Group|Service|Application|Organization} of the sender itself refreshes
  the cached actor from its origin (the embedded copy is not trusted).
"""

from __future__ import annotations

from typing import Any

from federation import actors, attachments, remote
from federation.handlers import content, create, remote_group
from federation.handlers.base import (
    Context,
    Outcome,
    done,
    find_post,
    ignored,
    ref,
    refs,
    relay,
    tombstoned,
)
from node import documents, threads

ACTOR_TYPES = {"Person", "Group", "Service", "Application", "Organization"}


async def handle(ctx: Context) -> Outcome:
    obj = await create.embedded_object(ctx)
    if obj is None:
        return ignored("object missing or not on the author's server")
    kind = obj.get("type")
    if kind in ACTOR_TYPES:
        return await _refresh_actor(ctx, obj)
    if kind not in create.POST_TYPES:
        return ignored(f"updates of {kind} objects are not handled")
    if ctx.sender.uri not in refs(obj.get("attributedTo")):
        return ignored("object attributed to another actor")
    return await _edit(ctx, obj)


async def _edit(ctx: Context, obj: dict[str, Any]) -> Outcome:
    object_id = ref(obj)
    if await tombstoned(ctx, object_id):
        return ignored("object already deleted")
    post = await find_post(ctx, object_id)
    if post is None:
        return await create.store(ctx, obj)
    if not remote_group.in_community(ctx, post):
        return ignored("post of another community than the group's")
    if post.remote_author_id != ctx.sender.id:
        return ignored("only the author may edit")
    if post.deleted or post.thread_deleted:
        return ignored("post deleted")
    edited = content.from_ap(obj)
    await threads.apply_remote_edit(
        ctx.conn, post, ctx.sender.id, edited.title, edited.source, edited.content_html
    )
    await attachments.replace_for_post(ctx.conn, post.id, edited.media)
    if edited.document is not None and post.is_opening:
        await documents.record_remote_update(ctx.conn, edited.document, ctx.settings.remote_documents)
    await relay(ctx, post.community_id)
    return done(f"post {post.id} edited")


async def _refresh_actor(ctx: Context, obj: dict[str, Any]) -> Outcome:
    if ref(obj) != ctx.sender.uri:
        return ignored("update of another actor")
    actor = await actors.refresh(ctx.conn, ctx.fetcher, ctx.sender.uri)
    if actor.kind == "Group":  # a remote community we follow takes its new title, description …
        await remote.refresh_community(ctx.conn, actor)
    return done("actor refreshed")
