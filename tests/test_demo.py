"""The demo seed fills the node once; running it again changes nothing."""

from __future__ import annotations

import asyncpg
import httpx

from node import demo
from tests.helpers import login

COUNTS = """
SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM communities) AS communities,
       (SELECT count(*) FROM threads) AS threads, (SELECT count(*) FROM posts) AS posts,
       (SELECT count(*) FROM community_experts) AS experts, (SELECT count(*) FROM community_follows) AS follows
"""


async def test_seed_demo_is_idempotent(pool: asyncpg.Pool) -> None:
    # Given an empty node
    async with pool.acquire() as conn:
        # When the demo is seeded twice
        first = await demo.seed(
            conn, admin_password="mot-de-passe-admin", member_password="mot-de-passe-demo"
        )
        counts = dict(await conn.fetchrow(COUNTS))
        second = await demo.seed(
            conn, admin_password="autre-mot-de-passe", member_password="autre-mot-de-passe"
        )
        # Then the second run creates nothing
        assert dict(await conn.fetchrow(COUNTS)) == counts
    assert first["admin_created"] and len(first["members_created"]) == len(demo.MEMBERS)
    assert second == {"admin_created": False, "members_created": [], "threads_created": 0}
    assert counts["communities"] == 4 and counts["threads"] == len(demo.THREADS)
    assert counts["posts"] == len(demo.THREADS) + sum(len(t.replies) for t in demo.THREADS)
    visibilities = {
        r["name"]: r["visibility"] for r in await pool.fetch("SELECT name, visibility FROM communities")
    }
    assert visibilities == {
        "medical": "members",
        "psychosocial": "members",
        "juridique": "public",
        "coordination": "local",
    }
    # Expert answers, pins and reply-to-reply contexts are in place
    assert await pool.fetchval("SELECT count(*) FROM threads WHERE expert_answer_id IS NOT NULL") == 3
    assert await pool.fetchval("SELECT count(*) FROM threads WHERE pinned") == 2
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM posts p JOIN posts pp ON pp.id = p.parent_id WHERE NOT pp.is_opening"
        )
        > 0
    )


async def test_demo_member_can_log_in_and_read_the_demo(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    async with pool.acquire() as conn:
        await demo.seed(conn, admin_password="mot-de-passe-admin", member_password="mot-de-passe-demo")
    await login(client, "fatima_e", "mot-de-passe-demo")
    home = await client.get("/")
    assert "PEP" in home.text
    page = await client.get("/c/medical")
    assert "Dr Josué Mukendi" in page.text and "Bienvenue" in page.text


def test_seed_demo_command_is_registered() -> None:
    from node import cli
    from node.admin_commands import ADMIN_COMMANDS

    parser = cli.build_parser()
    args = parser.parse_args(["admin", "seed-demo", "--password", "x" * 12])
    assert args.admin_command == "seed-demo" and "seed-demo" in ADMIN_COMMANDS
