"""A member's report of a remote author's post, forwarded to the author's instance as
Mastodon does (federation/outbox.py ``report.forwarded``): a Flag from the instance
actor, naming the author and the post by id, with the reason and nothing else."""

from __future__ import annotations

import json

import asyncpg

from federation import actors, policy, validation
from node import reports
from node.sessions import User
from node.settings import Settings
from tests.delivery_kit import (  # noqa: F401  (fixtures)
    community,
    deliver_all,
    fakes,
    fixture_fed_settings,
    fixture_open_node,
    follower,
    jobs,
    member,
    new_thread,
    posted,
    process_outbox,
)
from tests.fakefedi import FakeInstance

INSERT_REMOTE_REPLY = """
INSERT INTO posts (thread_id, parent_id, remote_author_id, source, content_html, ap_id)
SELECT $1, id, $2, 'Texte réservé aux membres.', '<p>Texte réservé aux membres.</p>', $3
FROM posts WHERE thread_id = $1 AND is_opening
RETURNING id
"""
REASON = "Ce message fait de la publicité."


async def reported(
    pool: asyncpg.Pool, settings: Settings, fake: FakeInstance, *, forward: bool, visibility: str = "members"
) -> tuple[User, int, str]:
    """A thread by amina where mona of ``fake`` replied; binta reports mona's post.
    Returns (binta, the post's id, its ActivityPub id)."""
    group = await community(pool, "medical", visibility)
    # mona is known to the node (here as a refused follower: no relay goes to her)
    mona_id = await follower(pool, group, fake, "mona", state="rejected")
    created = await new_thread(pool, group, await member(pool, "amina"))
    note_id = fake.new_id("statuses")
    post_id: int = await pool.fetchval(INSERT_REMOTE_REPLY, created.thread_id, mona_id, note_id)
    binta = await member(pool, "binta")
    async with pool.acquire() as conn:
        target = await reports.reportable(conn, post_id, binta, settings.base_url)
        await reports.file_report(conn, target, binta, REASON, forward=forward)
    return binta, post_id, note_id


async def test_a_forwarded_report_is_one_flag_from_the_instance_actor(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as (masto,):
        # Given binta reported mona's post in a members-only community, asking to forward it
        await reported(pool, fed_settings, masto, forward=True)
        before = len(await jobs(pool))
        # When the outbox is processed
        await process_outbox(fed_settings, pool)
        # Then one Flag goes to mona's instance (its shared inbox), from the instance actor
        (job,) = (await jobs(pool))[before:]
        flag = job["activity"]
        assert job["inbox"] == masto.url("/inbox")
        assert flag["type"] == "Flag" and flag["actor"] == "http://testserver/actor"
        note_id = await pool.fetchval("SELECT ap_id FROM posts WHERE remote_author_id IS NOT NULL")
        assert flag["object"] == [masto.actors["mona"].id, note_id]
        assert flag["content"] == REASON
        assert validation.validate_emitted(flag) == "Flag"
        # And it names neither the member nor carries the post's text
        text = json.dumps(flag, ensure_ascii=False)
        assert "binta" not in text and "réservé aux membres" not in text
        # And it is never served at its id (a direct activity)
        assert await pool.fetchval("SELECT audience FROM activities WHERE uri = $1", flag["id"]) == "direct"
        # And the instance receives it, signed by our instance actor
        async with pool.acquire() as conn:
            instance = await actors.instance_actor(conn, fed_settings)
        assert instance.public_key_id and instance.public_key_pem
        masto.trust_key(instance.public_key_id, instance.public_key_pem)
        await deliver_all(fed_settings, pool)
        assert [a["type"] for a in posted(masto)] == ["Flag"]


async def test_no_flag_when_the_member_does_not_ask_for_it(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as (masto,):
        await reported(pool, fed_settings, masto, forward=False)
        await process_outbox(fed_settings, pool)
        assert [j for j in await jobs(pool) if j["activity"]["type"] == "Flag"] == []
        assert await pool.fetchval("SELECT count(*) FROM activities WHERE json->>'type' = 'Flag'") == 0


async def test_no_flag_to_a_suspended_instance(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as (masto,):
        await reported(pool, fed_settings, masto, forward=True)
        async with pool.acquire() as conn:
            await policy.suspend_domain(conn, masto.domain, reason="test")
        await process_outbox(fed_settings, pool)
        assert [j for j in await jobs(pool) if j["activity"]["type"] == "Flag"] == []


async def test_a_local_authors_post_sends_no_flag(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    group = await community(pool, "medical", "public")
    created = await new_thread(pool, group, await member(pool, "amina"))
    binta = await member(pool, "binta")
    async with pool.acquire() as conn:
        target = await reports.reportable(conn, created.post_id, binta, fed_settings.base_url)
        await reports.file_report(conn, target, binta, REASON, forward=True)
    await process_outbox(fed_settings, pool)
    assert await pool.fetchval("SELECT count(*) FROM reports") == 1
    assert await pool.fetchval("SELECT count(*) FROM activities WHERE json->>'type' = 'Flag'") == 0
