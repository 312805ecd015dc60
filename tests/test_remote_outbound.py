"""Our members acting in a community of another server (issue 11, outbound): what the
forum's services store, and what ``federation.outbox`` / ``federation.remote_posts``
turn it into — read back from the delivery queue and ``activities``, validated against
``schemas/emitted`` and against what Lemmy and Mastodon accept, then delivered as signed
POSTs to the group's fake server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from federation import validation
from federation.objects import PUBLIC
from node import reports, threads
from node.errors import Forbidden
from node.settings import Settings
from tests.delivery_kit import community as local_community
from tests.delivery_kit import (  # noqa: F401  (fixtures)
    deliver_all,
    fakes,
    fixture_fed_settings,
    fixture_open_node,
    follower,
    jobs,
    member,
    posted,
    process_outbox,
    trust_us,
)
from tests.remote_group_kit import (
    fake_remote_community,
    opening_post,
    remote_actor,
    remote_reply,
    remote_thread,
    set_follow_state,
)

BASE = "http://testserver"


def addressed(activity: dict[str, Any]) -> list[str]:
    return [*activity.get("to", []), *activity.get("cc", [])]


async def activities(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [r["json"] for r in await pool.fetch("SELECT json FROM activities ORDER BY id")]


def lemmy_accepts(activity: dict[str, Any], group: str, *, public: bool) -> None:
    """What Lemmy checks of a post activity sent to its community (facts from
    ../shared/samples/lemmy/activities/create_or_update and Lemmy's verify_* rules): the
    actor is the object's author on the actor's host, the community is named by
    ``audience``, and a public community's post is addressed to Public."""
    obj = activity["object"]
    assert activity["actor"] == obj["attributedTo"]
    assert obj["id"].startswith(BASE + "/") and activity["id"].startswith(BASE + "/")
    assert activity["audience"] == obj["audience"] == group
    assert (PUBLIC in addressed(obj) and PUBLIC in addressed(activity)) == public
    assert obj["mediaType"] == "text/html" and obj["source"]["mediaType"] == "text/markdown"


async def test_a_reply_in_a_remote_thread_goes_to_the_group_as_a_create_note(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a public community of a Lemmy-shaped server that our node follows, with a thread of olga's
    async with fakes(1, software="lemmy") as (lemmy,):
        community, group = await fake_remote_community(pool, fed_settings, lemmy)
        olga = lemmy.add_actor("olga")
        thread_id, page_id = await remote_thread(pool, lemmy, community, olga)
        amina = await member(pool)
        await trust_us(pool, fed_settings, [lemmy], users=[amina])

        # When our member answers it through the forum's service
        async with pool.acquire() as conn:
            post_id = await threads.create_reply(conn, thread_id, amina, "Nous avons **deux** places.")
        await process_outbox(fed_settings, pool)

        # Then the reply is stored here as hers
        assert await pool.fetchval("SELECT author_id FROM posts WHERE id = $1", post_id) == amina.id
        # And one Create{Note} goes to the group's own inbox, nothing anywhere else
        rows = await jobs(pool)
        assert [(r["inbox"], r["activity"]["type"]) for r in rows] == [(group.inbox, "Create")]
        create = rows[0]["activity"]
        validation.validate_emitted(create)
        note = create["object"]
        assert (note["type"], note["id"]) == ("Note", f"{BASE}/p/{post_id}")
        assert note["inReplyTo"] == page_id
        assert note["attributedTo"] == f"{BASE}/u/amina"
        assert note["to"] == [group.id] and PUBLIC in note["cc"]
        # the author answered is addressed and mentioned, the group mentioned
        assert olga.id in note["cc"]
        mentions = {t["href"]: t["name"] for t in note["tag"] if t["type"] == "Mention"}
        assert mentions[group.id] == f"@entraide@{lemmy.domain}"
        assert mentions[olga.id] == f"@olga@{lemmy.domain}"
        assert "<strong>deux</strong>" in note["content"] and note["contentMap"]["fr"] == note["content"]
        lemmy_accepts(create, group.id, public=True)
        # And nothing of the remote community left as an Announce of ours (not even the relay
        # events written when olga's thread was stored)
        assert [a["type"] for a in await activities(pool)] == ["Create"]

        # When the delivery worker runs, the group's server gets it, signed by the member's key
        await deliver_all(fed_settings, pool)
        received = posted(lemmy)
        assert [a["id"] for a in received] == [create["id"]]
        got = next(r for r in lemmy.received if r.method == "POST")
        assert got.path == group.inbox_path and got.signature_ok, got.signature_error
        assert got.key_id == f"{BASE}/u/amina#main-key"


async def test_a_reply_to_a_member_of_a_third_server_also_reaches_her_in_a_public_community(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a thread of the remote group where a Mastodon user answered
    async with fakes(1, software="lemmy") as (lemmy,), fakes(1, software="mastodon") as (masto,):
        community, group = await fake_remote_community(pool, fed_settings, lemmy)
        thread_id, _ = await remote_thread(pool, lemmy, community, lemmy.add_actor("olga"))
        alice = masto.add_actor("alice")
        parent_id, alice_note = await remote_reply(
            pool, masto, thread_id, await opening_post(pool, thread_id), alice
        )
        amina = await member(pool)

        # When our member answers alice
        async with pool.acquire() as conn:
            await threads.create_reply(conn, thread_id, amina, "Merci Alice.", parent_id=parent_id)
        await process_outbox(fed_settings, pool)

        # Then the Create goes to the group and to alice's server (Mastodon notifies from a Create)
        rows = await jobs(pool)
        assert sorted(r["inbox"] for r in rows) == sorted([group.inbox, alice.shared_inbox])
        assert len({r["activity"]["id"] for r in rows}) == 1
        note = rows[0]["activity"]["object"]
        assert note["inReplyTo"] == alice_note and alice.id in note["cc"]


async def test_a_members_only_remote_community_gets_its_posts_through_its_group_alone(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a members-only remote community, and a thread where a member of a third server answered
    async with fakes(1, software="lemmy") as (lemmy,), fakes(1, software="mastodon") as (masto,):
        community, group = await fake_remote_community(pool, fed_settings, lemmy, visibility="members")
        thread_id, _ = await remote_thread(pool, lemmy, community, lemmy.add_actor("olga"))
        parent_id, _ = await remote_reply(
            pool, masto, thread_id, await opening_post(pool, thread_id), masto.add_actor("alice")
        )
        amina = await member(pool)

        # When our member answers there
        async with pool.acquire() as conn:
            await threads.create_reply(conn, thread_id, amina, "Réservé aux membres.", parent_id=parent_id)
        await process_outbox(fed_settings, pool)

        # Then only the group's inbox gets it (its moderators decide who reads), never to Public
        rows = await jobs(pool)
        assert [r["inbox"] for r in rows] == [group.inbox]
        create = rows[0]["activity"]
        validation.validate_emitted(create)
        lemmy_accepts(create, group.id, public=False)
        assert create["object"]["to"] == [group.id]
        stored = await pool.fetchrow(
            "SELECT audience, object_uri FROM activities WHERE uri = $1", create["id"]
        )
        assert (stored["audience"], stored["object_uri"]) == ("members", create["object"]["id"])


async def test_a_new_thread_in_a_remote_community_is_a_create_page_mentioning_the_group(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1, software="lemmy") as (lemmy,):
        community, group = await fake_remote_community(pool, fed_settings, lemmy)
        amina = await member(pool)

        # When our member opens a thread in the remote community
        async with pool.acquire() as conn:
            created = await threads.create_thread(
                conn, community, amina, "Nuitées d'hôtel", "Qui finance les **nuitées** ?"
            )
        await process_outbox(fed_settings, pool)

        # Then a Create{Page} with its title goes to the group: audience set, the group mentioned and in `to`
        rows = await jobs(pool)
        assert [(r["inbox"], r["activity"]["type"]) for r in rows] == [(group.inbox, "Create")]
        create = rows[0]["activity"]
        validation.validate_emitted(create)
        page = create["object"]
        assert (page["type"], page["name"], page["id"]) == (
            "Page",
            "Nuitées d'hôtel",
            f"{BASE}/t/{created.thread_id}",
        )
        assert page["audience"] == group.id and page["to"] == [group.id]
        assert {"type": "Mention", "href": group.id, "name": f"@entraide@{lemmy.domain}"} in page["tag"]
        assert page["context"] == f"{BASE}/t/{created.thread_id}/context"
        lemmy_accepts(create, group.id, public=True)
        assert [a["type"] for a in await activities(pool)] == ["Create"]


async def test_edit_like_unlike_and_delete_go_to_the_group(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1, software="lemmy") as (lemmy,):
        community, group = await fake_remote_community(pool, fed_settings, lemmy)
        thread_id, page_id = await remote_thread(pool, lemmy, community, lemmy.add_actor("olga"))
        amina = await member(pool)
        moderator = await member(pool, "modeste", role="moderator")
        async with pool.acquire() as conn:
            post_id = await threads.create_reply(conn, thread_id, amina, "Première version.")
        await process_outbox(fed_settings, pool)
        before = len(await jobs(pool))

        # When she edits her reply, likes olga's thread, takes the like back, and a moderator
        # of ours removes her reply
        async with pool.acquire() as conn:
            await threads.edit_post(conn, post_id, amina, "Version corrigée.")
            await process_outbox(fed_settings, pool)  # (an edit of a post deleted before it left is not sent)
            opening = await opening_post(pool, thread_id)
            assert await threads.set_liked(conn, opening, amina, True)
            assert await threads.set_liked(conn, opening, amina, False)
            await threads.delete_post(conn, post_id, moderator, "Hors sujet")
        await process_outbox(fed_settings, pool)

        # Then each goes to the group's inbox alone, in order
        rows = (await jobs(pool))[before:]
        assert [(r["inbox"], r["activity"]["type"]) for r in rows] == [
            (group.inbox, t) for t in ("Update", "Like", "Undo", "Delete")
        ]
        update, like, undo, delete = (r["activity"] for r in rows)
        for activity in (update, like, undo, delete):
            validation.validate_emitted(activity)
            assert activity["audience"] == group.id and group.id in activity["to"]
        assert update["type"] == "Update" and update["object"]["id"] == f"{BASE}/p/{post_id}"
        assert "Version corrigée." in update["object"]["content"] and "updated" in update["object"]
        lemmy_accepts(update, group.id, public=True)
        assert (like["type"], like["actor"], like["object"]) == ("Like", f"{BASE}/u/amina", page_id)
        assert undo["type"] == "Undo" and undo["object"]["id"] == like["id"]
        # the Delete speaks for the author (the group accepts it from her), a Tombstone of her Note
        assert (delete["type"], delete["actor"]) == ("Delete", f"{BASE}/u/amina")
        assert delete["object"]["id"] == f"{BASE}/p/{post_id}" and delete["object"]["type"] == "Tombstone"
        # and nothing ever went out as an Announce of ours
        assert all(a["type"] != "Announce" for a in await activities(pool))


async def test_a_remote_members_post_removed_by_our_moderator_stays_a_local_removal(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1, software="lemmy") as (lemmy,):
        community, _ = await fake_remote_community(pool, fed_settings, lemmy)
        thread_id, _ = await remote_thread(pool, lemmy, community, lemmy.add_actor("olga"))
        reply_id, _ = await remote_reply(
            pool, lemmy, thread_id, await opening_post(pool, thread_id), lemmy.add_actor("boris")
        )
        moderator = await member(pool, "modeste", role="moderator")
        # When our moderator removes boris's reply here
        async with pool.acquire() as conn:
            await threads.delete_post(conn, reply_id, moderator, "Propos déplacés")
        await process_outbox(fed_settings, pool)
        # Then it is gone here, and nothing leaves: the post is not ours to delete elsewhere
        assert await pool.fetchval("SELECT deleted_at IS NOT NULL FROM posts WHERE id = $1", reply_id)
        assert await jobs(pool) == [] and await activities(pool) == []


@pytest.mark.parametrize(
    ("state", "message"),
    [("pending", threads.FOLLOW_PENDING_MESSAGE), ("rejected", threads.NOT_FOLLOWED_MESSAGE)],
)
async def test_no_post_while_our_follow_is_not_accepted(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None, state: str, message: str
) -> None:
    async with fakes(1, software="lemmy") as (lemmy,):
        community, _ = await fake_remote_community(pool, fed_settings, lemmy)
        thread_id, _ = await remote_thread(pool, lemmy, community, lemmy.add_actor("olga"))
        amina = await member(pool)
        async with pool.acquire() as conn:
            post_id = await threads.create_reply(conn, thread_id, amina, "Avant.")
        await process_outbox(fed_settings, pool)
        before = len(await activities(pool))
        await set_follow_state(pool, community, state)
        posts_before = await pool.fetchval("SELECT count(*) FROM posts")

        # When she tries to reply, open a thread or edit her post while the follow is not accepted
        async with pool.acquire() as conn:
            for attempt in (
                threads.create_reply(conn, thread_id, amina, "Réponse."),
                threads.create_thread(conn, community, amina, "Un fil", "Texte."),
                threads.edit_post(conn, post_id, amina, "Modifié."),
            ):
                with pytest.raises(Forbidden) as refused:
                    await attempt
                # Then she is told why, in French, and nothing is stored or sent
                assert refused.value.message == message
        await process_outbox(fed_settings, pool)
        assert await pool.fetchval("SELECT count(*) FROM posts") == posts_before
        assert await pool.fetchval("SELECT source FROM posts WHERE id = $1", post_id) == "Avant."
        assert len(await activities(pool)) == before


async def test_no_reply_in_a_thread_locked_on_its_origin_even_for_our_moderators(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1, software="lemmy") as (lemmy,):
        community, _ = await fake_remote_community(pool, fed_settings, lemmy)
        thread_id, _ = await remote_thread(pool, lemmy, community, lemmy.add_actor("olga"), locked=True)
        moderator = await member(pool, "modeste", role="moderator")
        async with pool.acquire() as conn:
            with pytest.raises(Forbidden) as refused:
                await threads.create_reply(conn, thread_id, moderator, "Je passe outre ?")
            assert refused.value.message == threads.REMOTE_LOCKED_MESSAGE
            # and the thread page offers no reply form
            head = await threads.thread_head(conn, thread_id, moderator, 1)
        assert head.can_reply is False
        assert await pool.fetchval("SELECT count(*) FROM posts WHERE thread_id = $1", thread_id) == 1


async def test_a_report_of_a_remote_post_flags_the_group_from_the_instance_actor(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a reply by a Mastodon user in a thread of the remote community
    async with fakes(1, software="lemmy") as (lemmy,), fakes(1, software="mastodon") as (masto,):
        community, group = await fake_remote_community(pool, fed_settings, lemmy)
        olga = lemmy.add_actor("olga")
        thread_id, page_id = await remote_thread(pool, lemmy, community, olga)
        alice = masto.add_actor("alice")
        reply_id, alice_note = await remote_reply(
            pool, masto, thread_id, await opening_post(pool, thread_id), alice
        )
        amina = await member(pool)

        # When our member reports olga's thread, and alice's reply, asking to forward them
        async with pool.acquire() as conn:
            for post_id in (await opening_post(pool, thread_id), reply_id):
                target = await reports.reportable(conn, post_id, amina, BASE)
                assert target.forwardable and target.remote_community
                await reports.file_report(conn, target, amina, "Données identifiantes", forward=True)
        await process_outbox(fed_settings, pool)

        # Then our moderators have both reports
        assert await pool.fetchval("SELECT count(*) FROM reports WHERE reporter_user_id = $1", amina.id) == 2
        # And the group gets a Flag of each post from our instance actor, with the reason, never her name
        rows = await jobs(pool)
        to_group = [r["activity"] for r in rows if r["inbox"] == group.inbox]
        assert [f["object"] for f in to_group] == [page_id, alice_note]
        for flag in to_group:
            validation.validate_emitted(flag)
            assert flag["actor"] == f"{BASE}/actor"
            assert flag["to"] == [group.id] and flag["audience"] == group.id
            assert flag["content"] == flag["summary"] == "Données identifiantes"
        # And alice's own server (another than the group's) gets the Mastodon shape: [account, status]
        to_masto = [r["activity"] for r in rows if r["inbox"] != group.inbox]
        assert [f["object"] for f in to_masto] == [[alice.id, alice_note]]
        assert [r["inbox"] for r in rows if r["inbox"] != group.inbox] == [alice.shared_inbox]
        for flag in to_group + to_masto:
            assert "amina" not in str(flag).lower()
        # Flags are meant for one server: never served at their ids
        assert set(
            await pool.fetch("SELECT DISTINCT audience FROM activities WHERE json->>'type' = 'Flag'")
        ) == {("direct",)}


async def test_relays_and_boosts_of_a_remote_community_never_leave(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a follower instance that somehow follows the remote community's row
    async with fakes(1, software="lemmy") as (lemmy,), fakes(1) as (other,):
        community, _ = await fake_remote_community(pool, fed_settings, lemmy)
        await follower(pool, community, other, "curieuse")
        # When a thread of the group arrives (the inbox writes its relay events) and our member answers
        thread_id, _ = await remote_thread(pool, lemmy, community, lemmy.add_actor("olga"))
        amina = await member(pool)
        async with pool.acquire() as conn:
            await threads.create_reply(conn, thread_id, amina, "Bonjour.")
        await process_outbox(fed_settings, pool)
        # Then the follower instance gets nothing: the group relays, never we
        assert all(r["inbox"] != other.url("/inbox") for r in await jobs(pool))
        assert all(a["type"] != "Announce" for a in await activities(pool))


async def test_people_of_other_servers_named_in_a_post_are_mentioned_and_addressed(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given a thread of the remote group, and a Mastodon user our node knows
    async with fakes(1, software="lemmy") as (lemmy,), fakes(1, software="mastodon") as (masto,):
        community, group = await fake_remote_community(pool, fed_settings, lemmy)
        thread_id, _ = await remote_thread(pool, lemmy, community, lemmy.add_actor("olga"))
        alice = masto.add_actor("alice")
        await remote_actor(pool, masto, alice)
        amina = await member(pool)

        # When our member names her, and someone nobody here knows, in a reply
        text = f"Voir avec @Alice@{masto.domain}, et @inconnue@nulle-part.example ; courriel a@b.fr."
        async with pool.acquire() as conn:
            await threads.create_reply(conn, thread_id, amina, text)
        await process_outbox(fed_settings, pool)

        # Then alice is mentioned and addressed, and gets the Create at her server too
        rows = await jobs(pool)
        assert sorted(r["inbox"] for r in rows) == sorted([group.inbox, alice.shared_inbox])
        note = rows[0]["activity"]["object"]
        validation.validate_emitted(rows[0]["activity"])
        mentions = [t for t in note["tag"] if t["type"] == "Mention"]
        assert {"type": "Mention", "href": alice.id, "name": f"@alice@{masto.domain}"} in mentions
        assert alice.id in note["cc"]
        # the unknown name (no fetch while building) and the e-mail address are left as text
        assert {t["href"] for t in mentions} == {group.id, alice.id, lemmy.url("/u/olga")}


async def test_a_post_of_our_own_community_naming_someone_elsewhere_reaches_her(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given one of our public communities, and a Mastodon user our node knows who does not follow it
    async with fakes(1, software="mastodon") as (masto,):
        group = await local_community(pool, "medical", "public")
        alice = masto.add_actor("alice")
        await remote_actor(pool, masto, alice)
        amina = await member(pool)
        # When our member opens a thread naming her
        async with pool.acquire() as conn:
            await threads.create_thread(
                conn, group, amina, "Protocole", f"Qu'en pense @alice@{masto.domain} ?"
            )
        await process_outbox(fed_settings, pool)
        # Then she gets the member's Create (Mastodon notifies a mention from a Create), mentioned
        rows = [r for r in await jobs(pool) if r["activity"]["type"] == "Create"]
        assert [r["inbox"] for r in rows] == [alice.shared_inbox]
        page = rows[0]["activity"]["object"]
        assert alice.id in page["cc"] and any(t["href"] == alice.id for t in page["tag"])


SHARED = Path(__file__).resolve().parents[2] / "shared" / "samples" / "lemmy" / "activities"
# Lemmy's own fields we do not send: its post's language, link attachment and mod flag.
LEMMY_ONLY = {"language", "attachment", "distinguished"}


def lemmy_sample(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SHARED / name).read_text(encoding="utf-8"))
    return doc


def has_lemmys_fields(ours: dict[str, Any], sample: dict[str, Any]) -> None:
    """Every field Lemmy's own activity (and its embedded object) carries, ours carries too."""
    assert set(sample) - LEMMY_ONLY <= set(ours), set(sample) - set(ours)
    if isinstance(sample.get("object"), dict) and isinstance(ours.get("object"), dict):
        missing = set(sample["object"]) - LEMMY_ONLY - set(ours["object"])
        assert not missing, missing


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared samples folder {SHARED} is absent")
async def test_what_we_send_a_group_has_every_field_of_lemmys_own_and_a_peer_node_accepts_it(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    # Given our member's thread, reply, edit, like, unlike, deletion and report in a remote community
    async with fakes(1, software="lemmy") as (lemmy,):
        community, group = await fake_remote_community(pool, fed_settings, lemmy)
        thread_id, _ = await remote_thread(pool, lemmy, community, lemmy.add_actor("olga"))
        amina, carla = await member(pool), await member(pool, "carla")
        async with pool.acquire() as conn:
            created = await threads.create_thread(conn, community, amina, "Nuitées", "Qui finance ?")
            reply_id = await threads.create_reply(conn, thread_id, amina, "Deux places.")
            await threads.edit_post(conn, created.post_id, amina, "Qui finance les nuitées ?")
            await threads.set_liked(conn, await opening_post(pool, thread_id), amina, True)
            await threads.set_liked(conn, await opening_post(pool, thread_id), amina, False)
            target = await reports.reportable(conn, await opening_post(pool, thread_id), carla, BASE)
            await reports.file_report(conn, target, carla, "Hors charte", forward=True)
        await process_outbox(fed_settings, pool)
        async with pool.acquire() as conn:
            await threads.delete_post(conn, reply_id, amina)
        await process_outbox(fed_settings, pool)
        sent = [r["activity"] for r in await jobs(pool)]

    # Then each has the fields of the activity Lemmy itself sends for it
    by_shape = {
        (a["type"], (a["object"] or {}).get("type") if isinstance(a["object"], dict) else None): a
        for a in sent
    }
    has_lemmys_fields(by_shape[("Create", "Page")], lemmy_sample("create_or_update/create_page.json"))
    has_lemmys_fields(by_shape[("Create", "Note")], lemmy_sample("create_or_update/create_comment.json"))
    has_lemmys_fields(by_shape[("Update", "Page")], lemmy_sample("create_or_update/update_page.json"))
    has_lemmys_fields(by_shape[("Like", None)], lemmy_sample("voting/like_note.json"))
    has_lemmys_fields(by_shape[("Undo", "Like")], lemmy_sample("voting/undo_like_note.json"))
    has_lemmys_fields(by_shape[("Delete", "Tombstone")], lemmy_sample("deletion/delete_page.json"))
    has_lemmys_fields(by_shape[("Flag", None)], lemmy_sample("community/report_page.json"))
    # And a node of ours receiving them would accept each one (the inbox's validation)
    for activity in sent:
        assert validation.validate_incoming(json.loads(json.dumps(activity))) == activity["type"]
