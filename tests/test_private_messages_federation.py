"""Private messages between servers (federation.private_messages), against fake servers
on loopback that sign, verify and record (tests/fakefedi.py).

Out: only the recipient's personal inbox gets a Create{Note} addressed to them alone;
what waits in ``activities`` is ciphertext. In: a direct Note to one of our members
becomes a conversation, sealed while it waits in ``inbox_items``; the messages policy,
the member's block and preferences drop it. Served: a message and its context answer
only a signed GET from a participant's server.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx

from node import encryption, messages
from node.errors import BadRequest
from node.sessions import User
from node.settings import Settings
from tests.delivery_kit import (  # noqa: F401  (fixtures)
    INSERT_REMOTE,
    approve_instance,
    deliver_all,
    fakes,
    fixture_fed_settings,
    fixture_open_node,
    member,
    posted,
    process_outbox,
    trust_us,
)
from tests.fakefedi import FakeActor, FakeInstance
from tests.helpers import login, make_user, post_form
from tests.inboxnode import AS_CONTEXT, PUBLIC, running_node

SUBJECT = "Orientation Mme Colibri-Pangolin"
BODY = "Elle est hébergée chez sa sœur, **rue Tamanoir**."


async def remote_actor(pool: asyncpg.Pool, fake: FakeInstance, username: str) -> tuple[FakeActor, int]:
    actor = fake.add_actor(username)
    actor_id: int = await pool.fetchval(
        INSERT_REMOTE, actor.id, username, fake.domain, actor.inbox, actor.shared_inbox
    )
    return actor, actor_id


async def write(pool: asyncpg.Pool, settings: Settings, author: User, to: list[str]) -> messages.Written:
    async with pool.acquire() as conn:
        found = await messages.recipients(conn, author, to)
        return await messages.start(
            conn, encryption.keyring_of(settings), settings.base_url, author, found, SUBJECT, BODY
        )


async def test_a_message_to_a_partner_member_goes_to_their_own_inbox_only(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(2) as (partner, other):
        # Given a partner instance with Bruno, another instance with a member, and Amina here
        await approve_instance(pool, partner)
        bruno, _ = await remote_actor(pool, partner, "bruno")
        await remote_actor(pool, other, "olga")
        amina = await member(pool, "amina")
        await trust_us(pool, fed_settings, [partner, other], users=[amina])

        # When Amina writes to Bruno
        written = await write(pool, fed_settings, amina, [f"bruno@{partner.domain}"])
        await process_outbox(fed_settings, pool)

        # Then what waits to be sent is ciphertext
        stored = await pool.fetchval("SELECT json::text FROM activities WHERE audience = 'direct'")
        assert stored is not None and "Colibri" not in stored and "Tamanoir" not in stored
        await deliver_all(fed_settings, pool)

        # and Bruno's personal inbox (never the shared one) got a Create{Note} for him alone
        (create,) = posted(partner)
        (request,) = [r for r in partner.received if r.method == "POST"]
        assert request.path == bruno.inbox_path and request.signature_ok
        note = create["object"]
        assert create["to"] == [bruno.id] and note["to"] == [bruno.id] and note["cc"] == []
        assert PUBLIC not in str(create) and "followers" not in str(create)
        assert note["type"] == "Note" and note["name"] == SUBJECT and "rue Tamanoir" in note["content"]
        assert [t["href"] for t in note["tag"]] == [bruno.id]
        # and the other instance got nothing at all
        assert [r for r in other.received if r.method == "POST"] == []
        assert written.conversation_id


async def test_no_message_leaves_for_a_server_that_is_not_a_partner(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as (stranger,):
        _, olga_id = await remote_actor(pool, stranger, "olga")
        amina = await member(pool, "amina")
        async with pool.acquire() as conn:
            # an unknown server's member cannot be named…
            try:
                await messages.recipients(conn, amina, [f"olga@{stranger.domain}"])
            except BadRequest as exc:
                assert "introuvable" in exc.fields["recipients"]
            else:
                raise AssertionError("a non-partner recipient was accepted")
        assert olga_id


def direct_note(
    fake: FakeInstance, actor: FakeActor, to: list[str], text: str, **extra: Any
) -> dict[str, Any]:
    """Create{Note} as Mastodon sends a direct message (to the people only, a Mention each)."""
    note_id = fake.url(f"/users/{actor.username}/statuses/{uuid.uuid4().int >> 64}")
    note = {
        "id": note_id, "type": "Note", "attributedTo": actor.id, "content": f"<p>{text}</p>",
        "to": to, "cc": [], "published": "2026-01-05T10:00:00Z",
        "tag": [{"type": "Mention", "href": uri} for uri in to], **extra,
    }  # fmt: skip
    return {"@context": AS_CONTEXT, "id": note_id + "/activity", "type": "Create", "actor": actor.id,
            "to": to, "cc": [], "object": note}  # fmt: skip


async def test_a_direct_note_becomes_a_conversation_sealed_while_it_waits(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with running_node(pool, tmp_path) as node, FakeInstance("127.0.0.115") as masto:
        # Given Bruno here, and Alice on an approved partner server
        bruno_id = await pool.fetchval(
            "INSERT INTO users (username, display_name, email, password_hash, status)"
            " VALUES ('bruno', 'Bruno', 'b@example.org', 'x', 'approved') RETURNING id"
        )
        bruno = User(bruno_id, "bruno", "Bruno", "member", "approved")
        alice = masto.add_actor("alice")
        await pool.execute(
            "INSERT INTO instances (domain, approved) VALUES ($1, true)"
            " ON CONFLICT (domain) DO UPDATE SET approved = true",
            masto.domain,
        )
        keyring = encryption.keyring_of(node.settings)

        # When Alice writes to Bruno only
        first = direct_note(masto, alice, [node.url("/u/bruno")], "Puis-je vous appeler Kinkajou ?")
        assert (await masto.send(node.url("/u/bruno/inbox"), first, actor=alice)).status == 202

        # Then the queued activity is ciphertext; once processed, Bruno has a conversation
        (item,) = await node.items()
        assert "Kinkajou" not in str(item["document"])
        await node.process()
        (summary,) = (await messages.listing(pool, keyring, bruno)).conversations
        assert summary.subject == "Puis-je vous appeler Kinkajou ?" and summary.unread == 1
        seen = await messages.conversation(pool, keyring, bruno, summary.id)
        assert seen.messages[0].html == "<p>Puis-je vous appeler Kinkajou ?</p>"
        assert seen.messages[0].author_handle == f"alice@{masto.domain}"

        # When Bruno answers, the answer is served only to Alice's server, signed
        async with pool.acquire() as conn:
            answer = await messages.reply(conn, keyring, bruno, summary.id, "Oui, demain.")
        answer_uuid = await pool.fetchval("SELECT uuid FROM messages WHERE id = $1", answer.message_id)
        url = node.url(f"/messages/m/{answer_uuid}")
        served = await masto.fetch(url, actor=alice)
        assert served.status == 200 and "Oui, demain." in served.json()["content"]
        async with aiohttp.ClientSession() as anonymous:
            for accept in ("application/activity+json", "text/html"):
                async with anonymous.get(url, headers={"Accept": accept}) as response:
                    assert response.status == 404
        async with FakeInstance("127.0.0.116") as outsider:
            await pool.execute("INSERT INTO instances (domain, approved) VALUES ($1, true)", outsider.domain)
            olga = outsider.add_actor("olga")
            assert (await outsider.fetch(url, actor=olga)).status == 404
            # (the conversation is Alice's: its context is her first message's)
            assert served.json()["context"] == first["object"]["id"]
            # and a conversation Bruno starts has a context of ours, served the same way
            async with pool.acquire() as conn:
                to_alice = await messages.recipients(conn, bruno, [f"alice@{masto.domain}"])
                started = await messages.start(
                    conn, keyring, node.settings.base_url, bruno, to_alice, "Nouveau sujet", "Texte"
                )
            context = await pool.fetchval(
                "SELECT ap_context FROM conversations WHERE id = $1", started.conversation_id
            )
            assert context.startswith(node.url("/messages/c/"))
            assert (await outsider.fetch(context, actor=olga)).status == 404
            assert (await masto.fetch(context, actor=alice)).json()["totalItems"] == 1
            assert (await masto.fetch(node.url(f"/messages/c/{uuid.uuid4()}"), actor=alice)).status == 404

        # When Bruno blocks Alice, her next message is dropped
        await messages.block(pool, bruno, messages.Party(actor_id=await actor_id(pool, alice.id)))
        second = direct_note(masto, alice, [node.url("/u/bruno")], "Encore moi")
        assert (await masto.send(node.url("/inbox"), second, actor=alice)).status == 202
        await node.process()
        assert await pool.fetchval("SELECT count(*) FROM messages") == 3
        assert (await node.items())[-1]["status"] == "ignored"


async def test_the_messages_policy_drops_what_it_does_not_allow(pool: asyncpg.Pool, tmp_path: Path) -> None:
    async with running_node(pool, tmp_path) as node, FakeInstance("127.0.0.117") as masto:
        await pool.execute(
            "INSERT INTO users (username, display_name, email, password_hash, status)"
            " VALUES ('bruno', 'Bruno', 'b@example.org', 'x', 'approved')"
        )
        alice = masto.add_actor("alice")
        # A server that is not an approved partner: dropped under the default policy
        note = direct_note(masto, alice, [node.url("/u/bruno")], "Bonjour")
        assert (await masto.send(node.url("/inbox"), note, actor=alice)).status == 202
        await node.process()
        assert await pool.fetchval("SELECT count(*) FROM messages") == 0
        # accepted once the admin lets Mastodon users write (fediverse)
        async with pool.acquire() as conn:
            await messages.set_remote_policy(conn, "fediverse", actor_label="test")
        again = direct_note(masto, alice, [node.url("/u/bruno")], "Bonjour encore")
        assert (await masto.send(node.url("/inbox"), again, actor=alice)).status == 202
        await node.process()
        assert await pool.fetchval("SELECT count(*) FROM messages") == 1
        # A public toot mentioning Bruno is not a private message
        public = direct_note(masto, alice, [PUBLIC, node.url("/u/bruno")], "Public")
        assert (await masto.send(node.url("/inbox"), public, actor=alice)).status == 202
        await node.process()
        assert await pool.fetchval("SELECT count(*) FROM messages") == 1


async def actor_id(pool: asyncpg.Pool, uri: str) -> int:
    found: int = await pool.fetchval("SELECT id FROM actors WHERE uri = $1", uri)
    return found


async def test_a_member_of_a_partner_server_is_found_by_name_at_domain(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with running_node(pool, tmp_path) as node, FakeInstance("127.0.0.118") as partner:
        # Given Amina here, and Alice on a partner server the node has never heard of
        await make_user(pool, "amina")
        alice = partner.add_actor("alice")
        await pool.execute("INSERT INTO instances (domain, approved) VALUES ($1, true)", partner.domain)
        transport = httpx.ASGITransport(app=node.app, client=("198.51.100.4", 40004))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as amina:
            await login(amina, "amina")
            # When Amina writes to alice@domain
            form = {"recipients": f"alice@{partner.domain}", "subject": "Bonjour", "body": "Un mot."}
            response = await post_form(amina, "/messages/nouveau", form)
            # Then the node looked her up (WebFinger, then her actor) and the conversation exists
            assert response.status_code == 303, response.text
            assert await pool.fetchval("SELECT count(*) FROM actors WHERE uri = $1", alice.id) == 1
            # and an unknown name is a French form error
            form["recipients"] = f"personne@{partner.domain}"
            refused = await post_form(amina, "/messages/nouveau", form)
            assert refused.status_code == 400 and "introuvable" in refused.text
