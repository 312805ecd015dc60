"""What a stolen dump, backup or disk shows of private messages: ciphertext only.

After a conversation (subject, Markdown body, a reply, a report), every column of
every table, a ``pg_dump`` of the whole database and every file under the data
folder are searched for the plaintext; none of it may appear.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from node import encryption, messages, uploads
from node.sessions import User
from node.settings import Settings
from node.storage import storage_for
from tests.helpers import make_user

SUBJECT = "Dossier Zéphyrine-Quokka"
BODY = "Elle vit au 17 rue des Capucines-Orvet, le code est 4471-XQ."
REPLY = "Rendez-vous jeudi avec la juriste Perpétue-Wombat."
REASON = "Signalement motivé Farandole-Okapi."
FILE_TEXT = "Compte rendu : adresse de repli chez Mme Ocelot-Tapir, 9 impasse Narval."
FILE_NAME = "compte-rendu Ocelot-Tapir.txt"
SECRETS = [
    SUBJECT, BODY, REPLY, REASON, "Zéphyrine-Quokka", "Capucines-Orvet", "4471-XQ", "Perpétue-Wombat",
    FILE_TEXT, "Ocelot-Tapir", "impasse Narval",
]  # fmt: skip


def _pg_dump() -> list[str]:
    candidates = [shutil.which("pg_dump")]
    try:
        import pgserver

        candidates.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"))
    except ImportError:
        pass
    return [c for c in candidates if c and os.path.exists(c)]


def dump(database_url: str) -> bytes:
    """The database as ``pg_dump`` writes it (the first pg_dump that speaks its version)."""
    errors = []
    for binary in _pg_dump():
        done = subprocess.run([binary, "--no-owner", database_url], capture_output=True, timeout=120)
        if done.returncode == 0:
            return done.stdout
        errors.append(done.stderr.decode(errors="replace"))
    pytest.fail(f"no usable pg_dump: {errors}")


async def every_value(pool: asyncpg.Pool) -> str:
    """Every column of every row of every table, as text."""
    tables = await pool.fetch(
        "SELECT quote_ident(table_name) AS t FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    parts: list[str] = []
    for table in tables:
        rows = await pool.fetch(f"SELECT t::text AS row FROM {table['t']} t")
        parts.extend(r["row"] for r in rows)
    return "\n".join(parts)


def files_under(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


async def test_no_plaintext_in_rows_dump_or_files(
    pool: asyncpg.Pool, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    # Given a conversation with a reply carrying a file, and a report, fully written
    amina_id, bruno_id = await make_user(pool, "amina"), await make_user(pool, "bruno")
    amina = User(amina_id, "amina", "Amina", "member", "approved")
    bruno = User(bruno_id, "bruno", "Bruno", "member", "approved")
    keyring = encryption.keyring_of(settings)
    async with pool.acquire() as conn:
        recipients = await messages.local_recipients(conn, amina, ["bruno"])
        written = await messages.start(conn, keyring, "http://testserver", amina, recipients, SUBJECT, BODY)
        upload = tmp_path / "upload.txt"
        upload.write_text(FILE_TEXT, encoding="utf-8")
        clean = uploads.clean(upload, uploads.temp_dir(settings))
        attachment = messages.NewAttachment(clean.path, clean.kind.key, clean.size, FILE_NAME)
        files = storage_for(settings, messages.FILES_AREA)
        await messages.reply(conn, keyring, bruno, written.conversation_id, REPLY, attachment, files)
        upload.unlink()
        clean.discard()
        await messages.report(conn, keyring, bruno, written.conversation_id, written.message_id, REASON)
    seen = await messages.conversation(pool, keyring, bruno, written.conversation_id)
    assert seen.subject == SUBJECT and len(seen.messages) == 2  # the test's secrets are really there
    (shown,) = [a for files_ in seen.attachments.values() for a in files_]
    opened = await messages.attachment_file(pool, keyring, files, amina, written.conversation_id, shown.id)
    assert (opened.name, opened.data.decode()) == (FILE_NAME, FILE_TEXT)
    assert list((settings.data_dir / messages.FILES_AREA).rglob("*.bin"))
    await pool.execute("CHECKPOINT")

    # When the rows, a dump and the data folder are read
    rows = await every_value(pool)
    dumped = dump(database_url)
    stored = files_under(settings.data_dir)

    # Then no secret appears, in any encoding PostgreSQL or a file could hold it
    assert urlsplit(database_url).path  # (the dump is of this test's own database)
    for secret in SECRETS:
        for needle in {secret, secret.encode("utf-8").hex(), secret.lower()}:
            assert needle not in rows, f"{secret!r} readable in the database rows"
        encoded = secret.encode("utf-8")
        assert encoded not in dumped, f"{secret!r} readable in pg_dump"
        assert encoded not in stored, f"{secret!r} readable in the data folder"
    # and the node key is not in the database either
    for key in keyring.keys:
        assert encryption.encode_key(key) not in rows and key.hex() not in rows
