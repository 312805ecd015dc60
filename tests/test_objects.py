"""Threads as ``Page``, replies as ``Note``, tombstones, the context collection, group
collections, and who may read members-only content (signed GETs from approved instances)."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest

from federation import collections, policy, validation
from node.settings import Settings
from tests.ap_kit import (  # noqa: F401  (fixtures: open_federation is autouse)
    BASE,
    PUBLIC,
    approve,
    get_ap,
    make_reply,
    make_thread,
    members_only_paths,
    open_federation,
    partner,
    settings,
    signed_get,
)
from tests.fakefedi import FakeInstance
from tests.helpers import make_community, make_user

# --- factories (raw SQL: the ActivityPub side reads the forum's tables) ------------


# --- Page and Note ----------------------------------------------------------------


async def test_public_thread_is_a_page_addressed_to_public(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a thread in a public community
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, _ = await make_thread(pool, community, amina, pinned=True)

    # When a server fetches it
    response = await get_ap(client, f"/t/{thread_id}")

    # Then it is a Page with everything Lemmy and Mastodon read
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/activity+json; charset=utf-8"
    page = response.json()
    validation.validate_emitted(page)
    group = f"{BASE}/c/juridique"
    assert page["id"] == f"{BASE}/t/{thread_id}"
    assert page["type"] == "Page"
    assert page["name"] == "Accueil d'une victime aux urgences"
    assert page["attributedTo"] == f"{BASE}/u/amina"
    assert page["audience"] == group
    assert page["context"] == f"{BASE}/t/{thread_id}/context"
    assert page["to"] == [PUBLIC]
    assert page["cc"] == [group, f"{group}/followers"]
    assert page["content"] == "<p>Comment <strong>organiser</strong> l'accueil ?</p>"
    assert page["contentMap"] == {"fr": page["content"]}
    assert page["mediaType"] == "text/html"
    assert page["source"] == {"content": "Comment **organiser** l'accueil ?", "mediaType": "text/markdown"}
    assert {"type": "Mention", "href": group, "name": "@juridique@testserver"} in page["tag"]
    assert page["commentsEnabled"] is True and page["stickied"] is True
    assert page["published"].endswith("Z") and "updated" not in page


async def test_reply_is_a_note_in_reply_to_the_thread(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given a locked public thread by amina, with a reply by bastien
    amina = await make_user(pool, "amina")
    bastien = await make_user(pool, "bastien")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, _ = await make_thread(pool, community, amina, locked=True)
    reply_id = await make_reply(pool, thread_id, bastien)

    # When the reply and the thread are fetched
    note = (await get_ap(client, f"/p/{reply_id}")).json()
    page = (await get_ap(client, f"/t/{thread_id}")).json()

    # Then the reply is a Note answering the thread, cc'ing and mentioning its author
    validation.validate_emitted(note)
    assert note["type"] == "Note" and note["id"] == f"{BASE}/p/{reply_id}"
    assert note["inReplyTo"] == f"{BASE}/t/{thread_id}"
    assert note["attributedTo"] == f"{BASE}/u/bastien"
    assert note["audience"] == f"{BASE}/c/juridique"
    assert note["context"] == f"{BASE}/t/{thread_id}/context"
    assert note["to"] == [PUBLIC]
    assert f"{BASE}/u/amina" in note["cc"]
    hrefs = {t["href"] for t in note["tag"] if t["type"] == "Mention"}
    assert hrefs == {f"{BASE}/c/juridique", f"{BASE}/u/amina"}
    assert "name" not in note
    assert page["commentsEnabled"] is False


async def test_members_only_content_is_never_addressed_to_public(
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
) -> None:
    # Given a thread and a reply in a members-only community
    from federation import objects

    amina = await make_user(pool, "amina")
    community = await make_community(pool, "medical", visibility="members")
    thread_id, _ = await make_thread(pool, community, amina)
    reply_id = await make_reply(pool, thread_id, amina)

    # When they are turned into ActivityStreams
    async with pool.acquire() as conn:
        page = objects.post_to_ap(settings, await objects.load_thread(conn, thread_id))
        note = objects.post_to_ap(settings, await objects.load_post(conn, reply_id))

    # Then they go to the group and its followers, and Public appears nowhere
    for doc in (page, note):
        assert doc["to"] == [f"{BASE}/c/medical", f"{BASE}/c/medical/followers"]
        assert PUBLIC not in json.dumps(doc)
        assert "as:Public" not in json.dumps(doc)
        validation.validate_emitted(objects.with_context(doc))


async def test_deleted_reply_is_a_tombstone_with_410(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given a deleted reply in a public thread
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, _ = await make_thread(pool, community, amina)
    reply_id = await make_reply(pool, thread_id, amina)
    await pool.execute("UPDATE posts SET deleted_at = now() WHERE id = $1", reply_id)

    # When it is fetched
    response = await get_ap(client, f"/p/{reply_id}")

    # Then it is gone, and says what it was
    assert response.status_code == 410
    tombstone = response.json()
    validation.validate_emitted(tombstone)
    assert tombstone["type"] == "Tombstone"
    assert tombstone["id"] == f"{BASE}/p/{reply_id}"
    assert tombstone["formerType"] == "Note"
    assert "content" not in tombstone


async def test_deleted_thread_is_a_page_tombstone(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, _ = await make_thread(pool, community, amina)
    await pool.execute("UPDATE threads SET deleted_at = now() WHERE id = $1", thread_id)

    response = await get_ap(client, f"/t/{thread_id}")

    assert response.status_code == 410
    assert response.json()["formerType"] == "Page"


async def test_local_and_remote_content_is_not_served(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given a thread of a local (never federated) community, and a reply written elsewhere
    amina = await make_user(pool, "amina")
    local = await make_community(pool, "interne", visibility="local")
    local_thread, _ = await make_thread(pool, local, amina)
    public = await make_community(pool, "juridique", visibility="public")
    thread_id, _ = await make_thread(pool, public, amina)
    remote = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, inbox)"
        " VALUES ('https://ailleurs.example/users/zoe', 'Person', false, 'zoe', 'ailleurs.example',"
        " 'https://ailleurs.example/users/zoe/inbox') RETURNING id"
    )
    remote_reply = await make_reply(
        pool, thread_id, None, remote_author_id=remote, ap_id="https://ailleurs.example/notes/1"
    )

    # When servers ask for them, Then both answer like missing objects
    for path in (f"/t/{local_thread}", f"/t/{local_thread}/context", f"/p/{remote_reply}", "/t/999999"):
        response = await get_ap(client, path)
        assert response.status_code == 404, path


async def test_opening_post_permalink_redirects_to_the_thread(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, opening_id = await make_thread(pool, community, amina)

    response = await get_ap(client, f"/p/{opening_id}")

    assert response.status_code == 301
    assert response.headers["location"] == f"{BASE}/t/{thread_id}"


# --- context collection ---------------------------------------------------------


async def test_context_collection_pages_and_etag(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given a public thread with 54 replies (one deleted)
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, _ = await make_thread(pool, community, amina)
    opening = await pool.fetchval("SELECT id FROM posts WHERE thread_id = $1", thread_id)
    await pool.execute(
        "INSERT INTO posts (thread_id, author_id, parent_id, source, content_html, created_at)"
        " SELECT $1, $2, $3, 'r' || g, '<p>r</p>', now() + g * interval '1 second' FROM generate_series(1, 54) g",
        thread_id, amina, opening,
    )  # fmt: skip
    deleted = await pool.fetchval("SELECT max(id) FROM posts WHERE thread_id = $1", thread_id)
    await pool.execute("UPDATE posts SET deleted_at = now() WHERE id = $1", deleted)
    context = f"{BASE}/t/{thread_id}/context"

    # When the context collection is fetched
    response = await get_ap(client, f"/t/{thread_id}/context")

    # Then it counts the 54 live posts, is attributed to the group and starts a page chain
    assert response.status_code == 200
    collection = response.json()
    validation.validate_emitted(collection, "context")
    assert collection["type"] == "OrderedCollection"
    assert collection["attributedTo"] == f"{BASE}/c/juridique"
    assert collection["totalItems"] == 54
    assert collection["first"] == f"{context}?page=1"
    etag = response.headers["etag"]

    first = (await get_ap(client, f"/t/{thread_id}/context?page=1")).json()
    assert first["type"] == "OrderedCollectionPage" and first["partOf"] == context
    assert len(first["orderedItems"]) == 50
    assert first["orderedItems"][0] == f"{BASE}/t/{thread_id}"
    last_shown = first["orderedItems"][-1].removeprefix(f"{BASE}/p/")
    assert first["next"] == f"{context}?min_id={last_shown}"
    second = (await get_ap(client, first["next"].removeprefix(BASE))).json()
    assert second["id"] == first["next"]
    assert len(second["orderedItems"]) == 4 and "next" not in second
    assert f"{BASE}/p/{deleted}" not in first["orderedItems"] + second["orderedItems"]
    assert len(set(first["orderedItems"] + second["orderedItems"])) == 54
    # And an old numbered page leads to the first one; a cursor that is no post of the thread is an empty page
    old = await get_ap(client, f"/t/{thread_id}/context?page=3")
    assert (old.status_code, old.headers["location"]) == (302, f"/t/{thread_id}/context?page=1")
    stranger = (await get_ap(client, f"/t/{thread_id}/context?min_id=999999")).json()
    assert stranger["orderedItems"] == [] and "next" not in stranger
    assert (await get_ap(client, f"/t/{thread_id}/context?min_id=abc")).status_code == 404

    # And a conditional GET with the same ETag is answered 304 until the thread changes
    unchanged = await get_ap(client, f"/t/{thread_id}/context", **{"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    await make_reply(pool, thread_id, amina, "Une de plus.")
    changed = await get_ap(client, f"/t/{thread_id}/context", **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["totalItems"] == 55
    assert changed.headers["etag"] != etag


# --- group collections ------------------------------------------------------------


async def test_public_group_outbox_announces_its_threads(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a public community with two threads, one deleted
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    older, _ = await make_thread(pool, community, amina, "Premier")
    newer, _ = await make_thread(pool, community, amina, "Second")
    gone, _ = await make_thread(pool, community, amina, "Supprimé")
    await pool.execute("UPDATE threads SET deleted_at = now() WHERE id = $1", gone)

    # When its outbox is read
    outbox = (await get_ap(client, "/c/juridique/outbox")).json()
    page = (await get_ap(client, outbox["first"].removeprefix(BASE))).json()

    # Then it shows the live threads, newest first, as the group's Announce of their Create
    assert outbox["totalItems"] == 2
    validation.validate_emitted(outbox)
    validation.validate_emitted(page)
    items = page["orderedItems"]
    assert [i["object"]["object"]["id"] for i in items] == [f"{BASE}/t/{newer}", f"{BASE}/t/{older}"]
    assert all(i["type"] == "Announce" and i["actor"] == f"{BASE}/c/juridique" for i in items)
    assert all(i["object"]["type"] == "Create" for i in items)


async def test_outbox_pages_go_by_the_last_thread_shown(
    client: httpx.AsyncClient, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a public community with five threads (two written in the same instant) and pages of two
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    made = [(await make_thread(pool, community, amina, f"Fil {n}"))[0] for n in range(5)]
    await pool.execute("UPDATE threads SET created_at = (SELECT created_at FROM threads WHERE id = $1)"
                       " WHERE id = $2", made[2], made[3])  # fmt: skip
    monkeypatch.setattr(collections, "OUTBOX_PAGE_SIZE", 2)

    # When a server walks the outbox from its first page
    outbox = (await get_ap(client, "/c/juridique/outbox")).json()
    pages = [(await get_ap(client, outbox["first"].removeprefix(BASE))).json()]
    while "next" in pages[-1]:
        pages.append((await get_ap(client, pages[-1]["next"].removeprefix(BASE))).json())

    # Then it reads every thread once, newest first (the id breaks the tie across pages),
    # each next page named by the last thread shown
    seen = [i["object"]["object"]["id"] for p in pages for i in p["orderedItems"]]
    assert seen == [f"{BASE}/t/{t}" for t in reversed(made)]
    assert [p["id"] for p in pages] == [
        f"{BASE}/c/juridique/outbox?page=1",
        f"{BASE}/c/juridique/outbox?max_id={made[3]}",
        f"{BASE}/c/juridique/outbox?max_id={made[1]}",
    ]
    assert "last" not in outbox and all("prev" not in p for p in pages)
    # And an old numbered page leads to the first one
    old = await get_ap(client, "/c/juridique/outbox?page=4")
    assert (old.status_code, old.headers["location"]) == (302, "/c/juridique/outbox?page=1")


async def test_members_only_group_collections_are_missing_to_strangers(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a members-only community holding a thread, its author an expert of it
    amina = await make_user(pool, "amina", role="moderator")
    community = await make_community(pool, "medical", visibility="members")
    await make_thread(pool, community, amina, "Cas confidentiel")
    missing = await get_ap(client, "/c/inconnue/outbox")

    # When an unsigned GET asks for any of its collections, or a page of its outbox
    for path in (
        "/c/medical/outbox",
        "/c/medical/outbox?page=1",
        "/c/medical/outbox?page=2",
        "/c/medical/followers",
        "/c/medical/featured",
        "/c/medical/moderators",
    ):
        response = await get_ap(client, path)
        # Then it answers exactly like a missing object: no thread, no name, no count
        assert (response.status_code, response.content) == (404, missing.content), path
        assert "amina" not in response.text and "confidentiel" not in response.text


async def test_followers_are_a_count_and_featured_lists_pinned_threads(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a public community with a local follower, a remote follower and a pinned thread
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    pinned, _ = await make_thread(pool, community, amina, "Charte", pinned=True)
    await make_thread(pool, community, amina, "Ordinaire")
    await pool.execute(
        "INSERT INTO community_follows (user_id, community_id) VALUES ($1, $2)", amina, community
    )
    remote = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, inbox) VALUES"
        " ('https://ailleurs.example/users/zoe', 'Person', false, 'zoe', 'ailleurs.example', 'https://x/i')"
        " RETURNING id"
    )
    await pool.execute(
        "INSERT INTO community_followers (community_id, actor_id, follow_activity_id, state)"
        " VALUES ($1, $2, 'https://ailleurs.example/f/1', 'accepted')",
        community, remote,
    )  # fmt: skip

    # When the followers and featured collections are read
    followers = (await get_ap(client, "/c/juridique/followers")).json()
    featured = (await get_ap(client, "/c/juridique/featured")).json()

    # Then followers is a bare count, featured the pinned thread as a Page
    assert followers == {
        "@context": followers["@context"],
        "id": f"{BASE}/c/juridique/followers",
        "type": "OrderedCollection",
        "totalItems": 2,
    }
    assert featured["totalItems"] == 1
    assert featured["orderedItems"][0]["id"] == f"{BASE}/t/{pinned}"
    assert featured["orderedItems"][0]["type"] == "Page"


# --- members-only content and signed GETs ----------------------------------------


async def test_members_only_content_is_404_to_unsigned_gets(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given members-only content
    paths = await members_only_paths(pool)

    for path in paths:
        # When an unsigned GET asks for it
        response = await get_ap(client, path)
        # Then it answers exactly like a missing object
        missing = await get_ap(client, "/t/999999")
        assert (response.status_code, response.content) == (404, missing.content), path

    # And the group's actor is served key-only (its key verifies its signatures)
    group = await get_ap(client, "/c/medical")
    assert group.status_code == 200
    assert set(group.json()) == {
        "@context", "id", "type", "preferredUsername", "inbox", "outbox", "endpoints", "publicKey"
    }  # fmt: skip
    validation.validate_emitted(group.json(), "key_only_actor")


async def test_members_only_content_needs_an_approved_instance(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811
) -> None:
    # Given members-only content and a partner server allowed by policy but not approved
    paths = await members_only_paths(pool)
    alice = partner.add_actor("alice")

    # When it fetches with a valid signature, Then it gets nothing
    for path in paths:
        assert (await signed_get(client, path, alice)).status_code == 404, path

    # When the instance is approved, Then its signed GETs get the content
    await approve(pool, partner)
    for path in paths:
        response = await signed_get(client, path, alice)
        assert response.status_code == 200, path
        assert PUBLIC not in response.text

    # And its actor was fetched and cached with its key
    cached = await pool.fetchrow("SELECT domain, public_key_id FROM actors WHERE uri = $1", alice.id)
    assert cached["domain"] == partner.domain and cached["public_key_id"] == alice.key_id


async def test_bad_signatures_from_an_approved_instance_are_refused(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811
) -> None:
    # Given an approved partner and members-only content
    paths = await members_only_paths(pool)
    alice = partner.add_actor("alice")
    await approve(pool, partner)

    # When requests come signed wrongly, Then they get 404 like anyone else
    for variant in ("wrong_key", "hmac_public_key", "stale_date", "no_host"):
        response = await signed_get(client, paths[0], alice, variant)
        assert response.status_code == 404, variant
    # (an RFC 9421 signature is verified like a draft-cavage one)
    assert (await signed_get(client, paths[0], alice, "rfc9421")).status_code == 200


async def test_suspended_instance_gets_nothing_even_public(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811
) -> None:
    # Given a public thread and a partner that admins then suspend
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, _ = await make_thread(pool, community, amina)
    alice = partner.add_actor("alice")
    assert (await signed_get(client, f"/t/{thread_id}", alice)).status_code == 200
    async with pool.acquire() as conn:
        await policy.suspend_domain(conn, partner.host, reason="test")

    # When it asks again, signed, Then it gets 404 (the public page stays public to browsers)
    assert (await signed_get(client, f"/t/{thread_id}", alice)).status_code == 404
    assert (await signed_get(client, "/c/juridique", alice)).status_code == 404
    assert (await client.get(f"/t/{thread_id}")).status_code == 200
    # And our instance actor stays fetchable by anyone (its key verifies our own signatures)
    assert (await signed_get(client, "/actor", alice)).status_code == 200
