"""A member's lists page by keyset (``node.keyset``): notifications, bookmarks and the
member directory are walked from their first page through « Plus anciennes » / « Suivants »
and back through « Plus récentes » / « Précédents », without JavaScript, each item once;
an old numbered link (``?page=N``) leads to the first page; a cursor that names nothing
of the reader's is a missing page."""

from __future__ import annotations

import re

import asyncpg
import httpx

from node import notifications
from tests.helpers import login, make_community, make_user, walk


async def test_notifications_are_paged_by_the_last_one_shown(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member with 70 notifications (pages of 30)
    amina = await make_user(pool, "amina")
    await pool.execute(
        "INSERT INTO notifications (user_id, kind, reason) SELECT $1, 'moderation', 'n' || g"
        " FROM generate_series(1, 70) g",
        amina,
    )
    ids = [r["id"] for r in await pool.fetch("SELECT id FROM notifications ORDER BY id DESC")]
    await login(client, "amina")

    # When she walks her notifications to the oldest and back
    onwards, backwards = await walk(client, "/notifications", re.compile(r'id="n(\d+)"'))

    # Then she sees each one once, newest first, both ways
    assert onwards == backwards == [str(i) for i in ids]
    assert notifications.PAGE_SIZE == 30
    # And an old numbered page leads to the first, a malformed cursor is a missing page
    old = await client.get("/notifications?page=3")
    assert (old.status_code, old.headers["location"]) == (302, "/notifications")
    assert (await client.get("/notifications?avant=abc")).status_code == 404


async def test_bookmarks_are_paged_and_a_cursor_is_only_the_members_own(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member who bookmarked 65 posts, 40 of them in the same instant, and another member's bookmark
    community = await make_community(pool, "medical")
    amina = await make_user(pool, "amina")
    bea = await make_user(pool, "bea")
    thread = await pool.fetchval(
        "INSERT INTO threads (community_id, author_id, title) VALUES ($1, $2, 'Fil') RETURNING id",
        community,
        amina,
    )
    await pool.execute(
        "INSERT INTO posts (thread_id, author_id, is_opening, source, content_html)"
        " SELECT $1, $2, g = 1, 'Message ' || g, '<p>m</p>' FROM generate_series(1, 66) g",
        thread,
        amina,
    )
    await pool.execute(
        "INSERT INTO bookmarks (user_id, post_id, created_at)"
        " SELECT $1, id, CASE WHEN id % 3 = 0 THEN now() - id * interval '1 minute'"
        " ELSE '2026-01-01'::timestamptz END FROM posts WHERE id <= 65",
        amina,
    )
    theirs = await pool.fetchval(
        "INSERT INTO bookmarks (user_id, post_id) VALUES ($1, 66) RETURNING post_id", bea
    )
    order = [
        r["post_id"]
        for r in await pool.fetch(
            "SELECT post_id FROM bookmarks WHERE user_id = $1 ORDER BY created_at DESC, post_id DESC", amina
        )
    ]
    await login(client, "amina")

    # When she walks her bookmarks both ways
    onwards, backwards = await walk(client, "/enregistres", re.compile(r'action="/p/(\d+)/enregistrer"'))

    # Then each comes once, newest first (the post id breaks ties)
    assert onwards == backwards == [str(i) for i in order]
    # And another member's bookmark is no cursor of hers: a missing page
    assert (await client.get(f"/enregistres?avant={theirs}")).status_code == 404
    assert (await client.get("/enregistres?page=2")).headers["location"] == "/enregistres"


async def test_the_directory_is_paged_by_name(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given 120 members in the directory (pages of 50), some with the same name, and one who is not in it
    await make_user(pool, "amina")
    await pool.execute(
        "INSERT INTO users (username, display_name, email, password_hash, status, in_directory)"
        " SELECT 'membre' || g, 'Membre ' || (g % 40), 'membre' || g || '@example.org', 'x', 'approved', true"
        " FROM generate_series(1, 120) g"
    )
    hidden = await pool.fetchval(
        "INSERT INTO users (username, display_name, email, password_hash, status)"
        " VALUES ('discrete', 'Discrète', 'd@example.org', 'x', 'approved') RETURNING id"
    )
    order = [
        r["username"]
        for r in await pool.fetch(
            "SELECT username FROM users WHERE in_directory AND status = 'approved' ORDER BY lower(display_name), id"
        )
    ]
    await login(client, "amina")

    # When she walks the directory both ways
    onwards, backwards = await walk(client, "/membres", re.compile(r'<a href="/u/([^"]+)"><strong>'))

    # Then each member comes once, by name
    assert onwards == backwards == order and len(order) == 120
    # And a member who is not in the directory is no cursor: a missing page
    assert (await client.get(f"/membres?apres={hidden}")).status_code == 404
    assert (await client.get("/membres?q=membre&page=2")).headers["location"] == "/membres?q=membre"


async def test_the_applications_queue_is_paged_oldest_first(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given 120 applications waiting (pages of 50), 60 of them sent in the same instant
    await make_user(pool, "mona", role="moderator")
    await pool.execute(
        "INSERT INTO users (username, display_name, email, password_hash, created_at)"
        " SELECT 'demande' || g, 'Demande ' || g, 'demande' || g || '@example.org', 'x',"
        " CASE WHEN g % 2 = 0 THEN '2026-01-01'::timestamptz ELSE now() - g * interval '1 hour' END"
        " FROM generate_series(1, 120) g"
    )
    order = [
        str(r["id"])
        for r in await pool.fetch("SELECT id FROM users WHERE status = 'pending' ORDER BY created_at, id")
    ]
    await login(client, "mona")

    # When a moderator walks the queue both ways
    onwards, backwards = await walk(client, "/moderation", re.compile(r'<li id="demande-(\d+)">'))

    # Then each application comes once, the oldest first, under the count of them all
    assert onwards == backwards == order and len(order) == 120
    assert "(120)" in (await client.get("/moderation")).text
    assert (await client.get("/moderation?page=2")).headers["location"] == "/moderation"
