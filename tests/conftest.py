"""Shared fixtures: a real PostgreSQL, a fresh database per test, the app and a client.

``DATABASE_URL`` (a server URL; its database is only used to create others) when
set, else an embedded PostgreSQL (``pgserver``) started for the test session.
A migrated template database is built once per test process; each test gets
``CREATE DATABASE … TEMPLATE`` of it, made ahead by :class:`DatabaseSupply` while the
test before runs (a copy takes the server 30–500 ms, mostly writing it to its WAL) and
dropped after it without waiting.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from node import accounts, db, security
from node.settings import Settings, load
from node.web.app import create_app
from tests.helpers import PASSWORD

# Fixture libraries every test module may use without importing them (they define no
# autouse fixture: one that is autouse stays an explicit import where it applies).
pytest_plugins = ["tests.browser_kit"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = ROOT.parent / "shared" / "samples"
TEST_SECRET = "test-secret-" + "x" * 40


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session", autouse=True)
def password_hashed_once() -> Iterator[None]:
    """The members the tests make share one password (``tests.helpers.PASSWORD``): its
    argon2id hash, made by the node's own hasher with the node's parameters, is computed
    once per test process instead of once per member (150 ms each, a third of the
    suite's time). Every other password is hashed afresh, and every verification (log-in,
    password change) still runs argon2 against the stored hash."""
    real = security.hash_password
    once = real(PASSWORD)

    def hash_password(password: str) -> str:
        return once if password == PASSWORD else real(password)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "hash_password", hash_password)
        yield


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    embedded = db.EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="vbg-test-pg-")))
    dsn = embedded.start("postgres")
    try:
        yield dsn
    finally:
        embedded.stop()


@pytest.fixture(scope="session")
async def template_db(server_dsn: str) -> AsyncIterator[str]:
    name = f"vbgt_tpl_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await db.connect(_with_database(server_dsn, name))
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def create_test_database(server_dsn: str, template: str) -> str:
    """A fresh, migrated database; returns its DSN. Used by fixtures and multi-node tests."""
    name = f"vbgt_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    return _with_database(server_dsn, name)


async def drop_test_database(server_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    assert re.fullmatch(r"vbgt_[0-9a-f]{16}", name)
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class DatabaseSupply:
    """Fresh copies of the template for the tests, one made ahead: while a test runs, the
    server copies the next test's database, and drops the last test's one (copying and
    dropping are the server's work: the test's own process does not wait for them)."""

    def __init__(self, server_dsn: str, template: str) -> None:
        self.server_dsn, self.template = server_dsn, template
        self._next: asyncio.Task[str] | None = None
        self._drops: list[asyncio.Task[None]] = []

    def _prepare(self) -> None:
        self._next = asyncio.ensure_future(create_test_database(self.server_dsn, self.template))

    async def take(self) -> str:
        """A fresh database nobody used (its DSN); the next one starts being made."""
        if self._next is None:
            self._prepare()
        assert self._next is not None
        try:
            dsn = await self._next
        finally:
            self._next = None
        self._prepare()
        return dsn

    def give_back(self, dsn: str) -> None:
        """Drop a database taken from the supply, without waiting for it."""
        self._drops.append(asyncio.ensure_future(drop_test_database(self.server_dsn, dsn)))

    async def close(self) -> None:
        if self._next is not None:
            self.give_back(await self._next)
            self._next = None
        await asyncio.gather(*self._drops)  # a drop that failed fails the session here


@pytest.fixture(scope="session")
async def database_supply(server_dsn: str, template_db: str) -> AsyncIterator[DatabaseSupply]:
    supply = DatabaseSupply(server_dsn, template_db)
    try:
        yield supply
    finally:
        await supply.close()


@pytest.fixture
async def database_url(database_supply: DatabaseSupply) -> AsyncIterator[str]:
    dsn = await database_supply.take()
    try:
        yield dsn
    finally:
        database_supply.give_back(dsn)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(database_url, min_size=1, max_size=5)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load(
        {
            "VBG_BASE_URL": "http://testserver",
            "VBG_DATA_DIR": str(tmp_path / "data"),
            "VBG_SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": database_url,
            "VBG_WORKERS_IN_SERVE": "0",
        }
    )


@pytest.fixture
def app(settings: Settings, pool: asyncpg.Pool) -> Starlette:
    return create_app(settings, pool=pool)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
