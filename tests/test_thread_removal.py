"""Removing a thread's opening post removes the thread (NodeBB and Lemmy remove the
topic): a remote author's Delete, or a moderator's removal. It leaves every list and
search, its ActivityPub id answers a Tombstone (410), and the Delete goes out."""

from __future__ import annotations

from federation import policy
from node import search, threads
from node.sessions import User
from tests import inboxnode as ap
from tests.fakefedi import FakeInstance
from tests.helpers import make_community, make_user, new_client
from tests.inboxnode import InboxNode, deliver, fake_fixture, local_thread, node_fixture

fixture_node = node_fixture()
fixture_masto = fake_fixture("masto", "127.0.0.56")

AS_JSON = {"accept": "application/activity+json"}


async def test_a_remote_authors_delete_of_an_opening_note_removes_the_thread(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a thread opened by a Mastodon toot mentioning a public group (its first line is the title)
    await make_community(node.pool, "medical", visibility="public")
    alice = masto.add_actor("alice")
    create = ap.mastodon_note(masto, alice, node.group("medical"), "Signalement confidentiel\nDétails du cas")
    await deliver(node, masto, create, alice)
    thread_id = await node.pool.fetchval("SELECT id FROM threads")
    async with new_client(node.app) as browser:
        assert "Signalement confidentiel" in (await browser.get("/c/medical")).text
    async with node.pool.acquire() as conn:
        assert (await search.search(conn, "confidentiel", None)).results != []
    # When its author deletes the toot
    await deliver(node, masto, ap.delete_of(masto, alice, create["object"]["id"]), alice)
    # Then the thread is gone from the community's list, the home page and search
    assert await node.pool.fetchval("SELECT deleted_at IS NOT NULL FROM threads WHERE id = $1", thread_id)
    async with new_client(node.app) as browser:
        assert "Signalement confidentiel" not in (await browser.get("/c/medical")).text
        assert "Signalement confidentiel" not in (await browser.get("/")).text
        assert (await browser.get(f"/t/{thread_id}")).status_code == 404
    async with node.pool.acquire() as conn:
        assert (await search.search(conn, "confidentiel", None)).results == []
    # And the group relays the Delete to its followers
    relayed = await node.events("relay.announce")
    assert relayed[-1]["activity"]["type"] == "Delete"


async def test_a_moderators_removal_of_an_opening_post_removes_the_thread(node: InboxNode) -> None:
    # Given a public thread of a member
    await make_community(node.pool, "medical", visibility="public")
    thread_id, post_id = await local_thread(node, "medical", title="Titre à retirer")
    moderator_id = await make_user(node.pool, "modo", role="moderator")
    moderator = User(moderator_id, "modo", "Modo", "moderator", "approved")
    # When a moderator removes its opening post
    async with node.pool.acquire() as conn:
        await threads.delete_post(conn, post_id, moderator, "Données personnelles")
        await policy.set_federation_mode(conn, "open")
    # Then the thread leaves the lists, its id answers a Tombstone, and the Delete is queued
    async with new_client(node.app) as browser:
        assert "Titre à retirer" not in (await browser.get("/c/medical")).text
        document = await browser.get(f"/t/{thread_id}", headers=AS_JSON)
    assert document.status_code == 410 and document.json()["type"] == "Tombstone"
    assert [e["kind"] for e in await node.events()] == ["post.deleted"]


async def test_an_author_deleting_their_own_opening_post_keeps_the_thread(node: InboxNode) -> None:
    # Given a thread and its author
    await make_community(node.pool, "medical", visibility="public")
    thread_id, post_id = await local_thread(node, "medical", title="Fil gardé")
    author = User(
        await node.pool.fetchval("SELECT author_id FROM threads"), "amina", "Amina", "member", "approved"
    )
    # When the author deletes the opening post, Then the thread stays (its answers with it)
    async with node.pool.acquire() as conn:
        await threads.delete_post(conn, post_id, author)
    assert await node.pool.fetchval("SELECT deleted_at FROM threads WHERE id = $1", thread_id) is None
