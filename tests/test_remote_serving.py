"""Our members' posts in a community of another server, served at their ids (issue 11):
a public remote community's like ours (anyone the policy lets in), a members-only one's
to the group's own host alone — not to our approved partners, not unsigned — through the
one access rule (``node.access.may_read`` with the group's host as ``origin``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from aiohttp import web
from yarl import URL

from federation import access as access_cache
from federation import actors, policy
from node import access, threads
from node.access import Kind, Requester
from node.settings import Settings
from tests.ap_kit import (  # noqa: F401  (fixtures)
    approve,
    get_ap,
    open_federation,
    partner,
    settings,
    signed_get,
)
from tests.delivery_kit import community as local_community
from tests.delivery_kit import follower, member, process_outbox
from tests.fakefedi import AS_TYPE, FakeInstance
from tests.remote_group_kit import fake_remote_community, remote_thread


@pytest.fixture
async def origin(
    partner: FakeInstance,  # noqa: F811
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
) -> AsyncIterator[FakeInstance]:
    """The server of the remote group, allowed by our policy (allowlist mode, set by
    ``partner``), not approved as a partner; it trusts our instance key."""
    async with FakeInstance("127.0.0.43", software="lemmy") as fake:
        async with pool.acquire() as conn:
            await policy.allow_domain(conn, fake.host)
            me = await actors.instance_actor(conn, settings)
        assert me.public_key_id and me.public_key_pem
        fake.trust_key(me.public_key_id, me.public_key_pem)
        yield fake


def test_the_access_rule_gives_a_remote_communitys_members_only_content_to_its_host_alone() -> None:
    host, other = "forum.example", "partner.example"
    for kind in (Kind.ALLOWED, Kind.PARTNER):
        assert access.may_read(Requester(kind, domain=host), "members", host)
        assert not access.may_read(Requester(kind, domain=other), "members", host)
        # public content of a remote community reads as ours
        assert access.may_read(Requester(kind, domain=other), "public", host)
    for kind in (Kind.UNSIGNED, Kind.REFUSED, Kind.BLOCKED):
        assert not access.may_read(Requester(kind, open_mode=True, domain=host), "members", host)
    # our members read it in HTML; visitors do not
    assert access.may_read(Requester(Kind.MEMBER), "members", host)
    assert not access.may_read(access.VISITOR, "members", host)
    # without an origin, the partner rule is unchanged
    assert access.may_read(Requester(Kind.PARTNER, domain=other), "members")


async def _reply_in(
    pool: asyncpg.Pool, node_settings: Settings, fake: FakeInstance, visibility: str
) -> tuple[int, int, str]:
    """Our member's reply and new thread in a remote community of ``fake``; (reply id,
    thread id, the reply's Create id)."""
    community, _ = await fake_remote_community(pool, node_settings, fake, visibility=visibility)
    thread_id, _ = await remote_thread(pool, fake, community, fake.add_actor("olga"))
    amina = await member(pool)
    async with pool.acquire() as conn:
        reply_id = await threads.create_reply(conn, thread_id, amina, "Nous avons deux places.")
        created = await threads.create_thread(conn, community, amina, "Nuitées", "Qui finance ?")
    await process_outbox(node_settings, pool)
    create_id: str = await pool.fetchval(
        "SELECT uri FROM activities WHERE json->>'type' = 'Create' AND object_uri LIKE '%/p/' || $1",
        str(reply_id),
    )
    return reply_id, created.thread_id, create_id


async def test_members_only_remote_content_of_ours_is_served_to_the_groups_host_alone(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
    partner: FakeInstance,  # noqa: F811
    origin: FakeInstance,
) -> None:
    # Given our member's reply and thread in a members-only community of `origin`, and an approved partner
    await approve(pool, partner)
    reply_id, thread_id, create_id = await _reply_in(pool, settings, origin, "members")
    activity_path = create_id.removeprefix("http://testserver")
    paths = [
        f"/p/{reply_id}",
        f"/t/{thread_id}",
        f"/t/{thread_id}/context",
        f"/t/{thread_id}/replies",
        activity_path,
    ]
    missing = await get_ap(client, "/t/999999")
    alice, olga_host = partner.add_actor("alice"), origin.add_actor("moderation")
    for path in paths:
        # Then an unsigned GET and our approved partner get exactly what a missing object gets
        unsigned = await get_ap(client, path)
        assert (unsigned.status_code, unsigned.content) == (404, missing.content), path
        refused = await signed_get(client, path, alice)
        assert (refused.status_code, refused.content) == (404, missing.content), path
        # But the group's own server reads it
        assert (await signed_get(client, path, olga_host)).status_code == 200, path
    note = (await signed_get(client, f"/p/{reply_id}", olga_host)).json()
    assert note["type"] == "Note" and note["attributedTo"] == "http://testserver/u/amina"
    context = (await signed_get(client, f"/t/{thread_id}/context", olga_host)).json()
    assert context["attributedTo"] == origin.url("/c/entraide")


async def test_public_remote_content_of_ours_is_served_to_anyone_the_policy_lets_in(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
    partner: FakeInstance,  # noqa: F811
    origin: FakeInstance,
) -> None:
    # Given our member's reply in a public community of `origin`, and a listed (not approved) partner
    reply_id, thread_id, create_id = await _reply_in(pool, settings, origin, "public")
    alice = partner.add_actor("alice")
    for path in (f"/p/{reply_id}", f"/t/{thread_id}", create_id.removeprefix("http://testserver")):
        # Then the listed partner reads it, an unsigned GET does not (allowlist mode)
        assert (await signed_get(client, path, alice)).status_code == 200, path
        assert (await get_ap(client, path)).status_code == 404, path


async def test_a_remote_thread_has_no_context_of_ours(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
    partner: FakeInstance,  # noqa: F811
    origin: FakeInstance,
) -> None:
    # Given a thread written on the group's server, stored here
    community, _ = await fake_remote_community(pool, settings, origin)
    thread_id, _ = await remote_thread(pool, origin, community, origin.add_actor("olga"))
    alice = partner.add_actor("alice")
    # Then neither it nor its context is ours to serve: its origin serves them
    for path in (f"/t/{thread_id}", f"/t/{thread_id}/context"):
        assert (await signed_get(client, path, alice)).status_code == 404, path


async def test_a_server_the_groups_host_vouches_for_reads_our_members_only_post_there(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
    partner: FakeInstance,  # noqa: F811
    origin: FakeInstance,
) -> None:
    # Given our member's reply in a members-only community of `origin`, a partner whose instance
    # follows that group (the group's server says so when asked, as Lemmy's private communities
    # are asked), and another approved partner that does not follow it
    access_cache.forget_vouches()
    async with FakeInstance("127.0.0.44") as stranger:
        async with pool.acquire() as conn:
            await policy.allow_domain(conn, stranger.host)
            me = await actors.instance_actor(conn, settings)
        assert me.public_key_id and me.public_key_pem
        stranger.trust_key(me.public_key_id, me.public_key_pem)
        await approve(pool, partner)
        await approve(pool, stranger)
        reply_id, _, create_id = await _reply_in(pool, settings, origin, "members")
        alice, sam = partner.add_actor("alice"), stranger.add_actor("sam")

        async def followers(request: web.Request) -> web.Response:
            # The group's server: alice's instance follows the group, sam's does not
            if request.query.get("is_follower") != alice.id:
                return web.json_response({"error": "not a follower"}, status=404)
            return web.json_response({"id": origin.url("/c/entraide/followers")}, content_type=AS_TYPE)

        origin.add_route("GET", "/c/entraide/followers", followers)
        missing = await get_ap(client, "/t/999999")
        for path in (f"/p/{reply_id}", create_id.removeprefix("http://testserver")):
            # Then the vouched-for partner reads it
            assert (await signed_get(client, path, alice)).status_code == 200, path
            # But the other partner gets what a missing object gets, as before
            refused = await signed_get(client, path, sam)
            assert (refused.status_code, refused.content) == (404, missing.content), path
        # And the group's server was asked once per instance (the answer is kept), signed
        asked = [r for r in origin.received if r.path.startswith("/c/entraide/followers")]
        assert sorted(URL(r.path).query.get("is_follower", "") for r in asked) == sorted([alice.id, sam.id])
        assert all(r.signature_ok for r in asked)
    access_cache.forget_vouches()


async def test_our_members_only_group_tells_a_partner_whether_an_instance_follows_it(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
    partner: FakeInstance,  # noqa: F811
) -> None:
    # Given our members-only group followed from an approved instance, asked by an approved partner
    async with FakeInstance("127.0.0.45") as follower_host:
        group = await local_community(pool, "juridique", "members")
        await approve(pool, follower_host)
        await follower(pool, group, follower_host, "claire")
        await approve(pool, partner)
        alice = partner.add_actor("alice")
        # (``:`` and ``/`` left as they are: what our fetcher sends, and what the test's signer signs)
        path = "/c/juridique/followers?" + urlencode({"is_follower": follower_host.url("/actor")}, safe=":/")
        # Then the answer is yes (200) for an actor of the following instance
        assert (await signed_get(client, path, alice)).status_code == 200
        # And no (404) for an actor of an instance that does not follow, and to an unsigned GET
        no = "/c/juridique/followers?" + urlencode({"is_follower": partner.url("/actor")}, safe=":/")
        assert (await signed_get(client, no, alice)).status_code == 404
        assert (await get_ap(client, path)).status_code == 404


async def test_the_groups_host_sees_in_full_the_member_whose_posts_it_shows(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
    partner: FakeInstance,  # noqa: F811
    origin: FakeInstance,
) -> None:
    # Given our member who wrote only in a members-only community of `origin`
    await _reply_in(pool, settings, origin, "members")
    # Then the group's server gets her actor in full (it shows her posts), another server the key only
    full = (await signed_get(client, "/u/amina", origin.add_actor("moderation"))).json()
    assert full["type"] == "Person" and full["name"] and "summary" in full
    key_only = (await signed_get(client, "/u/amina", partner.add_actor("alice"))).json()
    assert "name" not in key_only and key_only["publicKey"]["owner"] == "http://testserver/u/amina"
