"""``node/schema.sql`` is the schema the migrations build: a migration added without
regenerating it (``./dev schema``) fails here."""

from __future__ import annotations

import difflib
import re

from node.tables import FEDERATION_TABLES, FORUM_TABLES, SHARED_TABLES
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


def test_every_table_is_listed_with_its_owner_in_node_tables() -> None:
    created = set(re.findall(r"^CREATE TABLE public\.(\w+)", SCHEMA_FILE.read_text(encoding="utf-8"), re.M))
    listed = FORUM_TABLES.keys() | FEDERATION_TABLES.keys() | SHARED_TABLES
    assert created - listed == set(), "a new table: give it its owner in node/tables.py"
    assert listed - created == set(), "node/tables.py names a table no migration creates"
