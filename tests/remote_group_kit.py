"""A remote community living on a fake server: its Group served by a ``FakeInstance``
(so deliveries to its inbox are real signed POSTs the fake verifies and records), its
``communities`` row (``node.communities.upsert_remote``), our node's follow of it
(``group_follows``) and threads of its members stored as the inbox would store them."""

from __future__ import annotations

from typing import Any

import asyncpg

from federation import actors
from node import communities, threads
from node.communities import Community
from node.settings import Settings
from tests.fakefedi import FakeActor, FakeInstance

INSERT_GROUP_FOLLOW = """
INSERT INTO group_follows (community_id, follower_id, follow_activity_id, state, decided_at)
VALUES ($1, $2, $3, $4, CASE WHEN $4 = 'pending' THEN NULL ELSE now() END)
ON CONFLICT (community_id) DO UPDATE SET state = EXCLUDED.state, decided_at = EXCLUDED.decided_at
"""


async def remote_actor(pool: asyncpg.Pool, fake: FakeInstance, actor: FakeActor) -> actors.Actor:
    """``actor`` of ``fake`` known to our node (as a fetch would store it)."""
    async with pool.acquire() as conn:
        return await actors.store_remote(conn, actor.document(), actor.id)


async def fake_remote_community(
    pool: asyncpg.Pool,
    settings: Settings,
    fake: FakeInstance,
    name: str = "entraide",
    *,
    visibility: str = "public",
    follow_state: str = "accepted",
) -> tuple[Community, FakeActor]:
    """The Group ``name`` of ``fake`` as one of our remote communities, followed by our
    instance actor in ``follow_state``."""
    group = fake.add_actor(name, type="Group", manuallyApprovesFollowers=visibility == "members")
    stored = await remote_actor(pool, fake, group)
    async with pool.acquire() as conn:
        community = await communities.upsert_remote(
            conn,
            actor_id=stored.id,
            name=f"{name}@{stored.domain}",
            title="Entraide entre structures",
            description="Une communauté d'un autre serveur.",
            visibility=visibility,
        )
        instance = await actors.instance_actor(conn, settings)
        await conn.execute(
            INSERT_GROUP_FOLLOW, community.id, instance.id, fake.new_id("follows"), follow_state
        )
    return community, group


async def set_follow_state(pool: asyncpg.Pool, community: Community, state: str) -> None:
    await pool.execute("UPDATE group_follows SET state = $2 WHERE community_id = $1", community.id, state)


async def remote_thread(
    pool: asyncpg.Pool,
    fake: FakeInstance,
    community: Community,
    author: FakeActor,
    title: str = "Hébergement d'urgence",
    *,
    locked: bool = False,
) -> tuple[int, str]:
    """A thread opened on ``fake`` by ``author``, stored here as the inbox stores one
    (with the relay events a group of ours would send: none may leave for a remote
    community); returns (thread id, the Page's id)."""
    page_id = fake.new_id("post")
    stored = await remote_actor(pool, fake, author)
    relay: dict[str, Any] = {"community_id": community.id, "activity": {"id": fake.new_id("activities")}}
    async with pool.acquire() as conn:
        thread_id = await threads.store_remote_thread(
            conn,
            threads.RemoteThread(
                0, community.id, stored.id, page_id, title, "Des places ?", "<p>Des places ?</p>", True
            ),
            relay,
        )
        assert thread_id is not None
        if locked:
            await conn.execute("UPDATE threads SET locked = true WHERE id = $1", thread_id)
    return thread_id, page_id


async def remote_reply(
    pool: asyncpg.Pool, fake: FakeInstance, thread_id: int, parent_id: int, author: FakeActor
) -> tuple[int, str]:
    """A reply by ``author`` of ``fake`` stored in ``thread_id``; (post id, its id)."""
    note_id = fake.new_id("comment")
    stored = await remote_actor(pool, fake, author)
    async with pool.acquire() as conn:
        post_id = await threads.store_remote_reply(
            conn, thread_id, parent_id, stored.id, note_id, "Oui, deux.", "<p>Oui, deux.</p>"
        )
    return post_id, note_id


async def opening_post(pool: asyncpg.Pool, thread_id: int) -> int:
    post_id: int = await pool.fetchval("SELECT id FROM posts WHERE thread_id = $1 AND is_opening", thread_id)
    return post_id
