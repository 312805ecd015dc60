"""A read replica for pages and search (issue 16, ``VBG_REPLICA_DATABASE_URL``), against a
real streaming replica started in the test: Debian's PostgreSQL, a primary of the test's
own and a standby made by ``pg_basebackup -R``. To see which server answered, the test
pauses the replica's replay: what is written meanwhile exists on the primary only.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from node import db, metrics, threads
from node.sessions import User
from node.settings import Settings, load
from node.web.app import create_app
from node.web.requests import RECENT_WRITE_COOKIE
from tests import pgcluster
from tests.conftest import TEST_SECRET
from tests.helpers import eventually, login, make_community, make_user
from tests.liveserver import free_port


@dataclass
class Pair:
    primary: asyncpg.Pool
    replica: asyncpg.Pool
    replica_admin: asyncpg.Connection
    settings: Settings


async def caught_up(pair: Pair) -> bool:
    lsn = await pair.primary.fetchval("SELECT pg_current_wal_lsn()")
    replayed = await pair.replica_admin.fetchval("SELECT pg_last_wal_replay_lsn()")
    return bool(await pair.primary.fetchval("SELECT $1::pg_lsn >= $2::pg_lsn", replayed, lsn))


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    if reason := pgcluster.missing():
        pytest.skip(reason)
    primary = pgcluster.Cluster(free_port()).init().start()
    replica: pgcluster.Cluster | None = None
    try:
        conn = await db.connect(primary.dsn)
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        replica = pgcluster.Cluster(free_port()).init_replica_of(primary).start()
        settings = load({"VBG_BASE_URL": "http://testserver", "VBG_DATA_DIR": str(tmp_path / "data"),
                         "VBG_SECRET_KEY": TEST_SECRET, "DATABASE_URL": primary.dsn,
                         "VBG_REPLICA_DATABASE_URL": replica.dsn, "VBG_WORKERS_IN_SERVE": "0"})  # fmt: skip
        primary_pool = await db.create_pool(primary.dsn, min_size=1, max_size=4)
        replica_pool = await db.create_pool(replica.dsn, min_size=1, max_size=4)
        replica_admin = await asyncpg.connect(replica.dsn)
        try:
            yield Pair(primary_pool, replica_pool, replica_admin, settings)
        finally:
            await replica_admin.close()
            await replica_pool.close()
            await primary_pool.close()
    finally:
        if replica is not None:
            replica.destroy()
        primary.destroy()


def exposition(settings: Settings) -> str:
    """What the exporter of ``serve`` would answer (the gauges read from both servers)."""
    from prometheus_client import generate_latest

    registry = metrics.registry(settings.database_url or "", settings.replica_database_url)
    return generate_latest(registry).decode()


async def new_thread(pool: asyncpg.Pool, author: User, title: str) -> int:
    from node import communities

    async with pool.acquire() as conn:
        community = await communities.find(conn, "general")
        assert community is not None
        created = await threads.create_thread(conn, community, author, title, f"Le corps du fil {title}.")
    return created.thread_id


async def test_pages_and_search_read_the_replica_and_writers_see_their_writes(pair: Pair) -> None:
    # Given a public community with a thread, replicated
    await make_community(pair.primary, "general", visibility="public")
    amina = User(await make_user(pair.primary, "amina"), "amina", "Amina", "member", "approved")
    await new_thread(pair.primary, amina, "Premier fil")
    await eventually(lambda: caught_up(pair), "the replica catches up")
    assert await pair.replica_admin.fetchval("SELECT pg_is_in_recovery()")
    app = create_app(pair.settings, pool=pair.primary, read_pool=pair.replica)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as visitor,
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as member,
    ):
        assert "Premier fil" in (await visitor.get("/c/general")).text
        # When the replica falls behind (replay paused) and a thread is written on the primary
        await pair.replica_admin.execute("SELECT pg_wal_replay_pause()")
        hidden = await new_thread(pair.primary, amina, "Accueil de nuit")
        # Then visitors' pages and search, read on the replica, do not have it yet
        assert "Accueil de nuit" not in (await visitor.get("/c/general")).text
        assert "Accueil de nuit" not in (await visitor.get("/")).text
        assert "Accueil de nuit" not in (await visitor.get("/recherche", params={"q": "accueil nuit"})).text
        assert (await visitor.get(f"/t/{hidden}")).status_code == 404
        # And a browser that has just written (its POST set the cookie) reads the primary
        await login(member, "amina")  # a POST: goes to the primary, sets the cookie
        assert RECENT_WRITE_COOKIE in member.cookies
        assert "Accueil de nuit" in (await member.get("/c/general")).text
        assert "Accueil de nuit" in (await member.get("/recherche", params={"q": "accueil nuit"})).text
        # And a member's thread page (it marks the thread read: a write) reads the primary
        member.cookies.delete(RECENT_WRITE_COOKIE)
        assert (await member.get(f"/t/{hidden}")).status_code == 200
        # And the metrics say how far behind the replica is
        lag = await metrics.replica_lag(pair.settings.replica_database_url or "")
        assert lag is not None and lag > 0
        scraped = await asyncio.to_thread(exposition, pair.settings)
        assert re.search(r"^vbg_replica_lag_seconds [1-9]", scraped, flags=re.M) or re.search(
            r"^vbg_replica_lag_seconds 0\.\d*[1-9]", scraped, flags=re.M
        ), scraped
        # When the replica catches up, visitors see it too
        await pair.replica_admin.execute("SELECT pg_wal_replay_resume()")
        await eventually(lambda: caught_up(pair), "the replica catches up")
        assert "Accueil de nuit" in (await visitor.get("/c/general")).text
        assert "Accueil de nuit" in (await visitor.get("/recherche", params={"q": "accueil nuit"})).text
        assert (await visitor.get(f"/t/{hidden}")).status_code == 200
        assert await metrics.replica_lag(pair.settings.replica_database_url or "") == 0


async def test_without_a_replica_setting_everything_reads_the_primary(client: httpx.AsyncClient) -> None:
    response = await client.post("/connexion", data={"username": "x", "password": "y"})
    assert RECENT_WRITE_COOKIE not in response.cookies
