"""Boosts (``Announce``) of our threads and posts by people elsewhere: counted once per
actor, taken back by ``Undo``, shown on the thread page (« partagé N fois »); a group's
relay of a post is not a boost."""

from __future__ import annotations

from typing import Any

from tests import inboxnode as ap
from tests.fakefedi import FakeActor, FakeInstance
from tests.helpers import make_community, new_client
from tests.inboxnode import InboxNode, deliver, fake_fixture, local_thread, node_fixture, outcome

fixture_node = node_fixture()
fixture_masto = fake_fixture("masto", "127.0.0.54")
fixture_lemmy = fake_fixture("lemmy", "127.0.0.55", "lemmy")


def boost_of(fake: FakeInstance, actor: FakeActor, object_uri: str) -> dict[str, Any]:
    """Announce of a post as Mastodon sends a boost (tests/samples/mastodon/announce_boost.json)."""
    return {"@context": ap.AS_CONTEXT, "id": ap.activity_id(fake, "Announce"), "type": "Announce",
            "actor": actor.id, "published": "2026-01-01T00:00:00Z", "to": [ap.PUBLIC],
            "cc": [f"{actor.id}/followers", object_uri], "object": object_uri}  # fmt: skip


async def shares(node: InboxNode, post_id: int) -> int:
    count: int = await node.pool.fetchval("SELECT shares_count FROM posts WHERE id = $1", post_id)
    return count


async def test_boosts_of_our_thread_are_counted_once_per_person_and_shown(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a public thread of ours
    await make_community(node.pool, "medical", visibility="public")
    thread_id, post_id = await local_thread(node, "medical")
    alice, bob = masto.add_actor("alice"), masto.add_actor("bob")
    # When two people of a Mastodon server boost it, one of them twice
    first = boost_of(masto, alice, node.url(f"/t/{thread_id}"))
    await deliver(node, masto, first, alice)
    await deliver(node, masto, boost_of(masto, alice, node.url(f"/t/{thread_id}")), alice)
    await deliver(node, masto, boost_of(masto, bob, node.url(f"/t/{thread_id}")), bob)
    # Then the opening post counts two shares, and the thread page says so
    assert await shares(node, post_id) == 2
    async with new_client(node.app) as browser:
        page = await browser.get(f"/t/{thread_id}")
    assert "partagé 2 fois" in page.text
    # When alice takes her boost back
    undo = {"@context": ap.AS_CONTEXT, "id": ap.activity_id(masto, "Undo"), "type": "Undo",
            "actor": alice.id, "to": [ap.PUBLIC], "object": first}  # fmt: skip
    await deliver(node, masto, undo, alice)
    # Then one share is left
    assert await shares(node, post_id) == 1


async def test_a_boost_of_a_reply_counts_on_the_reply(node: InboxNode, masto: FakeInstance) -> None:
    # Given a reply in a public thread of ours
    await make_community(node.pool, "medical", visibility="public")
    thread_id, _ = await local_thread(node, "medical")
    reply_id = await node.pool.fetchval(
        "INSERT INTO posts (thread_id, author_id, source, content_html)"
        " SELECT $1, author_id, 'Réponse', '<p>Réponse</p>' FROM threads WHERE id = $1 RETURNING id",
        thread_id,
    )
    alice = masto.add_actor("alice")
    # When it is boosted
    await deliver(node, masto, boost_of(masto, alice, node.url(f"/p/{reply_id}")), alice)
    # Then the reply counts it
    assert await shares(node, reply_id) == 1


async def test_a_groups_announce_of_a_post_is_a_relay_not_a_boost(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given a public thread of ours, and a Lemmy group that relays it by id
    await make_community(node.pool, "medical", visibility="public")
    thread_id, post_id = await local_thread(node, "medical")
    group = lemmy.add_actor("tenforward", type="Group")
    relay = boost_of(lemmy, group, node.url(f"/t/{thread_id}"))
    # When its Announce arrives
    await deliver(node, lemmy, relay, group)
    # Then nothing is counted
    assert await outcome(node, relay) == ("ignored", "a group's relay of a post, not a boost")
    assert await shares(node, post_id) == 0


async def test_a_boost_of_what_we_do_not_store_changes_nothing(node: InboxNode, masto: FakeInstance) -> None:
    alice = masto.add_actor("alice")
    boost = boost_of(masto, alice, masto.url("/users/carl/statuses/1"))
    await deliver(node, masto, boost, alice)
    assert await outcome(node, boost) == ("ignored", "boost of a post we do not store")
    assert await node.count("post_shares") == 0
