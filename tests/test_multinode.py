"""Three real nodes federating over loopback (issue 3, quality bars).

Each node is a ``vbg-node serve`` process with its own database, its own loopback
address and its workers inside ``serve``; signatures are checked everywhere, every
node is in the default ``allowlist`` mode with its partners listed by
``vbg-node admin allow-domain``. A members-only community of node A is followed by
nodes B and C once A's moderators approve their instances; a thread on A reaches
them, a reply written on B reaches A and is relayed to C, a delete on A reaches B and
C. B and C do not store threads of remote communities yet (next issue): what they
received is read from their inbox (verified, validated, handled).

A fake Mastodon server then walks the Mastodon interop scenario against node A's
public community: WebFinger, follow, Accept, the new thread as a boost, a reply that
shows in the thread page.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from federation import remote
from federation.errors import FetchError
from federation.handlers import follow as follow_handler
from node import threads
from tests import inboxnode as ap
from tests.fakefedi import FakeInstance
from tests.helpers import eventually
from tests.interop import NodeSpec, RealNode, real_nodes

pytestmark = pytest.mark.federation

AS_JSON = "application/activity+json"


@pytest.fixture(scope="module")
async def nodes(
    server_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, RealNode]]:
    specs = [
        NodeSpec("a", "127.0.0.21", public_communities=("general",), members_communities=("juridique",)),
        NodeSpec("b", "127.0.0.22"),
        NodeSpec("c", "127.0.0.23"),
    ]
    async with real_nodes(server_dsn, template_db, tmp_path_factory.mktemp("nodes"), specs) as started:
        # Partner nodes list each other (allowlist mode is the default of a new node).
        await asyncio.gather(
            *(
                node.admin("allow-domain", other.domain)
                for node in started.values()
                for other in started.values()
                if other is not node
            )
        )
        yield started


async def accepted_follow(node: RealNode, follow_id: str) -> str | None:
    answer: str | None = await node.pool.fetchval(
        "SELECT answer FROM follow_answers WHERE follow_id = $1", follow_id
    )
    return answer


async def follower_state(node: RealNode, community: str, actor_uri: str) -> str | None:
    state: str | None = await node.pool.fetchval(
        """SELECT f.state FROM community_followers f JOIN actors a ON a.id = f.actor_id
           JOIN communities c ON c.id = f.community_id WHERE c.name = $1 AND a.uri = $2""",
        community,
        actor_uri,
    )
    return state


async def follow_after_approval(a: RealNode, follower: RealNode, community: str) -> None:
    """``follower``'s instance follows ``community`` of A; A's moderators approve it."""
    async with follower.pool.acquire() as conn:
        follow_id = await remote.follow_remote_group(
            conn, follower.settings, follower.fetcher, a.group(community)
        )
    instance_actor = follower.url("/actor")
    # Then A holds the follow, pending: the instance is not approved yet
    await eventually(
        lambda: _is(follower_state(a, community, instance_actor), "pending"),
        f"A records {follower.name}'s follow",
    )
    assert await accepted_follow(follower, follow_id) is None
    # When A's moderators approve the instance
    async with a.pool.acquire() as conn:
        assert await follow_handler.approve_instance(conn, follower.domain, None) == 1
    # Then the follow is accepted, and the Accept reaches the follower
    assert await eventually(lambda: accepted_follow(follower, follow_id), "the Accept arrives") == "accept"
    assert await follower_state(a, community, instance_actor) == "accepted"
    # and a Follow, meant for one actor, is never served at its id, even to that actor
    assert await signed_get(a, follow_id) is None


async def _is(value: Any, wanted: Any) -> bool:
    return bool(await value == wanted)


async def signed_get(node: RealNode, url: str) -> dict[str, Any] | None:
    """``url`` fetched by ``node``'s guarded fetcher (signed by its instance actor); None on 404."""
    try:
        doc: dict[str, Any] = await node.fetcher.fetch_object(url)
    except FetchError as exc:
        if exc.remote_status in (404, 410):
            return None
        raise
    return doc


async def unsigned_status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, headers={"Accept": AS_JSON}) as response:
        return response.status


async def test_three_nodes_share_a_members_only_community(nodes: dict[str, RealNode]) -> None:
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    group = a.group("juridique")
    # B and C are partners too: each may read what the other sends to A's community.
    for node, other in ((b, c), (c, b)):
        async with node.pool.acquire() as conn:
            await follow_handler.approve_instance(conn, other.domain, None)

    # Given B and C follow A's members-only community, each once A approved its instance
    await follow_after_approval(a, b, "juridique")
    await follow_after_approval(a, c, "juridique")

    # When a member of A opens a thread there
    amina = await a.member("amina")
    created = await a.new_thread("juridique", amina, "Ordonnance de protection", "Quels délais en 2025 ?")
    page_id = a.url(f"/t/{created.thread_id}")

    # Then B and C receive it, signed and verified, as the group's relay of the member's Create
    # (FEP-1b12: the group is the relay, no second bare Create from the member)
    for node in (b, c):
        relayed = await node.processed_item(
            "document->>'type' = 'Announce' AND document->'object'->'object'->>'id' = $1", page_id
        )
        assert relayed["actor_uri"] == group
        create = relayed["document"]["object"]
        assert (create["type"], create["actor"]) == ("Create", a.url("/u/amina"))
        page = create["object"]
        assert (page["type"], page["name"], page["audience"]) == ("Page", "Ordonnance de protection", group)
        assert "https://www.w3.org/ns/activitystreams#Public" not in page["to"] + page["cc"]
        # A's group vouches for A's member: the embedded Create is used and handled, not failed
        assert relayed["status"] != "failed" and relayed["error"] == "", relayed["error"]
        # remote communities are not stored yet (next issue): the thread is understood, not kept
        assert relayed["status"] == "ignored"
        assert await node.inbox_item("document->>'type' = 'Create'") is None
    # And members-only content stays readable by approved partners only
    assert (await signed_get(b, page_id) or {}).get("name") == "Ordonnance de protection"
    assert await unsigned_status(page_id) == 404
    assert await unsigned_status(create["id"]) == 404

    # When a member of B replies to the thread, to A's group
    bruno = await b.member("bruno")
    async with b.pool.acquire() as conn:
        note_id = await remote.reply_to_remote_post(
            conn, b.settings, b.fetcher, user_id=bruno.id, group_uri=group, in_reply_to=page_id,
            body="Le juge statue sous **six jours**.",
        )  # fmt: skip
    create_id = note_id.split("#", 1)[0]

    # Then A stores the reply in the thread, by B's member
    stored = await eventually(
        lambda: a.pool.fetchrow(
            """SELECT p.thread_id, p.content_html, a.uri AS author FROM posts p
               JOIN actors a ON a.id = p.remote_author_id WHERE p.ap_id = $1""",
            note_id,
        ),
        "A stores B's reply",
    )
    assert stored["thread_id"] == created.thread_id
    assert stored["author"] == b.url("/u/bruno")
    assert "<strong>six jours</strong>" in stored["content_html"]
    # And A's group relays it to C, which refetches B's Create from B and handles it
    relayed = await c.processed_item(
        "document->>'type' = 'Announce' AND document->'object'->>'id' = $1", create_id
    )
    assert relayed["actor_uri"] == group
    assert relayed["status"] == "ignored" and "do not store" in relayed["outcome"], dict(relayed)
    # and back to B, where it came from (every follower instance, the author's too: its
    # other users follow the group), which knows its own activity and leaves it
    back = await b.processed_item(
        "document->>'type' = 'Announce' AND document->'object'->>'id' = $1", create_id
    )
    assert (back["status"], back["outcome"]) == ("ignored", "our own activity, relayed back")
    ledger = await eventually(
        lambda: a.pool.fetchval(
            "SELECT array_agg(DISTINCT domain) FROM deliveries_ledger WHERE object_uri = $1", note_id
        ),
        "A's ledger lists the relay",
    )
    assert c.domain in ledger and b.domain in ledger

    # When A's member deletes the thread's opening post
    async with a.pool.acquire() as conn:
        await threads.delete_post(conn, created.post_id, amina)

    # Then B and C receive the Delete and remember the object as deleted
    for node in (b, c):
        deleted = await node.processed_item(
            "document->>'type' = 'Delete' AND document->'object'->>'id' = $1", page_id
        )
        assert deleted["status"] == "done", dict(deleted)
        assert (
            await node.pool.fetchval("SELECT reason FROM remote_tombstones WHERE object_id = $1", page_id)
            == "deleted"
        )
    # And the thread is a Tombstone for them now; its Create is no longer served
    assert await signed_get(c, page_id) is None
    assert await signed_get(c, create["id"]) is None


async def test_a_mastodon_user_follows_a_public_community_and_replies(nodes: dict[str, RealNode]) -> None:
    a = nodes["a"]
    async with FakeInstance("127.0.0.31", software="mastodon") as masto:
        await a.admin("allow-domain", masto.domain)
        alice = masto.add_actor("alice")

        # Given a Mastodon user finds the community by @general@domain (WebFinger)
        async with aiohttp.ClientSession() as session:
            url = a.url(f"/.well-known/webfinger?resource=acct:general@{a.domain}")
            async with session.get(url) as response:
                assert response.status == 200
                jrd = await response.json(content_type=None)
        group_id = next(link["href"] for link in jrd["links"] if link.get("type") == AS_JSON)
        group = (await masto.fetch(group_id, actor=alice)).json()
        assert (group["type"], group["preferredUsername"]) == ("Group", "general")

        # When she follows it
        follow = ap.follow(masto, alice, group_id)
        assert (await masto.send(group["inbox"], follow, actor=alice)).status == 202

        # Then she gets a signed Accept embedding her Follow with plain URIs
        accept = await masto.wait_for(
            lambda r: r.method == "POST" and (r.json or {}).get("type") == "Accept", within=20
        )
        assert accept.signature_ok, accept.signature_error
        assert accept.json["object"]["id"] == follow["id"]
        assert (accept.json["object"]["actor"], accept.json["object"]["object"]) == (alice.id, group_id)

        # When a member of the node opens a thread in the community
        amina = await a.member(f"amina{uuid.uuid4().hex[:6]}")
        created = await a.new_thread("general", amina, "Accueil aux urgences", "Une fiche réflexe ?")
        page_id = a.url(f"/t/{created.thread_id}")

        # Then Mastodon gets the group's boost of the Page by its id (docs/federation.md), and
        # the Page it fetches there has its title and link
        boost = await masto.wait_for(
            lambda r: (r.json or {}).get("type") == "Announce" and r.json.get("object") == page_id,
            within=20,
        )
        assert boost.signature_ok and boost.json["actor"] == group_id
        page = (await masto.fetch(page_id, actor=alice)).json()
        assert (page["type"], page["name"], page["url"]) == ("Page", "Accueil aux urgences", page_id)

        # When she replies, mentioning the group as Mastodon does
        reply = ap.mastodon_note(masto, alice, group_id, "Oui, affichée au box 3.", in_reply_to=page_id)
        assert (await masto.send(a.url("/inbox"), reply, actor=alice)).status == 202

        # Then the reply shows in the thread page on the node
        async def thread_page_shows_reply() -> bool:
            async with aiohttp.ClientSession() as session, session.get(page_id) as response:
                return response.status == 200 and "affichée au box 3" in await response.text()

        await eventually(thread_page_shows_reply, "the reply appears in the thread page")
