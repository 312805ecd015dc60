"""ActivityPub test kit: threads and replies written as rows, ActivityStreams GETs, a
partner instance (a fake server with its own keys) and signed GETs from it.

Fixtures here (``settings``, ``partner``, ``open_federation`` — autouse where imported)
take effect in the test modules that import them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from federation import actors, policy
from federation.app_state import federation_of
from node.settings import Settings, load
from tests.conftest import TEST_SECRET
from tests.fakefedi import AS_ACCEPT, FakeActor, FakeInstance, signed_headers
from tests.helpers import make_community, make_user

AP = {"Accept": "application/activity+json"}


PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


BASE = "http://testserver"


async def make_thread(
    pool: asyncpg.Pool,
    community_id: int,
    author_id: int | None,
    title: str = "Accueil d'une victime aux urgences",
    source: str = "Comment **organiser** l'accueil ?",
    *,
    pinned: bool = False,
    locked: bool = False,
) -> tuple[int, int]:
    """A thread and its opening post; returns (thread id, opening post id)."""
    async with pool.acquire() as conn, conn.transaction():
        thread_id = await conn.fetchval(
            "INSERT INTO threads (community_id, author_id, title, pinned, locked) VALUES ($1, $2, $3, $4, $5)"
            " RETURNING id",
            community_id, author_id, title, pinned, locked,
        )  # fmt: skip
        post_id = await conn.fetchval(
            "INSERT INTO posts (thread_id, author_id, is_opening, source, content_html)"
            " VALUES ($1, $2, true, $3, $4) RETURNING id",
            thread_id, author_id, source, "<p>Comment <strong>organiser</strong> l'accueil ?</p>",
        )  # fmt: skip
    return thread_id, post_id


async def make_reply(
    pool: asyncpg.Pool,
    thread_id: int,
    author_id: int | None,
    source: str = "Avec un protocole écrit.",
    *,
    parent_id: int | None = None,
    remote_author_id: int | None = None,
    ap_id: str | None = None,
) -> int:
    async with pool.acquire() as conn, conn.transaction():
        if parent_id is None:
            parent_id = await conn.fetchval(
                "SELECT id FROM posts WHERE thread_id = $1 AND is_opening", thread_id
            )
        post_id: int = await conn.fetchval(
            "INSERT INTO posts (thread_id, author_id, parent_id, source, content_html, remote_author_id, ap_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            thread_id, author_id, parent_id, source, f"<p>{source}</p>", remote_author_id, ap_id,
        )  # fmt: skip
        await conn.execute("UPDATE threads SET last_activity_at = now() WHERE id = $1", thread_id)
    return post_id


async def get_ap(client: httpx.AsyncClient, path: str, **headers: str) -> httpx.Response:
    return await client.get(path, headers={**AP, **headers})


@pytest.fixture(autouse=True)
async def open_federation(pool: asyncpg.Pool) -> None:
    """Open mode, where public content is served to unsigned GETs (the shape tests read
    it so). The partner tests go back to allowlist mode; what allowlist mode refuses to
    unsigned GETs is in test_integration_access.py."""
    async with pool.acquire() as conn:
        await policy.set_federation_mode(conn, "open")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """This module talks to fake servers on loopback: private peers allowed."""
    return load(
        {
            "VBG_BASE_URL": BASE,
            "VBG_DATA_DIR": str(tmp_path / "data"),
            "VBG_SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": database_url,
            "VBG_WORKERS_IN_SERVE": "0",
            "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
        }
    )


@pytest.fixture
async def partner(app: Starlette, pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[FakeInstance]:
    """A fake partner server, allowed by our instance policy (allowlist mode), that trusts
    our instance key."""
    async with FakeInstance("127.0.0.41") as fake:
        async with pool.acquire() as conn:
            me = await actors.instance_actor(conn, settings)
            await policy.set_federation_mode(conn, "allowlist")
            await policy.allow_domain(conn, fake.host)
        assert me.public_key_id and me.public_key_pem
        fake.trust_key(me.public_key_id, me.public_key_pem)
        try:
            yield fake
        finally:
            await federation_of(app).close()  # the fetcher a signed GET created


async def approve(pool: asyncpg.Pool, fake: FakeInstance) -> None:
    await pool.execute(
        "INSERT INTO instances (domain, approved, approved_at) VALUES ($1, true, now())"
        " ON CONFLICT (domain) DO UPDATE SET approved = true",
        fake.domain,
    )


async def signed_get(
    client: httpx.AsyncClient, path: str, actor: FakeActor, variant: str = "ok"
) -> httpx.Response:
    headers = signed_headers("GET", BASE + path, None, actor.key, variant, {"Accept": AS_ACCEPT})
    return await client.get(path, headers=headers)


async def members_only_paths(pool: asyncpg.Pool) -> list[str]:
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "medical", visibility="members")
    thread_id, _ = await make_thread(pool, community, amina, pinned=True)
    reply_id = await make_reply(pool, thread_id, amina)
    return [f"/t/{thread_id}", f"/p/{reply_id}", f"/t/{thread_id}/context", "/c/medical/featured"]
