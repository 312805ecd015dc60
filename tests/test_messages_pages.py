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
from tests.helpers import NEXT_PAGE, PREVIOUS_PAGE, link, login, make_member, new_client, walk

BASE = "http://testserver"
CONVERSATION = re.compile(r'<li id="c(\d+)"')
REPORT = re.compile(r'<a href="/moderation/messages/(\d+)">')


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
    amina, bruno = await make_member(pool, "amina"), await make_member(pool, "bruno")
    chloe = await make_member(pool, "chloe")
    await make_member(pool, "dora")
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
        await make_member(pool, "amina"),
        await make_member(pool, "bruno"),
        await make_member(pool, "chloe"),
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
    amina = await make_member(pool, "amina")
    await make_member(pool, "bruno")
    await make_member(pool, "modo", role="moderator")
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


MESSAGE = re.compile(r'<article class="post message[^"]*" id="m(\d+)"')


async def back_and_forth(client: httpx.AsyncClient, start: str) -> tuple[list[list[str]], list[list[str]]]:
    """The pages of a conversation from its latest one back through « Messages
    précédents », then forth again through « Messages suivants » (each page as shown)."""
    back: list[list[str]] = []
    path: str | None = start
    html = ""
    while path is not None:
        html = (await client.get(path)).text
        back.insert(0, MESSAGE.findall(html))
        path = link(PREVIOUS_PAGE, html)
    forth: list[list[str]] = [back[0]]
    path = link(NEXT_PAGE, html)
    while path is not None:
        html = (await client.get(path)).text
        forth.append(MESSAGE.findall(html))
        path = link(NEXT_PAGE, html)
    return back, forth


async def test_a_long_conversation_shows_its_latest_messages_and_pages_back_by_keyset(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given a conversation of 120 messages between Amina and Bruno (pages of 50), 30 of them
    # written in the same instant, and another conversation of Bruno's with Chloé
    amina, bruno = await make_member(pool, "amina"), await make_member(pool, "bruno")
    chloe = await make_member(pool, "chloe")
    conversation_id = await write(pool, settings, amina, "bruno", "Longue")
    for i in range(119):
        await answer(pool, settings, amina if i % 3 else bruno, conversation_id)
    other = await write(pool, settings, chloe, "bruno", "Autre")
    await pool.execute(
        "UPDATE messages SET created_at = '2026-11-30 12:00+00'"
        " WHERE id IN (SELECT id FROM messages WHERE conversation_id = $1 ORDER BY id OFFSET 40 LIMIT 30)",
        conversation_id,
    )
    expected = [
        str(r["id"])
        for r in await pool.fetch(
            "SELECT id FROM messages WHERE conversation_id = $1 ORDER BY created_at, id", conversation_id
        )
    ]
    assert len(expected) == 120 and messages.MESSAGES_PAGE_SIZE == 50
    await login(client, "bruno")
    unread = await messages.unread_total(pool, bruno.id)
    assert unread > 0

    # When Bruno opens an older page first, nothing is marked read
    older = await client.get(f"/messages/{conversation_id}?avant={expected[70]}")
    assert older.status_code == 200 and MESSAGE.findall(older.text) == expected[20:70]
    assert "Messages précédents" in older.text and "Messages suivants" in older.text
    assert await messages.unread_total(pool, bruno.id) == unread

    # When he opens the conversation: its latest 50 messages, oldest first, and it is read
    latest = await client.get(f"/messages/{conversation_id}")
    assert MESSAGE.findall(latest.text) == expected[-50:]
    assert "Messages précédents" in latest.text and "Messages suivants" not in latest.text
    assert await messages.unread_total(pool, bruno.id) == unread - (
        await pool.fetchval(
            "SELECT unread FROM conversation_participants WHERE user_id = $1 AND conversation_id = $2",
            bruno.id,
            other,
        )
    )

    # When he walks it back to its first message, then forth to the latest
    back, forth = await back_and_forth(client, f"/messages/{conversation_id}")

    # Then every message comes once, in order, both ways, pages of at most 50
    assert [m for page in back for m in page] == [m for page in forth for m in page] == expected
    assert [len(page) for page in back] == [20, 50, 50]

    # And a message of another conversation (his own, even) is no cursor there, nor garbage
    foreign = await pool.fetchval("SELECT id FROM messages WHERE conversation_id = $1", other)
    for cursor in (f"avant={foreign}", f"apres={foreign}", "avant=abc", f"avant={2**63}", "apres=0"):
        assert (await client.get(f"/messages/{conversation_id}?{cursor}")).status_code == 404
    # And a message far back can still be reported (found on its own, not on a page)
    first_of_amina = await pool.fetchval(
        "SELECT min(id) FROM messages WHERE conversation_id = $1 AND author_user_id = $2",
        conversation_id,
        amina.id,
    )
    first_of_his = await pool.fetchval(
        "SELECT min(id) FROM messages WHERE conversation_id = $1 AND author_user_id = $2",
        conversation_id,
        bruno.id,
    )
    assert (await client.get(f"/messages/{conversation_id}/m/{first_of_amina}/signaler")).status_code == 200
    assert (await client.get(f"/messages/{conversation_id}/m/{first_of_his}/signaler")).status_code == 404
    assert (await client.get(f"/messages/{conversation_id}/m/{foreign}/signaler")).status_code == 404

    # And to Chloé, who is not in it, the conversation is missing, at any page
    await login(client, "chloe")
    for path in ("", f"?avant={expected[70]}", f"?apres={expected[10]}"):
        assert (await client.get(f"/messages/{conversation_id}{path}")).status_code == 404
    assert (await client.get(f"/messages/{conversation_id}/quitter")).status_code == 404


async def test_a_blocked_persons_later_messages_stay_hidden_on_every_page(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given a conversation of Amina, Bruno and Chloé, Bruno blocking Chloé midway
    amina, bruno = await make_member(pool, "amina"), await make_member(pool, "bruno")
    chloe = await make_member(pool, "chloe")
    keyring = encryption.keyring_of(settings)
    async with pool.acquire() as conn:
        recipients = await messages.local_recipients(conn, amina, ["bruno", "chloe"])
        conversation_id = (
            await messages.start(conn, keyring, BASE, amina, recipients, "À trois", "Salut.")
        ).conversation_id
    for i in range(60):
        await answer(pool, settings, chloe if i % 2 else amina, conversation_id)
    await messages.block_member(pool, bruno, "chloe")
    for i in range(60):
        await answer(pool, settings, chloe if i % 2 else amina, conversation_id)
    hidden = {
        str(r["id"])
        for r in await pool.fetch(
            "SELECT m.id FROM messages m JOIN message_blocks b ON b.user_id = $2 AND b.created_at <= m.created_at"
            " WHERE m.conversation_id = $1 AND m.author_user_id = $3",
            conversation_id,
            bruno.id,
            chloe.id,
        )
    }
    assert len(hidden) == 30
    await login(client, "bruno")

    # When Bruno walks the conversation both ways
    back, forth = await back_and_forth(client, f"/messages/{conversation_id}")

    # Then he sees every message but those Chloé wrote after the block, in pages of 50
    shown = [m for page in back for m in page]
    assert shown == [m for page in forth for m in page]
    assert len(shown) == 121 - 30 and not hidden & set(shown)
    assert [len(page) for page in back] == [41, 50]
