"""Sessions cached in process (node.sessions.SessionCache): a page costs no session
query, and an ended session or a changed account is evicted by NOTIFY at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from node import sessions
from node.security import token_hash
from tests.helpers import eventually, login, make_user


@pytest.fixture
async def cache(app: Starlette, database_url: str) -> AsyncIterator[sessions.SessionCache]:
    cache = sessions.SessionCache()
    await cache.start(database_url)
    app.state.session_cache = cache
    try:
        yield cache
    finally:
        await cache.stop()


async def eventually_anonymous(client: httpx.AsyncClient) -> bool:
    async def anonymous() -> bool:
        return (await client.get("/compte")).status_code == 404

    return await eventually(anonymous, "the session is gone", within=2)


async def test_a_session_ended_elsewhere_is_evicted_from_the_cache(
    pool: asyncpg.Pool, client: httpx.AsyncClient, cache: sessions.SessionCache
) -> None:
    # Given a member whose session is cached after a page view
    user_id = await make_user(pool, "amina")
    await login(client, "amina")
    assert (await client.get("/compte")).status_code == 200
    assert cache._items  # the session is cached
    # When another process ends her sessions (a direct DELETE, as a logout elsewhere)
    await pool.execute("DELETE FROM sessions WHERE user_id = $1", user_id)
    # Then her next requests are anonymous, without waiting for the cache to expire
    assert await eventually_anonymous(client)


async def test_a_suspension_takes_effect_at_once_for_a_cached_session(
    pool: asyncpg.Pool, client: httpx.AsyncClient, cache: sessions.SessionCache
) -> None:
    user_id = await make_user(pool, "amina")
    await login(client, "amina")
    assert (await client.get("/compte")).status_code == 200
    # When her account is suspended (status changes; sessions left in place)
    await pool.execute("UPDATE users SET status = 'suspended' WHERE id = $1", user_id)
    # Then the cached session no longer counts as an approved member
    assert await eventually_anonymous(client)


async def test_a_lookup_that_raced_an_eviction_is_not_cached(
    pool: asyncpg.Pool, cache: sessions.SessionCache
) -> None:
    user_id = await make_user(pool, "amina")
    token = await sessions.create(pool, user_id, "test", "127.0.0.1")
    session = await sessions.lookup(pool, token)
    assert session is not None
    # Given an eviction between the database read and the put
    epoch = cache.epoch
    cache.evict_user(user_id)
    cache.put(token_hash(token), session, epoch)
    # Then nothing was cached
    assert cache._items == {}


async def test_the_cache_is_bypassed_once_its_listener_is_lost(
    pool: asyncpg.Pool, client: httpx.AsyncClient, cache: sessions.SessionCache
) -> None:
    await make_user(pool, "amina")
    await login(client, "amina")
    await client.get("/compte")
    assert cache.active and cache._items
    # When the listening connection goes away
    assert cache._listener is not None
    cache._listener.terminate()

    async def given_up() -> bool:
        return not cache.active

    await eventually(given_up, "the cache gives itself up", within=2)
    # Then the cache is emptied and no longer used
    assert not cache.active and cache._items == {}
    assert (await client.get("/compte")).status_code == 200  # read from the database again
