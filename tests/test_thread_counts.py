"""Reply counts and last activity of threads count shown posts only: replies of a
suspended instance's members leave the counts and the activity dates of thread lists
(community page, home) while the suspension lasts, and come back when it is lifted."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from federation import handlers, policy
from federation.handlers.base import Context, VerifiedActor
from node import communities, threads
from node.sessions import User
from node.settings import Settings
from tests.helpers import login, make_community, make_user

OLD = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
MID = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 1, 20, 8, 30, tzinfo=UTC)


async def remote_actor(pool: asyncpg.Pool, domain: str, username: str) -> VerifiedActor:
    row = await pool.fetchrow(
        "INSERT INTO actors (uri, kind, local, username, domain, inbox)"
        " VALUES ($1, 'Person', false, $2, $3, $4) RETURNING id, uri, domain",
        f"https://{domain}/users/{username}",
        username,
        domain,
        f"https://{domain}/users/{username}/inbox",
    )
    return VerifiedActor(row["id"], row["uri"], row["domain"])


_notes = iter(range(1, 10_000))


async def remote_reply(pool: asyncpg.Pool, settings: Settings, sender: VerifiedActor, thread_id: int) -> str:
    """A Mastodon-shaped reply to our thread, run through the real Create handler."""
    note_id = f"https://{sender.domain}/notes/{next(_notes)}"
    activity: dict[str, Any] = {
        "id": note_id + "/activity",
        "type": "Create",
        "actor": sender.uri,
        "object": {
            "id": note_id,
            "type": "Note",
            "attributedTo": sender.uri,
            "inReplyTo": f"http://testserver/t/{thread_id}",
            "content": "<p>Une réponse venue d'ailleurs.</p>",
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
        },
    }
    async with pool.acquire() as conn, conn.transaction():
        outcome = await handlers.dispatch(Context(conn, settings, None, sender, activity))
    assert outcome.state == "done", outcome
    return note_id


async def local_thread(pool: asyncpg.Pool, author: User, title: str, at: datetime) -> int:
    """A thread of the public community « medical » written at ``at``."""
    async with pool.acquire() as conn:
        found = await communities.find(conn, "medical")
        assert found is not None
        created = await threads.create_thread(conn, found, author, title, "Corps de la question.")
    await pool.execute(
        "UPDATE threads SET created_at = $2, last_activity_at = $2 WHERE id = $1",
        created.thread_id,
        at,
    )
    await pool.execute("UPDATE posts SET created_at = $2 WHERE thread_id = $1", created.thread_id, at)
    return created.thread_id


async def counters(pool: asyncpg.Pool, thread_id: int) -> tuple[int, str]:
    row = await pool.fetchrow(
        "SELECT reply_count, to_char(last_activity_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS at"
        " FROM threads WHERE id = $1",
        thread_id,
    )
    return row["reply_count"], row["at"]


def listed(html: str) -> list[tuple[str, str]]:
    """(title, « N réponse(s) · activité … ») of each thread of a list, in order."""
    items = re.findall(
        r"<strong>([^<]+)</strong></a><br>\s*<span class=\"muted\">(.*?)</span></li>", html, re.S
    )
    return [(title, _counts(meta)) for title, meta in items]


def _counts(meta: str) -> str:
    found = re.search(r"\d+ réponses? · activité .*", re.sub(r"<[^>]+>", "", meta).strip())
    assert found, meta
    return found.group(0)


async def suspend(pool: asyncpg.Pool, domain: str) -> None:
    async with pool.acquire() as conn:
        await policy.block_domain(conn, policy.BlockRequest(domain, severity="suspend"))


async def lift(pool: asyncpg.Pool, domain: str) -> None:
    async with pool.acquire() as conn:
        await policy.unblock_domain(conn, domain)


async def test_replies_of_a_suspended_instance_leave_thread_lists_until_the_block_is_lifted(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given a member following a public community with an old thread and a newer one
    await make_community(pool, "medical", visibility="public")
    amina_id = await make_user(pool, "amina", display_name="Amina")
    amina = User(amina_id, "amina", "Amina", "member", "approved")
    async with pool.acquire() as conn:
        found = await communities.find(conn, "medical")
        assert found is not None
        await communities.follow(conn, amina, found)
    old = await local_thread(pool, amina, "Sujet ancien", OLD)
    await local_thread(pool, amina, "Sujet récent", MID)
    # and two replies to the old thread, one from a partner, one from an instance soon suspended
    await remote_reply(pool, settings, await remote_actor(pool, "ami.example", "alice"), old)
    await remote_reply(pool, settings, await remote_actor(pool, "spam.example", "zed"), old)
    await pool.execute(
        "UPDATE posts p SET created_at = $1 FROM actors a"
        " WHERE a.id = p.remote_author_id AND a.domain = 'ami.example'",
        LATER,
    )
    await login(client, "amina")
    before = listed((await client.get("/c/medical")).text)
    assert before[0][0] == "Sujet ancien" and before[0][1].startswith("2 réponses")

    # When spam.example is suspended
    await suspend(pool, "spam.example")

    # Then its reply counts neither in the count nor in the activity date, in the
    # community's list and on the home page: the old thread falls back below the newer one
    assert await counters(pool, old) == (1, "2026-01-20 08:30")
    community = listed((await client.get("/c/medical")).text)
    home = listed((await client.get("/")).text)
    for page in (community, home):
        assert [title for title, _ in page] == ["Sujet récent", "Sujet ancien"]
        assert page[1][1] == "1 réponse · activité 20 janvier 2026 à 08:30 (UTC)"

    # When the suspension is lifted, the reply counts again
    await lift(pool, "spam.example")
    count, _ = await counters(pool, old)
    assert count == 2
    for path in ("/c/medical", "/"):
        shown = listed((await client.get(path)).text)
        assert shown[0][0] == "Sujet ancien" and shown[0][1].startswith("2 réponses")


async def test_a_reply_of_a_hidden_author_written_during_the_block_does_not_count(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given a thread and a suspended instance whose reply was received before the block
    await make_community(pool, "medical", visibility="public")
    amina = User(await make_user(pool, "amina"), "amina", "Amina", "member", "approved")
    thread_id = await local_thread(pool, amina, "Sujet", OLD)
    zed = await remote_actor(pool, "spam.example", "zed")
    await suspend(pool, "spam.example")

    # When the worker stores it anyway (the handler adds one reply and bumps the activity)
    note_id = await remote_reply(pool, settings, zed, thread_id)

    # Then the thread still counts no reply and keeps its activity date
    assert await counters(pool, thread_id) == (0, "2026-01-05 10:00")

    # and its deletion does not take a shown reply off the count
    async with pool.acquire() as conn:
        await threads.create_reply(conn, thread_id, amina, "Oui.")
    async with pool.acquire() as conn, conn.transaction():
        activity = {"id": note_id + "/delete", "type": "Delete", "actor": zed.uri, "object": note_id}
        assert (await handlers.dispatch(Context(conn, settings, None, zed, activity))).state == "done"
    assert (await counters(pool, thread_id))[0] == 1

    # and lifting the block brings nothing deleted back
    await lift(pool, "spam.example")
    assert (await counters(pool, thread_id))[0] == 1


async def test_local_replies_keep_counting_as_before(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical", visibility="public")
    amina = User(await make_user(pool, "amina"), "amina", "Amina", "member", "approved")
    thread_id = await local_thread(pool, amina, "Sujet", OLD)
    async with pool.acquire() as conn:
        reply = await threads.create_reply(conn, thread_id, amina, "Une réponse.")
        await threads.create_reply(conn, thread_id, amina, "Une autre.")
        await threads.delete_post(conn, reply, amina)
    count, at = await counters(pool, thread_id)
    assert count == 1 and at > "2026-01-05 10:00"
    # a recount agrees with what the writers maintained
    await pool.execute("SELECT vbg_threads_recount(ARRAY[$1::bigint])", thread_id)
    assert await counters(pool, thread_id) == (count, at)
