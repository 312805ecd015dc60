"""Shared follows between three real nodes (issue 11, quality bars).

Each node is a ``vbg-node serve`` process with its own database and loopback address,
behind nginx terminating TLS with a local CA (plain HTTP where the machine cannot),
workers inside ``serve``, signatures checked everywhere, partners listed.

A's public community ``entraide``: B's member finds it by its handle and follows it; B's
members see A's threads, the one written before (backfilled) and the one after (live);
B's member replies, and the reply is on A and on C, which follows the same community;
A's moderator removes a post and it disappears on B and C; B's last follower leaves and
A stops delivering to B.

A's members-only community ``juridique``: B follows it before A approved B's instance,
and waits; once approved, B's approved members read its threads, nobody else on B does
(pages, search), and B never puts any of it in an outbox or an Announce.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from federation import remote, synchronization
from federation.handlers import follow as follow_handler
from node import communities, threads
from node.communities import Community
from node.sessions import User
from tests.helpers import csrf_from, eventually, login
from tests.interop import NodeSpec, RealNode, TlsProxy, hosts, interop_missing, make_ca, real_nodes

pytestmark = pytest.mark.federation

NAMES = {"a": ("sf-a.test", "127.0.0.71"), "b": ("sf-b.test", "127.0.0.72"), "c": ("sf-c.test", "127.0.0.73")}
TRUST: list[ssl.SSLContext] = []


def _specs(base_urls: dict[str, str | None]) -> list[NodeSpec]:
    return [
        NodeSpec("a", NAMES["a"][1], base_urls["a"], public_communities=("entraide",), members_communities=("juridique",)),
        NodeSpec("b", NAMES["b"][1], base_urls["b"]),
        NodeSpec("c", NAMES["c"][1], base_urls["c"]),
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def tls_nodes(server_dsn: str, template_db: str, run: Path) -> AsyncIterator[dict[str, RealNode]]:
    """The nodes as https://sf-X.test behind nginx terminating TLS with a throw-away CA."""
    certs = make_ca(run / "ca", [name for name, _ in NAMES.values()])
    ca = str(certs / "ca.crt")
    TRUST.append(ssl.create_default_context(cafile=ca))
    specs = _specs({key: f"https://{name}" for key, (name, _) in NAMES.items()})
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


@pytest.fixture
async def nodes(server_dsn: str, template_db: str, tmp_path: Path) -> AsyncIterator[dict[str, RealNode]]:
    TRUST.clear()
    missing = interop_missing()
    if missing:  # members sign in with Secure cookies: these tests need TLS
        pytest.skip(missing)
    async with tls_nodes(server_dsn, template_db, tmp_path) as started:
        # Partner nodes list each other (allowlist mode); approval comes later, per test
        await asyncio.gather(
            *(
                node.admin("allow-domain", other.domain)
                for node in started.values()
                for other in started.values()
                if other is not node
            )
        )
        yield started


# ── helpers: what a member does on her node, and what each node holds ─────────


@contextlib.asynccontextmanager
async def signed_in(node: RealNode, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A member's browser on ``node``: logged in through the login form, over TLS."""
    async with httpx.AsyncClient(base_url=node.settings.base_url, verify=TRUST[0]) as client:
        await login(client, username)
        yield client


async def follow(node: RealNode, user: User, address: str, name: str) -> Community:
    """``user`` types ``address`` in the search box of ``node``, gets the card of the
    remote community ``name`` and presses « Suivre »: the node process resolves it and
    follows (over the network, as in production)."""
    async with signed_in(node, user.username) as client:
        card = await client.get("/communautes", params={"adresse": address})
        assert card.status_code == 200 and f'action="/c/{name}/suivre"' in card.text, card.text[-3000:]
        sent = await client.post(
            f"/c/{name}/suivre", data={"action": "follow", "csrf_token": csrf_from(card.text)}
        )
        assert sent.status_code == 303, sent.text
    async with node.pool.acquire() as conn:
        community = await communities.find(conn, name)
    assert community is not None and community.remote
    return community


async def group_follow_state(node: RealNode, community: Community) -> str | None:
    state: str | None = await node.pool.fetchval(
        "SELECT state FROM group_follows WHERE community_id = $1", community.id
    )
    return state


async def titles(node: RealNode, community: Community) -> set[str]:
    rows = await node.pool.fetch(
        "SELECT title FROM threads WHERE community_id = $1 AND deleted_at IS NULL", community.id
    )
    return {r["title"] for r in rows}


async def post_live(node: RealNode, ap_id: str) -> bool:
    """Is the post ``ap_id`` (a remote one) stored and not removed on ``node``?"""
    row = await node.pool.fetchrow("SELECT deleted_at FROM posts WHERE ap_id = $1", ap_id)
    return row is not None and row["deleted_at"] is None


async def post_gone(node: RealNode, ap_id: str) -> bool:
    row = await node.pool.fetchrow("SELECT deleted_at FROM posts WHERE ap_id = $1", ap_id)
    return row is None or row["deleted_at"] is not None


async def thread_id_of(node: RealNode, community: Community, title: str) -> int:
    async def probe() -> int | None:
        found: int | None = await node.pool.fetchval(
            "SELECT id FROM threads WHERE community_id = $1 AND title = $2", community.id, title
        )
        return found

    return await eventually(probe, f"{node.name} holds the thread « {title} »")


async def reply(node: RealNode, thread_id: int, author: User, body: str) -> int:
    async with node.pool.acquire() as conn:
        return await threads.create_reply(conn, thread_id, author, body)


async def get(url: str, cookies: dict[str, str] | None = None) -> tuple[int, str]:
    ssl_context: Any = TRUST[0] if TRUST else None
    async with (
        aiohttp.ClientSession(cookies=cookies) as session,
        session.get(url, ssl=ssl_context) as response,
    ):
        return response.status, await response.text()


async def deliveries_to(node: RealNode, domain: str, object_uri: str) -> int:
    """Jobs and ledger entries of ``node`` for ``object_uri`` towards ``domain``."""
    jobs: int = await node.pool.fetchval(
        """SELECT count(*) FROM delivery_jobs j JOIN activities a ON a.id = j.activity_id
           WHERE j.domain = $1 AND a.object_uri = $2""",
        domain,
        object_uri,
    )
    done: int = await node.pool.fetchval(
        "SELECT count(*) FROM deliveries_ledger WHERE domain = $1 AND object_uri = $2", domain, object_uri
    )
    return jobs + done


async def _true(value: Any) -> bool:
    return bool(await value)


# ── the public community ──────────────────────────────────────────────────────


async def test_a_public_community_followed_from_two_nodes(nodes: dict[str, RealNode]) -> None:
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    amina = await a.member("amina")
    await a.pool.execute("UPDATE users SET role = 'moderator' WHERE id = $1", amina.id)
    amina = User(amina.id, "amina", "Amina", "moderator", "approved")
    bruno, chloe = await b.member("bruno"), await c.member("chloe")
    # Given a thread on A written before anyone followed
    await a.new_thread("entraide", amina, "Fiche réflexe urgences", "La voici, à relire.")

    # When B's member finds the community by its handle and follows it, and so does C's
    on_b = await follow(b, bruno, f"!entraide@{a.domain}", f"entraide@{a.domain}")
    on_c = await follow(c, chloe, f"entraide@{a.domain}", f"entraide@{a.domain}")
    assert on_b.name == f"entraide@{a.domain}" and on_b.visibility == "public"

    # Then both follows are accepted and the thread written before is backfilled
    for node, community in ((b, on_b), (c, on_c)):
        await eventually(partial(_state_is, node, community, "accepted"), f"{node.name} accepted")
        await eventually(
            partial(_titled, node, community, "Fiche réflexe urgences"), f"{node.name} backfills"
        )

    # When A's member opens a new thread
    live = await a.new_thread("entraide", amina, "Permanence du jeudi", "Qui peut tenir la permanence ?")
    live_id = a.url(f"/t/{live.thread_id}")
    # Then it reaches B and C as it is written
    thread_on_b = await thread_id_of(b, on_b, "Permanence du jeudi")
    await thread_id_of(c, on_c, "Permanence du jeudi")
    # with A's signed Collection-Synchronization header (FEP-8fcf): A's followers on B are
    # exactly B's one shared follow, so B agrees and fetches nothing
    relayed = await b.processed_item("document->>'type' = 'Announce' AND sync_header IS NOT NULL")
    header = synchronization.parse_header(relayed["sync_header"])
    assert header is not None and header.collection_id == a.group("entraide") + "/followers"
    assert header.digest == synchronization.digest_of([b.url("/actor")])
    assert await group_follow_state(b, on_b) == "accepted"

    # When B's member replies there
    post_on_b = await reply(b, thread_on_b, bruno, "Je peux, de 14 h à 18 h.")
    reply_id = b.url(f"/p/{post_on_b}")
    # Then the reply is in the thread on A, by B's member, and relayed by A's group to C
    stored_on_a = await eventually(
        lambda: a.pool.fetchrow("SELECT thread_id, content_html FROM posts WHERE ap_id = $1", reply_id),
        "A stores B's reply",
    )
    assert stored_on_a["thread_id"] == live.thread_id and "14 h à 18 h" in stored_on_a["content_html"]
    await eventually(lambda: post_live(c, reply_id), "C shows B's reply")
    # and B never announced it itself: A's group is the relay
    assert await b.pool.fetchval("SELECT count(*) FROM activities WHERE json->>'type' = 'Announce'") == 0

    # When A's member answers, then A's moderator removes that answer
    answer = await reply(a, live.thread_id, amina, "Merci, je note.")
    answer_id = a.url(f"/p/{answer}")
    for node in (b, c):
        await eventually(partial(post_live, node, answer_id), f"{node.name} shows A's answer")
    async with a.pool.acquire() as conn:
        await threads.delete_post(conn, answer, amina, reason="Hors sujet")
    # Then it disappears on B and C
    for node in (b, c):
        await eventually(partial(post_gone, node, answer_id), f"{node.name} removes the post")

    # When B's last follower leaves
    async with b.pool.acquire() as conn:
        assert await remote.unsubscribe(conn, b.settings, on_b, bruno)
    # Then A no longer counts B among the followers, and stops delivering to B
    await eventually(
        lambda: _is(
            a.pool.fetchval(
                """SELECT count(*) FROM community_followers f JOIN actors x ON x.id = f.actor_id
                   WHERE x.domain = $1 AND f.state = 'accepted'""",
                b.domain,
            ),
            0,
        ),
        "A drops B's follow",
    )
    after = await a.new_thread("entraide", amina, "Après le départ de B", "B ne doit pas le recevoir.")
    after_id = a.url(f"/t/{after.thread_id}")
    await thread_id_of(c, on_c, "Après le départ de B")  # C still gets it …
    assert await deliveries_to(a, b.domain, after_id) == 0  # … B does not
    assert await deliveries_to(a, c.domain, after_id) > 0
    assert "Après le départ de B" not in await titles(b, on_b)
    assert live_id  # the thread B followed stays readable on B as it was


async def _state_is(node: RealNode, community: Community, wanted: str) -> bool:
    return await group_follow_state(node, community) == wanted


async def _titled(node: RealNode, community: Community, title: str) -> bool:
    return title in await titles(node, community)


async def _is(value: Any, wanted: Any) -> bool:
    return bool(await value == wanted)


async def _has(value: Any, wanted: Any) -> bool:
    return wanted in await value


# ── the members-only community ────────────────────────────────────────────────


async def test_a_members_only_community_waits_for_approval_and_stays_private(
    nodes: dict[str, RealNode],
) -> None:
    a, b = nodes["a"], nodes["b"]
    amina, bruno = await a.member("amina"), await b.member("bruno")
    await a.new_thread("juridique", amina, "Ordonnance de protection", "Quels délais en 2025 ?")

    # When B's member follows A's members-only community (by its address: A does not
    # tell strangers its name) before A approved B's instance
    on_b = await follow(b, bruno, a.group("juridique"), f"juridique@{a.domain}")
    # Then B's follow waits, and nothing of it is on B
    await eventually(
        lambda: _is(
            a.pool.fetchval(
                """SELECT f.state FROM community_followers f JOIN actors x ON x.id = f.actor_id
                   JOIN communities k ON k.id = f.community_id WHERE k.name = 'juridique' AND x.domain = $1""",
                b.domain,
            ),
            "pending",
        ),
        "A records B's follow, pending",
    )
    assert await group_follow_state(b, on_b) == "pending"
    assert await titles(b, on_b) == set()

    # When A's moderators approve B's instance
    async with a.pool.acquire() as conn:
        await follow_handler.approve_instance(conn, b.domain, None)
    # Then the follow is accepted, B knows the community is members-only, and its threads arrive
    await eventually(lambda: _is(group_follow_state(b, on_b), "accepted"), "B's follow accepted")
    await eventually(
        lambda: _has(titles(b, on_b), "Ordonnance de protection"), "B backfills the members-only thread"
    )
    async with b.pool.acquire() as conn:
        refreshed = await communities.by_actor(conn, on_b.actor_id or 0)
    assert refreshed is not None and refreshed.visibility == "members"
    live = await a.new_thread("juridique", amina, "Mesure d'éloignement", "Un retour d'expérience ?")
    thread_on_b = await thread_id_of(b, on_b, "Mesure d'éloignement")

    # And on B: its approved member reads the thread and finds it by search
    async with signed_in(b, "bruno") as client:
        shown = await client.get(f"/t/{thread_on_b}")
        assert shown.status_code == 200 and "retour d" in shown.text and "expérience ?" in shown.text
        found = await client.get("/recherche", params={"q": "éloignement"})
        assert "Mesure d" in found.text and f'href="/c/juridique@{a.domain}"' in found.text
    # while a visitor gets no page of it, and search finds nothing for outsiders
    status, page = await get(b.url(f"/t/{thread_on_b}"))
    assert status == 404 and "éloignement" not in page
    status, page = await get(b.url("/recherche?q=%C3%A9loignement"))
    assert "Mesure d" not in page
    # and B serves none of it as ActivityPub: no group, no outbox, no object
    for path in (f"/c/juridique@{a.domain}", f"/c/juridique@{a.domain}/outbox", f"/t/{thread_on_b}"):
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                b.url(path), headers={"Accept": "application/activity+json"}, ssl=TRUST[0] if TRUST else True
            ) as response,
        ):
            assert response.status == 404, path
    # and B never announced or relayed anything of it
    assert await b.pool.fetchval("SELECT count(*) FROM activities WHERE json->>'type' = 'Announce'") == 0
    assert a.url(f"/t/{live.thread_id}")
