"""A member's conversations and the moderators' reported private messages page by
keyset (``node.keyset``): walked from the first page through « Plus anciennes » and
back through « Plus récentes », without JavaScript, each item once; the conversation
with the newest message the member sees comes first (a new message moves it up, a
blocked person's does not); another member's conversations are never listed nor usable
as a cursor; an old ``?page=N`` leads to the first page once the access check is passed."""

from __future__ import annotations

import re

import asyncpg
import httpx
from starlette.applications import Starlette

from node import encryption, messages
from node.sessions import User
from node.settings import Settings
from tests.helpers import login, make_user, new_client, walk

BASE = "http://testserver"
CONVERSATION = re.compile(r'<li id="c(\d+)"')
REPORT = re.compile(r'<a href="/moderation/messages/(\d+)">')


async def member(pool: asyncpg.Pool, name: str, role: str = "member") -> User:
    return User(await make_user(pool, name, role=role), name, name.capitalize(), role, "approved")


async def write(pool: asyncpg.Pool, settings: Settings, author: User, to: str, subject: str) -> int:
    keyring = encryption.keyring_of(settings)
    async with pool.acquire() as conn:
        recipients = await messages.local_recipients(conn, author, [to])
        written = await messages.start(conn, keyring, BASE, author, recipients, subject, "Bonjour.")
    return written.conversation_id


async def answer(pool: asyncpg.Pool, settings: Settings, author: User, conversation_id: int) -> None:
    async with pool.acquire() as conn:
        await messages.reply(conn, encryption.keyring_of(settings), author, conversation_id, "Réponse.")


async def order_of(pool: asyncpg.Pool, user: User) -> list[str]:
    """The member's conversations as the list must show them, by the messages themselves."""
    rows = await pool.fetch(
        """
        SELECT p.conversation_id FROM conversation_participants p
        CROSS JOIN LATERAL (SELECT max(m.created_at) AS at FROM messages m
                            WHERE m.conversation_id = p.conversation_id
                              AND NOT EXISTS (SELECT 1 FROM message_blocks b
                                              WHERE b.user_id = p.user_id AND b.created_at <= m.created_at
                                                AND b.blocked_user_id = m.author_user_id)) last
        WHERE p.user_id = $1 AND p.left_at IS NULL AND last.at IS NOT NULL
        ORDER BY last.at DESC, p.conversation_id DESC
        """,
        user.id,
    )
    return [str(r["conversation_id"]) for r in rows]


async def test_conversations_are_paged_by_their_last_message(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given Amina in 70 conversations (pages of 30): 65 started by her, 5 by Chloé, 25 of
    # them with their last message in the same instant; and Chloé's conversations with Dora
    amina, bruno = await member(pool, "amina"), await member(pool, "bruno")
    chloe = await member(pool, "chloe")
    await member(pool, "dora")
    mine = [await write(pool, settings, amina, "bruno", f"Sujet {i}") for i in range(65)]
    mine += [await write(pool, settings, chloe, "amina", f"De Chloé {i}") for i in range(5)]
    theirs = [await write(pool, settings, chloe, "dora", f"Entre elles {i}") for i in range(3)]
    same = [c for c in mine if c % 3 == 0][:25]
    await pool.execute(
        "UPDATE messages SET created_at = '2026-11-30 12:00+00' WHERE conversation_id = ANY ($1::bigint[])",
        same,
    )
    await pool.execute(
        "UPDATE conversation_participants SET last_message_at = '2026-11-30 12:00+00'"
        " WHERE conversation_id = ANY ($1::bigint[])",
        same,
    )
    expected = await order_of(pool, amina)
    assert len(expected) == 70 and messages.PAGE_SIZE == 30
    await login(client, "amina")

    # When she walks her conversations to the oldest and back
    onwards, backwards = await walk(client, "/messages", CONVERSATION)

    # Then each comes once, the latest message first (the conversation id breaks ties), both ways
    assert onwards == backwards == expected
    # And Chloé's conversations with Dora are never shown, nor a cursor of hers: a missing page
    assert not {str(c) for c in theirs} & set(onwards)
    for cursor in (f"avant={theirs[0]}", f"apres={theirs[1]}", "avant=abc", f"avant={2**63}"):
        assert (await client.get(f"/messages?{cursor}")).status_code == 404
    # And an old numbered page leads to the first one
    old = await client.get("/messages?page=3")
    assert (old.status_code, old.headers["location"]) == (302, "/messages")

    # When Bruno answers in her oldest conversation, then in one on the second page
    await answer(pool, settings, bruno, int(expected[-1]))
    await answer(pool, settings, bruno, int(expected[40]))

    # Then those two come first, the latest answer on top; the others keep their order
    rest = [c for c in expected if c not in (expected[40], expected[-1])]
    shown = CONVERSATION.findall((await client.get("/messages")).text)
    assert shown == [expected[40], expected[-1], *rest[:28]]
    assert await order_of(pool, amina) == [expected[40], expected[-1], *rest]


async def test_a_blocked_persons_messages_do_not_move_a_conversation_until_the_block_is_lifted(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given Bruno in two conversations, one with Amina then a later one with Chloé
    amina, bruno, chloe = (
        await member(pool, "amina"),
        await member(pool, "bruno"),
        await member(pool, "chloe"),
    )
    with_amina = await write(pool, settings, amina, "bruno", "Avec Amina")
    with_chloe = await write(pool, settings, chloe, "bruno", "Avec Chloé")
    await messages.block_member(pool, bruno, "amina")
    await login(client, "bruno")

    # When Amina, whom he blocks, writes again
    await answer(pool, settings, amina, with_amina)

    # Then his list does not move (he does not see that message); hers does
    assert CONVERSATION.findall((await client.get("/messages")).text) == [str(with_chloe), str(with_amina)]
    assert (await messages.listing(pool, encryption.keyring_of(settings), amina)).conversations[
        0
    ].id == with_amina
    assert await order_of(pool, bruno) == [str(with_chloe), str(with_amina)]

    # When he lifts the block, her message shows again and the conversation moves up
    block_id = await pool.fetchval("SELECT id FROM message_blocks WHERE user_id = $1", bruno.id)
    async with pool.acquire() as conn:
        await messages.unblock(conn, bruno, block_id)
    assert CONVERSATION.findall((await client.get("/messages")).text) == [str(with_amina), str(with_chloe)]
    assert await order_of(pool, bruno) == [str(with_amina), str(with_chloe)]


async def test_an_old_numbered_page_is_missing_for_anyone_but_a_member(app: Starlette) -> None:
    # A visitor asking for an old numbered page gets the missing page, not a redirect
    async with new_client(app) as visitor:
        assert (await visitor.get("/messages?page=3")).status_code == 404
        assert (await visitor.get("/moderation/messages?page=2")).status_code == 404


REPORTS = """
INSERT INTO message_reports (message_id, reporter_id, reason_sealed, state, created_at)
SELECT $1, NULL, '\\x00'::bytea, CASE WHEN g % 4 = 0 THEN 'resolved' ELSE 'open' END,
       CASE WHEN g % 5 = 0 THEN '2026-11-30 12:00+00'::timestamptz ELSE now() - g * interval '1 minute' END
FROM generate_series(1, 240) g
"""


async def test_reported_messages_are_paged_without_a_cap(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given 180 open and 60 handled reports (pages of 50), 48 of them made in the same instant
    amina = await member(pool, "amina")
    await member(pool, "bruno")
    await member(pool, "modo", "moderator")
    conversation_id = await write(pool, settings, amina, "bruno", "Sujet")
    message_id = await pool.fetchval("SELECT id FROM messages WHERE conversation_id = $1", conversation_id)
    await pool.execute(REPORTS, message_id)
    await login(client, "modo")

    for state, start in (
        ("open", "/moderation/messages"),
        ("resolved", "/moderation/messages?etat=resolved"),
    ):
        expected = [
            str(r["id"])
            for r in await pool.fetch(
                "SELECT id FROM message_reports WHERE state = $1 ORDER BY created_at DESC, id DESC", state
            )
        ]
        # When a moderator walks them both ways
        onwards, backwards = await walk(client, start, REPORT)
        # Then every one comes once, newest first (past the former cap of 100)
        assert onwards == backwards == expected and len(expected) == {"open": 180, "resolved": 60}[state]

    opened = await pool.fetchval("SELECT min(id) FROM message_reports WHERE state = 'open'")
    # And a report in another state is no cursor of that list, an unknown state no list
    assert (await client.get(f"/moderation/messages?etat=resolved&avant={opened}")).status_code == 404
    assert (await client.get("/moderation/messages?etat=tous")).status_code == 404
    assert (await client.get("/moderation/messages?page=2")).headers["location"] == "/moderation/messages"
    old = await client.get("/moderation/messages?etat=resolved&page=4")
    assert old.headers["location"] == "/moderation/messages?etat=resolved"
