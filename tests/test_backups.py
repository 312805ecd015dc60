"""``vbg-node admin backup`` / ``restore`` (issue 16): a node's content, members, followed
remote communities, private messages, files and keys survive a backup and a restore on a
fresh database and data folder, byte for byte; a damaged archive or a non-empty node is
refused and changes nothing."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from federation import actors
from node import communities, db, messages, threads
from node.sessions import User
from node.settings import Settings, load
from node.web.app import create_app
from tests.conftest import ROOT, TEST_SECRET, _with_database, drop_test_database
from tests.documents_kit import given_a_document
from tests.helpers import eventually, make_user
from tests.interop import VBG_NODE
from tests.samples_uploads import pdf_with_author

BASE = "https://forum.example.org"


def node_env(dsn: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VBG_")}
    return {**env, "DATABASE_URL": dsn, "VBG_DATA_DIR": str(data_dir), "VBG_BASE_URL": BASE}


async def admin(env: dict[str, str], *args: str, ok: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        VBG_NODE, "admin", *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    assert (proc.returncode == 0) == ok, f"vbg-node admin {' '.join(args)} -> {proc.returncode}:\n{text}"
    return text


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A database with no table at all (a new node before its first start)."""
    name = f"vbgt_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = _with_database(server_dsn, name)
    try:
        yield dsn
    finally:
        await drop_test_database(server_dsn, dsn)


async def table_bytes(dsn: str) -> dict[str, bytes]:
    """Every table's rows (COPY text, in a stable order) and every sequence's position."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]  # fmt: skip
        found: dict[str, bytes] = {}
        for table in tables:
            out = io.BytesIO()
            await conn.copy_from_query(f'SELECT * FROM "{table}" ORDER BY "{table}"::text', output=out)
            found[table] = out.getvalue()
        sequences = await conn.fetch("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1")
        found["(sequences)"] = repr([tuple(r) for r in sequences]).encode()
        return found
    finally:
        await conn.close()


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "pgdata" not in p.parts
    }


async def fill(pool: asyncpg.Pool, settings: Settings) -> None:
    """Members, a community with a thread and a reply, a document uploaded through the
    pages (file and thumbnail in the data folder), keys, a followed remote community, a
    private conversation and other stored files."""
    # A document, the way a member adds one (this also makes amina and the community)
    app = create_app(settings, pool=pool)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        await given_a_document(client, pool, data=pdf_with_author(with_image=False))
    amina_id = await pool.fetchval("SELECT id FROM users WHERE username = 'amina'")
    amina = User(amina_id, "amina", "Amina", "member", "approved")
    bruno = User(await make_user(pool, "bruno", role="admin"), "bruno", "Bruno", "admin", "approved")
    async with pool.acquire() as conn:
        community = await communities.find(conn, "medical")
        assert community is not None
        created = await threads.create_thread(conn, community, amina, "Protocole", "Le protocole **révisé**.")
        await threads.create_reply(conn, created.thread_id, bruno, "Merci, c'est noté.")
        # Keys of local actors (the private keys are stored encrypted with the node secret)
        await actors.instance_actor(conn, settings)
        # A remote community that the node follows (its instance actor's Follow, accepted)
        await conn.execute(
            """INSERT INTO instances (domain, approved) VALUES ('partenaire.example', true);
               INSERT INTO actors (uri, kind, local, username, domain, inbox)
               VALUES ('https://partenaire.example/c/juridique', 'Group', false, 'juridique',
                       'partenaire.example', 'https://partenaire.example/c/juridique/inbox');
               INSERT INTO follow_answers (activity_id, answer, follow_id, follower_uri, followed_uri)
               VALUES ('https://partenaire.example/activities/accept-1', 'accept',
                       'https://forum.example.org/activities/follow-1', 'https://forum.example.org/actor',
                       'https://partenaire.example/c/juridique')"""
        )
        recipients = await messages.local_recipients(conn, amina, ["bruno"])
        from node import encryption

        await messages.start(conn, encryption.keyring_of(settings), BASE, amina, recipients,
                             "Situation délicate", "Un message privé chiffré.")  # fmt: skip
    media = settings.data_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    (media / "a1b2c3.webp").write_bytes(os.urandom(70_000))
    assert any((settings.data_dir / "documents").iterdir())  # the uploaded document's files


async def test_a_backup_restored_on_a_fresh_node_is_the_same_node_byte_for_byte(
    database_url: str, empty_dsn: str, tmp_path: Path
) -> None:
    # Given a node with content, members, keys, a followed remote community, messages, files
    source_dir = tmp_path / "source"
    source_env = node_env(database_url, source_dir)
    settings = load(source_env)
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        await fill(pool, settings)
    finally:
        await pool.close()
    # When it is backed up with the command
    archive = tmp_path / "sauvegardes" / "vbg-2026-12-03.tar"
    out = await admin(source_env, "backup", str(archive))
    # Then the archive and a separate secrets file (mode 600, with its warning) exist
    secrets_file = archive.with_name(archive.name + ".secrets")
    assert "secrets écrits à part" in out
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    secrets = json.loads(secrets_file.read_text())
    assert secrets["secret_key"] == (source_dir / "secret_key").read_text()
    assert secrets["messages_key"] == (source_dir / "messages_key").read_text()
    assert "ATTENTION" in secrets["warning"]
    # And the archive holds no secret
    raw = archive.read_bytes()
    assert secrets["secret_key"].strip().encode() not in raw
    assert secrets["messages_key"].strip().encode() not in raw

    # When it is restored on a new node (empty database, new data folder)
    target_dir = tmp_path / "target"
    target_env = node_env(empty_dsn, target_dir)
    out = await admin(target_env, "restore", str(archive))
    assert "restaurée" in out

    # Then every table, every sequence, every file and every secret is the same, byte for byte
    assert await table_bytes(empty_dsn) == await table_bytes(database_url)
    assert folder_bytes(target_dir) == folder_bytes(source_dir)
    # And the restored node reads its private messages and signs with its keys
    restored = load(target_env)
    pool = await db.create_pool(empty_dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            assert await db.pending_migrations(conn) == []
            me = await conn.fetchrow("SELECT id FROM users WHERE username = 'amina'")
            amina = User(me["id"], "amina", "Amina", "member", "approved")
            from node import encryption

            listing = await messages.listing(conn, encryption.keyring_of(restored), amina)
            conversation = await messages.conversation(
                conn, encryption.keyring_of(restored), amina, listing.conversations[0].id
            )
            assert conversation.subject == "Situation délicate"
            assert "Un message privé chiffré." in conversation.messages[0].html
            instance = await actors.instance_actor(conn, restored)
            assert actors.private_key(restored, instance) is not None
    finally:
        await pool.close()


async def test_a_damaged_archive_is_refused_and_changes_nothing(
    database_url: str, empty_dsn: str, tmp_path: Path
) -> None:
    # Given a backup with one byte changed in the middle of the database dump
    source_env = node_env(database_url, tmp_path / "source")
    archive = tmp_path / "b.tar"
    await admin(source_env, "backup", str(archive))
    data = bytearray(archive.read_bytes())
    data[4096] ^= 0xFF
    archive.write_bytes(bytes(data))
    # When it is restored
    out = await admin(node_env(empty_dsn, tmp_path / "target"), "restore", str(archive), ok=False)
    # Then it is refused before anything is written
    assert "somme de contrôle" in out or "illisible" in out
    assert await table_bytes(empty_dsn) == {"(sequences)": b"[]"}


async def test_restore_refuses_a_node_that_is_not_empty(database_url: str, tmp_path: Path) -> None:
    env = node_env(database_url, tmp_path / "source")
    archive = tmp_path / "b.tar"
    await admin(env, "backup", str(archive))
    before = await table_bytes(database_url)
    out = await admin(env, "restore", str(archive), ok=False)
    assert "la base n'est pas vide" in out
    assert await table_bytes(database_url) == before


async def test_restore_refuses_a_different_secret_in_the_environment(
    database_url: str, empty_dsn: str, tmp_path: Path
) -> None:
    archive = tmp_path / "b.tar"
    await admin(node_env(database_url, tmp_path / "source"), "backup", str(archive))
    env = {**node_env(empty_dsn, tmp_path / "target"), "VBG_SECRET_KEY": TEST_SECRET}
    out = await admin(env, "restore", str(archive), ok=False)
    assert "VBG_SECRET_KEY diffère" in out


def past_second(second: int) -> Callable[[], Awaitable[bool]]:
    """A probe: whether the wall clock (what names an archive) is past ``second``."""

    async def past() -> bool:
        return int(time.time()) > second

    return past


async def test_the_daily_rotation_keeps_the_newest_archives(database_url: str, tmp_path: Path) -> None:
    # Given the rotation script of deploy/, keeping 2, with the real command
    script = ROOT / "deploy" / "vbg-node-backup.sh"
    backups = tmp_path / "sauvegardes"
    env = {**node_env(database_url, tmp_path / "data"), "BACKUP_DIR": str(backups), "KEEP": "2",
           "VBG_NODE": VBG_NODE}  # fmt: skip
    # When it runs three times, each in a new second (archives are named by the second)
    for _ in range(3):
        started = int(time.time())
        proc = await asyncio.create_subprocess_exec(
            "bash", str(script), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()
        await eventually(past_second(started), "the clock reaches the next second", every=0.02)
    # Then the two newest archives remain, each with its secrets file
    names = sorted(p.name for p in backups.iterdir())
    assert len(names) == 4, names
    assert [n for n in names if n.endswith(".tar")] == [
        n[: -len(".secrets")] for n in names if n.endswith(".secrets")
    ]
