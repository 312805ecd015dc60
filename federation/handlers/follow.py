"""Follow: a remote actor asks to follow one of our actors.

The follow of a community is a small state machine held in ``community_followers``::

    (none) ──Follow, public group──────────────────────────> accepted  (+ follow.accept)
    (none) ──Follow, members group, instance approved──────> accepted  (+ follow.accept)
    (none) ──Follow, members group, instance not approved──> pending
    pending ──approve_instance(domain)─────────────────────> accepted  (+ follow.accept)
    pending ──refuse_instance(domain)──────────────────────> rejected  (+ follow.reject)
    any ──Undo{Follow}─────────────────────────────────────> (none)

A repeated Follow (the sender never saw our Accept) records the new activity id and
answers again; after a refusal, a new Follow is a new request (pending again). A ``local`` community is never federated: its
follows are rejected. Our members' ``Person`` actors and the instance actor are not
followable (no public member directory, nothing is published to followers of a
person): such a Follow gets a ``Reject`` rather than a silent, never-honoured Accept.
"""

from __future__ import annotations

from typing import Any, Literal

import asyncpg

from federation.handlers.base import (
    Community,
    Context,
    Outcome,
    done,
    emit,
    ignored,
    instance_approved,
    local_group,
    local_path,
    ref,
    tombstoned,
)
from node import audit, events

UPSERT_FOLLOWER = """
INSERT INTO community_followers (community_id, actor_id, follow_activity_id, state, decided_at)
VALUES ($1, $2, $3, $4, CASE WHEN $4 = 'pending' THEN NULL ELSE now() END)
ON CONFLICT (community_id, actor_id) DO UPDATE
SET follow_activity_id = EXCLUDED.follow_activity_id,
    state = CASE WHEN community_followers.state = 'accepted' THEN 'accepted' ELSE EXCLUDED.state END,
    decided_at = coalesce(community_followers.decided_at, EXCLUDED.decided_at)
RETURNING state
"""
SELECT_LOCAL_ACTOR = "SELECT id FROM actors WHERE uri = $1 AND local"


async def handle(ctx: Context) -> Outcome:
    follow = ctx.activity
    target = ref(follow.get("object"))
    if ref(follow.get("actor")) != ctx.sender.uri:
        return ignored("follow on behalf of another actor")
    if await tombstoned(ctx, follow.get("id")):
        return ignored("follow already undone")
    community = await local_group(ctx, target)
    if community is None:
        return await _refuse_unfollowable(ctx, target)
    return await follow_community(ctx, community)


async def follow_community(ctx: Context, community: Community) -> Outcome:
    if community.visibility == "local":
        await _answer(ctx.conn, "follow.reject", community.id, ctx.activity, ctx.sender.id)
        return done("rejected: local community")
    wanted = "accepted"
    if community.visibility == "members" and not await instance_approved(ctx.conn, ctx.sender.domain):
        wanted = "pending"
    state = await ctx.conn.fetchval(
        UPSERT_FOLLOWER, community.id, ctx.sender.id, ctx.activity.get("id"), wanted
    )
    if state == "accepted":
        await _answer(ctx.conn, "follow.accept", community.id, ctx.activity, ctx.sender.id)
        return done("accepted")
    return done("pending: instance not approved")


async def _refuse_unfollowable(ctx: Context, target: str | None) -> Outcome:
    path = local_path(ctx.settings, target)
    if path is None:
        return ignored("follow of an actor that is not ours")
    local_actor_id = await ctx.conn.fetchval(SELECT_LOCAL_ACTOR, target)
    if local_actor_id is None:
        return ignored("follow of an unknown local actor")
    await emit(
        ctx.conn, "follow.reject", events.FollowAnswer(None, local_actor_id, ctx.activity, ctx.sender.id)
    )
    return done("rejected: only communities can be followed")


SELECT_GROUP_ACTOR = "SELECT id FROM actors WHERE community_id = $1 AND local"


async def _answer(
    conn: asyncpg.Connection,
    kind: Literal["follow.accept", "follow.reject"],
    community_id: int,
    follow: dict[str, Any],
    actor_id: int,
) -> None:
    """Queue the Accept or Reject (the delivery worker embeds the Follow with plain URIs)."""
    local_actor_id = await conn.fetchval(SELECT_GROUP_ACTOR, community_id)
    await emit(conn, kind, events.FollowAnswer(community_id, local_actor_id, follow, actor_id))


# -- moderators' decisions on instances ---------------------------------------------------

UPSERT_INSTANCE_DECISION = """
INSERT INTO instances (domain, approved, approved_at, approved_by)
VALUES ($1, $2, CASE WHEN $2 THEN now() END, CASE WHEN $2 THEN $3::bigint END)
ON CONFLICT (domain) DO UPDATE
SET approved = EXCLUDED.approved, approved_at = EXCLUDED.approved_at, approved_by = EXCLUDED.approved_by
"""
DECIDE_PENDING = """
UPDATE community_followers f SET state = $2, decided_at = now()
FROM actors a
WHERE a.id = f.actor_id AND a.domain = $1 AND f.state = 'pending'
RETURNING f.community_id, f.actor_id, f.follow_activity_id, a.uri AS actor_uri
"""
SELECT_FOLLOW_ACTIVITY = """
SELECT document FROM inbox_items WHERE activity_id = $1
"""


async def approve_instance(
    conn: asyncpg.Connection, domain: str, moderator_id: int | None, *, label: str = ""
) -> int:
    """Approve a partner instance: it may follow and read members-only communities.
    Every pending follow from it is accepted. Returns how many were accepted.
    ``label`` names who decided in the audit log when no moderator did (``cli``)."""
    return await _decide_instance(conn, domain, moderator_id, approve=True, label=label)


async def refuse_instance(
    conn: asyncpg.Connection, domain: str, moderator_id: int | None, *, label: str = ""
) -> int:
    """Refuse (or stop approving) a partner instance: it no longer reads members-only
    communities and its pending follows are rejected. Returns how many."""
    return await _decide_instance(conn, domain, moderator_id, approve=False, label=label)


async def _decide_instance(
    conn: asyncpg.Connection, domain: str, moderator_id: int | None, *, approve: bool, label: str
) -> int:
    domain = domain.strip().lower()
    state = "accepted" if approve else "rejected"
    kind: Literal["follow.accept", "follow.reject"] = "follow.accept" if approve else "follow.reject"
    async with conn.transaction():
        await conn.execute(UPSERT_INSTANCE_DECISION, domain, approve, moderator_id)
        rows = await conn.fetch(DECIDE_PENDING, domain, state)
        for row in rows:
            follow = await conn.fetchval(SELECT_FOLLOW_ACTIVITY, row["follow_activity_id"])
            await _answer(conn, kind, row["community_id"], follow or _bare_follow(row), row["actor_id"])
        await audit.record(
            conn,
            "instance.approve" if approve else "instance.refuse",
            actor_id=moderator_id,
            actor_label=label,
            target_type="instance",
            target_id=domain,
            details={"follows": len(rows)},
        )
    return len(rows)


def _bare_follow(row: asyncpg.Record) -> dict[str, Any]:
    """The Follow rebuilt from the follower row when its document is gone."""
    return {"id": row["follow_activity_id"], "type": "Follow", "actor": row["actor_uri"]}
