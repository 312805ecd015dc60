"""Home page: followed activity for members, a presentation and public content for visitors,
nothing for accounts awaiting approval."""

from __future__ import annotations

import asyncpg
import httpx

from node import communities, threads
from node.sessions import User
from tests.helpers import login, make_community, make_user


async def member(pool: asyncpg.Pool, username: str, status: str = "approved") -> User:
    user_id = await make_user(pool, username, status=status)
    return User(user_id, username, username, "member", status)


async def start(pool: asyncpg.Pool, author: User, community: str, title: str) -> threads.Created:
    async with pool.acquire() as conn:
        c = await communities.find(conn, community)
        assert c is not None
        return await threads.create_thread(conn, c, author, title, "Corps")


async def seed(pool: asyncpg.Pool) -> User:
    await make_community(pool, "juridique", visibility="public")
    await make_community(pool, "medical")
    await make_community(pool, "psy")
    amina = await member(pool, "amina")
    await start(pool, amina, "juridique", "Question publique")
    await start(pool, amina, "medical", "Question médicale")
    await start(pool, amina, "psy", "Question psy")
    return amina


async def test_visitor_sees_a_presentation_and_public_content_only(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await seed(pool)
    page = await client.get("/")
    assert page.status_code == 200
    assert 'href="/connexion"' in page.text and 'href="/inscription"' in page.text
    assert "Juridique" in page.text and "Question publique" in page.text
    assert "Question médicale" not in page.text and "Medical" not in page.text


async def test_member_sees_activity_of_followed_communities_with_unread_markers(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    amina = await seed(pool)
    binta = await member(pool, "binta")
    for name in ("medical", "juridique"):
        community_id = await pool.fetchval("SELECT id FROM communities WHERE name = $1", name)
        await pool.execute(
            "INSERT INTO community_follows (user_id, community_id) VALUES ($1, $2)", binta.id, community_id
        )
    medical = await pool.fetchval("SELECT id FROM threads WHERE title = 'Question médicale'")
    async with pool.acquire() as conn:
        await threads.create_reply(conn, medical, amina, "Relance")
    await login(client, "binta")
    page = await client.get("/")
    assert "Question psy" not in page.text
    main = page.text.split("<main")[1]
    assert main.index("Question médicale") < main.index("Question publique")
    assert main.count("nouveau</span>") == 2
    await client.get(f"/t/{medical}")
    assert (await client.get("/")).text.split("<main")[1].count("nouveau</span>") == 1
    assert 'href="/communautes"' in page.text


async def test_member_following_nothing_is_invited_to_follow(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await seed(pool)
    await login(client, "amina")
    page = await client.get("/")
    assert "Vous ne suivez encore aucune communauté" in page.text
    assert 'href="/communautes"' in page.text


async def test_pending_account_is_sent_to_the_waiting_page(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await seed(pool)
    await member(pool, "attente", status="pending")
    await login(client, "attente")
    response = await client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/en-attente"
