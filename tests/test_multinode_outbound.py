"""Our members acting in a community of another node, between two real nodes (issue 11,
outbound): ``vbg-node serve`` processes over loopback, each with its own database and
its workers, signatures checked everywhere, partners on each other's allowlist.

B's member follows A's public community through B's services, then — through the forum's
own services on B, exactly what B's pages call — replies, edits, likes and takes the like
back, opens a thread, reports a post (forwarded) and deletes his reply; A stores and
applies each. B never relays nor announces anything of A's community. In A's
members-only community, B's member cannot write before A's moderators accept B's follow;
afterwards his reply reaches A, which relays it to C (a follower A accepted): C fetches
it from B, and B serves it to C because A vouches that C follows the group — never to
an unsigned GET.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from federation import remote
from federation.errors import FetchError
from federation.handlers import follow as follow_handler
from node import communities, reports, threads
from node.communities import Community
from node.errors import Forbidden
from node.sessions import User
from tests.helpers import eventually
from tests.interop import NodeSpec, RealNode, real_nodes

pytestmark = pytest.mark.federation

AS_JSON = "application/activity+json"


@pytest.fixture(scope="module")
async def nodes(
    server_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, RealNode]]:
    specs = [
        NodeSpec("a", "127.0.0.86", public_communities=("entraide",), members_communities=("juridique",)),
        NodeSpec("b", "127.0.0.87"),
        NodeSpec("c", "127.0.0.88"),
    ]
    async with real_nodes(server_dsn, template_db, tmp_path_factory.mktemp("outbound"), specs) as started:
        await asyncio.gather(
            *(
                node.admin("allow-domain", other.domain)
                for node in started.values()
                for other in started.values()
                if other is not node
            )
        )
        yield started


async def follow(node: RealNode, user: User, address: str) -> Community:
    async with node.pool.acquire() as conn:
        community = await remote.resolve(conn, node.settings, node.fetcher, address)
        await remote.subscribe(conn, node.settings, node.fetcher, community, user)
    return community


async def follow_state(node: RealNode, community: Community) -> str | None:
    state: str | None = await node.pool.fetchval(
        "SELECT state FROM group_follows WHERE community_id = $1", community.id
    )
    return state


async def _equals(probe: Any, wanted: Any) -> bool:
    return bool(await probe == wanted)


async def thread_on(node: RealNode, community: Community, title: str) -> int:
    async def probe() -> int | None:
        found: int | None = await node.pool.fetchval(
            "SELECT id FROM threads WHERE community_id = $1 AND title = $2", community.id, title
        )
        return found

    return await eventually(probe, f"{node.name} holds « {title} »")


async def stored_on_a(a: RealNode, b: RealNode, path: str, column: str = "p.content_html") -> Any:
    """What A stores of B's post ``path`` (``/p/N`` or ``/t/N``), None until it arrives."""
    return await a.pool.fetchval(f"SELECT {column} FROM posts p WHERE p.ap_id = $1", b.url(path))


async def signed_get(node: RealNode, url: str) -> dict[str, Any] | None:
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


async def test_bs_member_takes_part_in_as_public_community(nodes: dict[str, RealNode]) -> None:
    a, b = nodes["a"], nodes["b"]
    amina, bruno, carla = await a.member("amina"), await b.member("bruno"), await b.member("carla")

    # Given bruno on B follows A's public community, and amina opens a thread there afterwards
    community = await follow(b, bruno, f"!entraide@{a.domain}")
    await eventually(lambda: _equals(follow_state(b, community), "accepted"), "A accepts B's follow")
    created = await a.new_thread("entraide", amina, "Hébergement d'urgence", "Des places ce soir ?")
    thread_on_b = await thread_on(b, community, "Hébergement d'urgence")

    # When bruno answers it on B
    async with b.pool.acquire() as conn:
        reply_id = await threads.create_reply(conn, thread_on_b, bruno, "Nous avons **deux** places.")
    # Then A stores the reply in amina's thread, by B's bruno
    html = await eventually(lambda: stored_on_a(a, b, f"/p/{reply_id}"), "A stores bruno's reply")
    assert "<strong>deux</strong>" in html
    row = await a.pool.fetchrow(
        """SELECT p.thread_id, ra.uri AS author FROM posts p JOIN actors ra ON ra.id = p.remote_author_id
           WHERE p.ap_id = $1""",
        b.url(f"/p/{reply_id}"),
    )
    assert (row["thread_id"], row["author"]) == (created.thread_id, b.url("/u/bruno"))

    # When he edits it
    async with b.pool.acquire() as conn:
        await threads.edit_post(conn, reply_id, bruno, "Nous avons **trois** places.")
    # Then A shows the new text
    await eventually(
        lambda: _equals(stored_on_a(a, b, f"/p/{reply_id}", "p.source"), "Nous avons **trois** places."),
        "A applies bruno's edit",
    )

    # When he likes amina's opening post, then takes the like back
    async with b.pool.acquire() as conn:
        opening_on_b = await conn.fetchval(
            "SELECT id FROM posts WHERE thread_id = $1 AND is_opening", thread_on_b
        )
        assert await threads.set_liked(conn, opening_on_b, bruno, True)
    likes = "SELECT likes_count FROM posts WHERE id = $1"
    await eventually(lambda: _equals(a.pool.fetchval(likes, created.post_id), 1), "A counts bruno's like")
    async with b.pool.acquire() as conn:
        assert await threads.set_liked(conn, opening_on_b, bruno, False)
    await eventually(lambda: _equals(a.pool.fetchval(likes, created.post_id), 0), "A applies the Undo")

    # When he opens a thread in A's community from B
    async with b.pool.acquire() as conn:
        own = await threads.create_thread(conn, community, bruno, "Nuitées d'hôtel", "Qui les finance ?")
    # Then it is a thread of A's community, by bruno, under B's id
    entraide = await communities.find(a.pool, "entraide")
    assert entraide is not None
    on_a = await thread_on(a, entraide, "Nuitées d'hôtel")
    assert await a.pool.fetchval("SELECT ap_id FROM threads WHERE id = $1", on_a) == b.url(
        f"/t/{own.thread_id}"
    )

    # When carla reports amina's post on B and asks that A's moderators be told
    async with b.pool.acquire() as conn:
        target = await reports.reportable(conn, opening_on_b, carla, b.settings.base_url)
        await reports.file_report(conn, target, carla, "Données identifiantes", forward=True)
    # Then A's moderators get it from B's server, with the reason and without carla's name
    report = await eventually(
        lambda: a.pool.fetchrow(
            """SELECT r.content, r.post_ids, a.uri AS reporter FROM reports r
               JOIN actors a ON a.id = r.reporter_actor_id WHERE r.content = 'Données identifiantes'"""
        ),
        "A receives B's Flag",
    )
    assert report["reporter"] == b.url("/actor") and list(report["post_ids"]) == [created.post_id]

    # When bruno deletes his reply
    async with b.pool.acquire() as conn:
        await threads.delete_post(conn, reply_id, bruno)
    # Then it is gone on A too
    await eventually(
        lambda: _equals(stored_on_a(a, b, f"/p/{reply_id}", "p.deleted_at IS NOT NULL"), True),
        "A applies bruno's Delete",
    )
    # And B never relayed nor announced anything of A's community
    assert await b.pool.fetchval("SELECT count(*) FROM activities WHERE json->>'type' = 'Announce'") == 0


async def test_a_members_only_community_waits_for_approval_then_takes_bs_reply(
    nodes: dict[str, RealNode],
) -> None:
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    amina, bruno, chloe = await a.member("amina2"), await b.member("bruno2"), await c.member("chloe")

    # Given bruno follows A's members-only community by its address (WebFinger does not name it
    # to an instance A has not approved): B's follow waits for A's moderators
    community = await follow(b, bruno, a.group("juridique"))
    assert community.visibility == "members"
    await eventually(lambda: _equals(follow_state(b, community), "pending"), "B's follow is pending")
    # Then he cannot open a thread there yet, and is told why
    async with b.pool.acquire() as conn:
        with pytest.raises(Forbidden) as refused:
            await threads.create_thread(conn, community, bruno, "Trop tôt", "Bonjour ?")
    assert refused.value.message == threads.FOLLOW_PENDING_MESSAGE

    # When A's moderators approve B's instance (and C's, which follows too), and amina opens a thread
    on_c = await follow(c, chloe, a.group("juridique"))
    async with a.pool.acquire() as conn:
        await follow_handler.approve_instance(conn, b.domain, None)
        await follow_handler.approve_instance(conn, c.domain, None)
    await eventually(lambda: _equals(follow_state(b, community), "accepted"), "A accepts B's follow")
    await eventually(lambda: _equals(follow_state(c, on_c), "accepted"), "A accepts C's follow")
    await a.new_thread("juridique", amina, "Ordonnance de protection", "Quels délais ?")
    thread_on_b = await thread_on(b, community, "Ordonnance de protection")

    # When bruno answers it
    async with b.pool.acquire() as conn:
        reply_id = await threads.create_reply(conn, thread_on_b, bruno, "Six jours.")
    # Then A stores it
    await eventually(lambda: stored_on_a(a, b, f"/p/{reply_id}"), "A stores bruno's reply")
    # And A relays it to C, which fetches it from B: B serves it there because A vouches for C
    note_url = b.url(f"/p/{reply_id}")
    await eventually(
        lambda: c.pool.fetchval("SELECT id FROM posts WHERE ap_id = $1", note_url), "C stores bruno's reply"
    )
    # And B serves it to A's server, never to an unsigned GET
    assert (await signed_get(a, note_url) or {}).get("attributedTo") == b.url("/u/bruno2")
    assert await unsigned_status(note_url) == 404
