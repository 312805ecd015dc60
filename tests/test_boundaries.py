"""The boundary between the forum (``node``) and ActivityPub (``federation``), read from
the source: federation runs no SQL on a forum table (``node.tables.FORUM_TABLES``); it
calls the owner's functions. The import rules are import-linter contracts
(``pyproject.toml``, run by ``./dev test``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from node.tables import FEDERATION_TABLES, FORUM_TABLES

ROOT = Path(__file__).resolve().parents[1]
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WITH|FROM|JOIN)\b")
TABLE_REF = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+([a-z_]+)")


def forum_sql_in(package: str) -> list[tuple[str, int, list[str]]]:
    """(file, line, forum tables) for every SQL string constant under ``package``."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                tables = sorted({t.lower() for t in TABLE_REF.findall(node.value)} & FORUM_TABLES.keys())
                if tables:
                    found.append((str(path.relative_to(ROOT)), node.lineno, tables))
    return found


def test_federation_runs_no_sql_on_forum_tables() -> None:
    found = forum_sql_in("federation")
    assert not found, (
        "federation/ reads or writes a forum table: call the owner in node/ (node/tables.py) instead: "
        + "; ".join(f"{path}:{line} {tables}" for path, line, tables in found)
    )


def test_the_scanner_sees_forum_sql() -> None:
    # A check that finds nothing proves nothing: node/ itself is full of forum SQL.
    tables = {t for _, _, ts in forum_sql_in("node") for t in ts}
    assert {"posts", "threads", "post_likes", "users", "communities", "reports"} <= tables


def test_every_forum_table_has_an_owner_module_that_exists() -> None:
    for table, owner in {**FORUM_TABLES, **FEDERATION_TABLES}.items():
        assert (ROOT / (owner.replace(".", "/") + ".py")).is_file(), (table, owner)


def test_no_test_module_imports_another() -> None:
    # Shared fixtures and factories live in kits with honest names (tests/*_kit.py,
    # tests/helpers.py, tests/inboxnode.py …), never in a test_*.py module.
    offenders = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                if any(n.split(".")[-1].startswith("test_") and n.startswith("tests.") for n in names):
                    offenders.append(f"{path.name}:{node.lineno} {node.module}")
            elif isinstance(node, ast.Import):
                offenders += [f"{path.name}:{node.lineno} {a.name}" for a in node.names if ".test_" in a.name]
    assert not offenders, "move what is shared into a kit: " + "; ".join(offenders)
