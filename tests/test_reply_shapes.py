"""Shapes ActivityStreams allows that the inbox used to refuse (400): ``inReplyTo`` as a
list, a ``Link``, an embedded object or a collection, and ``type`` as an array; and a
reply addressed to one of our groups whose parent never arrives becomes a thread of its
own after a bounded wait (or, addressed to no group of ours, is dropped with a reason)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from federation import validation
from federation.handlers import create
from tests import inboxnode as ap
from tests.conftest import SHARED_SAMPLES
from tests.fakefedi import FakeInstance
from tests.helpers import make_community
from tests.inboxnode import InboxNode, deliver, fake_fixture, local_thread, node_fixture, outcome

fixture_node = node_fixture()
fixture_masto = fake_fixture("masto", "127.0.0.57")

REAL = SHARED_SAMPLES / "mastodon" / "activities" / "create_note.json"
PARENT = "https://mamot.fr/users/retiolus/statuses/107224244380204526"

SHAPES: dict[str, Callable[[str], Any]] = {
    "list": lambda uri: [uri],
    "list with a Link first": lambda uri: [{"type": "Link", "href": uri}, "https://other.example/x"],
    "Link": lambda uri: {"type": "Link", "href": uri, "mediaType": "application/activity+json"},
    "embedded object": lambda uri: {"id": uri, "type": "Note", "attributedTo": "https://mamot.fr/users/r"},
    "collection": lambda uri: {"type": "Collection", "items": [uri]},
    "ordered collection": lambda uri: {"type": "OrderedCollection", "orderedItems": [{"id": uri}]},
}


def real_reply() -> dict[str, Any]:
    if not REAL.exists():
        pytest.skip(f"{REAL} is absent (shared samples)")
    doc: dict[str, Any] = json.loads(REAL.read_text())
    assert doc["object"]["inReplyTo"] == PARENT
    return doc


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_real_reply_with_its_inreplyto_in_every_allowed_shape_validates(shape: str) -> None:
    # Given Mastodon's real Create{Note} reply with inReplyTo in another shape
    doc = real_reply()
    doc["object"]["inReplyTo"] = SHAPES[shape](PARENT)
    # When the inbox validates it, Then it passes with the one URI handlers read
    assert validation.validate_incoming(doc) == "Create"
    assert doc["object"]["inReplyTo"] == PARENT


def test_a_type_array_validates_as_its_first_known_type() -> None:
    doc = real_reply()
    doc["object"]["type"] = ["https://example.org/ns#Toot", "Note", "Article"]
    doc["type"] = ["Create"]
    assert validation.validate_incoming(doc) == "Create"
    assert (doc["type"], doc["object"]["type"]) == ("Create", "Note")


def test_the_real_payload_itself_is_left_as_it_is() -> None:
    doc = real_reply()
    before = copy.deepcopy(doc)
    assert validation.canonicalise(doc) is False
    assert doc == before


async def test_a_reply_whose_inreplyto_is_a_link_joins_our_thread(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a public thread of ours
    await make_community(node.pool, "medical", visibility="public")
    thread_id, post_id = await local_thread(node, "medical")
    alice = masto.add_actor("alice")
    # When a reply arrives with inReplyTo as a list holding a Link, and its type as an array
    reply = ap.mastodon_note(
        masto, alice, node.group("medical"), "Réponse", in_reply_to=node.url(f"/t/{thread_id}")
    )
    reply["object"]["inReplyTo"] = [{"type": "Link", "href": node.url(f"/t/{thread_id}")}]
    reply["object"]["type"] = ["Note", "Article"]
    await deliver(node, masto, reply, alice)
    # Then it is a reply in that thread (the inbox took it: 202)
    row = await node.pool.fetchrow(
        "SELECT thread_id, parent_id FROM posts WHERE ap_id = $1", reply["object"]["id"]
    )
    assert (row["thread_id"], row["parent_id"]) == (thread_id, post_id)


async def test_a_group_reply_whose_parent_never_arrives_becomes_a_thread_after_a_bounded_wait(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a reply addressed to our group, to a post nobody can give us
    await make_community(node.pool, "medical", visibility="public")
    alice = masto.add_actor("alice")
    reply = ap.mastodon_note(
        masto, alice, node.group("medical"), "Question orpheline\nSuite", in_reply_to=masto.url("/gone/1")
    )
    # When it arrives, Then it waits for its parent
    await deliver(node, masto, reply, alice)
    item = await node.pool.fetchrow(
        "SELECT status, error FROM inbox_items WHERE activity_id = $1", reply["id"]
    )
    assert (item["status"], item["error"]) == ("pending", "waiting: parent post not known yet")
    assert await node.count("threads") == 0
    # When the wait is over and the worker tries again
    await node.pool.execute(
        "UPDATE inbox_items SET received_at = now() - $1::interval, next_attempt_at = now() WHERE activity_id = $2",
        create.ORPHAN_WAIT,
        reply["id"],
    )
    await node.process()
    # Then it is a thread of its own, titled by its first line
    assert await outcome(node, reply) == (
        "done",
        f"thread {await node.pool.fetchval('SELECT id FROM threads')}: parent never arrived",
    )
    assert await node.pool.fetchval("SELECT title FROM threads") == "Question orpheline"


async def test_a_reply_to_a_post_we_do_not_store_addressed_to_no_group_is_dropped_with_a_reason(
    node: InboxNode, masto: FakeInstance
) -> None:
    alice = masto.add_actor("alice")
    reply = ap.mastodon_note(
        masto, alice, masto.url("/users/bob"), "Ailleurs", in_reply_to=masto.url("/gone/2")
    )
    await deliver(node, masto, reply, alice)
    assert await outcome(node, reply) == ("ignored", "reply to a post we do not store")


@pytest.mark.parametrize(
    "value", [12, [], {"type": "Link"}, [{"type": "Note"}], {"type": "Collection", "items": []}]
)
def test_a_reply_target_naming_no_uri_is_refused_clearly(value: Any) -> None:
    doc = real_reply()
    doc["object"]["inReplyTo"] = value
    with pytest.raises(validation.ValidationError) as caught:
        validation.validate_incoming(doc)
    assert "object.inReplyTo" in str(caught.value.reason)
