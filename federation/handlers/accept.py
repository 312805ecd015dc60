"""Accept / Reject of a Follow this node sent (remote communities: federation/remote.py).

Recorded in ``follow_answers`` (matched later by the Follow's id or by the pair
(follower, followed); the followed actor is the sender), and, when the sender is a
remote community we follow, applied to its ``group_follows`` row (pending → accepted,
or rejected); a newly accepted follow starts the backfill of the group's outbox.
"""

from __future__ import annotations

from typing import Any

from federation import remote
from federation.handlers.base import Context, Outcome, done, ignored, ref

INSERT_ANSWER = """
INSERT INTO follow_answers (activity_id, answer, follow_id, follower_uri, followed_uri)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (activity_id) DO NOTHING
"""


async def handle_accept(ctx: Context) -> Outcome:
    return await _record(ctx, "accept")


async def handle_reject(ctx: Context) -> Outcome:
    return await _record(ctx, "reject")


async def _record(ctx: Context, answer: str) -> Outcome:
    follow: Any = ctx.activity.get("object")
    if isinstance(follow, dict) and follow.get("type") not in (None, "Follow"):
        return ignored(f"{answer} of a {follow.get('type')}")
    follower = ref(follow.get("actor")) if isinstance(follow, dict) else None
    followed = ref(follow.get("object")) if isinstance(follow, dict) else None
    if followed is not None and followed != ctx.sender.uri:
        return ignored(f"{answer} for another actor's follow")
    await ctx.conn.execute(
        INSERT_ANSWER, ctx.activity.get("id"), answer, ref(follow), follower, ctx.sender.uri
    )
    state = await remote.record_answer(
        ctx.conn, ctx.sender.id, ref(follow), follower, answer, fetcher=ctx.fetcher
    )
    return done(f"{answer} recorded" + (f": group follow {state}" if state else ""))
