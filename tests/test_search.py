"""Full-text search: French stemming, accent folding, ranking, visibility, no deleted posts."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from node import communities, search, threads
from node.sessions import User
from tests.helpers import login, make_community, make_user


async def member(pool: asyncpg.Pool, username: str) -> User:
    user_id = await make_user(pool, username)
    return User(user_id, username, username, "member", "approved")


async def start(pool: asyncpg.Pool, author: User, community: str, title: str, body: str) -> threads.Created:
    async with pool.acquire() as conn:
        c = await communities.find(conn, community)
        assert c is not None
        return await threads.create_thread(conn, c, author, title, body)


async def seed(pool: asyncpg.Pool) -> User:
    await make_community(pool, "juridique", visibility="public")
    await make_community(pool, "medical", visibility="members")
    await make_community(pool, "coordination", visibility="local")
    amina = await member(pool, "amina")
    await start(
        pool, amina, "juridique", "Certificat médical et plainte", "Le certificat médical appuie la plainte."
    )
    await start(
        pool,
        amina,
        "medical",
        "Prise en charge médicale",
        "Protocole de prise en charge médicale en 72 heures.",
    )
    await start(pool, amina, "coordination", "Réunion médicale locale", "Ordre du jour de la réunion.")
    return amina


async def test_accents_are_folded_and_visibility_filters_results(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given matching threads in a public, a members-only and a local community
    await seed(pool)
    # When an anonymous visitor searches without accents
    anonymous = await client.get("/recherche", params={"q": "medicale"})
    # Then only the public thread is found
    assert anonymous.status_code == 200
    assert "Certificat médical et plainte" in anonymous.text
    assert "Prise en charge" not in anonymous.text and "Réunion" not in anonymous.text
    # And a member finds all three
    await login(client, "amina")
    member_page = await client.get("/recherche", params={"q": "medicale"})
    for title in ("Certificat médical et plainte", "Prise en charge médicale", "Réunion médicale locale"):
        assert title in member_page.text


async def test_replies_are_found_ranked_and_highlighted(pool: asyncpg.Pool) -> None:
    amina = await seed(pool)
    thread_id = await pool.fetchval("SELECT id FROM threads WHERE title LIKE 'Certificat%'")
    async with pool.acquire() as conn:
        reply = await threads.create_reply(
            conn, thread_id, amina, "Attention au délai de prescription pour l'hôpital."
        )
    results = await search.search(pool, "delai prescription", None)
    assert [r.post_id for r in results.results] == [reply]
    assert "<mark>délai</mark>" in results.results[0].snippet
    assert results.results[0].title == "Certificat médical et plainte"
    # A title match (weight A) ranks before a body-only match
    both = await search.search(pool, "plainte", None)
    assert both.results[0].is_opening


async def test_deleted_posts_are_never_found(pool: asyncpg.Pool) -> None:
    amina = await seed(pool)
    post_id = await pool.fetchval(
        "SELECT p.id FROM posts p JOIN threads t ON t.id = p.thread_id WHERE t.title LIKE 'Certificat%'"
    )
    async with pool.acquire() as conn:
        await threads.delete_post(conn, post_id, amina)
    assert (await search.search(pool, "certificat", None)).results == []


async def test_snippets_are_escaped(pool: asyncpg.Pool) -> None:
    amina = await seed(pool)
    await start(
        pool, amina, "juridique", "Balises", "Texte <script>alert('x')</script> avec violence conjugale"
    )
    results = await search.search(pool, "violence", None)
    snippet = str(results.results[0].snippet)
    assert "<script" not in snippet and "&lt;script" in snippet and "<mark>violence</mark>" in snippet


async def test_odd_queries_answer_without_error(pool: asyncpg.Pool, client: httpx.AsyncClient) -> None:
    await seed(pool)
    for q in ("", "   ", "le la les", '"non fermé', "-medical", "a" * 5000, "OR AND", "é" * 300):
        response = await client.get("/recherche", params={"q": q})
        assert response.status_code == 200, q
    # A NUL byte in a parameter is a clear 400 before any view reads it (node/web/unreadable.py)
    response = await client.get("/recherche", params={"q": "x\x00y"})
    assert response.status_code == 400 and "illisible" in response.text


async def test_results_are_paginated(pool: asyncpg.Pool, client: httpx.AsyncClient) -> None:
    amina = await seed(pool)
    for i in range(22):
        await start(pool, amina, "juridique", f"Question juridique {i}", "Une question de procédure.")
    first = await client.get("/recherche", params={"q": "procedure"})
    assert first.text.count("Question juridique") == 20
    assert "page=2" in first.text
    second = await client.get("/recherche", params={"q": "procedure", "page": "2"})
    assert second.text.count("Question juridique") == 2
    # A page past the last one is a missing page, as a listing's cursor past its end
    assert (await client.get("/recherche", params={"q": "procedure", "page": "3"})).status_code == 404
    assert (await client.get("/recherche", params={"q": "introuvable", "page": "2"})).status_code == 404
    assert (await client.get("/recherche", params={"q": "introuvable"})).status_code == 200


@pytest.mark.parametrize("scan", [1, 10])
async def test_matches_are_gathered_newest_first_span_by_span(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, scan: int
) -> None:
    # Given a rare word in the oldest post, and a common word in every post
    await make_community(pool, "medical", visibility="public")
    amina = await member(pool, "amina")
    await start(pool, amina, "medical", "Fistule obstétricale", "Orientation vers la chirurgie réparatrice.")
    made = [
        await start(pool, amina, "medical", f"Accueil {i}", "Accueil de la survivante.") for i in range(6)
    ]
    # And the two newest post ids read in order, then the ids the rate of matches there
    # says are still needed: (scan 10) read in order too, or (scan 1, too many to read in
    # order) by the indexes; three candidates at most
    monkeypatch.setattr(search, "FIRST", 2)
    monkeypatch.setattr(search, "SCAN", scan)
    monkeypatch.setattr(search, "CANDIDATES", 3)
    monkeypatch.setattr(search, "PAGE_SIZE", 2)
    # When the rare word is searched, absent from the newest posts, every older id is searched
    rare = await search.search(pool, "fistule", None)
    assert [r.title for r in rare.results] == ["Fistule obstétricale"] and not rare.has_next
    # And a common word ranks only the three most recent matches (two from the first
    # ordered read, one from the next span), over two pages
    first = await search.search(pool, "survivante", None)
    second = await search.search(pool, "survivante", None, page=2)
    found = [r.thread_id for r in first.results + second.results]
    assert sorted(found) == sorted(m.thread_id for m in made[-3:])
    assert first.has_next and not second.has_next


@pytest.mark.parametrize("scan", [0, 100])
async def test_what_a_viewer_may_not_read_is_never_a_candidate(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, scan: int
) -> None:
    # Given matching replies in a public and a members-only community, and a removed thread
    await seed(pool)
    amina = await member(pool, "brigitte")
    public = await start(pool, amina, "juridique", "Ouvert", "Une question de procédure.")
    closed = await start(pool, amina, "medical", "Réservé", "Une question de procédure.")
    removed = await start(pool, amina, "juridique", "Retiré", "Une question de procédure.")
    async with pool.acquire() as conn:
        for thread in (public, closed, removed):
            await threads.create_reply(conn, thread.thread_id, amina, "Réponse sur la procédure.")
        await threads.remove_thread(conn, removed.thread_id)
    # And the search reading one post in order, then (scan 0) by the indexes or (scan 100) in order
    monkeypatch.setattr(search, "FIRST", 1)
    monkeypatch.setattr(search, "SCAN", scan)
    # When a visitor and a member search
    visitor = await search.search(pool, "procedure", None)
    member_results = await search.search(pool, "procedure", amina)
    # Then the visitor finds the public thread's two posts only, the member both threads' four
    assert sorted(r.title for r in visitor.results) == ["Ouvert", "Ouvert"]
    assert sorted(r.title for r in member_results.results) == ["Ouvert", "Ouvert", "Réservé", "Réservé"]


async def test_posts_carry_their_threads_community(pool: asyncpg.Pool) -> None:
    # Given a thread with a reply, as every writer leaves them (migration 0151's triggers)
    await seed(pool)
    amina = await member(pool, "brigitte")
    created = await start(pool, amina, "juridique", "Déménagement", "Ce fil change de communauté.")
    async with pool.acquire() as conn:
        await threads.create_reply(conn, created.thread_id, amina, "Une réponse.")
        juridique = await communities.find(conn, "juridique")
        medical = await communities.find(conn, "medical")
        assert juridique is not None and medical is not None
        # Then its posts carry its community
        assert await conn.fetchval(
            "SELECT array_agg(DISTINCT community_id) FROM posts WHERE thread_id = $1", created.thread_id
        ) == [juridique.id]
        # And follow the thread if it ever moves
        await conn.execute(
            "UPDATE threads SET community_id = $2 WHERE id = $1", created.thread_id, medical.id
        )
        assert await conn.fetchval(
            "SELECT array_agg(DISTINCT community_id) FROM posts WHERE thread_id = $1", created.thread_id
        ) == [medical.id]
