"""Backfill of followed remote communities (issue 11): a group's outbox, a thread's context,
replies or reply chain — fetched from real HTTP servers on loopback (``tests.fakefedi``),
stored in the remote community, and every bad input bounded."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web
from yarl import URL

from federation import access, actors, backfill, policy
from federation.fetcher import Fetcher
from node import backfill as jobs
from node import communities, db, threads
from node.settings import Settings, load
from tests.ap_kit import make_reply, make_thread
from tests.conftest import SHARED_SAMPLES, TEST_SECRET, create_test_database, drop_test_database
from tests.fakefedi import AS_TYPE, FakeActor, FakeInstance
from tests.helpers import login, make_community, make_user
from tests.inboxnode import running_node

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
# Small caps: each bad input is stopped within a second or two.
CAPS = backfill.Caps(pages=4, items=200, depth=25, documents=120, wall_time=20.0, fetch_deadline=1.0)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load(
        {
            "VBG_BASE_URL": "http://testserver",
            "VBG_DATA_DIR": str(tmp_path / "data"),
            "VBG_SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": database_url,
            "VBG_WORKERS_IN_SERVE": "0",
            "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
        }
    )


@pytest.fixture
async def fetcher(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[Fetcher]:
    async with pool.acquire() as conn:
        await policy.set_federation_mode(conn, "open")
    made = backfill.own_fetcher(access.make_fetcher(pool, settings), CAPS)
    try:
        yield made
    finally:
        await made.close()


async def trusting(pool: asyncpg.Pool, settings: Settings, *fakes: FakeInstance) -> None:
    """The fakes verify our signed GETs with our instance key."""
    async with pool.acquire() as conn:
        me = await actors.instance_actor(conn, settings)
    assert me.public_key_id and me.public_key_pem
    for fake in fakes:
        fake.trust_key(me.public_key_id, me.public_key_pem)


async def follow(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher, group: FakeActor, visibility: str = "public"
) -> int:
    """The remote community of ``group``, followed (accepted): its id."""
    async with pool.acquire() as conn:
        actor = await actors.get_or_fetch(conn, fetcher, group.id)
        me = await actors.instance_actor(conn, settings)
        community = await communities.upsert_remote(
            conn,
            actor_id=actor.id,
            name=f"{group.username}@{group.instance.domain}",
            title=group.username.capitalize(),
            description="",
            visibility=visibility,
        )
        await conn.execute(
            "INSERT INTO group_follows (community_id, follower_id, follow_activity_id, state)"
            " VALUES ($1, $2, $3, 'accepted')",
            community.id,
            me.id,
            f"http://testserver/follows/{community.id}",
        )
    return community.id


def page(fake: FakeInstance, author: FakeActor, group: FakeActor, title: str, **extra: Any) -> dict[str, Any]:
    doc = {
        "id": fake.new_id("post"),
        "type": "Page",
        "attributedTo": author.id,
        "name": title,
        "content": f"<p>{title} : le texte.</p>",
        "to": [group.id, PUBLIC],
        "audience": group.id,
        "published": "2025-03-01T10:00:00Z",
    }
    doc.update(extra)
    return doc


def note(fake: FakeInstance, author: FakeActor, parent: str, text: str, **extra: Any) -> dict[str, Any]:
    doc = {
        "id": fake.new_id("comment"),
        "type": "Note",
        "attributedTo": author.id,
        "inReplyTo": parent,
        "content": f"<p>{text}</p>",
        "to": [PUBLIC],
        "published": "2025-03-02T10:00:00Z",
    }
    doc.update(extra)
    return doc


def announce(group: FakeActor, obj: dict[str, Any]) -> dict[str, Any]:
    create = {"id": obj["id"] + "/create", "type": "Create", "actor": obj["attributedTo"], "object": obj}
    return {"id": group.id + f"/announce/{obj['id'].rsplit('/', 1)[-1]}", "type": "Announce",
            "actor": group.id, "object": create}  # fmt: skip


def collection(url: str, items: list[Any], **extra: Any) -> dict[str, Any]:
    return {"id": url, "type": "OrderedCollection", "totalItems": len(items), "orderedItems": items, **extra}


async def run_jobs(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher, caps: backfill.Caps = CAPS
) -> None:
    ctx = backfill.BackfillContext(pool, settings, fetcher, caps)
    while await backfill.process_due(ctx, limit=4):
        pass


async def thread_rows(pool: asyncpg.Pool, community_id: int) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT t.id, t.title, t.ap_id, t.pinned, t.reply_count, t.created_at, p.content_html"
            " FROM threads t JOIN posts p ON p.thread_id = t.id AND p.is_opening"
            " WHERE t.community_id = $1 ORDER BY t.created_at, t.id",
            community_id,
        )
    )


async def last_job(pool: asyncpg.Pool) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM backfill_jobs ORDER BY id DESC LIMIT 1")
    assert row is not None
    return row


# ---------------------------------------------------------------- the outbox


async def test_first_follow_backfills_the_outbox_featured_and_moderators(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.61", "lemmy") as lemmy, FakeInstance("127.0.0.62") as other:
        await trusting(pool, settings, lemmy, other)
        group = lemmy.add_actor("entraide", type="Group")
        base = group.id
        group.extra.update(featured=f"{base}/featured", moderators=f"{base}/moderators")
        alice, mod = lemmy.add_actor("alice"), lemmy.add_actor("modo")
        bob = other.add_actor("bob")
        # Given an outbox as Lemmy serves it: Announce{Create{Page}}, newest first, two pages
        local = [
            page(lemmy, alice, group, f"Sujet {n}", published=f"2025-03-0{n}T10:00:00Z") for n in (1, 2, 3)
        ]
        # a Page of another server, embedded with a forged text: fetched again from its origin
        foreign = page(other, bob, group, "Sujet d'ailleurs", published="2025-03-05T10:00:00Z")
        other.add_object(foreign)
        forged = {**foreign, "content": "<p>texte falsifié</p>"}
        # a Page whose id is on a server that does not have it: left out
        ghost = page(other, bob, group, "Fantôme")
        # a Page of another group: left out
        elsewhere = page(lemmy, alice, group, "Ailleurs", audience=lemmy.url("/c/autre"))
        first = {"id": f"{base}/outbox?page=1", "type": "OrderedCollectionPage", "next": f"{base}/outbox?page=2",
                 "orderedItems": [announce(group, local[2]), announce(group, forged), announce(group, ghost)]}  # fmt: skip
        second = {"id": f"{base}/outbox?page=2", "type": "OrderedCollectionPage",
                  "orderedItems": [announce(group, elsewhere), announce(group, local[1]), local[0]]}  # fmt: skip
        lemmy.add_response("/c/entraide/outbox", {"id": f"{base}/outbox", "type": "OrderedCollection",
                                                  "totalItems": 6, "first": f"{base}/outbox?page=1"})  # fmt: skip
        lemmy.add_response("/c/entraide/outbox?page=1", first)
        lemmy.add_response("/c/entraide/outbox?page=2", second)
        # and a pinned thread older than the outbox shows, and the group's moderators
        pinned = lemmy.add_object(page(lemmy, mod, group, "Règles", published="2024-01-01T00:00:00Z"))
        lemmy.add_response("/c/entraide/featured", collection(f"{base}/featured", [pinned]))
        lemmy.add_response("/c/entraide/moderators", collection(f"{base}/moderators", [mod.id]))
        community_id = await follow(pool, settings, fetcher, group)

        # When the follow is accepted and the worker runs
        async with pool.acquire() as conn:
            assert await backfill.schedule_outbox(conn, community_id)
            assert not await backfill.schedule_outbox(conn, community_id)  # one waits already
        await run_jobs(pool, settings, fetcher)

        # Then the threads are there, in their order, with the origin's text
        rows = await thread_rows(pool, community_id)
        assert [r["title"] for r in rows] == ["Règles", "Sujet 1", "Sujet 2", "Sujet 3", "Sujet d'ailleurs"]
        assert [r["title"] for r in rows if r["pinned"]] == ["Règles"]
        assert "falsifié" not in next(r["content_html"] for r in rows if r["ap_id"] == foreign["id"])
        assert rows[1]["created_at"].isoformat().startswith("2025-03-01T10:00:00")
        # And the moderators are known
        mod_actor = await pool.fetchval("SELECT id FROM actors WHERE uri = $1", mod.id)
        async with pool.acquire() as conn:
            assert await jobs.remote_moderators(conn, community_id) == [mod_actor]
        job = await last_job(pool)
        assert (job["status"], job["stored"]) == ("done", 5)
        # And every GET was signed, nothing was announced or relayed by us
        gets = [r for r in lemmy.received + other.received if r.method == "GET"]
        assert gets and all(r.signature_ok for r in gets if "/.well-known/" not in r.path)
        assert await pool.fetchval("SELECT count(*) FROM outbox_events") == 0

        # When it runs again: nothing twice
        async with pool.acquire() as conn:
            assert await backfill.schedule_outbox(conn, community_id)
        await run_jobs(pool, settings, fetcher)
        assert len(await thread_rows(pool, community_id)) == 5
        assert (await last_job(pool))["stored"] == 0


async def test_a_members_only_group_is_read_with_signed_gets_into_its_own_community(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.63", "lemmy") as lemmy:
        await trusting(pool, settings, lemmy)
        group = lemmy.add_actor("cercle", type="Group", manuallyApprovesFollowers=True)
        alice = lemmy.add_actor("alice")
        secret = page(lemmy, alice, group, "Cas confidentiel", to=[group.id + "/followers"])
        lemmy.add_response("/c/cercle/outbox", collection(group.id + "/outbox", [announce(group, secret)]))
        community_id = await follow(pool, settings, fetcher, group, visibility="members")
        public_id = await make_community(pool, "ouverte", visibility="public")
        async with pool.acquire() as conn:
            await backfill.schedule_outbox(conn, community_id)
        await run_jobs(pool, settings, fetcher)
        assert [r["title"] for r in await thread_rows(pool, community_id)] == ["Cas confidentiel"]
        assert await thread_rows(pool, public_id) == []
        # (the fake answers 401 to unsigned GETs of its objects: it was read signed)
        assert all(r.signature_ok for r in lemmy.received if r.path.startswith("/c/cercle"))


async def test_a_group_we_do_not_follow_is_not_backfilled(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    ours = await make_community(pool, "locale", visibility="public")
    async with pool.acquire() as conn:
        await backfill.schedule_outbox(conn, ours)
    await run_jobs(pool, settings, fetcher)
    job = await last_job(pool)
    assert (job["status"], job["note"]) == ("failed", "not a remote community")


# ---------------------------------------------------------------- threads


async def test_an_unknown_reply_brings_its_chain_and_the_threads_context(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.64", "lemmy") as lemmy, FakeInstance("127.0.0.65") as masto:
        await trusting(pool, settings, lemmy, masto)
        group = lemmy.add_actor("soins", type="Group")
        alice, bob = lemmy.add_actor("alice"), masto.add_actor("bob")
        context = lemmy.url("/post/ctx-1/context")
        root = lemmy.add_object(page(lemmy, alice, group, "Protocole d'accueil", context=context))
        first = lemmy.add_object(note(lemmy, alice, root["id"], "Première réponse", context=context))
        second = masto.add_object(note(masto, bob, first["id"], "Réponse à la réponse",
                                       published="2025-03-03T10:00:00Z"))  # fmt: skip
        third = lemmy.add_object(
            note(lemmy, alice, root["id"], "Troisième", published="2025-03-04T10:00:00Z")
        )
        # FEP-7888: the context is a collection of the thread's posts (here: activities and ids, paged)
        lemmy.add_response("/post/ctx-1/context", {"id": context, "type": "OrderedCollection",
                                                   "first": context + "?page=1"})  # fmt: skip
        lemmy.add_response("/post/ctx-1/context?page=1", {
            "id": context + "?page=1", "type": "OrderedCollectionPage", "partOf": context,
            "orderedItems": [root["id"], {"type": "Create", "id": first["id"] + "/c", "object": first},
                             second["id"], third],
        })  # fmt: skip
        community_id = await follow(pool, settings, fetcher, group)

        # When a reply arrives whose parent we do not have (by the group)
        async with pool.acquire() as conn:
            assert await backfill.schedule_thread(conn, second["id"], community_id=community_id)
            assert not await backfill.schedule_thread(conn, second["id"], community_id=community_id)
        await run_jobs(pool, settings, fetcher)

        # Then the thread is there with every reply under its parent
        [thread] = await thread_rows(pool, community_id)
        assert (thread["title"], thread["reply_count"]) == ("Protocole d'accueil", 3)
        posts = await pool.fetch(
            "SELECT p.ap_id, pp.ap_id AS parent FROM posts p LEFT JOIN posts pp ON pp.id = p.parent_id"
            " WHERE p.thread_id = $1 AND NOT p.is_opening ORDER BY p.created_at",
            thread["id"],
        )
        assert [(p["ap_id"], p["parent"]) for p in posts] == [
            (first["id"], root["id"]),
            (second["id"], first["id"]),
            (third["id"], root["id"]),
        ]
        assert (await last_job(pool))["status"] == "done"

        # When the thread is opened later: once per RECENT, and nothing stored twice
        async with pool.acquire() as conn:
            assert await backfill.schedule_thread(conn, thread["id"], recent=jobs.RECENT * 0)
            assert not await backfill.schedule_thread(conn, thread["id"])
        await run_jobs(pool, settings, fetcher)
        assert (await last_job(pool))["stored"] == 0
        assert await pool.fetchval("SELECT count(*) FROM posts WHERE thread_id = $1", thread["id"]) == 4


async def test_without_context_the_replies_collections_are_walked(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.66") as masto:
        await trusting(pool, settings, masto)
        group = masto.add_actor("groupe", type="Group")
        carla = masto.add_actor("carla")
        root_id = masto.new_id("statuses")
        child = note(masto, carla, root_id, "Enfant")
        grandchild = note(masto, carla, child["id"], "Petit-enfant")
        child["replies"] = {"id": child["id"] + "/replies", "type": "Collection",
                            "first": {"id": child["id"] + "/replies?page=1", "type": "CollectionPage",
                                      "partOf": child["id"] + "/replies", "items": [grandchild["id"]]}}  # fmt: skip
        root = page(masto, carla, group, "Racine", id=root_id, replies=root_id + "/replies")
        for doc in (root, child, grandchild):
            masto.add_object(doc)
        masto.add_object(collection(root_id + "/replies", [child["id"]]))
        community_id = await follow(pool, settings, fetcher, group)
        async with pool.acquire() as conn:
            await backfill.schedule_thread(conn, root_id, community_id=community_id)
        await run_jobs(pool, settings, fetcher)
        [thread] = await thread_rows(pool, community_id)
        assert thread["reply_count"] == 2


async def test_an_object_whose_id_is_not_where_it_was_fetched_is_refused(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.67", "lemmy") as lemmy, FakeInstance("127.0.0.68") as liar:
        await trusting(pool, settings, lemmy, liar)
        group = lemmy.add_actor("forum", type="Group")
        alice = lemmy.add_actor("alice")
        honest = page(lemmy, alice, group, "Vrai")
        # the liar serves, at a URL of its own, a document claiming an id of the group's host
        claimed = page(lemmy, alice, group, "Usurpé")
        liar.add_response("/objects/usurpe", claimed)
        lemmy.add_response("/c/forum/outbox", collection(group.id + "/outbox", [
            announce(group, honest), liar.url("/objects/usurpe"),
            {"type": "Announce", "id": group.id + "/a/9", "object": liar.url("/objects/usurpe")},
        ]))  # fmt: skip
        community_id = await follow(pool, settings, fetcher, group)
        async with pool.acquire() as conn:
            await backfill.schedule_outbox(conn, community_id)
        await run_jobs(pool, settings, fetcher)
        assert [r["title"] for r in await thread_rows(pool, community_id)] == ["Vrai"]


# ---------------------------------------------------------------- bad input, bounded


async def test_an_endless_context_collection_stops_at_the_page_cap(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.69", "lemmy") as lemmy:
        await trusting(pool, settings, lemmy)
        group = lemmy.add_actor("sans-fin", type="Group")
        alice = lemmy.add_actor("alice")
        context = lemmy.url("/ctx")
        root = lemmy.add_object(page(lemmy, alice, group, "Sans fin", context=context))
        served = 0

        async def endless(request: web.Request) -> web.Response:
            nonlocal served
            served += 1
            n = int(request.query.get("page", "0"))
            reply = note(lemmy, alice, root["id"], f"Réponse {n}")
            body = {"id": context + (f"?page={n}" if n else ""), "type": "OrderedCollectionPage",
                    "orderedItems": [reply], "next": f"{context}?page={n + 1}"}  # fmt: skip
            return web.json_response(body, content_type=AS_TYPE)

        lemmy.add_route("GET", "/ctx", endless)
        community_id = await follow(pool, settings, fetcher, group)
        async with pool.acquire() as conn:
            await backfill.schedule_thread(conn, root["id"], community_id=community_id)
        started = time.monotonic()
        await run_jobs(pool, settings, fetcher)
        assert time.monotonic() - started < 10
        job = await last_job(pool)
        assert job["status"] == "done" and "page cap (4)" in job["note"]
        assert served == CAPS.pages + 1  # the collection, then 4 pages
        [thread] = await thread_rows(pool, community_id)
        assert thread["reply_count"] == CAPS.pages + 1


async def test_a_ten_thousand_deep_reply_chain_is_given_up_within_the_depth_cap(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.70") as masto:
        await trusting(pool, settings, masto)
        group = masto.add_actor("profond", type="Group")
        alice = masto.add_actor("alice")
        served = 0

        async def link(request: web.Request) -> web.Response:
            nonlocal served
            served += 1
            n = int(request.query["n"])
            doc = note(
                masto, alice, masto.url(f"/deep?n={n - 1}"), f"Niveau {n}", id=masto.url(f"/deep?n={n}")
            )
            if n == 0:
                doc = page(masto, alice, group, "Fond", id=masto.url("/deep?n=0"))
            return web.json_response(doc, content_type=AS_TYPE)

        masto.add_route("GET", "/deep", link)
        community_id = await follow(pool, settings, fetcher, group)
        async with pool.acquire() as conn:
            await backfill.schedule_thread(conn, masto.url("/deep?n=10000"), community_id=community_id)
        started = time.monotonic()
        await run_jobs(pool, settings, fetcher)
        assert time.monotonic() - started < 15
        job = await last_job(pool)
        assert job["status"] == "failed" and "deeper than 25" in job["note"]
        assert served == CAPS.depth + 1
        assert await thread_rows(pool, community_id) == []


async def test_a_group_that_stops_answering_is_retried_later_then_given_up(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.71", "lemmy") as lemmy:
        await trusting(pool, settings, lemmy)
        group = lemmy.add_actor("muet", type="Group")
        hanging = asyncio.Event()

        async def silent(request: web.Request) -> web.Response:
            await hanging.wait()  # never set: the connection stays open, nothing comes
            return web.Response(status=500)

        lemmy.add_route("GET", "/c/muet/outbox", silent)
        try:
            await _stop_answering(pool, settings, fetcher, group)
        finally:
            hanging.set()


async def _stop_answering(pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher, group: FakeActor) -> None:
    """The group's outbox never answers (the caller keeps it hanging)."""
    community_id = await follow(pool, settings, fetcher, group)
    async with pool.acquire() as conn:
        await backfill.schedule_outbox(conn, community_id)
    started = time.monotonic()
    await run_jobs(pool, settings, fetcher)
    assert time.monotonic() - started < 5  # one fetch deadline (1 s), no waiting for the retry
    job = await last_job(pool)
    assert (job["status"], job["attempts"]) == ("pending", 1)
    assert "server not answering: deadline exceeded" in job["note"]
    assert job["next_attempt_at"] > await pool.fetchval("SELECT now() + interval '1 minute'")
    # When every retry falls due and fails the same way: given up, cleanly
    for _ in backfill.BACKFILL.retry_delays:
        await pool.execute("UPDATE backfill_jobs SET next_attempt_at = now()")
        await run_jobs(pool, settings, fetcher)
    job = await last_job(pool)
    assert (job["status"], job["attempts"]) == ("failed", backfill.BACKFILL.max_attempts)
    assert job["finished_at"] is not None


async def test_a_huge_collection_page_is_refused_by_the_size_cap(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.72", "lemmy") as lemmy:
        await trusting(pool, settings, lemmy)
        group = lemmy.add_actor("lourd", type="Group")
        alice = lemmy.add_actor("alice")
        context = lemmy.url("/huge")
        root = lemmy.add_object(page(lemmy, alice, group, "Lourd", context=context))
        filler = [note(lemmy, alice, root["id"], "x" * 1000) for _ in range(3000)]  # about 3.5 MB
        lemmy.add_response("/huge", json.dumps(collection(context, filler)).encode())
        community_id = await follow(pool, settings, fetcher, group)
        async with pool.acquire() as conn:
            await backfill.schedule_thread(conn, root["id"], community_id=community_id)
        started = time.monotonic()
        await run_jobs(pool, settings, fetcher)
        assert time.monotonic() - started < 5
        job = await last_job(pool)
        assert job["status"] == "done" and "context: response body over the size limit" in job["note"]
        [thread] = await thread_rows(pool, community_id)  # the root alone
        assert thread["reply_count"] == 0


# ---------------------------------------------------------------- scheduling


async def test_only_remote_threads_are_scheduled_and_not_twice_in_a_while(pool: asyncpg.Pool) -> None:
    amina = await make_user(pool)
    ours = await make_community(pool, "locale", visibility="public")
    async with pool.acquire() as conn:
        local_thread = await conn.fetchval(
            "INSERT INTO threads (community_id, author_id, title) VALUES ($1, $2, 'Local') RETURNING id",
            ours,
            amina,
        )
        assert not await backfill.schedule_thread(conn, local_thread)
        assert not await backfill.schedule_thread(conn, 999_999)
        assert not await backfill.schedule_thread(conn, "javascript:alert(1)")
        assert not await backfill.schedule_thread(conn, "https://example.org/" + "x" * 2000)
    assert await pool.fetchval("SELECT count(*) FROM backfill_jobs") == 0


async def test_a_member_opening_a_remote_thread_schedules_its_backfill_once(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher, client: httpx.AsyncClient
) -> None:
    async with FakeInstance("127.0.0.73", "lemmy") as lemmy:
        await trusting(pool, settings, lemmy)
        group = lemmy.add_actor("ouvert", type="Group")
        alice = lemmy.add_actor("alice")
        community_id = await follow(pool, settings, fetcher, group)
        author = await actors_id(pool, fetcher, alice.id)
    amina = await make_user(pool)
    ours = await make_community(pool, "locale", visibility="public")
    async with pool.acquire() as conn:
        stored = await threads.store_backfilled_threads(
            conn,
            community_id,
            [threads.BackfilledPost(lemmy.url("/post/1"), author, "Distant", "texte", "<p>texte</p>", None)],
        )
        local_thread = await conn.fetchval(
            "INSERT INTO threads (community_id, author_id, title) VALUES ($1, $2, 'Local') RETURNING id",
            ours,
            amina,
        )
        await conn.execute(
            "INSERT INTO posts (thread_id, author_id, is_opening, source, content_html)"
            " VALUES ($1, $2, true, 'x', '<p>x</p>')",
            local_thread,
            amina,
        )
    [remote_thread] = stored.values()
    jobs.forget_opened()
    # A visitor's reading schedules nothing (the page may come from the replica)
    assert (await client.get(f"/t/{remote_thread}")).status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM backfill_jobs") == 0
    # A member's: once, then not again while the job waits or ran lately; never a local thread
    await login(client, "amina")
    said = "en cours de récupération"
    for visit in range(2):
        page = await client.get(f"/t/{remote_thread}")
        assert page.status_code == 200 and (said in page.text) == (visit == 0)
        page = await client.get(f"/t/{local_thread}")
        assert page.status_code == 200 and said not in page.text
    rows = await pool.fetch("SELECT kind, thread_id, community_id, status FROM backfill_jobs")
    assert [tuple(r) for r in rows] == [("thread", remote_thread, community_id, "pending")]
    # (this process asked the database once for each thread: the second visits cost no query)
    assert set(jobs._opened) == {remote_thread}


async def actors_id(pool: asyncpg.Pool, fetcher: Fetcher, uri: str) -> int:
    async with pool.acquire() as conn:
        return (await actors.get_or_fetch(conn, fetcher, uri)).id


# ---------------------------------------------------------------- real servers' shapes


def rehosted(path: str, replacements: dict[str, str]) -> dict[str, Any]:
    """A document of ``../shared/samples`` with its hosts replaced by loopback fakes."""
    file = SHARED_SAMPLES / path
    if not file.exists():
        pytest.skip(f"shared samples folder absent ({SHARED_SAMPLES})")
    text = file.read_text(encoding="utf-8")
    for old, new in replacements.items():
        text = text.replace(old, new)
    doc: dict[str, Any] = json.loads(text)
    return doc


async def test_lemmys_own_outbox_featured_and_moderators_documents(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.74", "lemmy") as lemmy:
        await trusting(pool, settings, lemmy)
        group = lemmy.add_actor("testcom", type="Group")
        group.extra.update(featured=group.id + "/featured", moderators=group.id + "/moderators")
        for name in ("nutomic", "lemmy_alpha", "picard"):
            lemmy.add_actor(name)
        hosts = {
            "https://ds9.lemmy.ml": lemmy.base_url,
            "http://ds9.lemmy.ml": lemmy.base_url,
            "https://enterprise.lemmy.ml": lemmy.base_url,
            "/c/main": "/c/testcom",
            "/c/tenforward": "/c/testcom",
        }
        for name in ("outbox", "featured", "moderators"):
            sample = {
                "outbox": "group_outbox",
                "featured": "group_featured_posts",
                "moderators": "group_moderators",
            }
            lemmy.add_response(
                f"/c/testcom/{name}", rehosted(f"lemmy/collections/{sample[name]}.json", hosts)
            )
        community_id = await follow(pool, settings, fetcher, group)
        async with pool.acquire() as conn:
            await backfill.schedule_outbox(conn, community_id)
        await run_jobs(pool, settings, fetcher)
        rows = await thread_rows(pool, community_id)
        assert [(r["title"], r["pinned"]) for r in rows] == [
            ("outbox test", False),
            ("another outbox test", False),
            ("test 1", True),
            ("test 2", True),
        ]
        picard = await pool.fetchval("SELECT id FROM actors WHERE uri = $1", lemmy.url("/u/picard"))
        async with pool.acquire() as conn:
            assert await jobs.remote_moderators(conn, community_id) == [picard]


async def test_a_nodebb_topic_is_read_from_its_context(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.75") as nodebb:
        await trusting(pool, settings, nodebb)
        category, admin = nodebb.add_actor("2", type="Group"), nodebb.add_actor("1")
        hosts = {
            "https://bb.devnull.land/category/2": category.id,
            "https://bb.devnull.land/uid/1": admin.id,
            "https://bb.devnull.land": nodebb.base_url,
        }
        topic = rehosted("nodebb/objects/page.json", hosts)
        nodebb.add_object(topic)
        context = topic["context"]
        answer = note(
            nodebb, admin, topic["id"], "Merci, bienvenue !", id=nodebb.url("/post/2"), context=context
        )
        nodebb.add_object(answer)
        # NodeBB's topic as its context: an OrderedCollection whose pages list the posts' ids
        nodebb.add_object(
            {"id": context, "type": "OrderedCollection", "totalItems": 2, "first": context + "?page=1"}
        )
        nodebb.add_object({"id": context + "?page=1", "type": "OrderedCollectionPage", "partOf": context,
                           "orderedItems": [topic["id"], answer["id"]]})  # fmt: skip
        community_id = await follow(pool, settings, fetcher, category)
        async with pool.acquire() as conn:
            await backfill.schedule_thread(conn, answer["id"], community_id=community_id)
        await run_jobs(pool, settings, fetcher)
        [thread] = await thread_rows(pool, community_id)
        assert (thread["title"], thread["reply_count"]) == ("Welcome to your NodeBB!", 1)
        assert (await last_job(pool))["status"] == "done"


async def test_a_group_that_stops_answering_mid_way_keeps_what_came_and_retries(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.76", "lemmy") as lemmy:
        await trusting(pool, settings, lemmy)
        group = lemmy.add_actor("lent", type="Group")
        alice = lemmy.add_actor("alice")
        answered = [lemmy.add_object(page(lemmy, alice, group, f"Arrivé {n}")) for n in (1, 2)]
        hanging = asyncio.Event()

        async def silent(request: web.Request) -> web.Response:
            await hanging.wait()
            return web.Response(status=500)

        late = [lemmy.url(f"/late/{n}") for n in range(6)]
        for url in late:
            lemmy.add_route("GET", URL(url).path, silent)
        items = [a["id"] for a in answered] + late
        lemmy.add_response("/c/lent/outbox", collection(group.id + "/outbox", items))
        community_id = await follow(pool, settings, fetcher, group)
        try:
            async with pool.acquire() as conn:
                await backfill.schedule_outbox(conn, community_id)
            started = time.monotonic()
            await run_jobs(pool, settings, fetcher)
            # three deadlines in a row (1 s each), not six
            assert time.monotonic() - started < 3 * CAPS.fetch_deadline + 2
        finally:
            hanging.set()
        assert [r["title"] for r in await thread_rows(pool, community_id)] == ["Arrivé 1", "Arrivé 2"]
        job = await last_job(pool)
        assert (job["status"], job["stored"], job["attempts"]) == ("pending", 2, 1)
        assert job["note"].startswith("server not answering: deadline exceeded")


async def test_a_slow_endless_collection_stops_at_the_wall_time_cap(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.77", "lemmy") as lemmy:
        await trusting(pool, settings, lemmy)
        group = lemmy.add_actor("lent", type="Group")
        alice = lemmy.add_actor("alice")
        outbox = group.id + "/outbox"

        async def slow(request: web.Request) -> web.Response:
            await asyncio.sleep(0.15)  # under the fetch deadline, every time
            n = int(request.query.get("page", "0"))
            item = announce(group, page(lemmy, alice, group, f"Page {n}"))
            body = {"id": outbox + (f"?page={n}" if n else ""), "type": "OrderedCollectionPage",
                    "orderedItems": [item], "next": f"{outbox}?page={n + 1}"}  # fmt: skip
            return web.json_response(body, content_type=AS_TYPE)

        lemmy.add_route("GET", "/c/lent/outbox", slow)
        community_id = await follow(pool, settings, fetcher, group)
        async with pool.acquire() as conn:
            await backfill.schedule_outbox(conn, community_id)
        caps = backfill.Caps(pages=1000, wall_time=1.5, fetch_deadline=1.0)
        started = time.monotonic()
        await run_jobs(pool, settings, fetcher, caps)
        assert time.monotonic() - started < 4
        job = await last_job(pool)
        assert job["status"] == "done" and "wall time cap (1.5 s)" in job["note"]
        # what came within the time is kept
        assert 2 <= len(await thread_rows(pool, community_id)) <= 12


async def test_what_was_not_addressed_to_public_never_lands_in_a_public_community(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.78", "lemmy") as lemmy:
        await trusting(pool, settings, lemmy)
        group = lemmy.add_actor("mixte", type="Group")
        alice = lemmy.add_actor("alice")
        followers = [group.id + "/followers"]
        shown = lemmy.add_object(page(lemmy, alice, group, "Public", context=lemmy.url("/mixte-ctx")))
        hidden = page(lemmy, alice, group, "Réservé", to=followers)
        lemmy.add_response("/c/mixte/outbox", collection(group.id + "/outbox", [shown, hidden]))
        replies = [
            note(lemmy, alice, shown["id"], "Réponse publique", cc=[PUBLIC], to=[alice.id + "/followers"]),
            note(lemmy, alice, shown["id"], "Réponse aux abonnés", to=[alice.id + "/followers"]),
        ]
        lemmy.add_response("/mixte-ctx", collection(lemmy.url("/mixte-ctx"), [shown, *replies]))
        # (the group's row says public: say a members-only group was resolved before it approved us)
        community_id = await follow(pool, settings, fetcher, group, visibility="public")
        async with pool.acquire() as conn:
            await backfill.schedule_outbox(conn, community_id)
        await run_jobs(pool, settings, fetcher)
        [thread] = await thread_rows(pool, community_id)
        assert (thread["title"], thread["reply_count"]) == ("Public", 1)


async def test_the_worker_is_woken_only_when_a_job_is_inserted(pool: asyncpg.Pool, database_url: str) -> None:
    ours = await make_community(pool, "locale", visibility="public")
    woken: list[str] = []
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(
            "vbg_backfill", lambda _conn, _pid, channel, _payload: woken.append(channel)
        )
        async with pool.acquire() as conn:
            await backfill.schedule_thread(conn, 123456)  # no such remote thread: nothing inserted
            await asyncio.sleep(0.2)
            assert woken == []
            await backfill.schedule_outbox(conn, ours)
            await backfill.schedule_outbox(conn, ours)  # one waits already: nothing inserted
        for _ in range(20):
            if woken:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert woken == ["vbg_backfill"]
    finally:
        await listener.close()


# ---------------------------------------------------------------- our own node as the origin


async def test_a_group_of_another_vbg_node_is_backfilled_with_its_threads_replies_and_pins(
    pool: asyncpg.Pool, server_dsn: str, template_db: str, tmp_path: Path
) -> None:
    dsn = await create_test_database(server_dsn, template_db)
    origin_pool = await db.create_pool(dsn, min_size=1, max_size=5)
    try:
        async with running_node(origin_pool, tmp_path / "a") as a, running_node(pool, tmp_path / "b") as b:
            # Given on node A a public community with two threads, one pinned, and nested replies
            amina = await make_user(origin_pool, "amina")
            medical = await make_community(origin_pool, "medical", visibility="public")
            first, _ = await make_thread(origin_pool, medical, amina, "Accueil aux urgences")
            answer = await make_reply(origin_pool, first, amina, "Avec un protocole écrit.")
            await make_reply(origin_pool, first, amina, "Lequel ?", parent_id=answer)
            await make_thread(origin_pool, medical, amina, "Règles de la communauté", pinned=True)
            # When node B follows it (accepted) and its backfill worker runs
            async with pool.acquire() as conn:
                group = await actors.get_or_fetch(conn, b.fetcher, a.group("medical"))
                me = await actors.instance_actor(conn, b.settings)
                community = await communities.upsert_remote(
                    conn, actor_id=group.id, name=f"medical@{group.domain}", title="Médical", description="",
                    visibility="public",
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO group_follows (community_id, follower_id, follow_activity_id, state)"
                    " VALUES ($1, $2, $3, 'accepted')",
                    community.id,
                    me.id,
                    b.url("/follows/1"),
                )
                await backfill.schedule_outbox(conn, community.id)
            fetcher = backfill.own_fetcher(b.fetcher, CAPS)
            try:
                await run_jobs(pool, b.settings, fetcher)
            finally:
                await fetcher.close()
            # Then B has both threads, the pin, and the replies under their parents
            rows = await thread_rows(pool, community.id)
            assert {(r["title"], r["pinned"], r["reply_count"]) for r in rows} == {
                ("Accueil aux urgences", False, 2),
                ("Règles de la communauté", True, 0),
            }
            nested = await pool.fetchval(
                "SELECT count(*) FROM posts p JOIN posts pp ON pp.id = p.parent_id WHERE NOT pp.is_opening"
            )
            assert nested == 1
            statuses = [r["status"] for r in await pool.fetch("SELECT status FROM backfill_jobs ORDER BY id")]
            assert statuses and set(statuses) == {"done"}
    finally:
        await origin_pool.close()
        await drop_test_database(server_dsn, dsn)


async def test_an_object_without_community_goes_to_the_followed_group_its_thread_names(
    pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher
) -> None:
    async with FakeInstance("127.0.0.79", "lemmy") as lemmy:
        await trusting(pool, settings, lemmy)
        followed, stranger = lemmy.add_actor("suivi", type="Group"), lemmy.add_actor("inconnu", type="Group")
        alice = lemmy.add_actor("alice")
        root = lemmy.add_object(page(lemmy, alice, followed, "Chez le groupe suivi"))
        reply = lemmy.add_object(note(lemmy, alice, root["id"], "Une réponse"))
        elsewhere = lemmy.add_object(page(lemmy, alice, stranger, "Chez un groupe non suivi"))
        community_id = await follow(pool, settings, fetcher, followed)
        async with pool.acquire() as conn:
            await actors.get_or_fetch(conn, fetcher, stranger.id)  # known, but not followed
            assert await backfill.schedule_thread(conn, reply["id"])
            assert await backfill.schedule_thread(conn, elsewhere["id"])
        await run_jobs(pool, settings, fetcher)
        [thread] = await thread_rows(pool, community_id)
        assert (thread["title"], thread["reply_count"]) == ("Chez le groupe suivi", 1)
        failed = await pool.fetchrow(
            "SELECT status, note FROM backfill_jobs WHERE object_uri = $1", elsewhere["id"]
        )
        assert tuple(failed) == ("failed", "the thread is in no community we follow")
        assert await pool.fetchval("SELECT count(*) FROM threads") == 1
