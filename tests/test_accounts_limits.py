"""Login rate limits per client address, and whose forwarding header is believed."""

from __future__ import annotations

import dataclasses

import asyncpg
import httpx

from node import ratelimit
from node.settings import Settings
from node.web.accounts_views import LOGIN_PER_ADDRESS, login_keys
from node.web.app import create_app
from tests.helpers import PASSWORD, make_user, post_form

PROXY = "203.0.113.7"  # the address the `client` fixture connects from


async def test_login_is_rate_limited_per_address_and_forwarding_headers_are_ignored(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member, and an address that tried as many logins as allowed while
    # claiming a different X-Forwarded-For each time (no trusted proxy configured)
    await make_user(pool, "amina")
    limit = LOGIN_PER_ADDRESS[0]
    for n in range(limit):
        client.headers["x-forwarded-for"] = f"10.0.{n // 250}.{n % 250 + 1}"
        response = await post_form(client, "/connexion", {"username": f"inconnu{n}", "password": "x" * 12})
        assert response.status_code == 400

    # When it tries the right password of a member it never tried before
    client.headers["x-forwarded-for"] = "10.9.9.9"
    response = await post_form(client, "/connexion", {"username": "amina", "password": PASSWORD})

    # Then it gets 429 in French and no session is opened
    assert response.status_code == 429
    assert "Trop de tentatives" in response.text
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 0


async def test_forwarded_address_is_believed_from_a_trusted_proxy(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    # Given a node behind a trusted proxy, and one client address that used up its login attempts
    await make_user(pool, "amina")
    app = create_app(dataclasses.replace(settings, trusted_proxies=frozenset({PROXY})), pool=pool)
    _, blocked_key = login_keys("", "198.51.100.23")
    for _ in range(LOGIN_PER_ADDRESS[0]):
        await ratelimit.hit(pool, blocked_key, *LOGIN_PER_ADDRESS)
    transport = httpx.ASGITransport(app=app, client=(PROXY, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as proxy:
        # When that client logs in through the proxy, and another client does
        proxy.headers["x-forwarded-for"] = "198.51.100.23"
        blocked = await post_form(proxy, "/connexion", {"username": "amina", "password": PASSWORD})
        proxy.headers["x-forwarded-for"] = "198.51.100.24"
        allowed = await post_form(proxy, "/connexion", {"username": "amina", "password": PASSWORD})

    # Then only the first is refused, and the session records the client's address
    assert blocked.status_code == 429
    assert allowed.status_code == 303
    assert await pool.fetchval("SELECT ip FROM sessions") == "198.51.100.24"
