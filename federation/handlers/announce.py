"""Announce: a boost of an object, or a group relaying someone's activity (FEP-1b12).

A boost (``object`` is a URI or an object, not an activity) is ignored: the forum has
no timeline of boosts. A relayed activity from another server than the group's is
never trusted as embedded: it is fetched again from its own origin (the guarded
fetcher checks that the returned id is the URL asked for), its actor must be on that
origin, and it is then handled as if its actor had sent it. When the activity's id
and actor are on the group's own (verified) server, that server vouches for it as a
refetch would: the embedded copy is validated and used. One level only: an Announce
inside an Announce is ignored.
"""

from __future__ import annotations

from typing import Any

from federation import actors, validation
from federation.errors import ValidationError
from federation.handlers.base import Context, Outcome, VerifiedActor, foreign_id, ignored, ref, same_host

RELAYED_TYPES = {"Create", "Update", "Delete", "Like", "Dislike", "Undo"}


async def handle(ctx: Context) -> Outcome:
    obj = ctx.activity.get("object")
    if ctx.depth > 0:
        return ignored("announce inside an announce")
    if not isinstance(obj, dict) or obj.get("type") not in RELAYED_TYPES:
        return ignored("boost: nothing to do")
    inner_id = ref(obj)
    if inner_id is None:
        return ignored("relayed activity without id")
    if same_host(inner_id, ctx.settings.base_url):
        # A group elsewhere relays what one of our members did there (it relays to every
        # follower instance, the author's too): we sent it, we have it.
        return ignored("our own activity, relayed back")
    if same_host(inner_id, ctx.sender.uri) and same_host(ref(obj.get("actor")), ctx.sender.uri):
        try:
            validation.validate_incoming(obj)
        except ValidationError:
            return ignored("relayed activity does not validate")
        return await _handle_refetched(ctx, obj)
    if obj.get("type") == "Delete":
        return ignored("relayed Delete cannot be refetched (remote moderation is not built yet)")
    fetched: dict[str, Any] = await ctx.fetcher.fetch_object(inner_id)
    return await _handle_refetched(ctx, fetched)


async def _handle_refetched(ctx: Context, activity: dict[str, Any]) -> Outcome:
    from federation.handlers import dispatch  # the registry imports this module: resolved at call time

    actor_uri = ref(activity.get("actor"))
    if actor_uri is None or not same_host(actor_uri, ref(activity)):
        return ignored("relayed activity not from its actor's server")
    if foreign_id(activity, actor_uri) is not None:
        return ignored("relayed activity touches another server's object")
    actor = await actors.get_or_fetch(ctx.conn, ctx.fetcher, actor_uri)
    inner = Context(
        conn=ctx.conn,
        settings=ctx.settings,
        fetcher=ctx.fetcher,
        sender=VerifiedActor(actor.id, actor.uri, actor.domain),
        activity=activity,
        recipient=ctx.recipient,
        depth=ctx.depth + 1,
    )
    return await dispatch(inner)
