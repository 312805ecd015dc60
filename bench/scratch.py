"""A throw-away migrated database for one benchmark run, shared by the benchmarks."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from node import db


@contextlib.asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str]:
    """A fresh migrated database ``vbgbench_{prefix}_…`` on DATABASE_URL's server, or on
    an embedded one; dropped (and the embedded server stopped) on exit."""
    server = os.environ.get("DATABASE_URL")
    embedded = None
    if not server:
        embedded = db.EmbeddedPostgres(Path(tempfile.mkdtemp(prefix=f"vbg-bench-{prefix}-")))
        server = embedded.start("postgres")
    name = f"vbgbench_{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = urlunsplit(urlsplit(server)._replace(path="/" + name))
    conn = await db.connect(dsn)
    await db.migrate(conn)
    await conn.close()
    try:
        yield dsn
    finally:
        admin = await asyncpg.connect(server)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if embedded is not None:
            embedded.stop()
