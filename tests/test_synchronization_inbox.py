"""FEP-8fcf honoured: a followed group's signed ``Collection-Synchronization`` header,
compared with our follow and reconciled with its partial collection, over real HTTP
(our node on loopback, the group on a fake server that signs and verifies)."""

from __future__ import annotations

from typing import Any

import asyncpg

from federation import actors, synchronization
from node import communities
from node.communities import Community
from tests.delivery_kit import deliver_all
from tests.fakefedi import FakeActor, FakeInstance
from tests.inboxnode import AS_CONTEXT, InboxNode, activity_id, fake_fixture, node_fixture

fixture_node = node_fixture()
fixture_lemmy = fake_fixture("lemmy", "127.0.0.61", software="lemmy")

PARTIAL = "/c/lecture/followers_synchronization"


async def _followed_group(
    node: InboxNode, fake: FakeInstance, state: str, *, follower: str = "instance"
) -> tuple[FakeActor, Community, str]:
    """The fake's Group ``lecture``, a remote community of ours, and our follow of it in
    ``state`` by our instance actor; returns the group, the community, our follower's id."""
    group = fake.add_actor("lecture", type="Group")
    async with node.pool.acquire() as conn:
        stored = await actors.store_remote(conn, group.document(), group.id)
        community = await communities.upsert_remote(
            conn,
            actor_id=stored.id,
            name=f"lecture@{fake.host}",
            title="Lecture",
            description="",
            visibility="public",
        )
        me = await actors.instance_actor(conn, node.settings)
        await conn.execute(
            "INSERT INTO group_follows (community_id, follower_id, follow_activity_id, state, decided_at)"
            " VALUES ($1, $2, $3, $4, now())",
            community.id, me.id, node.url("/activities/our-follow"), state,
        )  # fmt: skip
    return group, community, me.uri


def _update(fake: FakeInstance, group: FakeActor) -> dict[str, Any]:
    """The group refreshes its profile: an activity every follower gets."""
    return {
        "@context": AS_CONTEXT,
        "id": activity_id(fake, "Update"),
        "type": "Update",
        "actor": group.id,
        "object": group.document(),
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "cc": [f"{group.id}/followers"],
    }


async def _deliver(
    node: InboxNode, fake: FakeInstance, group: FakeActor, listed: list[str], *, variant: str = "all_headers",
    url: str | None = None,
) -> None:  # fmt: skip
    """The group delivers an activity with the header for its followers on our server
    (``listed``), and serves that list at its partial collection."""
    fake.add_object({"id": fake.url(PARTIAL), "type": "OrderedCollection", "orderedItems": listed})
    header = synchronization.SyncHeader(
        f"{group.id}/followers", url or fake.url(PARTIAL), synchronization.digest_of(listed)
    )
    sent = await fake.send(
        node.url("/inbox"), _update(fake, group), group, variant=variant,
        headers={"Collection-Synchronization": header.value()},
    )  # fmt: skip
    assert sent.status == 202, sent.text
    synchronization._checked.clear()  # each delivery of these tests is a new moment
    await node.process()


async def _state(pool: asyncpg.Pool, community: Community) -> str:
    state: str = await pool.fetchval("SELECT state FROM group_follows WHERE community_id = $1", community.id)
    return state


def _collection_fetches(fake: FakeInstance) -> int:
    return sum(1 for r in fake.received if r.method == "GET" and r.path == PARTIAL)


async def test_a_matching_digest_costs_no_fetch(node: InboxNode, lemmy: FakeInstance) -> None:
    # Given our accepted follow of a group on another server
    group, community, me = await _followed_group(node, lemmy, "accepted")
    # When the group's delivery says its followers here are exactly our instance actor
    await _deliver(node, lemmy, group, [me])
    # Then nothing is fetched and nothing changes
    assert _collection_fetches(lemmy) == 0
    assert await _state(node.pool, community) == "accepted"
    item = (await node.items())[-1]
    assert synchronization.parse_header(item["sync_header"]) is not None


async def test_a_follow_the_group_no_longer_lists_is_dropped(node: InboxNode, lemmy: FakeInstance) -> None:
    # Given our accepted follow
    group, community, _me = await _followed_group(node, lemmy, "accepted")
    # When the group says (signed) that nobody here follows it, and its list agrees
    await _deliver(node, lemmy, group, [])
    # Then its partial collection was read with a signed GET and our follow is refused
    fetch = next(r for r in lemmy.received if r.method == "GET" and r.path == PARTIAL)
    assert fetch.signature_ok, fetch.signature_error
    assert await _state(node.pool, community) == "rejected"


async def test_a_pending_follow_the_group_lists_is_accepted(node: InboxNode, lemmy: FakeInstance) -> None:
    # Given our follow still waiting for the group's Accept (lost on the way)
    group, community, me = await _followed_group(node, lemmy, "pending")
    # When the group lists our instance actor among its followers
    await _deliver(node, lemmy, group, [me])
    # Then the follow is taken as accepted
    assert _collection_fetches(lemmy) == 1
    assert await _state(node.pool, community) == "accepted"


async def test_a_follow_we_undid_is_undone_again(node: InboxNode, lemmy: FakeInstance) -> None:
    # Given a follow we undid (the last member left) whose Undo never arrived
    group, community, me = await _followed_group(node, lemmy, "undone")
    # When the group still lists our instance actor
    await _deliver(node, lemmy, group, [me])
    # Then an Undo{Follow} of our old Follow goes to the group's inbox, signed by our actor
    await deliver_all(node.settings, node.pool)
    undo = await lemmy.wait_for(lambda r: r.method == "POST" and r.path == group.inbox_path)
    assert undo.signature_ok, undo.signature_error
    assert undo.json["type"] == "Undo" and undo.json["actor"] == me
    assert undo.json["object"] == {
        "type": "Follow", "actor": me, "object": group.id, "id": node.url("/activities/our-follow"),
    }  # fmt: skip
    assert await _state(node.pool, community) == "undone"


async def test_an_unsigned_or_foreign_header_is_ignored(node: InboxNode, lemmy: FakeInstance) -> None:
    # Given our accepted follow
    group, community, _me = await _followed_group(node, lemmy, "accepted")
    # When the header comes unsigned (the signature covers the usual headers only)
    await _deliver(node, lemmy, group, [], variant="ok")
    # Then it is not even kept
    assert (await node.items())[-1]["sync_header"] is None
    # And when signed but naming a collection on another server, it is not fetched
    await _deliver(
        node, lemmy, group, [], url="https://elsewhere.example/c/lecture/followers_synchronization"
    )
    assert _collection_fetches(lemmy) == 0
    assert await _state(node.pool, community) == "accepted"
