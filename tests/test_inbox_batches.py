"""The worker's batches: new threads stored together by one statement, in order with the
other activities of the batch, each relayed as received; a new thread's version."""

from __future__ import annotations

import json
from typing import Any

from tests import inboxnode as ap
from tests.fakefedi import FakeActor, FakeInstance
from tests.inboxnode import InboxNode, fake_fixture, node_fixture

fixture_node = node_fixture("medical")


fixture_masto = fake_fixture("masto", "127.0.0.45")


def note(masto: FakeInstance, node: InboxNode, actor: FakeActor, title: str) -> dict[str, Any]:
    return ap.mastodon_note(masto, actor, node.group("medical"), f"{title}\n\nUn cas à discuter.")


async def deliver(masto: FakeInstance, node: InboxNode, actor: FakeActor, *docs: dict[str, Any]) -> None:
    """Store ``docs`` in this order (nothing processed yet: one batch for the worker)."""
    for doc in docs:
        assert (await masto.send(node.url("/inbox"), doc, actor=actor)).status == 202


async def outcomes(node: InboxNode) -> list[tuple[str, str, str]]:
    return [(r["activity_type"], r["status"], r["outcome"]) for r in await node.items()]


async def test_new_threads_of_one_batch_each_get_their_thread_and_relay_events_in_order(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given five new threads waiting in the inbox
    alice = masto.add_actor("alice")
    docs = [note(masto, node, alice, f"Question {i}") for i in range(5)]
    await deliver(masto, node, alice, *docs)

    # When the worker processes them (one batch)
    assert await node.process() == 5

    # Then each is a thread, in arrival order
    titles = [r["title"] for r in await node.pool.fetch("SELECT title FROM threads ORDER BY id")]
    assert titles == [f"Question {i}" for i in range(5)]
    assert [o[1] for o in await outcomes(node)] == ["done"] * 5
    # And the group relays each activity as received, then announces its Page
    events = await node.events()
    assert [e["kind"] for e in events] == ["relay.announce", "relay.announce_page"] * 5
    assert [e["activity"] for e in events[::2]] == [json.loads(json.dumps(d)) for d in docs]
    thread_ids = [r["id"] for r in await node.pool.fetch("SELECT id FROM threads ORDER BY id")]
    assert [e["thread_id"] for e in events[1::2]] == thread_ids


async def test_one_note_created_twice_in_a_batch_makes_one_thread(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given the same note sent in two Create activities (two activity ids), among others
    alice = masto.add_actor("alice")
    first = note(masto, node, alice, "Question")
    again = {**first, "id": first["id"] + "-again"}
    await deliver(masto, node, alice, first, note(masto, node, alice, "Autre"), again)

    # When one batch processes them
    await node.process()

    # Then the note is one thread, and the second Create is ignored
    assert await node.count("threads") == 2
    assert [o[:2] for o in await outcomes(node)] == [("Create", "done")] * 2 + [("Create", "ignored")]
    assert (await outcomes(node))[2][2] == "object already stored"
    assert await node.count("outbox_events") == 4


async def test_a_delete_after_its_create_in_one_batch_deletes_the_new_thread(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a new thread, its deletion, then another new thread, waiting together
    alice = masto.add_actor("alice")
    created, later = note(masto, node, alice, "Supprimée"), note(masto, node, alice, "Gardée")
    await deliver(masto, node, alice, created, ap.delete_of(masto, alice, created["object"]["id"]), later)

    # When one batch processes them
    await node.process()

    # Then the Delete saw the thread stored just before it, and the last one stands
    assert [o[:2] for o in await outcomes(node)] == [
        ("Create", "done"),
        ("Delete", "done"),
        ("Create", "done"),
    ]
    rows = await node.pool.fetch(
        "SELECT t.title, p.deleted_at IS NOT NULL AS deleted FROM threads t JOIN posts p ON p.thread_id = t.id"
        " ORDER BY t.id"
    )
    assert [(r["title"], r["deleted"]) for r in rows] == [("Supprimée", True), ("Gardée", False)]


async def test_a_delete_before_its_create_in_one_batch_wins(node: InboxNode, masto: FakeInstance) -> None:
    # Given a Delete that arrives before the Create of its note, in one batch
    alice = masto.add_actor("alice")
    created = note(masto, node, alice, "Trop tard")
    await deliver(masto, node, alice, ap.delete_of(masto, alice, created["object"]["id"]), created)

    # When one batch processes them
    await node.process()

    # Then the note is never stored, nor relayed
    assert (await outcomes(node))[1] == ("Create", "ignored", "object already deleted")
    assert await node.count("threads") == 0
    assert await node.count("outbox_events") == 0


async def test_a_new_thread_keeps_its_first_version_until_a_reply(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a new remote thread
    alice = masto.add_actor("alice")
    created = note(masto, node, alice, "Question")
    await deliver(masto, node, alice, created)
    await node.process()
    # Then its opening post, written in the same transaction, left the version alone
    assert await node.pool.fetchval("SELECT version FROM threads") == 0

    # When a reply arrives
    reply = ap.lemmy_comment(masto, alice, node.group("medical"), created["object"]["id"], "Réponse")
    await deliver(masto, node, alice, reply)
    await node.process()

    # Then the thread's version moved: a cached page of it is stale
    assert await node.pool.fetchval("SELECT version FROM threads") > 0
