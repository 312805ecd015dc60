"""The inbox endpoint end to end: a fake Mastodon/Lemmy server POSTs signed activities to
our node served on loopback; our node fetches the sender's key over HTTP, stores the
activity, and the worker applies it."""

from __future__ import annotations

from tests import inboxnode as ap
from tests.fakefedi import FakeInstance
from tests.helpers import make_community
from tests.inboxnode import InboxNode, fake_fixture, node_fixture

fixture_node = node_fixture()


fixture_masto = fake_fixture("masto", "127.0.0.41")


async def test_a_signed_follow_is_stored_once_and_answered_202(node: InboxNode, masto: FakeInstance) -> None:
    # Given a public community and a Mastodon user
    await make_community(node.pool, "juridique", visibility="public")
    alice = masto.add_actor("alice")
    follow = ap.follow(masto, alice, node.group("juridique"))

    # When the Follow is delivered twice to the shared inbox
    first = await masto.send(node.url("/inbox"), follow, actor=alice)
    second = await masto.send(node.url("/inbox"), follow, actor=alice)

    # Then both answers are 202 (and set no cookie: servers are not browsers), one item is
    # stored, and our node fetched alice's key over HTTP
    assert (first.status, second.status) == (202, 202)
    assert not any(k.lower() == "set-cookie" for k in first.headers)
    assert await node.count("inbox_items") == 1
    assert any(r.method == "GET" and r.path == "/users/alice" and r.signature_ok for r in masto.received)
    # and the worker accepts the follow once
    assert await node.process() == 1
    assert await node.count("community_followers", "state = 'accepted'") == 1
    assert [e["kind"] for e in await node.events()] == ["follow.accept"]
