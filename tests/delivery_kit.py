"""Factories shared by the outgoing-federation tests (no tests here).

Fixtures are named ``fixture_*`` so that test modules can import them without their
parameters shadowing the import: ``from tests.delivery_kit import fixture_fed_settings``.

A node whose settings let it talk to loopback peers, local members and communities,
remote followers living on ``tests.fakefedi.FakeInstance`` servers, and a delivery
worker driven step by step (``run_until_idle``).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from federation import actors, policy
from federation.delivery_worker import DeliveryWorker, WorkerConfig
from node import communities, threads
from node.communities import Community
from node.sessions import User
from node.settings import Settings, load
from tests.conftest import TEST_SECRET
from tests.fakefedi import FakeInstance
from tests.helpers import make_community, make_user

_hosts = itertools.count(40)


def next_host() -> str:
    """A loopback address of our own for each fake instance of a test run."""
    return f"127.0.0.{next(_hosts) % 200 + 20}"


@pytest.fixture(name="fed_settings")
def fixture_fed_settings(tmp_path: Path, database_url: str) -> Settings:
    """A node that may talk to peers on loopback (``VBG_DEV_ALLOW_PRIVATE_PEERS=1``)."""
    return load(
        {
            "VBG_BASE_URL": "http://testserver",
            "VBG_DATA_DIR": str(tmp_path / "data"),
            "VBG_SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": database_url,
            "VBG_WORKERS_IN_SERVE": "0",
            "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
        }
    )


@pytest.fixture(name="open_node")
async def fixture_open_node(pool: asyncpg.Pool) -> None:
    """Federation mode ``open``: anyone not blocked (a new node is allowlist-only)."""
    async with pool.acquire() as conn:
        await policy.set_federation_mode(conn, "open")


@asynccontextmanager
async def fakes(count: int, **kw: Any) -> AsyncIterator[list[FakeInstance]]:
    started: list[FakeInstance] = []
    try:
        for _ in range(count):
            fake = FakeInstance(next_host(), **kw)
            await fake.start()
            started.append(fake)
        yield started
    finally:
        for fake in started:
            await fake.stop()


async def member(pool: asyncpg.Pool, username: str = "amina", role: str = "member") -> User:
    user_id = await make_user(pool, username, role=role)
    return User(user_id, username, username.capitalize(), role, "approved")


async def community(pool: asyncpg.Pool, name: str = "medical", visibility: str = "public") -> Community:
    await make_community(pool, name, visibility=visibility)
    async with pool.acquire() as conn:
        found = await communities.find(conn, name)
    assert found is not None
    return found


INSERT_REMOTE = """
INSERT INTO actors (uri, kind, local, username, domain, inbox, shared_inbox)
VALUES ($1, 'Person', false, $2, $3, $4, $5)
RETURNING id
"""
INSERT_FOLLOWER = """
INSERT INTO community_followers (community_id, actor_id, follow_activity_id, state, decided_at)
VALUES ($1, $2, $3, $4, now())
"""
APPROVE_INSTANCE = """
INSERT INTO instances (domain, approved, approved_at) VALUES ($1, true, now())
ON CONFLICT (domain) DO UPDATE SET approved = true, approved_at = now()
"""


async def follower(
    pool: asyncpg.Pool,
    group: Community,
    fake: FakeInstance,
    username: str,
    *,
    shared: bool = True,
    state: str = "accepted",
) -> int:
    """A remote member of ``fake`` following ``group``; returns its actor id."""
    actor = fake.add_actor(username)
    async with pool.acquire() as conn:
        actor_id: int = await conn.fetchval(
            INSERT_REMOTE,
            actor.id,
            username,
            fake.domain,
            actor.inbox,
            actor.shared_inbox if shared else None,
        )
        await conn.execute(INSERT_FOLLOWER, group.id, actor_id, fake.new_id("follows"), state)
    return actor_id


async def approve_instance(pool: asyncpg.Pool, fake: FakeInstance) -> None:
    async with pool.acquire() as conn:
        await conn.execute(APPROVE_INSTANCE, fake.domain)


async def trust_us(
    pool: asyncpg.Pool,
    settings: Settings,
    peers: Sequence[FakeInstance],
    *,
    users: Sequence[User] = (),
    groups: Sequence[Community] = (),
) -> None:
    """Our actors exist and the fakes know their public keys (our node does not
    serve HTTP in these tests, so a fake could not fetch them)."""
    async with pool.acquire() as conn:
        made = [await actors.ensure_local_actor(conn, settings, "Person", user_id=u.id) for u in users]
        made += [await actors.ensure_local_actor(conn, settings, "Group", community_id=g.id) for g in groups]
    for peer in peers:
        for actor in made:
            assert actor.public_key_id and actor.public_key_pem
            peer.trust_key(actor.public_key_id, actor.public_key_pem)


async def new_thread(
    pool: asyncpg.Pool, group: Community, author: User, title: str = "Un fil"
) -> threads.Created:
    async with pool.acquire() as conn:
        return await threads.create_thread(conn, group, author, title, "Bonjour à toutes et à tous.")


async def new_reply(pool: asyncpg.Pool, thread_id: int, author: User) -> int:
    async with pool.acquire() as conn:
        return await threads.create_reply(conn, thread_id, author, "Merci pour ce partage.")


@asynccontextmanager
async def worker(settings: Settings, pool: asyncpg.Pool, **config: Any) -> AsyncIterator[DeliveryWorker]:
    """A delivery worker driven by the test (``await w.run_until_idle()``)."""
    w = DeliveryWorker(settings, pool, WorkerConfig(**config))
    await w.open()
    try:
        yield w
    finally:
        await w.close()


async def deliver_all(settings: Settings, pool: asyncpg.Pool, **config: Any) -> None:
    async with worker(settings, pool, **config) as w:
        await w.run_until_idle()


def posted(fake: FakeInstance) -> list[dict[str, Any]]:
    """Activities the fake accepted (valid signature), in arrival order."""
    return list(fake.inbox_activities())


def kinds(activities: Sequence[dict[str, Any]]) -> list[str]:
    """``Create``, ``Announce/Create``, ``Announce/Page`` …: what each activity is."""
    out = []
    for activity in activities:
        inner = activity.get("object")
        name = activity["type"]
        if activity["type"] == "Announce":
            name += "/" + (inner["type"] if isinstance(inner, dict) else "id")
        out.append(name)
    return sorted(out)


async def jobs(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return list(
            await conn.fetch(
                """SELECT j.*, a.json AS activity FROM delivery_jobs j
                   JOIN activities a ON a.id = j.activity_id ORDER BY j.id"""
            )
        )


async def process_outbox(settings: Settings, pool: asyncpg.Pool) -> None:
    from federation import outbox

    while await outbox.process_pending(pool, settings):
        pass


async def public_thread_followed_by(
    settings: Settings, pool: asyncpg.Pool, peers: list[FakeInstance], *, per_peer: int = 1
) -> int:
    """A public community followed from each peer; a member opens a thread; its id."""
    group = await community(pool, "medical", "public")
    for peer in peers:
        for n in range(per_peer):
            await follower(pool, group, peer, f"user{n}")
    author = await member(pool)
    await trust_us(pool, settings, peers, users=[author], groups=[group])
    created = await new_thread(pool, group, author)
    return created.thread_id
