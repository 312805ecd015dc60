"""Likes by local members: the « J'aime » button on thread pages, the count on each post,
idempotence, and the outbox events that become Like / Undo{Like} for the followers."""

from __future__ import annotations

import asyncpg
import httpx
from starlette.applications import Starlette

from node import threads
from node.settings import Settings
from tests.delivery_kit import (  # noqa: F401  (fixtures)
    community,
    deliver_all,
    fakes,
    fixture_fed_settings,
    fixture_open_node,
    follower,
    kinds,
    member,
    new_reply,
    new_thread,
    posted,
    process_outbox,
    trust_us,
)
from tests.helpers import csrf_from, login, make_user, new_client

ACTION_FORM = '<form id="actions-form" method="post" action="/t/{thread}"><input type="hidden" name="csrf_token" value="{token}"></form>'
LIKE_BUTTON = 'form="actions-form" formaction="/p/{id}/aimer" name="action" value="{action}">'
COUNT = '<span class="likes">{n} J\'aime</span>'
EVENTS = "SELECT kind, payload FROM outbox_events WHERE kind LIKE 'post.%liked' ORDER BY id"


async def likes_of(pool: asyncpg.Pool, post_id: int) -> int:
    count: int = await pool.fetchval("SELECT likes_count FROM posts WHERE id = $1", post_id)
    return count


async def press(client: httpx.AsyncClient, thread_id: int, post_id: int, action: str) -> httpx.Response:
    """Press the like button of a post, as shown on the thread page."""
    page = await client.get(f"/t/{thread_id}")
    token = csrf_from(page.text)
    assert ACTION_FORM.format(thread=thread_id, token=token) in page.text
    assert LIKE_BUTTON.format(id=post_id, action=action) in page.text
    return await client.post(f"/p/{post_id}/aimer", data={"csrf_token": token, "action": action})


async def test_a_member_likes_a_post_then_takes_the_like_back(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a public thread by amina, and binta logged in
    group = await community(pool, "medical", "public")
    amina = await member(pool, "amina")
    binta = await member(pool, "binta")
    created = await new_thread(pool, group, amina)
    await login(client, "binta")
    # When binta presses « J'aime » on the opening post
    response = await press(client, created.thread_id, created.post_id, "like")
    # Then she is back on the post, which shows one like and offers « Je n'aime plus »
    assert response.status_code == 303
    assert response.headers["location"] == f"/t/{created.thread_id}?page=1#p{created.post_id}"
    page = await client.get(f"/t/{created.thread_id}")
    assert COUNT.format(n=1) in page.text and "Je n&#39;aime plus" in page.text
    assert await likes_of(pool, created.post_id) == 1
    # And the federation workers are told, with the payload outbox.py expects
    events = await pool.fetch(EVENTS)
    payload = {
        "post_id": created.post_id,
        "thread_id": created.thread_id,
        "community_id": group.id,
        "actor_user_id": binta.id,
    }
    assert [(e["kind"], e["payload"]) for e in events] == [("post.liked", payload)]
    # When she takes the like back
    response = await press(client, created.thread_id, created.post_id, "unlike")
    assert response.status_code == 303
    # Then the count is gone and an unlike event follows
    page = await client.get(f"/t/{created.thread_id}")
    assert 'class="likes"' not in page.text
    assert await likes_of(pool, created.post_id) == 0
    assert [e["kind"] for e in await pool.fetch(EVENTS)] == ["post.liked", "post.unliked"]


async def test_liking_twice_counts_once_and_emits_once(pool: asyncpg.Pool) -> None:
    # Given a reply by amina, liked by binta and by a remote actor
    group = await community(pool, "medical", "members")
    amina, binta = await member(pool, "amina"), await member(pool, "binta")
    created = await new_thread(pool, group, amina)
    reply = await new_reply(pool, created.thread_id, amina)
    remote = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain) VALUES"
        " ('https://ailleurs.example/u/zed', 'Person', false, 'zed', 'ailleurs.example') RETURNING id"
    )
    await pool.execute("INSERT INTO post_likes (post_id, actor_id) VALUES ($1, $2)", reply, remote)
    await pool.execute("UPDATE posts SET likes_count = 1 WHERE id = $1", reply)
    async with pool.acquire() as conn:
        # When binta likes it twice, then unlikes it twice
        assert await threads.set_liked(conn, reply, binta, True) is True
        assert await threads.set_liked(conn, reply, binta, True) is False
        assert await likes_of(pool, reply) == 2
        assert await threads.set_liked(conn, reply, binta, False) is True
        assert await threads.set_liked(conn, reply, binta, False) is False
    # Then only the changes were counted and told, and the remote like stays
    assert await likes_of(pool, reply) == 1
    assert [e["kind"] for e in await pool.fetch(EVENTS)] == ["post.liked", "post.unliked"]
    assert await pool.fetchval("SELECT count(*) FROM post_likes WHERE post_id = $1", reply) == 1


async def test_a_like_in_a_local_community_never_leaves_the_node(pool: asyncpg.Pool) -> None:
    group = await community(pool, "interne", "local")
    amina, binta = await member(pool, "amina"), await member(pool, "binta")
    created = await new_thread(pool, group, amina)
    async with pool.acquire() as conn:
        await threads.set_liked(conn, created.post_id, binta, True)
    assert await likes_of(pool, created.post_id) == 1
    assert await pool.fetch(EVENTS) == []


async def test_no_like_on_ones_own_or_deleted_posts_nor_for_visitors(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    # Given a thread by amina with a deleted reply by binta
    group = await community(pool, "medical", "public")
    amina, binta = await member(pool, "amina"), await member(pool, "binta")
    created = await new_thread(pool, group, amina)
    reply = await new_reply(pool, created.thread_id, binta)
    async with pool.acquire() as conn:
        await threads.delete_post(conn, reply, binta)
    # Then amina sees no like button at all (own post, deleted post)
    await login(client, "amina")
    page = await client.get(f"/t/{created.thread_id}")
    assert "/aimer" not in page.text
    # And forcing the forms changes nothing
    token = csrf_from(page.text)
    own = await client.post(f"/p/{created.post_id}/aimer", data={"csrf_token": token, "action": "like"})
    deleted = await client.post(f"/p/{reply}/aimer", data={"csrf_token": token, "action": "like"})
    unknown = await client.post(f"/p/{created.post_id}/aimer", data={"csrf_token": token, "action": "adore"})
    assert (own.status_code, deleted.status_code, unknown.status_code) == (403, 404, 400)
    assert await pool.fetchval("SELECT count(*) FROM post_likes") == 0
    assert await pool.fetch(EVENTS) == []
    # And a visitor sees the count but no button
    async with pool.acquire() as conn:
        await threads.set_liked(conn, created.post_id, binta, True)
    async with new_client(app) as visitor:
        page = await visitor.get(f"/t/{created.thread_id}")
        assert COUNT.format(n=1) in page.text and "/aimer" not in page.text


async def test_members_only_posts_cannot_be_liked_by_pending_accounts(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    group = await community(pool, "medical", "members")
    amina = await member(pool, "amina")
    created = await new_thread(pool, group, amina)
    await make_user(pool, "pending", status="pending")
    await login(client, "pending")
    token = csrf_from((await client.get("/en-attente")).text)
    response = await client.post(f"/p/{created.post_id}/aimer", data={"csrf_token": token, "action": "like"})
    assert response.status_code == 404 and await likes_of(pool, created.post_id) == 0


async def test_a_local_like_reaches_the_followers_as_a_like_then_an_undo(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as (remote,):
        # Given a public community followed from a remote instance, and a thread in it
        group = await community(pool, "medical", "public")
        await follower(pool, group, remote, "alice")
        amina, binta = await member(pool, "amina"), await member(pool, "binta")
        await trust_us(pool, fed_settings, [remote], users=[amina, binta], groups=[group])
        created = await new_thread(pool, group, amina)
        await process_outbox(fed_settings, pool)
        await deliver_all(fed_settings, pool)
        before = len(posted(remote))
        # When binta likes the thread, then takes the like back
        async with pool.acquire() as conn:
            await threads.set_liked(conn, created.post_id, binta, True)
            await threads.set_liked(conn, created.post_id, binta, False)
        await process_outbox(fed_settings, pool)
        await deliver_all(fed_settings, pool)
        # Then the follower's instance received binta's Like and its Undo, relayed by the group
        received = posted(remote)[before:]
        assert kinds(received) == ["Announce/Like", "Announce/Undo"]
        like, undo = (a["object"] for a in received)
        assert like["actor"] == "http://testserver/u/binta"
        assert like["object"] == f"http://testserver/t/{created.thread_id}"
        assert undo["object"]["id"] == like["id"]
