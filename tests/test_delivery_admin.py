"""The admin page of deliveries: figures and health for admins, nothing for others,
never any content."""

from __future__ import annotations

import asyncpg
import httpx
from aiohttp import web
from starlette.applications import Starlette

from node.settings import Settings
from tests.delivery_kit import (  # noqa: F401  (fixtures)
    approve_instance,
    community,
    deliver_all,
    fakes,
    fixture_fed_settings,
    fixture_open_node,
    follower,
    member,
    new_thread,
    trust_us,
)
from tests.helpers import login, make_user, new_client

PAGE = "/admin/federation/livraisons"
SECRET_TITLE = "Situation confidentielle d'une patiente"


async def test_admin_sees_queue_health_and_failures_but_no_content(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None, client: httpx.AsyncClient
) -> None:
    async with fakes(2) as (good, broken):
        # Given a members-only thread delivered to one instance and refused by another
        async def refuse(request: web.Request) -> web.Response:
            return web.Response(status=503)

        broken.add_route("POST", "/inbox", refuse)
        group = await community(pool, "juridique", "members")
        for peer in (good, broken):
            await follower(pool, group, peer, "alice")
            await approve_instance(pool, peer)
        author = await member(pool)
        await trust_us(pool, fed_settings, [good, broken], users=[author], groups=[group])
        await new_thread(pool, group, author, SECRET_TITLE)
        await deliver_all(fed_settings, pool)
        await make_user(pool, "root", role="admin")
        # When an admin opens the page
        await login(client, "root")
        response = await client.get(PAGE)
        # Then it shows the queue, both instances and the failure, in French
        assert response.status_code == 200
        html = response.text
        assert "File d&#39;attente" in html or "File d'attente" in html
        assert good.domain in html and broken.domain in html
        assert "HTTP 503" in html
        assert "Announce" in html  # the type of what failed (the group relays the Create)
        # And never the content of what was sent
        assert SECRET_TITLE not in html and "Bonjour" not in html
        assert response.headers["cache-control"] == "private, no-store"


async def test_the_page_is_missing_for_members_and_visitors(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    # Given a plain member, logged in
    await make_user(pool, "bea")
    await login(client, "bea")
    # When they, or an anonymous visitor, ask for the page
    as_member = await client.get(PAGE)
    async with new_client(app) as visitor:
        as_visitor = await visitor.get(PAGE)
    # Then it does not exist for them
    assert as_member.status_code == 404
    assert as_visitor.status_code == 404
