"""Outbox events become the right activities and one job per inbox (federation/outbox.py).

These tests stop at the queue (``activities`` and ``delivery_jobs``); the HTTP side is
in test_delivery.py.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from federation import delivery, policy
from federation.objects import PUBLIC
from node import threads
from node.settings import Settings
from tests.delivery_kit import (  # noqa: F401  (fixtures)
    approve_instance,
    community,
    fakes,
    fixture_fed_settings,
    fixture_open_node,
    follower,
    jobs,
    member,
    new_reply,
    new_thread,
    process_outbox,
)
from tests.fakefedi import FakeInstance


def by_kind(rows: list[asyncpg.Record]) -> dict[str, list[asyncpg.Record]]:
    out: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        activity = row["activity"]
        inner = activity["object"]
        # The group's boost of a post by id is "Announce/id"
        inner_type = inner["type"] if isinstance(inner, dict) else "id"
        name = activity["type"] + ("/" + inner_type if activity["type"] == "Announce" else "")
        out.setdefault(name, []).append(row)
    return out


def addressed(activity: dict[str, Any]) -> list[str]:
    return [*activity.get("to", []), *activity.get("cc", [])]


async def test_public_thread_goes_to_followers_as_the_groups_announces_only(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a public community followed from two instances
    async with fakes(2) as (a, b):
        group = await community(pool, "medical", "public")
        await follower(pool, group, a, "alice")
        await follower(pool, group, b, "bob")
        author = await member(pool)
        # When a member opens a thread and the outbox is processed
        created = await new_thread(pool, group, author)
        await process_outbox(fed_settings, pool)
        # Then the group's Announce{Create} and its Announce of the Page's id go to both shared
        # inboxes, every Announce{Create} queued before any boost; the member's Create goes nowhere itself
        rows = await jobs(pool)
        assert [name for r in rows for name in by_kind([r])] == ["Announce/Create"] * 2 + ["Announce/id"] * 2
        found = by_kind(rows)
        for group_rows in found.values():
            assert sorted(r["inbox"] for r in group_rows) == sorted([a.url("/inbox"), b.url("/inbox")])
        relayed = found["Announce/Create"][0]["activity"]
        create = relayed["object"]
        assert create["actor"] == "http://testserver/u/amina"
        assert create["object"]["type"] == "Page"
        assert create["object"]["id"] == f"http://testserver/t/{created.thread_id}"
        assert PUBLIC in addressed(create)
        assert relayed["actor"] == "http://testserver/c/medical"
        assert PUBLIC in relayed["to"]
        # And the Create is stored as sent, served at its id to whoever refetches it
        stored = await pool.fetchval("SELECT json FROM activities WHERE uri = $1", create["id"])
        assert stored == {"@context": stored["@context"], **create}
        boost = found["Announce/id"][0]["activity"]
        assert boost["object"] == create["object"]["id"]
        assert boost["actor"] == "http://testserver/c/medical" and PUBLIC in boost["to"]


async def test_public_reply_is_also_boosted_by_id_for_mastodon_api_servers(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a public thread already sent to one follower instance
    async with fakes(1) as (a,):
        group = await community(pool, "medical", "public")
        await follower(pool, group, a, "alice")
        author = await member(pool)
        created = await new_thread(pool, group, author)
        await process_outbox(fed_settings, pool)
        before = len(await jobs(pool))
        # When a member replies
        await new_reply(pool, created.thread_id, author)
        await process_outbox(fed_settings, pool)
        # Then the group's Announce{Create{Note}} goes out, then its Announce of the Note's id
        # (what a Mastodon-API server stores as a status in the thread's context)
        rows = (await jobs(pool))[before:]
        assert [name for r in rows for name in by_kind([r])] == ["Announce/Create", "Announce/id"]
        found = by_kind(rows)
        note = found["Announce/Create"][0]["activity"]["object"]["object"]
        assert note["type"] == "Note"
        assert note["inReplyTo"] == f"http://testserver/t/{created.thread_id}"
        assert found["Announce/id"][0]["activity"]["object"] == note["id"]
        assert found["Announce/id"][0]["inbox"] == a.url("/inbox")


async def test_members_only_posts_are_never_boosted_by_id(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a members-only community followed from an approved instance
    async with fakes(1) as (a,):
        group = await community(pool, "medical", "members")
        await approve_instance(pool, a)
        await follower(pool, group, a, "alice")
        author = await member(pool)
        # When a member opens a thread and replies
        created = await new_thread(pool, group, author)
        await new_reply(pool, created.thread_id, author)
        await process_outbox(fed_settings, pool)
        # Then only the group's Announce{Create} goes out, never addressed to Public
        rows = await jobs(pool)
        assert [name for r in rows for name in by_kind([r])] == ["Announce/Create"] * 2
        assert all(PUBLIC not in addressed(r["activity"]) for r in rows)


INSERT_REMOTE_REPLY = """
INSERT INTO posts (thread_id, parent_id, remote_author_id, source, content_html, ap_id)
SELECT $1, id, $2, 'Bonjour', '<p>Bonjour</p>', $3 FROM posts WHERE thread_id = $1 AND is_opening
RETURNING id
"""


async def test_a_reply_to_a_remote_member_also_goes_to_them_as_a_bare_create(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a thread followed from one instance, where a member of another instance replied
    async with fakes(2) as (follows, answered):
        group = await community(pool, "medical", "public")
        await follower(pool, group, follows, "alice")
        await follower(pool, group, answered, "mona", state="rejected")  # known, not a follower
        author = await member(pool)
        created = await new_thread(pool, group, author)
        mona_id = await pool.fetchval("SELECT id FROM actors WHERE uri = $1", answered.actors["mona"].id)
        remote_post = await pool.fetchval(
            INSERT_REMOTE_REPLY, created.thread_id, mona_id, answered.new_id("notes")
        )
        await process_outbox(fed_settings, pool)
        before = len(await jobs(pool))
        # When a member answers mona's post
        async with pool.acquire() as conn:
            await threads.create_reply(conn, created.thread_id, author, "Merci Mona.", parent_id=remote_post)
        await process_outbox(fed_settings, pool)
        # Then the followers get the group's Announce, and mona's inbox the member's Create
        # mentioning her (Mastodon notifies a reply from a Create, not from an Announce of one)
        found = by_kind((await jobs(pool))[before:])
        assert [r["inbox"] for r in found["Announce/Create"]] == [follows.url("/inbox")]
        (create,) = found["Create"]
        assert create["inbox"] == answered.url("/inbox")
        mentions = [t["href"] for t in create["activity"]["object"]["tag"] if t["type"] == "Mention"]
        assert answered.actors["mona"].id in mentions


async def test_members_only_reply_never_goes_to_a_mentioned_member_of_an_unapproved_instance(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a members-only thread where a member of a not (or no longer) approved instance replied
    async with fakes(1) as (answered,):
        group = await community(pool, "juridique", "members")
        await follower(pool, group, answered, "mona", state="rejected")
        author = await member(pool)
        created = await new_thread(pool, group, author)
        mona_id = await pool.fetchval("SELECT id FROM actors WHERE uri = $1", answered.actors["mona"].id)
        remote_post = await pool.fetchval(
            INSERT_REMOTE_REPLY, created.thread_id, mona_id, answered.new_id("notes")
        )
        # When a member answers her post
        async with pool.acquire() as conn:
            await threads.create_reply(conn, created.thread_id, author, "Merci Mona.", parent_id=remote_post)
        await process_outbox(fed_settings, pool)
        # Then nothing is queued for her instance
        assert await jobs(pool) == []


async def test_members_only_never_public_and_only_approved_instances(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a members-only community followed from an approved and a non-approved instance
    async with fakes(2) as (approved, stranger):
        group = await community(pool, "juridique", "members")
        await follower(pool, group, approved, "alice")
        await follower(pool, group, stranger, "bob")
        await approve_instance(pool, approved)
        # When a member opens a thread
        await new_thread(pool, group, await member(pool))
        await process_outbox(fed_settings, pool)
        # Then nothing is addressed to Public, nothing goes to the stranger, no Page boost
        rows = await jobs(pool)
        assert sorted(by_kind(rows)) == ["Announce/Create"]
        assert {r["domain"] for r in rows} == {approved.domain}
        for row in rows:
            assert PUBLIC not in str(row["activity"])
            assert addressed(row["activity"]["object"]) == addressed(row["activity"])
            assert addressed(row["activity"]) == [
                "http://testserver/c/juridique",
                "http://testserver/c/juridique/followers",
            ]


async def test_three_followers_on_one_instance_share_one_job(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given three followers on one instance (shared inbox) and one without a shared inbox
    async with fakes(2) as (a, b):
        group = await community(pool, "medical", "public")
        for name in ("alice", "anna", "alba"):
            await follower(pool, group, a, name)
        await follower(pool, group, b, "bob", shared=False)
        # When a thread is opened
        await new_thread(pool, group, await member(pool))
        await process_outbox(fed_settings, pool)
        # Then each activity has one job for the shared inbox and one for bob's own inbox
        for rows in by_kind(await jobs(pool)).values():
            assert sorted(r["inbox"] for r in rows) == sorted([a.url("/inbox"), b.actors["bob"].inbox])


async def test_local_community_sends_nothing(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a local community (someone followed it before it became local)
    async with fakes(1) as (a,):
        group = await community(pool, "interne", "local")
        await follower(pool, group, a, "alice")
        # When a thread is opened
        await new_thread(pool, group, await member(pool))
        await process_outbox(fed_settings, pool)
        # Then no activity is stored or queued
        assert await jobs(pool) == []


async def test_suspended_and_non_allowlisted_domains_get_no_job(
    fed_settings: Settings, pool: asyncpg.Pool
) -> None:
    # Given allowlist mode with one allowed instance, and one allowed but suspended one
    async with fakes(3) as (allowed, unlisted, suspended):
        async with pool.acquire() as conn:
            await policy.allow_domain(conn, allowed.domain)
            await policy.allow_domain(conn, suspended.domain)
            await policy.suspend_domain(conn, suspended.domain, reason="test")
        group = await community(pool, "medical", "public")
        for fake in (allowed, unlisted):
            await follower(pool, group, fake, "alice")
        # (suspending drops follows; this one arrives after, as a stale row would)
        await follower(pool, group, suspended, "sam")
        # When a thread is opened
        await new_thread(pool, group, await member(pool))
        await process_outbox(fed_settings, pool)
        # Then only the allowed instance gets jobs
        assert {r["domain"] for r in await jobs(pool)} == {allowed.domain}


async def test_follow_accept_embeds_the_follow_with_plain_uris(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a follower whose Follow embedded its actor as an object
    async with fakes(1) as (a,):
        group = await community(pool, "medical", "public")
        actor_id = await follower(pool, group, a, "alice")
        alice = a.actors["alice"]
        follow = {
            "id": a.new_id("follows"),
            "type": "Follow",
            "actor": {"id": alice.id, "type": "Person"},
            "object": "http://testserver/c/medical",
        }
        # When the inbox queues the Accept
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO outbox_events (kind, payload) VALUES ('follow.accept', $1)",
                {"community_id": group.id, "follow": follow, "actor_id": actor_id},
            )
        await process_outbox(fed_settings, pool)
        # Then one Accept from the group goes to alice's own inbox
        (row,) = await jobs(pool)
        accept = row["activity"]
        assert row["inbox"] == alice.inbox
        assert accept["type"] == "Accept"
        assert accept["actor"] == "http://testserver/c/medical"
        assert accept["object"] == {
            "id": follow["id"],
            "type": "Follow",
            "actor": alice.id,
            "object": "http://testserver/c/medical",
        }


async def test_follow_reject_goes_to_the_follower(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as (a,):
        # Given a pending follower of a members-only community
        group = await community(pool, "juridique", "members")
        actor_id = await follower(pool, group, a, "alice", state="rejected")
        follow = {"id": a.new_id("follows"), "type": "Follow", "actor": a.actors["alice"].id, "object": "x"}
        # When the moderators refuse it
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO outbox_events (kind, payload) VALUES ('follow.reject', $1)",
                {"community_id": group.id, "follow": follow, "actor_id": actor_id},
            )
        await process_outbox(fed_settings, pool)
        # Then a Reject is queued for alice only
        (row,) = await jobs(pool)
        assert row["activity"]["type"] == "Reject"
        assert row["activity"]["object"]["actor"] == a.actors["alice"].id
        assert row["inbox"] == a.actors["alice"].inbox


def olga_says_hello(origin: FakeInstance) -> dict[str, Any]:
    """A Create{Note} by olga of ``origin``, as the inbox hands it to the group to relay."""
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": origin.new_id("activities"),
        "type": "Create",
        "actor": origin.actors["olga"].id,
        "object": {"id": origin.new_id(), "type": "Note", "content": "<p>Salut</p>"},
    }


async def test_relay_announce_reaches_every_follower_instance_the_origin_included_once(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given two followers on the origin instance (one shared inbox) and one on each of two others
    async with fakes(3) as (origin, b, c):
        group = await community(pool, "medical", "public")
        for fake, name in ((origin, "olga"), (origin, "oscar"), (b, "bob"), (c, "carl")):
            await follower(pool, group, fake, name)
        activity = olga_says_hello(origin)
        # When the inbox asks the group to relay an accepted activity
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO outbox_events (kind, payload) VALUES ('relay.announce', $1)",
                {"community_id": group.id, "activity": activity},
            )
        await process_outbox(fed_settings, pool)
        # Then Announce{activity}, unmodified, goes to every follower instance, the origin's
        # too (its own users follow the group), once per instance
        rows = await jobs(pool)
        assert sorted(r["domain"] for r in rows) == sorted([origin.domain, b.domain, c.domain])
        assert all(r["activity"]["object"] == activity for r in rows)
        assert rows[0]["activity"]["actor"] == "http://testserver/c/medical"


async def test_the_authors_own_instance_gets_the_relay_and_the_boost_once_each(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a public group followed by two users of the origin instance (one shared
    # inbox), where olga of that instance opened a thread and replied in it
    async with fakes(1) as (origin,):
        group = await community(pool, "medical", "public")
        olga = await follower(pool, group, origin, "olga")
        await follower(pool, group, origin, "oscar")
        created = await new_thread(pool, group, await member(pool))
        reply = await pool.fetchval(INSERT_REMOTE_REPLY, created.thread_id, olga, origin.new_id("notes"))
        await process_outbox(fed_settings, pool)
        await pool.execute("DELETE FROM delivery_jobs")
        activity = olga_says_hello(origin)
        # When the group is asked to relay olga's activity and to boost her reply by id
        async with pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO outbox_events (kind, payload) VALUES ($1, $2)",
                [
                    ("relay.announce", {"community_id": group.id, "activity": activity}),
                    ("relay.announce_object", {"community_id": group.id, "post_id": reply}),
                ],
            )
        await process_outbox(fed_settings, pool)
        # Then olga's instance gets each once: a Mastodon user there who follows the group
        # sees the group's boost of her post
        rows = await jobs(pool)
        assert [(r["domain"], by_kind([r]).popitem()[0]) for r in rows] == [
            (origin.domain, "Announce/Create"),
            (origin.domain, "Announce/id"),
        ]
        assert rows[0]["activity"]["object"] == activity
        assert rows[1]["activity"]["object"] == await pool.fetchval(
            "SELECT ap_id FROM posts WHERE id = $1", reply
        )
        assert await pool.fetchval("SELECT count(*) FROM outbox_events WHERE processed_at IS NULL") == 0


async def test_a_relay_with_no_follower_sends_and_stores_nothing(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a public group nobody follows
    async with fakes(1) as (origin,):
        group = await community(pool, "medical", "public")
        origin.add_actor("olga")
        stored = await pool.fetchval("SELECT count(*) FROM activities")
        # When the group is asked to relay an activity
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO outbox_events (kind, payload) VALUES ('relay.announce', $1)",
                {"community_id": group.id, "activity": olga_says_hello(origin)},
            )
        await process_outbox(fed_settings, pool)
        # Then no job and no stored Announce
        assert await jobs(pool) == []
        assert await pool.fetchval("SELECT count(*) FROM activities") == stored


async def test_update_and_pin_are_relayed(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as (a,):
        # Given a delivered public thread
        group = await community(pool, "medical", "public")
        await follower(pool, group, a, "alice")
        author = await member(pool, "amina", role="moderator")
        created = await new_thread(pool, group, author)
        await process_outbox(fed_settings, pool)
        before = len(await jobs(pool))
        # When the author edits it and pins it
        async with pool.acquire() as conn:
            await threads.edit_post(conn, created.post_id, author, "Texte corrigé.")
            await threads.set_pinned(conn, created.thread_id, author, True)
        await process_outbox(fed_settings, pool)
        # Then Update{Page} and Add{Page → featured} go out, announced by the group
        found = by_kind((await jobs(pool))[before:])
        assert sorted(found) == ["Announce/Add", "Announce/Update"]
        update = found["Announce/Update"][0]["activity"]["object"]
        assert update["object"]["source"]["content"] == "Texte corrigé."
        add = found["Announce/Add"][0]["activity"]["object"]
        assert add["target"] == "http://testserver/c/medical/featured"
        assert add["object"] == f"http://testserver/t/{created.thread_id}"


async def test_like_then_unlike_undoes_the_same_like(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as (a,):
        # Given a public thread
        group = await community(pool, "medical", "public")
        await follower(pool, group, a, "alice")
        author = await member(pool)
        created = await new_thread(pool, group, author)
        payload = {"post_id": created.post_id, "thread_id": created.thread_id, "community_id": group.id}
        # When a member likes it, then takes the like back
        async with pool.acquire() as conn:
            for kind in ("post.liked", "post.unliked"):
                await conn.execute(
                    "INSERT INTO outbox_events (kind, payload) VALUES ($1, $2)",
                    kind,
                    {**payload, "actor_user_id": author.id},
                )
        await process_outbox(fed_settings, pool)
        # Then the Undo embeds the very Like that was sent (both relayed by the group)
        found = by_kind(await jobs(pool))
        like = found["Announce/Like"][0]["activity"]["object"]
        undo = found["Announce/Undo"][0]["activity"]["object"]
        assert like["object"] == f"http://testserver/t/{created.thread_id}"
        assert undo["object"]["id"] == like["id"]
        assert undo["object"]["type"] == "Like"


async def test_delete_goes_to_followers_and_every_ledger_inbox(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(2) as (still, gone):
        # Given a thread that reached two instances, one of which stopped following
        group = await community(pool, "medical", "public")
        await follower(pool, group, still, "alice")
        gone_id = await follower(pool, group, gone, "bob")
        author = await member(pool)
        created = await new_thread(pool, group, author)
        page = f"http://testserver/t/{created.thread_id}"
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO deliveries_ledger (object_uri, inbox, domain) VALUES ($1, $2, $3), ($1, $4, $5)",
                page,
                still.url("/inbox"),
                still.domain,
                gone.url("/inbox"),
                gone.domain,
            )
            await conn.execute("DELETE FROM community_followers WHERE actor_id = $1", gone_id)
            # When the author deletes it
            await threads.delete_post(conn, created.post_id, author)
        await process_outbox(fed_settings, pool)
        # Then the author's Delete{Tombstone} reaches both instances, the group's Announce the follower
        found = by_kind(await jobs(pool))
        assert {r["domain"] for r in found["Delete"]} == {still.domain, gone.domain}
        assert {r["domain"] for r in found["Announce/Delete"]} == {still.domain}
        tombstone = found["Delete"][0]["activity"]["object"]
        assert tombstone["type"] == "Tombstone" and tombstone["id"] == page
        assert await delivery.ledger_domains(pool, page) == sorted([still.domain, gone.domain])


async def test_a_broken_event_is_skipped_without_blocking_the_others(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as (a,):
        # Given an event about a post that does not exist, then a good one
        group = await community(pool, "medical", "public")
        await follower(pool, group, a, "alice")
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO outbox_events (kind, payload) VALUES ('post.created', $1)",
                {"post_id": 999999, "thread_id": 1, "community_id": group.id, "actor_user_id": 1},
            )
        await new_thread(pool, group, await member(pool))
        # When the outbox is processed
        await process_outbox(fed_settings, pool)
        # Then every event is marked processed and the good one produced its jobs
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox_events WHERE processed_at IS NULL") == 0
        assert len(await jobs(pool)) == 2


async def test_processed_events_are_forgotten_after_a_week(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    from federation import outbox

    # Given an event processed eight days ago, one processed now and one pending
    async with pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO outbox_events (kind, payload, processed_at) VALUES
               ('post.created', '{}', now() - interval '8 days'),
               ('post.created', '{}', now()),
               ('post.created', '{}', NULL)"""
        )
        # When the worker's maintenance runs
        await outbox.purge_processed(conn)
        # Then only the old processed one is gone
        left = await conn.fetch("SELECT processed_at IS NULL AS pending FROM outbox_events ORDER BY id")
    assert [r["pending"] for r in left] == [False, True]


async def test_a_profile_change_sends_update_person_to_the_followers_of_communities_posted_in(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    from node import accounts

    # Given a member who posted in a public community followed from one instance, and a
    # community they never posted in, followed from another
    async with fakes(2) as (a, b):
        group = await community(pool, "medical", "public")
        other = await community(pool, "juridique", "public")
        await follower(pool, group, a, "alice")
        await follower(pool, other, b, "bob")
        author = await member(pool)
        await new_thread(pool, group, author)
        await process_outbox(fed_settings, pool)
        await pool.execute("DELETE FROM delivery_jobs")

        def change(display_name: str, bio: str) -> accounts.ProfileUpdate:
            return accounts.ProfileUpdate(display_name, "medical", "", "Centre de santé", "RDC", bio)

        # When the member changes their name and bio
        await accounts.update_profile(pool, author.id, change("Dr Amina K.", "Médecin généraliste."))
        await process_outbox(fed_settings, pool)
        # Then an Update{Person} with the new name goes to the instance that knows the member only
        rows = await jobs(pool)
        assert [r["inbox"] for r in rows] == [a.url("/inbox")]
        update = rows[0]["activity"]
        assert update["type"] == "Update" and update["actor"] == "http://testserver/u/amina"
        assert update["object"]["type"] == "Person" and update["object"]["name"] == "Dr Amina K."
        assert "Médecin généraliste." in update["object"]["summary"]
        assert PUBLIC in update["to"]
        # And saving the profile without changing what the Person shows sends nothing more
        await pool.execute("DELETE FROM delivery_jobs")
        await accounts.update_profile(pool, author.id, change("Dr Amina K.", "Médecin généraliste."))
        await process_outbox(fed_settings, pool)
        assert await jobs(pool) == []
