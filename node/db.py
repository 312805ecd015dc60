"""PostgreSQL: connection pool, embedded server and versioned migrations.

Migrations are numbered SQL files in ``node/migrations`` (``0001_core.sql`` …), each
starting with a one-line ``-- reason`` comment. They are applied in order, each in
its own transaction, under a PostgreSQL advisory lock so that two processes
starting together never both migrate. Applied versions are recorded in
``schema_migrations``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg

# What a query runs on: a connection (inside a transaction, or not) or the pool (one
# statement on whichever connection is free). The one alias for it in node/ and federation/.
Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MAX_BIGINT = 2**63 - 1  # the largest id (ids are PostgreSQL bigints)
MIGRATION_LOCK_ID = 0x7662_6700  # "vbg\0": one advisory lock id for the whole node
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_VERSIONS = "SELECT version FROM schema_migrations"
MIGRATIONS_TABLE_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
INSERT_VERSION = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def migrations() -> list[Migration]:
    """Every migration file, in order; a badly named or duplicated file is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise RuntimeError(f"badly named migration file: {path.name}")
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"two migrations numbered {version:04d}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


FirstStart = Callable[[asyncpg.Connection, Any], Awaitable[None]]
# Rows every process needs and the first one to start creates (the instance actor and its
# keys): written under the migration lock, so processes starting at the same instant on
# an empty database never race (or deadlock) creating them. Packages register theirs.
FIRST_START: list[FirstStart] = []


def on_first_start(fn: FirstStart) -> FirstStart:
    """Register ``fn(conn, settings)``, run by :func:`migrate` under its lock."""
    FIRST_START.append(fn)
    return fn


async def migrate(conn: asyncpg.Connection, settings: Any = None) -> list[int]:
    """Apply pending migrations; return the versions applied now. With ``settings``,
    also write the shared first-start rows (:data:`FIRST_START`), under the same lock."""
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(CREATE_VERSIONS)
        done = {r["version"] for r in await conn.fetch(SELECT_VERSIONS)}
        for m in migrations():
            if m.version in done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql())
                await conn.execute(INSERT_VERSION, m.version, m.name)
            log.info("applied migration %04d_%s", m.version, m.name)
            applied_now.append(m.version)
        if settings is not None:
            for hook in FIRST_START:
                async with conn.transaction():
                    await hook(conn, settings)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now


async def pending_migrations(conn: asyncpg.Connection) -> list[int]:
    """Versions of the migration files not applied to this database (all of them when
    it was never migrated)."""
    exists = await conn.fetchval(MIGRATIONS_TABLE_EXISTS)
    done = {r["version"] for r in await conn.fetch(SELECT_VERSIONS)} if exists else set()
    return [m.version for m in migrations() if m.version not in done]


async def _init_connection(conn: asyncpg.Connection) -> None:
    import json

    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release hook: skip asyncpg's reset query (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL — one more round trip per release). asyncpg still rolls back an open
    transaction. Rule for every pooled connection: keep no session state (SET LOCAL
    only, transaction-level advisory locks, listeners removed before release)."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    kwargs.setdefault("reset", _keep_session)
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, **kwargs
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


class EmbeddedPostgres:
    """A PostgreSQL server of our own under the data folder (``pgserver``), for a
    node started without ``DATABASE_URL``. Stopped by :meth:`stop`."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "pgdata"
        self._server: Any = None

    def start(self, database: str = "vbg") -> str:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pgserver

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        # A new WAL segment (16 MB) is filled with zeroes by default, and every COMMIT
        # waits while that is written and flushed: on a young cluster, which has no
        # older segment to recycle yet, bench/inbox.py saw all requests in flight stop
        # for ~50 ms at each new segment (p99 at 16 senders 45-60 ms; 11-12 ms with
        # zero-filling off). PostgreSQL then only writes the file's last byte; its data
        # is flushed as before (an admin's own server is the admin's to tune: docs/).
        self._server.psql("ALTER SYSTEM SET wal_init_zero = off;\nSELECT pg_reload_conf();")
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {database};")
        uri: str = self._server.get_uri(database)
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
