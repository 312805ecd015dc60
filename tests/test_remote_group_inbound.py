"""Issue 11, inbound: what a Group of another server that our node follows announces is
applied into its remote community — Lemmy-, PieFed-, Mbin-, NodeBB- and Mastodon-shaped
payloads (the Lemmy ones read from ``../shared/samples`` and re-hosted), signed by fake
instances on loopback, through the real inbox and worker, on the real database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from federation import actors, inbox_worker, policy
from federation.fetcher import Limits
from federation.handlers import remote_group
from node import communities, notifications, threads
from node.communities import Community
from node.sessions import User
from tests import inboxnode as ap
from tests.conftest import SHARED_SAMPLES
from tests.fakefedi import FakeActor, FakeInstance
from tests.helpers import make_community, make_user
from tests.inboxnode import InboxNode, deliver, fake_fixture, local_thread, node_fixture, outcome

fixture_node = node_fixture()
fixture_lemmy = fake_fixture("lemmy", "127.0.0.111", "lemmy")
fixture_masto = fake_fixture("masto", "127.0.0.112")
fixture_ds9 = fake_fixture("ds9", "127.0.0.113", "lemmy")

LEMMY_SAMPLES = SHARED_SAMPLES / "lemmy" / "activities"
needs_samples = pytest.mark.skipif(not LEMMY_SAMPLES.is_dir(), reason=f"{LEMMY_SAMPLES} is absent")


async def follow_group(
    node: InboxNode,
    fake: FakeInstance,
    name: str = "main",
    *,
    state: str = "accepted",
    visibility: str = "public",
    path: str | None = None,
) -> tuple[FakeActor, Community]:
    """A Group on ``fake`` that our node follows: its actor, community row and shared follow
    (``path``: where the group lives, when not where ``fake``'s layout puts it)."""
    group = fake.add_actor(
        name,
        type="Group",
        featured=fake.url(f"/c/{name}/featured"),
        moderators=fake.url(f"/c/{name}/moderators"),
    )
    if path is not None:
        group.id = fake.url(path)
    async with node.pool.acquire() as conn:
        actor = await actors.get_or_fetch(conn, node.fetcher, group.id)
        community = await communities.upsert_remote(
            conn,
            actor_id=actor.id,
            name=f"{name}@{fake.domain.split(':')[0]}",
            title=name.capitalize(),
            description="",
            visibility=visibility,
        )
        instance = await actors.instance_actor(conn, node.settings)
        await conn.execute(
            "INSERT INTO group_follows (community_id, follower_id, follow_activity_id, state) VALUES ($1, $2, $3, $4)",
            community.id,
            instance.id,
            node.url(f"/activities/{uuid.uuid4()}"),
            state,
        )
    return group, community


def announce(fake: FakeInstance, group: FakeActor, obj: Any) -> dict[str, Any]:
    return {"@context": ap.AS_CONTEXT, "id": ap.activity_id(fake, "Announce"), "type": "Announce",
            "actor": group.id, "to": [ap.PUBLIC], "cc": [group.id + "/followers"], "object": obj}  # fmt: skip


def rehosted(path: str, fake: FakeInstance, hosts: tuple[str, ...]) -> dict[str, Any]:
    """A Lemmy sample with its hosts moved onto ``fake``."""
    text = (LEMMY_SAMPLES / path).read_text(encoding="utf-8")
    for host in hosts:
        text = text.replace(f"https://{host}", fake.base_url).replace(f"http://{host}", fake.base_url)
    doc: dict[str, Any] = json.loads(text)
    return doc


async def thread_of(node: InboxNode, ap_id: str) -> Any:
    return await node.pool.fetchrow(
        "SELECT t.id, t.community_id, t.title, t.pinned, t.locked, t.deleted_at, t.reply_count"
        " FROM threads t JOIN posts p ON p.thread_id = t.id WHERE p.ap_id = $1",
        ap_id,
    )


async def no_relay(node: InboxNode) -> None:
    kinds = [e["kind"] for e in await node.events()]
    assert not [k for k in kinds if k.startswith("relay.")], kinds


# -- content ------------------------------------------------------------------------------


@needs_samples
async def test_lemmy_announce_create_page_sample_opens_a_thread_in_the_remote_community(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given our node follows a Lemmy community, and its sample Announce{Create{Page}}
    group, community = await follow_group(node, lemmy, "main")
    lemmy.add_actor("lemmy_beta")
    doc = rehosted("community/announce_create_page.json", lemmy, ("enterprise.lemmy.ml",))
    doc["object"]["object"]["content"] = "<p>Le corps du billet</p>"

    # When the group delivers it
    await deliver(node, lemmy, doc, group)

    # Then a thread with the Page's name is in that community, and nothing is relayed
    thread = await thread_of(node, doc["object"]["object"]["id"])
    assert thread is not None and thread["community_id"] == community.id
    assert thread["title"] == "post 4"
    assert (await outcome(node, doc))[0] == "done"
    await no_relay(node)


async def test_a_lemmy_comment_is_a_reply_and_notifies_our_members(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given a thread of the followed community, where our member replied (she follows it)
    group, community = await follow_group(node, lemmy)
    bob = lemmy.add_actor("bob")
    page = ap.lemmy_page(lemmy, bob, group.id, "Accueil des victimes", "Comment faites-vous ?")
    await deliver(node, lemmy, announce(lemmy, group, page), group)
    thread = await thread_of(node, page["object"]["id"])
    amina_id = await make_user(node.pool, "amina")
    salome_id = await make_user(node.pool, "salome")
    zoe_id = await make_user(node.pool, "zoe")
    async with node.pool.acquire() as conn:
        amina = User(amina_id, "amina", "Amina", "member", "approved")
        mine = await threads.create_reply(conn, thread["id"], amina, "Nous avons une permanence.")
        await notifications.set_following(conn, zoe_id, thread["id"], True)  # « Suivre ce fil »
    my_post = node.url(f"/p/{mine}")

    # When a Lemmy comment answers her post and mentions Salomé
    carol = lemmy.add_actor("carol")
    comment = ap.lemmy_comment(lemmy, carol, group.id, my_post, "Merci ! @salome qu'en pensez-vous ?")
    comment["object"]["tag"] = [{"type": "Mention", "href": node.url("/u/salome"), "name": "@salome"}]
    await deliver(node, lemmy, announce(lemmy, group, comment), group)

    # Then the reply is in the thread; Amina is told of a reply to her post, Salomé of a mention,
    # Zoé (who follows the thread) of a new reply
    row = await node.pool.fetchrow(
        "SELECT thread_id, parent_id FROM posts WHERE ap_id = $1", comment["object"]["id"]
    )
    assert (row["thread_id"], row["parent_id"]) == (thread["id"], mine)
    kinds = dict(await node.pool.fetch("SELECT user_id, kind FROM notifications"))
    assert kinds == {amina_id: "reply_to_me", salome_id: "mention", zoe_id: "reply_followed"}
    assert (await thread_of(node, page["object"]["id"]))["reply_count"] == 2
    await no_relay(node)


async def test_announce_page_bare_shape_and_its_create_make_one_thread(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given a followed PieFed-like group that sends both Announce{Create{Page}} and Announce{Page}
    group, community = await follow_group(node, lemmy, "piefed")
    bob = lemmy.add_actor("bob")
    page = ap.lemmy_page(lemmy, bob, group.id, "Nouvelle loi", "Le texte est paru.")
    bare = announce(lemmy, group, page["object"])
    # When both arrive (bare first)
    await deliver(node, lemmy, bare, group)
    await deliver(node, lemmy, announce(lemmy, group, page), group)
    # Then one thread, in that community
    assert await node.count("threads", "community_id = $1", community.id) == 1
    assert (await outcome(node, bare))[0] == "done"


async def test_announce_of_an_id_is_fetched_from_the_group_server(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given an Mbin/NodeBB-like group announcing a topic by its id
    group, community = await follow_group(node, lemmy, "nodebb")
    bob = lemmy.add_actor("bob")
    page = ap.lemmy_page(lemmy, bob, group.id, "Sujet NodeBB", "Premier message.")["object"]
    lemmy.add_object(page)
    await deliver(node, lemmy, announce(lemmy, group, page["id"]), group)
    assert (await thread_of(node, page["id"]))["community_id"] == community.id


async def test_a_mastodon_note_relayed_by_the_group_is_refetched_and_titled_by_its_first_line(
    node: InboxNode, lemmy: FakeInstance, masto: FakeInstance
) -> None:
    # Given a toot mentioning the followed group, published on its Mastodon server
    group, community = await follow_group(node, lemmy)
    alice = masto.add_actor("alice")
    toot = ap.mastodon_note(masto, alice, group.id, "Une question sur l'hébergement\nDétails ici.")
    masto.add_object(toot["object"])
    # When the group relays it with a tampered embedded copy
    tampered = dict(toot, object=dict(toot["object"], content="<p>Falsifié</p>"))
    await deliver(node, lemmy, announce(lemmy, group, tampered), group)
    # Then the thread holds what its origin serves, titled by its first line
    thread = await thread_of(node, toot["object"]["id"])
    assert thread["community_id"] == community.id
    assert thread["title"] == "Une question sur l'hébergement"
    html = await node.pool.fetchval("SELECT content_html FROM posts WHERE ap_id = $1", toot["object"]["id"])
    assert "Falsifié" not in html and "Détails" in html


async def test_an_update_edits_and_a_local_removal_is_not_undone(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    group, community = await follow_group(node, lemmy)
    bob = lemmy.add_actor("bob")
    page = ap.lemmy_page(lemmy, bob, group.id, "Titre", "Premier jet.")
    await deliver(node, lemmy, announce(lemmy, group, page), group)
    edited = dict(page["object"], name="Titre corrigé", content="<p>Second jet.</p>")
    await deliver(node, lemmy, announce(lemmy, group, ap.update_of(lemmy, bob, edited)), group)
    thread = await thread_of(node, page["object"]["id"])
    assert thread["title"] == "Titre corrigé"

    # When a local moderator removes it, then the author edits it again
    moderator_id = await make_user(node.pool, "modo", role="moderator")
    post_id = await node.pool.fetchval("SELECT id FROM posts WHERE ap_id = $1", page["object"]["id"])
    async with node.pool.acquire() as conn:
        moderator = User(moderator_id, "modo", "Modo", "moderator", "approved")
        await threads.delete_post(conn, post_id, moderator, reason="Hors charte")
    again = announce(lemmy, group, ap.update_of(lemmy, bob, dict(edited, content="<p>Revenu.</p>")))
    await deliver(node, lemmy, again, group)
    # Then it stays removed, its text unchanged
    assert await outcome(node, again) == ("ignored", "post deleted")
    row = await node.pool.fetchrow("SELECT deleted_at, content_html FROM posts WHERE id = $1", post_id)
    assert row["deleted_at"] is not None and "Revenu" not in row["content_html"]


NODEBB_PAGE = SHARED_SAMPLES / "nodebb" / "objects" / "page.json"


@pytest.mark.skipif(not NODEBB_PAGE.is_file(), reason=f"{NODEBB_PAGE} is absent")
async def test_a_nodebb_category_topic_and_a_mastodon_reply_relayed_by_it(
    node: InboxNode, masto: FakeInstance, ds9: FakeInstance
) -> None:
    # Given a NodeBB category (a Group at /category/2) our node follows, on a NodeBB-shaped server
    nodebb = ds9
    group, community = await follow_group(node, nodebb, "general", path="/category/2")
    author = nodebb.add_actor("uid1")
    author.id = nodebb.url("/uid/1")
    text = NODEBB_PAGE.read_text(encoding="utf-8").replace("https://bb.devnull.land", nodebb.base_url)
    article = json.loads(text)
    create = {"id": nodebb.url("/post/1#activity/create"), "type": "Create", "actor": author.id,
              "to": article["to"], "cc": article["cc"], "object": article}  # fmt: skip

    # When the category announces the topic (NodeBB's Article), then a toot answering it
    await deliver(node, nodebb, announce(nodebb, group, create), group)
    alice = masto.add_actor("alice")
    toot = ap.mastodon_note(masto, alice, group.id, "Merci pour l'accueil", in_reply_to=article["id"])
    masto.add_object(toot["object"])
    await deliver(node, nodebb, announce(nodebb, group, toot), group)

    # Then the topic is a thread of the category's community, with the toot as its reply
    thread = await thread_of(node, article["id"])
    assert (thread["community_id"], thread["title"]) == (community.id, "Welcome to your NodeBB!")
    assert thread["reply_count"] == 1
    await no_relay(node)


# -- a third Lemmy instance: content fetched from its origin, likes, author's delete -----


@pytest.fixture(autouse=True)
def _servers_answer_again() -> None:
    remote_group._silent_until.clear()  # module state: one test's silent server is not the next's


@needs_samples
async def test_lemmy_samples_from_a_third_instance_are_fetched_liked_and_deleted(
    node: InboxNode, lemmy: FakeInstance, ds9: FakeInstance
) -> None:
    # Given the group main on "enterprise" (lemmy) and a user of "ds9" posting there
    group, community = await follow_group(node, lemmy, "main")
    ds9.add_actor("lemmy_alpha")
    hosts = ("enterprise.lemmy.ml",)
    create_page = rehosted("create_or_update/create_page.json", ds9, ("ds9.lemmy.ml",))
    create_page = json.loads(json.dumps(create_page).replace("http://enterprise.lemmy.ml", lemmy.base_url)
                             .replace("https://enterprise.lemmy.ml", lemmy.base_url))  # fmt: skip
    create_comment = json.loads(
        json.dumps(rehosted("create_or_update/create_comment.json", ds9, ("ds9.lemmy.ml",)))
        .replace("http://enterprise.lemmy.ml", lemmy.base_url)
        .replace("https://enterprise.lemmy.ml", lemmy.base_url)
    )
    ds9.add_object(create_page["object"])
    ds9.add_object(create_comment["object"])
    assert hosts

    # When the group announces the page and the comment
    await deliver(node, lemmy, announce(lemmy, group, create_page), group)
    await deliver(node, lemmy, announce(lemmy, group, create_comment), group)

    # Then both are stored, from their origin, in the community
    page_id, comment_id = create_page["object"]["id"], create_comment["object"]["id"]
    thread = await thread_of(node, page_id)
    assert (thread["community_id"], thread["title"], thread["reply_count"]) == (community.id, "test post", 1)
    fetched = {r.path for r in ds9.received if r.method == "GET"}
    assert {"/post/1", "/comment/1"} <= fetched

    # When a like (fetched again from ds9) and its undo arrive through the group
    like = rehosted("voting/like_note.json", ds9, ("ds9.lemmy.ml",))
    undo = rehosted("voting/undo_like_note.json", ds9, ("ds9.lemmy.ml",))
    ds9.add_object(like)
    ds9.add_object(undo)
    await deliver(node, lemmy, announce(lemmy, group, like), group)
    assert await node.pool.fetchval("SELECT likes_count FROM posts WHERE ap_id = $1", comment_id) == 1
    await deliver(node, lemmy, announce(lemmy, group, undo), group)
    assert await node.pool.fetchval("SELECT likes_count FROM posts WHERE ap_id = $1", comment_id) == 0

    # When the author deletes the post (Lemmy's Delete, relayed)
    delete = rehosted("deletion/delete_page.json", ds9, ("ds9.lemmy.ml",))
    await deliver(node, lemmy, announce(lemmy, group, delete), group)

    # Then the thread is gone, without a reason shown; nothing was ever relayed by us
    assert (await thread_of(node, page_id))["deleted_at"] is not None
    assert await node.pool.fetchval("SELECT removal_reason FROM posts WHERE ap_id = $1", page_id) == ""
    await no_relay(node)


async def test_a_relayed_like_its_origin_does_not_serve_is_ignored(
    node: InboxNode, lemmy: FakeInstance, ds9: FakeInstance
) -> None:
    group, _ = await follow_group(node, lemmy)
    bob = lemmy.add_actor("bob")
    page = ap.lemmy_page(lemmy, bob, group.id, "Titre", "Corps")
    await deliver(node, lemmy, announce(lemmy, group, page), group)
    forged = ap.like(ds9, ds9.add_actor("eve"), page["object"]["id"])
    item = announce(lemmy, group, forged)
    await deliver(node, lemmy, item, group)
    assert await outcome(node, item) == ("ignored", "relayed activity not found at its origin")
    assert (
        await node.pool.fetchval("SELECT likes_count FROM posts WHERE ap_id = $1", page["object"]["id"]) == 0
    )


async def test_a_reply_whose_parent_is_unknown_waits_then_its_thread_is_backfilled(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given a comment of the followed community answering a post we never received
    group, community = await follow_group(node, lemmy)
    bob = lemmy.add_actor("bob")
    comment = ap.lemmy_comment(lemmy, bob, group.id, lemmy.url("/post/404040"), "Orpheline")
    item = announce(lemmy, group, comment)
    await deliver(node, lemmy, item, group)
    # Then it first waits for its parent
    row = (await node.items())[0]
    assert (row["status"], row["error"]) == ("pending", "waiting: parent post not known yet")

    # When the parent has still not come at the next attempt
    await node.pool.execute(
        "UPDATE inbox_items SET received_at = now() - interval '1 minute', next_attempt_at = now()"
    )
    await node.process()

    # Then the thread is fetched in the background from the comment, and the item is over
    assert await outcome(node, item) == (
        "ignored",
        "parent post unknown: the thread is fetched in the background",
    )
    job = await node.pool.fetchrow("SELECT kind, object_uri, community_id FROM backfill_jobs")
    assert (job["kind"], job["object_uri"], job["community_id"]) == (
        "thread",
        comment["object"]["id"],
        community.id,
    )
    assert await node.count("posts") == 0


# -- moderation by the group ---------------------------------------------------------------


@needs_samples
async def test_lemmy_moderation_samples_remove_lock_pin_and_ban(node: InboxNode, lemmy: FakeInstance) -> None:
    # Given a thread (post/2) and a comment (comment/1) of the followed community
    hosts = ("enterprise.lemmy.ml", "ds9.lemmy.ml", "lemmy-alpha:8541")
    group, community = await follow_group(node, lemmy, "main")
    bob = lemmy.add_actor("bob")
    page = ap.lemmy_page(lemmy, bob, group.id, "Fil à modérer", "Corps")
    page["object"]["id"] = lemmy.url("/post/2")
    await deliver(node, lemmy, announce(lemmy, group, page), group)
    comment = ap.lemmy_comment(lemmy, bob, group.id, lemmy.url("/post/2"), "Un commentaire limite")
    comment["object"]["id"] = lemmy.url("/comment/1")
    await deliver(node, lemmy, announce(lemmy, group, comment), group)
    thread = await thread_of(node, lemmy.url("/post/2"))

    # Lock and Undo{Lock}
    await deliver(
        node, lemmy, announce(lemmy, group, rehosted("community/lock_page.json", lemmy, hosts)), group
    )
    assert (await thread_of(node, lemmy.url("/post/2")))["locked"] is True
    undo_lock = rehosted("community/undo_lock_page.json", lemmy, hosts)
    await deliver(node, lemmy, announce(lemmy, group, undo_lock), group)
    assert (await thread_of(node, lemmy.url("/post/2")))["locked"] is False

    # Add and Remove to/from featured
    await deliver(
        node, lemmy, announce(lemmy, group, rehosted("community/add_featured_post.json", lemmy, hosts)), group
    )
    assert (await thread_of(node, lemmy.url("/post/2")))["pinned"] is True
    unpin = rehosted("community/remove_featured_post.json", lemmy, hosts)
    unpin["id"] = ap.activity_id(lemmy, "Remove")
    await deliver(node, lemmy, announce(lemmy, group, unpin), group)
    assert (await thread_of(node, lemmy.url("/post/2")))["pinned"] is False

    # A moderator's removal (Delete with a summary, by someone else than the author)
    await deliver(
        node, lemmy, announce(lemmy, group, rehosted("deletion/remove_note.json", lemmy, hosts)), group
    )
    row = await node.pool.fetchrow(
        "SELECT deleted_at, removal_reason FROM posts WHERE ap_id = $1", lemmy.url("/comment/1")
    )
    assert row["deleted_at"] is not None
    assert row["removal_reason"] == f"Retiré par la modération de {lemmy.domain} : bad comment"
    assert (await thread_of(node, lemmy.url("/post/2")))["reply_count"] == 0

    # A ban with its content removed (Block, removeData) takes bob's thread away
    block = rehosted("block/block_user.json", lemmy, hosts)
    block["object"], block["target"] = bob.id, group.id
    await deliver(node, lemmy, announce(lemmy, group, block), group)
    assert (await thread_of(node, lemmy.url("/post/2")))["deleted_at"] is not None
    assert thread["community_id"] == community.id
    await no_relay(node)


@needs_samples
async def test_lemmy_update_community_sample_refreshes_the_remote_community(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given the followed group renamed on its server, and Lemmy's Update{Group} by a moderator
    hosts = ("enterprise.lemmy.ml", "ds9.lemmy.ml")
    group, community = await follow_group(node, lemmy, "main")
    group.extra.update(name="The Updated Community", summary="<p>updated 2</p>")
    update = rehosted("community/update_community.json", lemmy, hosts)
    update["object"]["name"] = "Nom falsifié"  # the embedded copy is never used
    # When the group relays it
    await deliver(node, lemmy, announce(lemmy, group, update), group)
    # Then the community takes the title its origin now serves, and the group keeps its key
    async with node.pool.acquire() as conn:
        refreshed = await communities.by_actor(conn, community.actor_id or 0)
        actor = await actors.get_cached(conn, group.id)
    assert refreshed is not None and refreshed.title == "The Updated Community"
    assert actor is not None and actor.public_key_pem == group.public_pem


@needs_samples
async def test_lemmy_undo_remove_restores_what_the_origin_removed_never_a_local_removal(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given a thread with two comments of the followed community
    hosts = ("enterprise.lemmy.ml", "ds9.lemmy.ml")
    group, _ = await follow_group(node, lemmy, "main")
    bob = lemmy.add_actor("bob")
    page = ap.lemmy_page(lemmy, bob, group.id, "Fil", "Corps")
    await deliver(node, lemmy, announce(lemmy, group, page), group)
    first = ap.lemmy_comment(lemmy, bob, group.id, page["object"]["id"], "Premier")
    first["object"]["id"] = lemmy.url("/comment/1")
    second = ap.lemmy_comment(lemmy, bob, group.id, page["object"]["id"], "Second")
    for comment in (first, second):
        await deliver(node, lemmy, announce(lemmy, group, comment), group)

    # When the group's moderator removes the first and undoes it (Lemmy's samples)
    await deliver(
        node, lemmy, announce(lemmy, group, rehosted("deletion/remove_note.json", lemmy, hosts)), group
    )
    assert (await thread_of(node, page["object"]["id"]))["reply_count"] == 1
    undo = rehosted("deletion/undo_remove_note.json", lemmy, hosts)
    await deliver(node, lemmy, announce(lemmy, group, undo), group)

    # Then it is back, counted again
    row = await node.pool.fetchrow(
        "SELECT deleted_at, removal_reason FROM posts WHERE ap_id = $1", first["object"]["id"]
    )
    assert (row["deleted_at"], row["removal_reason"]) == (None, "")
    assert (await thread_of(node, page["object"]["id"]))["reply_count"] == 2

    # When a local moderator removes the second, and an Undo{Delete} of it comes from the group
    moderator_id = await make_user(node.pool, "modo", role="moderator")
    post_id = await node.pool.fetchval("SELECT id FROM posts WHERE ap_id = $1", second["object"]["id"])
    async with node.pool.acquire() as conn:
        await threads.delete_post(
            conn, post_id, User(moderator_id, "modo", "Modo", "moderator", "approved"), reason="Hors charte"
        )
    inner = {
        "id": ap.activity_id(lemmy, "Delete"),
        "type": "Delete",
        "actor": bob.id,
        "object": second["object"]["id"],
    }
    restore = announce(
        lemmy, group, {"id": ap.activity_id(lemmy, "Undo"), "type": "Undo", "actor": bob.id, "object": inner}
    )
    await deliver(node, lemmy, restore, group)

    # Then it stays removed
    assert await outcome(node, restore) == ("ignored", "not removed by its origin: stays as it is")
    assert await node.pool.fetchval("SELECT deleted_at IS NOT NULL FROM posts WHERE id = $1", post_id)


async def test_the_group_acts_only_in_its_own_community(
    node: InboxNode, lemmy: FakeInstance, masto: FakeInstance
) -> None:
    # Given our local public community with a thread and a Mastodon reply in it
    await make_community(node.pool, "medical", visibility="public")
    thread_id, opening = await local_thread(node, "medical")
    alice = masto.add_actor("alice")
    reply = ap.mastodon_note(
        masto, alice, node.group("medical"), "Réponse", in_reply_to=node.url(f"/t/{thread_id}")
    )
    await deliver(node, masto, reply, alice)
    group, _ = await follow_group(node, lemmy)
    bob = lemmy.add_actor("bob")

    # When the followed group relays a comment into our thread, removes, locks and pins there
    comment = announce(
        lemmy, group, ap.lemmy_comment(lemmy, bob, group.id, node.url(f"/p/{opening}"), "Intrus")
    )
    removal = announce(lemmy, group, {"id": ap.activity_id(lemmy, "Delete"), "type": "Delete", "actor": bob.id,
                                      "object": reply["object"]["id"], "summary": "non"})  # fmt: skip
    lock = announce(lemmy, group, {"id": ap.activity_id(lemmy, "Lock"), "type": "Lock", "actor": bob.id,
                                   "object": node.url(f"/t/{thread_id}")})  # fmt: skip
    pin = announce(lemmy, group, {"id": ap.activity_id(lemmy, "Add"), "type": "Add", "actor": bob.id,
                                  "object": node.url(f"/t/{thread_id}"), "target": group.id + "/featured"})  # fmt: skip
    for item in (comment, removal, lock, pin):
        await deliver(node, lemmy, item, group)

    # Then nothing changed in our community
    assert await outcome(node, comment) == ("ignored", "reply to a post of another community")
    assert await outcome(node, removal) == ("ignored", "removal of a post of another community")
    assert (await outcome(node, lock))[0] == (await outcome(node, pin))[0] == "ignored"
    row = await node.pool.fetchrow("SELECT pinned, locked, reply_count FROM threads WHERE id = $1", thread_id)
    assert (row["pinned"], row["locked"], row["reply_count"]) == (False, False, 1)
    assert await node.count("posts", "deleted_at IS NOT NULL") == 0


async def test_an_announce_from_a_group_we_do_not_follow_changes_no_remote_community(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    group, community = await follow_group(node, lemmy, state="rejected")
    bob = lemmy.add_actor("bob")
    page = ap.lemmy_page(lemmy, bob, group.id, "Titre", "Corps")
    await deliver(node, lemmy, announce(lemmy, group, page), group)
    assert await node.count("threads", "community_id = $1", community.id) == 0


# -- bad input -------------------------------------------------------------------------------


async def test_an_object_its_origin_does_not_have_is_ignored_at_once(
    node: InboxNode, lemmy: FakeInstance, masto: FakeInstance
) -> None:
    # Given the group announces a toot its Mastodon server does not have (404)
    group, community = await follow_group(node, lemmy)
    toot = ap.mastodon_note(masto, masto.add_actor("alice"), group.id, "Inventé")
    item = announce(lemmy, group, toot)
    await deliver(node, lemmy, item, group)
    # Then it is ignored at once (no retries), and nothing is stored
    assert await outcome(node, item) == ("ignored", "relayed object not found at its origin")
    assert await node.count("threads", "community_id = $1", community.id) == 0
    assert await node.count("inbox_items", "status = 'pending'") == 0


async def test_an_object_whose_id_is_on_another_host_than_where_it_was_fetched_is_ignored(
    node: InboxNode, lemmy: FakeInstance, masto: FakeInstance
) -> None:
    group, community = await follow_group(node, lemmy)
    alice = masto.add_actor("alice")
    toot = ap.mastodon_note(masto, alice, group.id, "Usurpé")
    # The toot's URL on Mastodon answers a document whose id is on the group's host
    masto.add_response(
        toot["object"]["id"].removeprefix(masto.base_url), dict(toot["object"], id=lemmy.url("/post/9"))
    )
    item = announce(lemmy, group, toot)
    await deliver(node, lemmy, item, group)
    assert await outcome(node, item) == ("ignored", "relayed object not found at its origin")
    assert await node.count("posts") == 0


async def test_a_server_that_stops_answering_is_waited_for_boundedly(
    node: InboxNode, lemmy: FakeInstance, masto: FakeInstance
) -> None:
    # Given a Mastodon server that never answers in time (the fetch deadline: 0.5 s here)
    asked: list[str] = []
    answer = asyncio.Event()  # set once the test has looked: no answer comes in time

    async def hang(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answer.wait(), 5)
        return web.Response(status=200)

    group, community = await follow_group(node, lemmy)
    node.fetcher.limits = Limits(deadline=0.5)
    alice = masto.add_actor("alice")
    toots = [ap.mastodon_note(masto, alice, group.id, f"Message {n}") for n in range(5)]
    for toot in toots:
        masto.add_route("GET", toot["object"]["id"].removeprefix(masto.base_url), hang)
    items = [announce(lemmy, group, toot) for toot in toots]
    for item in items:
        assert (await lemmy.send(node.url("/inbox"), item, actor=group)).status == 202

    # When the worker runs
    started = time.monotonic()
    await node.process()
    took = time.monotonic() - started

    # Then the server was asked once, the activities wait for a later attempt, nothing stored
    assert len(asked) == 1, asked
    assert took < 3, took
    rows = await node.items()
    assert [r["status"] for r in rows] == ["pending"] * 5
    assert all(r["error"].startswith("waiting:") for r in rows)
    assert await node.count("threads", "community_id = $1", community.id) == 0
    answer.set()


async def test_a_busy_origin_429_is_asked_again_later_not_dropped(
    node: InboxNode, lemmy: FakeInstance, masto: FakeInstance
) -> None:
    group, community = await follow_group(node, lemmy)
    alice = masto.add_actor("alice")
    toots = [ap.mastodon_note(masto, alice, group.id, f"Occupé {n}") for n in range(2)]
    for toot in toots:
        masto.add_object(toot["object"], status=429)
        assert (await lemmy.send(node.url("/inbox"), announce(lemmy, group, toot), actor=group)).status == 202
    await node.process()
    rows = await node.items()
    assert [(r["status"], r["error"][:8]) for r in rows] == [("pending", "waiting:")] * 2
    assert len([r for r in masto.received if r.method == "GET" and "/statuses/" in r.path]) == 1
    assert await node.count("threads", "community_id = $1", community.id) == 0


async def test_an_author_of_a_suspended_server_is_not_stored(
    node: InboxNode, lemmy: FakeInstance, masto: FakeInstance
) -> None:
    group, community = await follow_group(node, lemmy)
    alice = masto.add_actor("alice")
    toot = ap.mastodon_note(masto, alice, group.id, "Bloqué")
    masto.add_object(toot["object"])
    async with node.pool.acquire() as conn:
        await policy.suspend_domain(conn, masto.domain, reason="spam")
    item = announce(lemmy, group, toot)
    await deliver(node, lemmy, item, group)
    assert (await outcome(node, item))[0] == "ignored"
    assert await node.count("threads", "community_id = $1", community.id) == 0


async def test_a_members_only_remote_thread_is_not_shown_to_outsiders(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    group, community = await follow_group(node, lemmy, "prive", visibility="members")
    bob = lemmy.add_actor("bob")
    page = ap.lemmy_page(lemmy, bob, group.id, "Réservé aux membres", "Corps confidentiel")
    await deliver(node, lemmy, announce(lemmy, group, page), group)
    thread = await thread_of(node, page["object"]["id"])
    assert thread["community_id"] == community.id
    async with aiohttp.ClientSession() as http, http.get(node.url(f"/t/{thread['id']}")) as response:
        body = await response.text()
    assert response.status == 404
    assert "confidentiel" not in body


async def test_a_flood_from_one_group_does_not_delay_another_sender(
    node: InboxNode, lemmy: FakeInstance, masto: FakeInstance
) -> None:
    # Given 120 Announces of a followed group waiting, then one toot from another server
    await make_community(node.pool, "medical", visibility="public")
    group, community = await follow_group(node, lemmy)
    bob = lemmy.add_actor("bob")
    for n in range(120):
        page = ap.lemmy_page(lemmy, bob, group.id, f"Fil {n}", "Corps")
        assert (await lemmy.send(node.url("/inbox"), announce(lemmy, group, page), actor=group)).status == 202
    alice = masto.add_actor("alice")
    toot = ap.mastodon_note(masto, alice, node.group("medical"), "Une question")
    assert (await masto.send(node.url("/inbox"), toot, actor=alice)).status == 202

    # When the worker takes one batch of 50
    assert await inbox_worker.process_pending(node.pool, node.settings, node.fetcher, 50) == 50

    # Then the other server's toot was in it (the group got the other 49), not 121st in line
    assert (await outcome(node, toot))[0] == "done"
    assert await node.count("threads", "community_id = $1", community.id) == 49
    # And the rest follows, in order, nothing left behind
    await node.process()
    assert await node.count("threads", "community_id = $1", community.id) == 120
    assert await node.count("inbox_items", "status <> 'done'") == 0
