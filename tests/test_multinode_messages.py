"""Private messages between three real nodes (issue 15, quality bars).

Each node is a ``vbg-node serve`` process with its own database and loopback address,
workers inside ``serve``, signatures checked everywhere, partners listed and approved.
A's member writes to B's member: only B's member's inbox receives it, C nothing; B's
answer reaches A; A's member blocks B's member and B's next message is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from federation import actors
from federation.handlers import follow as follow_handler
from node import encryption, messages
from node.sessions import User
from tests.helpers import eventually
from tests.interop import NodeSpec, RealNode, real_nodes

pytestmark = pytest.mark.federation


@pytest.fixture(scope="module")
async def nodes(
    server_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, RealNode]]:
    specs = [NodeSpec("a", "127.0.0.61"), NodeSpec("b", "127.0.0.62"), NodeSpec("c", "127.0.0.63")]
    async with real_nodes(server_dsn, template_db, tmp_path_factory.mktemp("pm-nodes"), specs) as started:
        await asyncio.gather(
            *(
                node.admin("allow-domain", other.domain)
                for node in started.values()
                for other in started.values()
                if other is not node
            )
        )
        # Partners: every node's moderators approved the other instances
        for node in started.values():
            async with node.pool.acquire() as conn:
                for other in started.values():
                    if other is not node:
                        await follow_handler.approve_instance(conn, other.domain, None)
        yield started


async def write(node: RealNode, author: User, to: str, subject: str, body: str) -> messages.Written:
    async with node.pool.acquire() as conn:
        found = await messages.recipients(conn, author, [to])
        keyring = encryption.keyring_of(node.settings)
        return await messages.start(conn, keyring, node.settings.base_url, author, found, subject, body)


async def bodies(node: RealNode, user: User) -> list[str]:
    keyring = encryption.keyring_of(node.settings)
    listing = await messages.listing(node.pool, keyring, user)
    seen = []
    for summary in listing.conversations:
        conversation = await messages.conversation(node.pool, keyring, user, summary.id)
        seen.extend(m.html for m in conversation.messages)
    return seen


async def test_a_private_conversation_between_two_nodes(nodes: dict[str, RealNode]) -> None:
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    amina, bruno = await a.member("amina"), await b.member("bruno")
    # Given A knows B's member (as it would once Bruno wrote in a shared community)
    async with a.pool.acquire() as conn:
        await actors.get_or_fetch(conn, a.fetcher, b.url("/u/bruno"))

    # When Amina writes to Bruno
    await write(a, amina, f"bruno@{b.domain}", "Situation de Mme Loutre", "Pouvez-vous la **recevoir** ?")

    # Then Bruno has it, received in his own inbox (not the shared one)
    got = await eventually(lambda: bodies(b, bruno), "B stores Amina's message")
    assert got == ["<p>Pouvez-vous la <strong>recevoir</strong> ?</p>"]
    item = await b.processed_item("activity_type = 'Create'")
    assert item["recipient"] == b.url("/u/bruno") and item["status"] == "done"
    assert "Loutre" not in str(item["document"])  # sealed while it waited
    # and C received nothing at all
    await asyncio.sleep(1)
    assert await c.pool.fetchval("SELECT count(*) FROM inbox_items") == 0
    # and A's copy of what it sent is ciphertext, never served at its id
    sent = await a.pool.fetchrow("SELECT uri, json::text AS json FROM activities WHERE audience = 'direct'")
    assert "Loutre" not in sent["json"]

    # When Bruno answers in the conversation
    keyring_b = encryption.keyring_of(b.settings)
    (conversation,) = (await messages.listing(b.pool, keyring_b, bruno)).conversations
    assert conversation.subject == "Situation de Mme Loutre"
    async with b.pool.acquire() as conn:
        await messages.reply(conn, keyring_b, bruno, conversation.id, "Oui, jeudi à 10 h.")

    # Then his answer joins Amina's conversation on A
    async def answered() -> bool:
        return "<p>Oui, jeudi à 10 h.</p>" in await bodies(a, amina)

    await eventually(answered, "A stores Bruno's answer")
    keyring_a = encryption.keyring_of(a.settings)
    assert len((await messages.listing(a.pool, keyring_a, amina)).conversations) == 1

    # When Amina blocks Bruno, and Bruno writes again
    bruno_on_a = await a.pool.fetchval("SELECT id FROM actors WHERE uri = $1", b.url("/u/bruno"))
    await messages.block(a.pool, amina, messages.Party(actor_id=bruno_on_a))
    async with b.pool.acquire() as conn:
        await messages.reply(conn, keyring_b, bruno, conversation.id, "Vous êtes là ?")

    # Then A receives it (202: Bruno is not told) and drops it
    dropped = await a.processed_item("activity_type = 'Create' AND status = 'ignored'")
    assert "dropped" in dropped["outcome"]
    assert await a.pool.fetchval("SELECT count(*) FROM messages") == 2
    assert "Vous êtes là" not in str(await bodies(a, amina))
    assert await c.pool.fetchval("SELECT count(*) FROM inbox_items") == 0
