"""``node/schema.sql`` is the schema the migrations build: a migration added without
regenerating it (``./dev schema``) fails here."""

from __future__ import annotations

import difflib

from tests.schema_dump import REGENERATE, SCHEMA_FILE, dump_schema


def test_schema_file_matches_the_migrations(database_url: str) -> None:
    # Given a database built by every migration (the test's fresh copy)
    # When it is dumped as node/schema.sql is
    built = dump_schema(database_url)
    # Then the file says the same
    written = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.exists() else ""
    diff = "".join(
        list(
            difflib.unified_diff(
                written.splitlines(True), built.splitlines(True), "node/schema.sql", "migrations"
            )
        )[:60]
    )
    assert written == built, (
        f"node/schema.sql is out of date with node/migrations: run `{REGENERATE}`\n{diff}"
    )
