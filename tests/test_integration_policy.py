"""Instance policy in the forum's reads: a suspended instance's content leaves every page
and search (and comes back when the block is lifted); a silenced instance's stays out of
what visitors see in lists but shows inside threads."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import httpx
from starlette.applications import Starlette

from federation import policy
from node import communities, threads
from node.sessions import User
from node.settings import Settings
from tests.helpers import login, make_community, make_user, new_client

OWN = "testserver"


@dataclass
class Scene:
    amina: User
    remote_thread: int  # opened by the remote actor
    local_thread: int  # opened by amina, with a remote reply and amina's answer to it
    remote_reply: int
    answer: int


async def remote_actor(pool: asyncpg.Pool, domain: str = "evil.example", name: str = "zed") -> int:
    actor_id: int = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, display_name)"
        " VALUES ($1, 'Person', false, $2, $3, 'Zed Distant') RETURNING id",
        f"https://{domain}/users/{name}",
        name,
        domain,
    )
    return actor_id


async def remote_thread(pool: asyncpg.Pool, community_id: int, actor_id: int, title: str, body: str) -> int:
    thread_id: int = await pool.fetchval(
        "INSERT INTO threads (community_id, remote_author_id, title) VALUES ($1, $2, $3) RETURNING id",
        community_id,
        actor_id,
        title,
    )
    await pool.execute(
        "INSERT INTO posts (thread_id, remote_author_id, is_opening, source, content_html)"
        " VALUES ($1, $2, true, $3, $4)",
        thread_id,
        actor_id,
        body,
        f"<p>{body}</p>",
    )
    return thread_id


async def remote_reply(pool: asyncpg.Pool, thread_id: int, actor_id: int, body: str) -> int:
    post_id: int = await pool.fetchval(
        "INSERT INTO posts (thread_id, remote_author_id, parent_id, source, content_html)"
        " SELECT $1, $2, id, $3, $4 FROM posts WHERE thread_id = $1 AND is_opening RETURNING id",
        thread_id,
        actor_id,
        body,
        f"<p>{body}</p>",
    )
    await pool.execute("UPDATE threads SET reply_count = reply_count + 1 WHERE id = $1", thread_id)
    return post_id


async def seed(pool: asyncpg.Pool) -> Scene:
    community_id = await make_community(pool, "juridique", visibility="public")
    amina_id = await make_user(pool, "amina")
    amina = User(amina_id, "amina", "amina", "member", "approved")
    await pool.execute(
        "INSERT INTO community_follows (user_id, community_id) VALUES ($1, $2)", amina_id, community_id
    )
    zed = await remote_actor(pool)
    opened = await remote_thread(
        pool, community_id, zed, "Fil distant kangourou", "Texte distant ornithorynque"
    )
    async with pool.acquire() as conn:
        community = await communities.find(conn, "juridique")
        assert community is not None
        local = await threads.create_thread(conn, community, amina, "Fil local", "Ouverture locale")
    reply = await remote_reply(pool, local.thread_id, zed, "Réponse distante wombat")
    async with pool.acquire() as conn:
        answer = await threads.create_reply(conn, local.thread_id, amina, "Merci pour ce retour", reply)
    return Scene(amina, opened, local.thread_id, reply, answer)


async def suspend(pool: asyncpg.Pool, domain: str = "evil.example") -> None:
    async with pool.acquire() as conn:
        await policy.suspend_domain(conn, domain, own_domain=OWN)


async def unblock(pool: asyncpg.Pool, domain: str = "evil.example") -> None:
    async with pool.acquire() as conn:
        await policy.unblock_domain(conn, domain)


async def silence(pool: asyncpg.Pool, domain: str = "evil.example") -> None:
    async with pool.acquire() as conn:
        await policy.block_domain(conn, policy.BlockRequest(domain, "silence"), own_domain=OWN)


async def found(client: httpx.AsyncClient, word: str) -> bool:
    results = await client.get("/recherche", params={"q": word})
    assert results.status_code == 200
    return "Aucun résultat" not in results.text


async def visible_everywhere(client: httpx.AsyncClient, s: Scene) -> None:
    assert "Fil distant kangourou" in (await client.get("/c/juridique")).text
    assert "Fil distant kangourou" in (await client.get("/")).text
    page = await client.get(f"/t/{s.remote_thread}")
    assert page.status_code == 200 and "ornithorynque" in page.text
    local = (await client.get(f"/t/{s.local_thread}")).text
    assert "wombat" in local and "Zed Distant" in local
    assert (await client.get(f"/p/{s.remote_reply}")).status_code == 303
    assert await found(client, "ornithorynque") and await found(client, "wombat")


async def hidden_everywhere(client: httpx.AsyncClient, s: Scene) -> None:
    assert "kangourou" not in (await client.get("/c/juridique")).text
    assert "kangourou" not in (await client.get("/")).text
    assert (await client.get(f"/t/{s.remote_thread}")).status_code == 404
    local = await client.get(f"/t/{s.local_thread}")
    assert local.status_code == 200 and "Ouverture locale" in local.text
    # the remote reply is gone, and so is the quote of it above amina's answer
    assert "wombat" not in local.text and "Zed Distant" not in local.text
    assert "Merci pour ce retour" in local.text
    assert (await client.get(f"/p/{s.remote_reply}")).status_code == 404
    for word in ("ornithorynque", "kangourou", "wombat"):
        assert not await found(client, word)


async def test_a_suspended_instance_leaves_every_page_until_unblocked(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    # Given a thread opened by a remote actor of evil.example and a remote reply in a
    # local thread, seen (and cached) by a member and by a visitor
    s = await seed(pool)
    await login(client, "amina")
    async with new_client(app) as visitor:
        for viewer in (client, visitor):
            await visible_everywhere(viewer, s)
        # When the instance is suspended
        await suspend(pool)
        # Then its content leaves every page and search, for both
        for viewer in (client, visitor):
            await hidden_everywhere(viewer, s)
        # And nothing can be done with its posts
        reply_page = await client.get(f"/p/{s.remote_reply}/repondre")
        assert reply_page.status_code == 404
        # When the block is lifted, everything is back
        await unblock(pool)
        for viewer in (client, visitor):
            await visible_everywhere(viewer, s)


async def test_a_suspension_shrinks_the_pages_of_a_long_thread(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a local thread with 60 remote replies: two pages
    s = await seed(pool)
    zed = await pool.fetchval("SELECT id FROM actors WHERE domain = 'evil.example'")
    for n in range(60):
        await remote_reply(pool, s.local_thread, zed, f"Réponse {n}")
    assert (await client.get(f"/t/{s.local_thread}?page=2")).status_code == 200
    # When evil.example is suspended
    await suspend(pool)
    # Then the thread fits one page again, and amina's answer is on it
    assert (await client.get(f"/t/{s.local_thread}?page=2")).status_code == 404
    assert "Merci pour ce retour" in (await client.get(f"/t/{s.local_thread}")).text
    assert (await client.get(f"/p/{s.answer}")).headers["location"].startswith(f"/t/{s.local_thread}?page=1")


async def test_a_silenced_instance_stays_out_of_public_lists_but_shows_in_threads(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    # Given the scene, and evil.example silenced
    s = await seed(pool)
    await silence(pool)
    async with new_client(app) as visitor:
        # Then visitors miss its threads in the lists and in search
        assert "kangourou" not in (await visitor.get("/")).text
        assert "kangourou" not in (await visitor.get("/c/juridique")).text
        assert not await found(visitor, "ornithorynque")
        # But its content shows inside threads
        assert "ornithorynque" in (await visitor.get(f"/t/{s.remote_thread}")).text
        assert "wombat" in (await visitor.get(f"/t/{s.local_thread}")).text
    # And members see everything
    await login(client, "amina")
    await visible_everywhere(client, s)


async def test_actor_flags_follow_every_block_change(pool: asyncpg.Pool) -> None:
    # Given actors on a domain, a subdomain, a non-default port and an unrelated domain
    for domain in ("evil.example", "a.evil.example", "evil.example:8443", "ok.example"):
        await remote_actor(pool, domain)

    async def flags() -> dict[str, tuple[bool, bool]]:
        rows = await pool.fetch(
            "SELECT domain, hidden, silenced, vbg_actor_hidden(id) AS h, vbg_actor_silenced(id) AS s FROM actors"
        )
        # the kept flags always agree with the functions of migration 0050
        assert all((r["hidden"], r["silenced"]) == (r["h"], r["s"]) for r in rows)
        return {r["domain"]: (r["hidden"], r["silenced"]) for r in rows}

    assert set((await flags()).values()) == {(False, False)}
    # When a port-specific suspension is added, only that port is hidden
    await suspend(pool, "evil.example:8443")
    assert (await flags())["evil.example:8443"] == (True, True)
    assert (await flags())["evil.example"] == (False, False)
    # When the parent domain is silenced, subdomains and ports are silenced too
    await silence(pool, "evil.example")
    current = await flags()
    assert current["a.evil.example"] == (False, True) and current["evil.example:8443"] == (True, True)
    assert current["ok.example"] == (False, False)
    # When a new actor of the silenced domain arrives, it is flagged at once
    await remote_actor(pool, "b.evil.example")
    assert (await flags())["b.evil.example"] == (False, True)
    # When the silence becomes a suspension, then is lifted
    await suspend(pool, "evil.example")
    assert (await flags())["a.evil.example"] == (True, True)
    await unblock(pool, "evil.example")
    current = await flags()
    assert current["a.evil.example"] == (False, False) and current["evil.example:8443"] == (True, True)
    # When every block is dropped at once
    await pool.execute("TRUNCATE domain_blocks")
    assert set((await flags()).values()) == {(False, False)}


async def test_a_suspended_instance_leaves_the_activitypub_collections_too(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    from federation import collections

    # Given the scene: a remote thread and a remote reply in a local public thread
    s = await seed(pool)
    community_id = await pool.fetchval("SELECT id FROM communities WHERE name = 'juridique'")
    async with pool.acquire() as conn:
        before = await collections.context_state(conn, s.local_thread)
        items = (await collections.context_page(conn, settings, before, collections.FIRST_PAGE))[
            "orderedItems"
        ]
        assert before.total == 3 and len(items) == 3
        assert await collections.outbox_total(conn, community_id, "public") == 2
        # When evil.example is suspended
        await policy.suspend_domain(conn, "evil.example", own_domain=OWN)
        # Then the thread's context lists only the local posts, under a new ETag,
        # and the group's outbox no longer lists the remote thread
        after = await collections.context_state(conn, s.local_thread)
        items = (await collections.context_page(conn, settings, after, collections.FIRST_PAGE))[
            "orderedItems"
        ]
        assert after.total == 2 and len(items) == 2 and after.etag != before.etag
        assert await collections.outbox_total(conn, community_id, "public") == 1
