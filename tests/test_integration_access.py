"""Allowlist mode ("only listed instances may talk to us or read anything", docs/architecture.md §1):
the ActivityStreams documents of public content go only to GETs signed by a listed
instance; actor documents stay readable by anyone (their keys verify signatures), and so
do the HTML pages of public communities (the forum's side)."""

from __future__ import annotations

import asyncpg
import httpx
from starlette.applications import Starlette

from federation import actors, policy
from federation.app_state import federation_of
from node.settings import Settings
from tests.ap_kit import (  # noqa: F401  (fixtures)
    get_ap,
    make_reply,
    make_thread,
    partner,
    settings,
    signed_get,
)
from tests.fakefedi import FakeInstance
from tests.helpers import make_community, make_user, new_client


async def public_paths(pool: asyncpg.Pool) -> list[str]:
    """JSON documents of a public community's content and collections."""
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, _ = await make_thread(pool, community, amina, pinned=True)
    reply_id = await make_reply(pool, thread_id, amina)
    return [
        f"/t/{thread_id}",
        f"/p/{reply_id}",
        f"/t/{thread_id}/context",
        "/c/juridique/outbox",
        "/c/juridique/featured",
        "/c/juridique/followers",
        "/c/juridique/moderators",
        "/u/amina/outbox",
    ]


ACTORS = ["/c/juridique", "/u/amina", "/actor"]


async def test_unsigned_gets_of_public_content_get_nothing_in_allowlist_mode(
    client: httpx.AsyncClient, pool: asyncpg.Pool, app: Starlette
) -> None:
    # Given a new node (allowlist mode) with a public community
    assert await policy.federation_mode(pool) == "allowlist"
    paths = await public_paths(pool)
    missing = await get_ap(client, "/t/999999")
    for path in paths:
        # When an unsigned GET asks for the JSON document
        response = await get_ap(client, path)
        # Then it answers exactly like a missing object
        assert (response.status_code, response.content) == (404, missing.content), path
    # But actor documents and their keys stay readable by anyone
    for path in ACTORS:
        response = await get_ap(client, path)
        assert response.status_code == 200 and "publicKey" in response.json(), path
    # And a browser still reads the public community's pages
    async with new_client(app) as browser:
        thread = paths[0]
        assert (await browser.get("/c/juridique")).status_code == 200
        assert (await browser.get(thread)).status_code == 200


async def test_listed_instances_read_public_content_with_signed_gets(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811  (the fixture)
) -> None:
    # Given a public community and a partner on the allowlist
    paths = await public_paths(pool)
    alice = partner.add_actor("alice")
    for path in paths:
        # When the partner asks with a valid signature, Then it gets the document
        response = await signed_get(client, path, alice)
        assert response.status_code == 200, path
    # When it signs wrongly, Then it gets nothing
    response = await signed_get(client, paths[0], alice, "wrong_key")
    assert response.status_code == 404


async def test_an_unlisted_instance_gets_nothing_even_signed(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811  (the fixture)
    app: Starlette,
) -> None:
    # Given a public community, and an instance that is not on the allowlist
    paths = await public_paths(pool)
    async with FakeInstance("127.0.0.43") as stranger:
        async with pool.acquire() as conn:
            me = await actors.instance_actor(conn, settings)
        assert me.public_key_id and me.public_key_pem
        stranger.trust_key(me.public_key_id, me.public_key_pem)
        bob = stranger.add_actor("bob")
        # When it asks with a valid signature, Then it gets nothing
        for path in paths:
            assert (await signed_get(client, path, bob)).status_code == 404, path
        # Until it is listed
        async with pool.acquire() as conn:
            await policy.allow_domain(conn, stranger.host)
        try:
            assert (await signed_get(client, paths[0], bob)).status_code == 200
        finally:
            await federation_of(app).close()  # its fetcher was created to fetch bob's key


async def test_open_mode_serves_public_content_to_unsigned_gets(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    paths = await public_paths(pool)
    async with pool.acquire() as conn:
        await policy.set_federation_mode(conn, "open")
    for path in paths:
        assert (await get_ap(client, path)).status_code == 200, path
