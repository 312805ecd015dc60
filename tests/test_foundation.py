"""The foundation: migrations, settings, security headers, error pages."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import asyncpg
import httpx
import pytest

from node import db
from node.settings import DOCUMENTED, SettingsError, load
from tests.conftest import ROOT


async def test_migrations_are_recorded_and_idempotent(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        applied = await db.migrate(conn)
        versions = [
            r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        ]
    assert applied == []
    assert versions == [m.version for m in db.migrations()]


async def test_two_processes_migrating_together_apply_each_migration_once(
    server_dsn: str,
) -> None:
    from tests.conftest import _with_database

    admin = await asyncpg.connect(server_dsn)
    name = "vbgt_concurrent_migrate"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = _with_database(server_dsn, name)
        conns = [await db.connect(dsn) for _ in range(3)]
        results = await asyncio.gather(*(db.migrate(c) for c in conns))
        for c in conns:
            await c.close()
        applied = sorted(v for r in results for v in r)
        assert applied == [m.version for m in db.migrations()]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_every_migration_starts_with_a_reason() -> None:
    for m in db.migrations():
        assert m.sql().startswith("-- "), m.path.name


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in DOCUMENTED:
        assert f"`{name}`" in readme, f"{name} missing from README's configuration table"


def test_bad_base_url_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        load({"VBG_BASE_URL": "ftp://x", "VBG_DATA_DIR": str(tmp_path)})


def test_web_workers_default_to_two_and_refuse_nonsense(tmp_path: Path) -> None:
    assert load({"VBG_DATA_DIR": str(tmp_path)}).web_workers == 2
    assert load({"VBG_DATA_DIR": str(tmp_path), "VBG_WEB_WORKERS": "1"}).web_workers == 1
    for bad in ("0", "-1", "deux", "65"):
        with pytest.raises(SettingsError, match="VBG_WEB_WORKERS"):
            load({"VBG_DATA_DIR": str(tmp_path), "VBG_WEB_WORKERS": bad})


def test_secret_is_generated_once_into_the_data_folder(tmp_path: Path) -> None:
    first = load({"VBG_DATA_DIR": str(tmp_path)})
    second = load({"VBG_DATA_DIR": str(tmp_path)})
    assert first.secret_key.reveal() == second.secret_key.reveal()
    assert "x" not in repr(first.secret_key).replace("Secret", "")
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def _load_secrets(data_dir: str) -> tuple[str, str]:
    settings = load({"VBG_DATA_DIR": data_dir})
    assert settings.messages_key is not None
    return settings.secret_key.reveal(), settings.messages_key.reveal()


def test_processes_starting_together_share_one_whole_set_of_secrets(tmp_path: Path) -> None:
    # Given a new data folder, when eight processes load the settings at the same moment
    # (the CI once saw a worker read the messages key another process was still writing)
    import multiprocessing

    rounds = 5
    for n in range(rounds):
        data_dir = str(tmp_path / f"data{n}")
        with multiprocessing.get_context("fork").Pool(8) as workers:
            seen = workers.map(_load_secrets, [data_dir] * 8)
        # Then every process read the same secret key and the same messages key, none empty
        assert len(set(seen)) == 1
        secret_key, messages_key = seen[0]
        assert len(secret_key) >= 32 and messages_key.strip()
        # and no temporary file is left beside them
        assert sorted(p.name for p in Path(data_dir).iterdir()) == ["messages_key", "secret_key"]


async def test_security_headers_on_every_page(client: httpx.AsyncClient) -> None:
    for path in ("/charte", "/page-qui-n-existe-pas"):
        response = await client.get(path)
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "script-src" not in csp or "'unsafe-inline'" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"]
        assert response.headers["cache-control"] == "private, no-store"


async def test_unknown_page_is_a_french_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nulle-part")
    assert response.status_code == 404
    assert "Page introuvable" in response.text


async def test_french_accent_folding_in_search_vectors(pool: asyncpg.Pool) -> None:
    matched = await pool.fetchval(
        "SELECT vbg_tsvector('Prise en charge médicale', 'Accompagnement des enfants') "
        "@@ websearch_to_tsquery('french', vbg_fold('MEDICALE enfant'))"
    )
    assert matched


# vbg_fold as migration 0001 wrote it (one translate()); the replace() calls of
# migrations 0187 and 0188 (those of letters French does not use only when the text has
# one) must give the same text, or stored search vectors would disagree with the folded
# queries.
FOLD_0001 = """
SELECT replace(replace(translate(lower($1),
    'àâäáãåāçćčéèêëēėęíìîïīįñńóòôöõøōúùûüūýÿžźż''’',
    'aaaaaaaccceeeeeeeiiiiiinnooooooouuuuuyyzzz  '),
    'œ', 'oe'), 'æ', 'ae')
"""


async def test_accent_folding_same_as_the_first_translate(pool: asyncpg.Pool) -> None:
    folded = "àâäáãåāçćčéèêëēėęíìîïīįñńóòôöõøōúùûüūýÿžźż'’œæ"
    texts = [
        folded,
        folded.upper(),
        "L'Œuvre d’ÉTÉ : « Ça déçoit » — naïveté, Ærø, ﬁn, straße, İstanbul, 中文, n°3",
        "Ça déçoit : où est l’hôte ? Naïveté, cœur, île, Noël, ÆGIR",
        "Ñandú, Łódź, Ångström, Čapek",
        "plain ascii text, nothing to fold",
        "",
    ]
    texts += [f"Été {c}." for c in folded + folded.upper()]  # each letter alone beside French ones
    for text in texts:
        assert await pool.fetchval("SELECT vbg_fold($1)", text) == await pool.fetchval(FOLD_0001, text)
    assert await pool.fetchval("SELECT vbg_fold($1)", "L'Œuvre d’ÉTÉ") == "l oeuvre d ete"
    assert await pool.fetchval("SELECT vbg_fold(NULL)") is None


async def test_the_embedded_server_does_not_fill_new_wal_segments_with_zeroes() -> None:
    # Every COMMIT waited while a new 16 MB segment was zero-filled and flushed: all the
    # inbox requests in flight stopped for ~50 ms at each new segment (node.db).
    folder = Path(tempfile.mkdtemp(prefix="vbg-test-embedded-"))
    embedded = db.EmbeddedPostgres(folder)
    try:
        dsn = await asyncio.to_thread(embedded.start, "vbg")
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SHOW wal_init_zero") == "off"
            assert await conn.fetchval("SHOW fsync") == "on"  # flushed as before
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(embedded.stop)
        shutil.rmtree(folder, ignore_errors=True)
