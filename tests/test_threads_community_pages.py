"""A community's thread list, page by page both ways (issue 17): « Plus anciennes »
walks down from the last thread shown, « Plus récentes » up from the first one, reading
one page's worth each way (tests/test_query_plans.py), pinned threads first; what a
viewer may not read stays missing or out of the list."""

from __future__ import annotations

import re

import asyncpg
import httpx
from starlette.applications import Starlette

from federation import policy
from node import threads
from tests.helpers import login, make_community, make_user, new_client

# Thread n is active n minutes after the first: « Discussion 00 » the oldest.
THREADS = """
INSERT INTO threads (community_id, author_id, remote_author_id, title, created_at, last_activity_at, pinned)
SELECT $1, $2, $3, 'Discussion ' || lpad(g::text, 2, '0'), now() - interval '1 day',
       now() - interval '1 day' + g * interval '1 minute', g = ANY ($5::int[])
FROM generate_series($4::int, $4 + $6 - 1) g
"""


async def add_threads(
    pool: asyncpg.Pool,
    community_id: int,
    author_id: int | None,
    first: int,
    count: int,
    pinned: tuple[int, ...] = (),
    remote_author_id: int | None = None,
) -> None:
    await pool.execute(THREADS, community_id, author_id, remote_author_id, first, list(pinned), count)


def titles(html: str) -> list[str]:
    return re.findall(r"<strong>(Discussion \d+)</strong>", html)


def link(html: str, rel: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)" rel="{rel}"', html)
    return match.group(1).replace("&amp;", "&") if match else None


async def walk(client: httpx.AsyncClient, start: str, rel: str) -> tuple[list[list[str]], str]:
    """The titles of each page from ``start`` on, following the ``rel`` links, and the
    URL of the last page."""
    pages = []
    url: str | None = start
    while url is not None:
        page = (await client.get(url)).text
        pages.append(titles(page))
        last, url = url, link(page, rel)
    return pages, last


def expected(count: int, pinned: tuple[int, ...] = ()) -> list[str]:
    """Every title in list order: pinned first, then by last activity, newest first."""
    order = sorted(range(count), key=lambda g: (g not in pinned, -g))
    return [f"Discussion {g:02d}" for g in order]


async def test_newer_pages_give_back_exactly_the_older_pages(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a community of 95 threads, one of them pinned
    community = await make_community(pool, "medical")
    amina = await make_user(pool, "amina")
    await add_threads(pool, community, amina, 0, 95, pinned=(40,))
    await login(client, "amina")
    # When she walks down to the last page, then back up with « Plus récentes »
    down, last = await walk(client, "/c/medical", "next")
    up, top = await walk(client, last, "prev")
    # Then every thread was listed once, in order, a page at a time
    assert [t for page in down for t in page] == expected(95, (40,))
    assert [len(p) for p in down] == [threads.LIST_PAGE_SIZE] * 3 + [5]
    # And going up gives the same pages back, ending on the first (pinned thread first)
    assert up == down[::-1]
    assert up[-1][0] == "Discussion 40" and "apres=" in top
    assert link((await client.get("/c/medical")).text, "prev") is None
    assert link((await client.get(top)).text, "prev") is None
    assert link((await client.get(last)).text, "next") is None


async def test_pages_cross_from_pinned_threads_to_the_others_both_ways(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given more pinned threads than a page holds, and a few others
    community = await make_community(pool, "medical")
    amina = await make_user(pool, "amina")
    pinned = tuple(range(5, 40))
    await add_threads(pool, community, amina, 0, 45, pinned=pinned)
    await login(client, "amina")
    # When she walks down, then up again from the last page
    down, second = await walk(client, "/c/medical", "next")
    assert len(down) == 2
    up, _ = await walk(client, second, "prev")
    # Then the second page holds the last pinned threads then the others, and going up
    # from it gives the first page: the newest pinned threads
    assert [t for page in down for t in page] == expected(45, pinned)
    assert down[1][:5] == [
        "Discussion 09",
        "Discussion 08",
        "Discussion 07",
        "Discussion 06",
        "Discussion 05",
    ]
    assert up == [down[1], down[0]]


async def test_a_page_before_the_first_thread_is_missing(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a community's first page
    community = await make_community(pool, "medical")
    amina = await make_user(pool, "amina")
    await add_threads(pool, community, amina, 0, 3)
    await login(client, "amina")
    newest = await pool.fetchrow(
        "SELECT id, pinned, last_activity_at FROM threads ORDER BY last_activity_at DESC LIMIT 1"
    )
    token = threads.ListCursor.of(newest).token()
    # When someone asks for the threads newer than its newest one
    response = await client.get(f"/c/medical?apres={token}")
    # Then there is no such page
    assert response.status_code == 404
    # And a malformed cursor is a missing page too
    assert (await client.get("/c/medical?apres=1.x.2")).status_code == 404


async def test_newer_pages_of_a_members_only_community_are_missing_for_visitors(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    # Given a members-only community of 40 threads, and a member's second page
    community = await make_community(pool, "medical")
    amina = await make_user(pool, "amina")
    await add_threads(pool, community, amina, 0, 40)
    await login(client, "amina")
    second = link((await client.get("/c/medical")).text, "next")
    assert second is not None
    newer = link((await client.get(second)).text, "prev")
    assert newer is not None and "apres=" in newer
    assert len(titles((await client.get(newer)).text)) == threads.LIST_PAGE_SIZE
    # When a visitor follows the same links
    async with new_client(app) as visitor:
        answers = [await visitor.get(url) for url in (second, newer, "/c/absente?" + newer.split("?")[1])]
    # Then each is the missing page, with no thread of the community in it
    assert [a.status_code for a in answers] == [404, 404, 404]
    assert all("Discussion" not in a.text for a in answers)


async def test_newer_pages_leave_out_silenced_authors_for_visitors(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    # Given a public community whose threads 30 to 39 come from a silenced instance
    community = await make_community(pool, "juridique", visibility="public")
    amina = await make_user(pool, "amina")
    actor_id = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain) VALUES"
        " ('https://bruyant.example/u/x', 'Person', false, 'x', 'bruyant.example') RETURNING id"
    )
    await add_threads(pool, community, amina, 0, 30)
    await add_threads(pool, community, None, 30, 10, remote_author_id=actor_id)
    await add_threads(pool, community, amina, 40, 35)
    async with pool.acquire() as conn:
        await policy.block_domain(conn, policy.BlockRequest("bruyant.example", "silence"))
    # When a visitor, then a member, walk down and back up
    async with new_client(app) as visitor:
        down, last = await walk(visitor, "/c/juridique", "next")
        up, _ = await walk(visitor, last, "prev")
    await login(client, "amina")
    members, _ = await walk(client, "/c/juridique", "next")
    # Then the visitor's pages, both ways, never list the silenced threads; the member's do
    silenced = {f"Discussion {g}" for g in range(30, 40)}
    assert [t for p in down for t in p] == [t for t in expected(75) if t not in silenced]
    assert up == down[::-1]
    assert [t for p in members for t in p] == expected(75)
