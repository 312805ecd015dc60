"""``node/schema.sql``: the schema the migrations build, dumped by ``pg_dump`` and
normalised (no version banners, no session settings), so that a reader sees every
table, index and trigger in one file and ``tests/test_schema.py`` sees drift.

Regenerate after adding a migration::

    ./dev schema

(uses ``DATABASE_URL`` when set, else an embedded PostgreSQL in a temporary folder).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from node import db

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "node" / "schema.sql"
REGENERATE = "./dev schema"
HEADER = (
    "-- The schema node/migrations build, as pg_dump prints it (normalised).\n"
    f"-- Generated: do not edit. After adding a migration run `{REGENERATE}`.\n"
)
_NOISE = re.compile(r"^(--|SET |SELECT pg_catalog\.set_config|\\restrict|\\unrestrict)")


def pg_dump_binaries() -> list[str]:
    """``pg_dump`` on the PATH, then the one shipped with pgserver (the embedded server's)."""
    candidates = [shutil.which("pg_dump")]
    try:
        import pgserver

        candidates.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"))
    except ImportError:
        pass
    return [c for c in candidates if c and os.path.exists(c)]


def normalise(dump: str) -> str:
    lines = [line.rstrip() for line in dump.splitlines() if not _NOISE.match(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return HEADER + "\n" + text + "\n"


def dump_schema(dsn: str) -> str:
    """The normalised schema of the database at ``dsn`` (the first pg_dump that speaks
    the server's version)."""
    errors = []
    for binary in pg_dump_binaries():
        done = subprocess.run(
            [binary, "--schema-only", "--no-owner", "--no-privileges", dsn],
            capture_output=True,
            timeout=120,
        )
        if done.returncode == 0:
            return normalise(done.stdout.decode())
        errors.append(done.stderr.decode(errors="replace"))
    raise RuntimeError(f"no usable pg_dump: {errors}")


async def _migrated_schema(server_dsn: str) -> str:
    name = f"vbg_schema_{uuid.uuid4().hex[:12]}"
    dsn = urlunsplit(urlsplit(server_dsn)._replace(path="/" + name))
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await db.connect(dsn)
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        return dump_schema(dsn)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> int:
    url = os.environ.get("DATABASE_URL")
    if url:
        schema = asyncio.run(_migrated_schema(url))
    else:
        embedded = db.EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="vbg-schema-pg-")))
        try:
            schema = asyncio.run(_migrated_schema(embedded.start("postgres")))
        finally:
            embedded.stop()
    SCHEMA_FILE.write_text(schema, encoding="utf-8")
    print(f"{SCHEMA_FILE.relative_to(ROOT)} written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
