"""Private messages between three real nodes (issue 15, quality bars).

Each node is a ``vbg-node serve`` process with its own database and loopback address,
behind nginx terminating TLS with a local CA (plain HTTP where the machine cannot: no
root, nginx or openssl), workers inside ``serve``, signatures checked everywhere,
partners listed and approved.
A's member writes to B's member: only B's member's inbox receives it, C nothing; B's
answer reaches A; A's member blocks B's member and B's next message is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from federation import actors
from federation.handlers import follow as follow_handler
from node import encryption, messages
from node.sessions import User
from tests.helpers import eventually
from tests.interop import NodeSpec, RealNode, TlsProxy, hosts, interop_missing, make_ca, real_nodes

pytestmark = pytest.mark.federation


TRUST: list[ssl.SSLContext] = []
NAMES = {"a": ("pm-a.test", "127.0.0.61"), "b": ("pm-b.test", "127.0.0.62"), "c": ("pm-c.test", "127.0.0.63")}


@contextlib.asynccontextmanager
async def tls_nodes(server_dsn: str, template_db: str, run: Path) -> AsyncIterator[dict[str, RealNode]]:
    """The three nodes as https://pm-X.test behind nginx terminating TLS (as in
    production), every process trusting a throw-away local CA; names on loopback
    through /etc/hosts (hence ``VBG_DEV_ALLOW_PRIVATE_PEERS``)."""
    certs = make_ca(run / "ca", [name for name, _ in NAMES.values()])
    ca = str(certs / "ca.crt")
    TRUST.append(ssl.create_default_context(cafile=ca))  # this process's own reads
    specs = [NodeSpec(key, ip, base_url=f"https://{name}") for key, (name, ip) in NAMES.items()]
    with hosts({name: ip for name, ip in NAMES.values()}):
        async with real_nodes(server_dsn, template_db, run, specs, env={"SSL_CERT_FILE": ca}) as started:
            mappings = [
                f"{NAMES[k][0]}={NAMES[k][1]}:{NAMES[k][1]}:{node.live.port}" for k, node in started.items()
            ]
            proxy = TlsProxy(run / "nginx", certs, mappings)
            proxy.start()
            try:
                yield started
            finally:
                proxy.stop()


@contextlib.asynccontextmanager
async def plain_nodes(server_dsn: str, template_db: str, run: Path) -> AsyncIterator[dict[str, RealNode]]:
    """Without root, nginx or openssl: the same nodes over plain HTTP on loopback."""
    specs = [NodeSpec(key, ip) for key, (_, ip) in NAMES.items()]
    async with real_nodes(server_dsn, template_db, run, specs) as started:
        yield started


@pytest.fixture
async def nodes(server_dsn: str, template_db: str, tmp_path: Path) -> AsyncIterator[dict[str, RealNode]]:
    TRUST.clear()
    tls = interop_missing() is None
    started_nodes = (
        tls_nodes(server_dsn, template_db, tmp_path)
        if tls
        else plain_nodes(server_dsn, template_db, tmp_path)
    )
    async with started_nodes as started:
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


class TrustingFetcher:
    """This test process reads an actor over TLS with the local CA (the node processes
    trust it through SSL_CERT_FILE; aiohttp here read its default context at import)."""

    async def fetch_object(self, url: str) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers={"Accept": "application/activity+json"}, ssl=TRUST[0]) as response,
        ):
            assert response.status == 200, response.status
            doc: dict[str, Any] = await response.json(content_type=None)
            return doc


async def write(node: RealNode, author: User, to: str, subject: str, body: str) -> messages.Written:
    async with node.pool.acquire() as conn:
        found = await messages.recipients(conn, author, [to])
        keyring = encryption.keyring_of(node.settings)
        return await messages.start(conn, keyring, node.settings.base_url, author, found, subject, body)


async def nothing_left_to_send(node: RealNode) -> bool:
    """Every delivery job of ``node`` answered (none pending a first attempt or a retry,
    none being sent): what it sent has arrived wherever it was going."""
    left: int = await node.pool.fetchval(
        "SELECT count(*) FROM delivery_jobs WHERE state IN ('pending', 'in_flight')"
    )
    return left == 0


async def bodies(node: RealNode, user: User) -> list[str]:
    keyring = encryption.keyring_of(node.settings)
    listing = await messages.listing(node.pool, keyring, user)
    seen: list[str] = []
    for summary in listing.conversations:
        conversation = await messages.conversation(node.pool, keyring, user, summary.id)
        seen.extend(m.html for m in conversation.messages)
    return seen


async def test_a_private_conversation_between_two_nodes(nodes: dict[str, RealNode]) -> None:
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    amina, bruno = await a.member("amina"), await b.member("bruno")
    # Given A knows B's member (as it would once Bruno wrote in a shared community)
    async with a.pool.acquire() as conn:
        await actors.get_or_fetch(conn, TrustingFetcher() if TRUST else a.fetcher, b.url("/u/bruno"))

    # When Amina writes to Bruno
    await write(a, amina, f"bruno@{b.domain}", "Situation de Mme Loutre", "Pouvez-vous la **recevoir** ?")

    # Then Bruno has it, received in his own inbox (not the shared one)
    got = await eventually(lambda: bodies(b, bruno), "B stores Amina's message")
    assert got == ["<p>Pouvez-vous la <strong>recevoir</strong> ?</p>"]
    item = await b.processed_item("activity_type = 'Create'")
    assert item["recipient"] == b.url("/u/bruno") and item["status"] == "done"
    assert "Loutre" not in str(item["document"])  # sealed while it waited
    # and C received nothing at all (once A has nothing left to send)
    await eventually(lambda: nothing_left_to_send(a), "A's deliveries are all answered")
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
