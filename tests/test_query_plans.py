"""The hot queries have an index path: none of them reads all of ``posts``, ``threads``,
``reports`` or ``users``.

A sequential scan is what makes a page's cost grow with the node's history. On a test
database the tables are tiny and the planner would rightly prefer scanning them, so each
plan is asked with sequential scans priced out (``enable_seqscan = off``): a ``Seq Scan``
on those tables still in the plan means no index can serve the query.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import asyncpg
import pytest

from node import accounts, communities, reports, search, threads
from node.sessions import User
from tests.helpers import make_community, make_user

MEMBER = 1
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
HOT_QUERIES = {
    "search newest posts, member": (search.SCAN_MATCHES, ("survivante", True, 0, 10_000, 500)),
    "search newest posts, visitor": (search.SCAN_MATCHES, ("zone rurale", False, 0, 10_000, 500)),
    "search window, member": (search.WINDOW_MATCHES, ("survivante", True, 0, 10_000, 500)),
    "search window, visitor": (search.WINDOW_MATCHES, ("survivante prise en charge", False, 100, 200, 500)),
    "search results shown": (search.SHOWN, ([1, 2, 3],)),
    "community page": (threads.LIST_COMMUNITY_THREADS["older"], (MEMBER, 1, True, FAR_FUTURE, 2**62, 31)),
    "community page, newer": (threads.LIST_COMMUNITY_THREADS["newer"], (None, 1, False, FAR_FUTURE, 5, 31)),
    "member home": (threads.LIST_FOLLOWED_THREADS["older"], (MEMBER, True, FAR_FUTURE, 2**62, 31)),
    "member home, newer": (threads.LIST_FOLLOWED_THREADS["newer"], (MEMBER, True, FAR_FUTURE, 5, 31)),
    "visitor home": (threads.LIST_PUBLIC_THREADS, (None, 10)),
    "thread page posts": (threads.SELECT_PAGE_POSTS, (1, 21, 0)),
    "open reports": (reports.LIST_OPEN["older"], (21, FAR_FUTURE, 2**62)),
    "open reports, newer": (reports.LIST_OPEN["newer"], (21, FAR_FUTURE, 2**62)),
    "handled reports": (reports.LIST_HANDLED["older"], (21, FAR_FUTURE, 2**62, "resolved")),
    "admin member list": (accounts.SEARCH_MEMBERS["next"], ("", 51, "amina")),
    "admin member list, previous": (accounts.SEARCH_MEMBERS["previous"], ("ami", 51, "zora")),
}


@pytest.fixture
async def some_threads(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    user_id = await make_user(pool, "amina")
    author = User(user_id, "amina", "amina", "member", "approved")
    async with pool.acquire() as conn:
        community = await communities.find(conn, "medical")
        assert community is not None
        for i in range(5):
            created = await threads.create_thread(
                conn, community, author, f"Fil {i}", "La survivante est reçue."
            )
            await threads.create_reply(conn, created.thread_id, author, "Prise en charge médicale.")
        await conn.execute("ANALYZE")


@pytest.mark.parametrize("name", sorted(HOT_QUERIES))
async def test_hot_query_reads_posts_and_threads_by_index(
    pool: asyncpg.Pool, some_threads: None, name: str
) -> None:
    query, args = HOT_QUERIES[name]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + query, *args))
    assert not re.search(r"Seq Scan on (posts|threads|reports|users)\b", plan), plan
