"""Deep pages of long threads (issue 17): a thread page is a range of post numbers
(migration 0185), so page N of a long thread reads its own posts only. Numbers follow the
page's order whoever writes the posts, permalinks find their page from the number, pages
keep their URLs (``?page=N``), and what a viewer may not read stays missing."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import asyncpg
import httpx
from starlette.applications import Starlette

from federation import policy
from node import communities, threads
from node.db import Conn
from node.sessions import User
from tests.helpers import NEXT_PAGE, PREVIOUS_PAGE, link, login, make_community, make_member, new_client, walk

REPLIES = """
INSERT INTO posts (thread_id, author_id, parent_id, source, content_html)
SELECT $1, $2, $3, 'Réponse ' || g, '<p>Réponse numéro ' || g || '</p>' FROM generate_series($4::int, $5::int) g
"""


async def long_thread(
    pool: asyncpg.Pool, author: User, replies: int, community: str = "medical"
) -> threads.Created:
    """A thread of ``replies`` replies « Réponse numéro 1 » … written in that order."""
    async with pool.acquire() as conn:
        c = await communities.find(conn, community)
        assert c is not None
        created = await threads.create_thread(conn, c, author, "Un long fil", "Le message d'ouverture")
        await conn.execute(REPLIES, created.thread_id, author.id, created.post_id, 1, replies)
    return created


async def read_by_amina(pool: asyncpg.Pool, client: httpx.AsyncClient, replies: int) -> threads.Created:
    """A members' community with Amina's thread of ``replies`` replies, Amina logged in."""
    await make_community(pool, "medical")
    created = await long_thread(pool, await make_member(pool, "amina"), replies)
    await login(client, "amina")
    return created


async def remote_replies(pool: asyncpg.Pool, created: threads.Created, count: int) -> None:
    """``count`` replies « Venu d’ailleurs » by a remote author of bloque.example."""
    actor_id = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain) VALUES"
        " ('https://bloque.example/u/x', 'Person', false, 'x', 'bloque.example') RETURNING id"
    )
    await pool.execute(
        "INSERT INTO posts (thread_id, remote_author_id, parent_id, source, content_html)"
        " SELECT $1, $2, $3, 'Ailleurs', '<p>Venu d’ailleurs</p>' FROM generate_series(1, $4)",
        created.thread_id,
        actor_id,
        created.post_id,
        count,
    )


def shown(html: str) -> list[int]:
    return [int(n) for n in re.findall(r"Réponse numéro (\d+)<", html)]


async def numbers(conn: Conn, thread_id: int) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        "SELECT source, number FROM posts WHERE thread_id = $1 ORDER BY is_opening DESC, created_at, id",
        thread_id,
    )
    return [(r["source"], r["number"]) for r in rows]


async def test_a_long_thread_reads_page_by_page_in_order(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a thread of 160 replies, Amina logged in
    created = await read_by_amina(pool, client, 160)
    path = f"/t/{created.thread_id}"
    # When she reads it from the first page on, following « Suivante »
    seen: list[int] = []
    pages = []
    url: str | None = path
    while url is not None:
        page = (await client.get(url)).text
        pages.append(page)
        seen += shown(page)
        url = link(NEXT_PAGE, page)
    # Then she saw every reply once, in order, 50 a page, the opening post on page 1 only
    assert seen == list(range(1, 161))
    assert [len(shown(p)) for p in pages] == [50, 50, 50, 10]
    assert "Le message d" in pages[0] and all("Le message d" not in p for p in pages[1:])
    assert (
        "Page 4 / 4" in pages[3]
        and link(NEXT_PAGE, pages[3]) is None
        and link(PREVIOUS_PAGE, pages[0]) is None
    )
    # And « Précédente » goes back page by page
    assert link(PREVIOUS_PAGE, pages[3]) == f"{path}?page=3"
    assert shown((await client.get(f"{path}?page=3")).text) == list(range(101, 151))
    # And past the last page, nothing: a missing page
    assert (await client.get(f"{path}?page=5")).status_code == 404
    assert (await client.get(f"{path}?page=10000")).status_code == 404


async def test_permalinks_of_a_long_thread_find_their_page(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a thread of 160 replies, Amina logged in
    created = await read_by_amina(pool, client, 160)
    ids = {
        r["source"]: r["id"]
        for r in await pool.fetch("SELECT id, source FROM posts WHERE thread_id = $1", created.thread_id)
    }
    # Then each permalink sends to the page that shows its post
    for reply, page in ((1, 1), (50, 1), (51, 2), (100, 2), (101, 3), (151, 4), (160, 4)):
        post_id = ids[f"Réponse {reply}"]
        response = await client.get(f"/p/{post_id}")
        assert response.headers["location"] == f"/t/{created.thread_id}?page={page}#p{post_id}"
        assert f'id="p{post_id}"' in (await client.get(response.headers["location"])).text
    response = await client.get(f"/p/{created.post_id}")
    assert response.headers["location"] == f"/t/{created.thread_id}?page=1#p{created.post_id}"


async def test_members_only_deep_pages_stay_missing_for_visitors(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    # Given a long thread of a members-only community
    await make_community(pool, "medical")
    amina = await make_member(pool, "amina")
    created = await long_thread(pool, amina, 120)
    path = f"/t/{created.thread_id}"
    post_id = await pool.fetchval(
        "SELECT id FROM posts WHERE thread_id = $1 AND source = 'Réponse 110'", created.thread_id
    )
    # When a visitor asks for its deep page, or a permalink deep in it
    async with new_client(app) as visitor:
        deep = await visitor.get(f"{path}?page=3")
        permalink = await visitor.get(f"/p/{post_id}")
        missing = await visitor.get("/t/99999999?page=3")
    # Then she gets what a missing thread answers, and none of its text
    assert deep.status_code == permalink.status_code == missing.status_code == 404
    assert "Réponse numéro" not in deep.text + permalink.text
    # While a member reads it
    await login(client, "amina")
    assert shown((await client.get(f"{path}?page=3")).text) == list(range(101, 121))


async def test_hidden_authors_leave_gaps_not_empty_last_pages(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a public thread of 60 replies, then 60 more from a remote author
    await make_community(pool, "juridique", visibility="public")
    amina = await make_member(pool, "amina")
    created = await long_thread(pool, amina, 60, community="juridique")
    await remote_replies(pool, created, 60)
    path = f"/t/{created.thread_id}"
    assert "Page 1 / 3" in (await client.get(path)).text
    # When the remote author's instance is suspended
    async with pool.acquire() as conn:
        await policy.block_domain(conn, policy.BlockRequest("bloque.example"))
    # Then its posts leave the pages, and the pages they alone filled go too
    first = (await client.get(path)).text
    assert "Page 1 / 2" in first and "Venu d’ailleurs" not in first
    second = (await client.get(f"{path}?page=2")).text
    assert shown(second) == list(range(51, 61)) and "Venu d’ailleurs" not in second
    assert (await client.get(f"{path}?page=3")).status_code == 404


async def test_a_page_of_hidden_authors_only_says_so_between_readable_pages(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    # Given a public thread whose third page is all a remote author's: 100 replies of
    # Amina's (numbers 2 to 101), 50 remote ones (102 to 151), then 10 of Amina's again
    await make_community(pool, "juridique", visibility="public")
    amina = await make_member(pool, "amina")
    created = await long_thread(pool, amina, 100, community="juridique")
    await remote_replies(pool, created, 50)
    await pool.execute(REPLIES, created.thread_id, amina.id, created.post_id, 101, 110)
    path = f"/t/{created.thread_id}"
    before = (await client.get(f"{path}?page=3")).text
    assert "Venu d’ailleurs" in before and "masqués" not in before
    # When the remote author's instance is suspended
    async with pool.acquire() as conn:
        await policy.block_domain(conn, policy.BlockRequest("bloque.example"))
    # Then the third page stays, saying its messages are hidden, with none of them, and
    # links to the pages around it, for a member as for a visitor
    await login(client, "amina")
    async with new_client(app) as visitor:
        for reader in (client, visitor):
            response = await reader.get(f"{path}?page=3")
            page = response.text
            assert response.status_code == 200 and "Page 3 / 4" in page
            assert "Les messages de cette page sont masqués" in page
            assert "Venu d’ailleurs" not in page and "bloque.example" not in page and shown(page) == []
            assert link(PREVIOUS_PAGE, page) == f"{path}?page=2" and link(NEXT_PAGE, page) == f"{path}?page=4"
            # And the pages around it read as before, without the notice
            onwards, backwards = await walk(reader, path, re.compile(r"Réponse numéro (\d+)<"))
            assert [int(n) for n in onwards] == [int(n) for n in backwards] == list(range(1, 111))
            for number in (1, 2, 4):
                assert "masqués" not in (await reader.get(f"{path}?page={number}")).text
            # And past the last page, still a missing page
            assert (await reader.get(f"{path}?page=5")).status_code == 404


async def test_backfilled_replies_take_their_place_by_date(pool: asyncpg.Pool) -> None:
    # Given a thread with two replies
    await make_community(pool, "medical")
    amina = await make_member(pool, "amina")
    created = await long_thread(pool, amina, 2)
    # When replies older than both are stored later (a backfill), then recounted
    opened = await pool.fetchval("SELECT created_at FROM posts WHERE id = $1", created.post_id)
    async with pool.acquire() as conn, conn.transaction():
        for n, minutes in (("A", 2), ("B", 1)):
            await conn.execute(
                "INSERT INTO posts (thread_id, parent_id, source, content_html, created_at)"
                " VALUES ($1, $2, $3, '<p>x</p>', $4)",
                created.thread_id,
                created.post_id,
                f"Ancienne {n}",
                opened + timedelta(microseconds=minutes),
            )
        before = await numbers(conn, created.thread_id)
        await threads.recount(conn, [created.thread_id])
    # Then they were numbered as they came, and are numbered by date once recounted
    assert dict(before) == {
        "Le message d'ouverture": 1,
        "Ancienne B": 5,
        "Ancienne A": 4,
        "Réponse 1": 2,
        "Réponse 2": 3,
    }
    assert await numbers(pool, created.thread_id) == [
        ("Le message d'ouverture", 1), ("Ancienne B", 2), ("Ancienne A", 3), ("Réponse 1", 4), ("Réponse 2", 5),
    ]  # fmt: skip
    # And the next reply follows them
    async with pool.acquire() as conn:
        reply = await threads.create_reply(conn, created.thread_id, amina, "La suite")
    assert await pool.fetchval("SELECT number FROM posts WHERE id = $1", reply) == 6


async def test_replies_written_at_once_never_share_a_number(pool: asyncpg.Pool) -> None:
    # Given a thread
    await make_community(pool, "medical")
    amina = await make_member(pool, "amina")
    created = await long_thread(pool, amina, 0)

    # When twenty replies are written at the same time, each in its own transaction
    async def one(n: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO posts (thread_id, parent_id, source, content_html) VALUES ($1, $2, $3, '<p>x</p>')",
                created.thread_id,
                created.post_id,
                f"R{n}",
            )
            await asyncio.sleep(0.01)

    await asyncio.gather(*(one(n) for n in range(20)))
    # Then they hold the numbers 2 to 21, one each, and the thread knows its last one
    got = sorted(n for _, n in await numbers(pool, created.thread_id))
    assert got == list(range(1, 22))
    assert await pool.fetchval("SELECT last_number FROM threads WHERE id = $1", created.thread_id) == 21
