"""Private conversations (node.messages): writing, reading, unread counts, blocks,
leaving, preferences, reports, and the node key's rotation."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from node import encryption, messages, sessions
from node.errors import BadRequest, Conflict, NotFound
from node.sessions import User
from node.settings import Settings, load
from tests.conftest import TEST_SECRET
from tests.helpers import make_user

BASE = "http://testserver"


def keyring(settings: Settings) -> encryption.Keyring:
    return encryption.keyring_of(settings)


async def member(pool: asyncpg.Pool, name: str, role: str = "member") -> User:
    user_id = await make_user(pool, name, role=role)
    return User(user_id, name, name.capitalize(), role, "approved")


async def write(
    pool: asyncpg.Pool, settings: Settings, author: User, to: list[str], subject: str, body: str
) -> messages.Written:
    async with pool.acquire() as conn:
        recipients = await messages.local_recipients(conn, author, to)
        return await messages.start(conn, keyring(settings), BASE, author, recipients, subject, body)


async def unread(pool: asyncpg.Pool, user: User) -> int:
    return await messages.unread_total(pool, user.id)


async def test_a_conversation_is_read_by_its_participants_only(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given Amina, Bruno, a third member Chloé and a moderator
    amina, bruno = await member(pool, "amina"), await member(pool, "bruno")
    chloe, modo = await member(pool, "chloe"), await member(pool, "modo", "moderator")

    # When Amina writes to Bruno
    written = await write(pool, settings, amina, ["bruno"], "Cas de Mme X", "Elle a **peur** de rentrer.")

    # Then both read the subject and the rendered body; Chloé and the moderator find nothing
    for reader in (amina, bruno):
        seen = await messages.conversation(pool, keyring(settings), reader, written.conversation_id)
        assert seen.subject == "Cas de Mme X"
        assert seen.messages[0].html == "<p>Elle a <strong>peur</strong> de rentrer.</p>"
    for outsider in (chloe, modo):
        with pytest.raises(NotFound):
            await messages.conversation(pool, keyring(settings), outsider, written.conversation_id)
    assert [s.subject for s in (await messages.listing(pool, keyring(settings), chloe)).conversations] == []


async def test_unread_counts_go_up_with_messages_and_down_when_read(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    amina, bruno = await member(pool, "amina"), await member(pool, "bruno")
    written = await write(pool, settings, amina, ["bruno"], "Sujet", "Un")
    assert (await unread(pool, bruno), await unread(pool, amina)) == (1, 0)

    async with pool.acquire() as conn:
        await messages.reply(conn, keyring(settings), amina, written.conversation_id, "Deux")
    assert await unread(pool, bruno) == 2

    await messages.mark_read(pool, bruno, written.conversation_id)
    assert await unread(pool, bruno) == 0
    async with pool.acquire() as conn:
        await messages.reply(conn, keyring(settings), bruno, written.conversation_id, "Réponse")
    assert (await unread(pool, bruno), await unread(pool, amina)) == (0, 1)


async def test_the_unread_count_comes_with_the_session(pool: asyncpg.Pool, settings: Settings) -> None:
    amina, bruno = await member(pool, "amina"), await member(pool, "bruno")
    token = await sessions.create(pool, bruno.id, "test", "127.0.0.1")
    await write(pool, settings, amina, ["bruno"], "Sujet", "Un")
    session = await sessions.lookup(pool, token)
    assert session is not None and session.user.unread_messages == 1


async def test_a_blocked_member_writes_unseen_and_is_not_told(pool: asyncpg.Pool, settings: Settings) -> None:
    # Given a conversation between Amina and Bruno, then Bruno blocks Amina
    amina, bruno = await member(pool, "amina"), await member(pool, "bruno")
    written = await write(pool, settings, amina, ["bruno"], "Sujet", "Avant le blocage")
    await messages.mark_read(pool, bruno, written.conversation_id)
    await messages.block_member(pool, bruno, "amina")

    # When Amina writes again, and starts a new conversation
    async with pool.acquire() as conn:
        await messages.reply(conn, keyring(settings), amina, written.conversation_id, "Après le blocage")
    second = await write(pool, settings, amina, ["bruno"], "Autre", "Encore")

    # Then Amina sees her messages as usual; Bruno sees only what came before the block
    mine = await messages.conversation(pool, keyring(settings), amina, written.conversation_id)
    assert [m.html for m in mine.messages] == ["<p>Avant le blocage</p>", "<p>Après le blocage</p>"]
    his = await messages.conversation(pool, keyring(settings), bruno, written.conversation_id)
    assert [m.html for m in his.messages] == ["<p>Avant le blocage</p>"]
    assert await unread(pool, bruno) == 0
    listed = await messages.listing(pool, keyring(settings), bruno)
    assert [c.id for c in listed.conversations] == [written.conversation_id]
    assert second.conversation_id not in [c.id for c in listed.conversations]


async def test_leaving_removes_the_conversation_for_that_member_only(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    amina, bruno, chloe = (
        await member(pool, "amina"),
        await member(pool, "bruno"),
        await member(pool, "chloe"),
    )
    written = await write(pool, settings, amina, ["bruno", "chloe"], "À trois", "Bonjour")
    await messages.leave(pool, chloe, written.conversation_id)
    with pytest.raises(NotFound):
        await messages.conversation(pool, keyring(settings), chloe, written.conversation_id)
    async with pool.acquire() as conn:
        with pytest.raises(NotFound):
            await messages.reply(conn, keyring(settings), chloe, written.conversation_id, "Je reviens")
        await messages.reply(conn, keyring(settings), bruno, written.conversation_id, "Toujours là")
    assert await unread(pool, chloe) == 0
    seen = await messages.conversation(pool, keyring(settings), amina, written.conversation_id)
    assert [p["left_at"] is not None for p in seen.participants] == [False, False, True]


async def test_preferences_restrict_who_may_write(pool: asyncpg.Pool, settings: Settings) -> None:
    amina, expert = await member(pool, "amina"), await member(pool, "edith", "expert")
    bruno = await member(pool, "bruno")
    await messages.set_preference(pool, bruno, "experts")
    with pytest.raises(BadRequest) as refused:
        await write(pool, settings, amina, ["bruno"], "Sujet", "Bonjour")
    assert "ne reçoit pas de messages" in refused.value.fields["recipients"]
    await write(pool, settings, expert, ["bruno"], "Sujet", "Bonjour")
    assert not messages.may_write(expert, "local", remote_author=True)
    assert messages.may_write(None, "all", remote_author=True)


async def test_bad_input_changes_nothing(pool: asyncpg.Pool, settings: Settings) -> None:
    amina = await member(pool, "amina")
    await member(pool, "pending")
    await pool.execute("UPDATE users SET status = 'pending' WHERE username = 'pending'")
    for to, subject, body, field in (
        ([], "Sujet", "Corps", "recipients"),
        (["personne"], "Sujet", "Corps", "recipients"),
        (["pending"], "Sujet", "Corps", "recipients"),
        (["amina"], "Sujet", "Corps", "recipients"),
    ):
        with pytest.raises(BadRequest) as error:
            await write(pool, settings, amina, to, subject, body)
        assert field in error.value.fields
    await member(pool, "bruno")
    for subject, body, field in (
        ("", "Corps", "subject"),
        ("Sujet", " ", "body"),
        ("S", "x" * 20_001, "body"),
    ):
        with pytest.raises(BadRequest) as error:
            await write(pool, settings, amina, ["bruno"], subject, body)
        assert field in error.value.fields
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 0


async def test_a_report_shows_one_message_to_moderators_and_each_opening_is_audited(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given Amina's message to Bruno, and Bruno's report of it
    amina, bruno = await member(pool, "amina"), await member(pool, "bruno")
    modo, modo2 = await member(pool, "modo", "moderator"), await member(pool, "admin", "admin")
    written = await write(pool, settings, amina, ["bruno"], "Sujet", "Message inacceptable")
    async with pool.acquire() as conn:
        await messages.reply(conn, keyring(settings), amina, written.conversation_id, "Autre message")
        with pytest.raises(BadRequest):
            await messages.report(
                conn, keyring(settings), amina, written.conversation_id, written.message_id, "x"
            )
        report_id = await messages.report(
            conn, keyring(settings), bruno, written.conversation_id, written.message_id, "Menaces"
        )
        with pytest.raises(Conflict):
            await messages.report(
                conn, keyring(settings), bruno, written.conversation_id, written.message_id, "x"
            )

        # When two moderators open it
        opened = await messages.open_report(conn, keyring(settings), modo, report_id)
        await messages.open_report(conn, keyring(settings), modo2, report_id)
        with pytest.raises(NotFound):
            await messages.open_report(conn, keyring(settings), amina, report_id)

    # Then they read that message and the reason only, and the audit log names both
    assert (opened.html, opened.reason, opened.author_name) == (
        "<p>Message inacceptable</p>",
        "Menaces",
        "amina",
    )
    rows = await pool.fetch("SELECT actor_id FROM audit_log WHERE action = 'message_report.open' ORDER BY id")
    assert [r["actor_id"] for r in rows] == [modo.id, modo2.id]
    # and the conversation itself stays closed to them
    with pytest.raises(NotFound):
        await messages.conversation(pool, keyring(settings), modo, written.conversation_id)


# --- the node key --------------------------------------------------------------------


def env_settings(tmp_path: Path, database_url: str, **extra: str) -> Settings:
    env = {
        "VBG_BASE_URL": BASE,
        "VBG_DATA_DIR": str(tmp_path / "data"),
        "VBG_SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": database_url,
    }
    return load({**env, **extra})


async def test_rotating_the_key_file_rewraps_every_conversation(
    pool: asyncpg.Pool, settings: Settings, tmp_path: Path, database_url: str
) -> None:
    # Given two conversations under the generated key file
    amina, bruno = await member(pool, "amina"), await member(pool, "bruno")
    first = await write(pool, settings, amina, ["bruno"], "Un", "Premier")
    await write(pool, settings, amina, ["bruno"], "Deux", "Second")
    old_id = keyring(settings).current_id
    key_file = settings.data_dir / "messages_key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    # When the key is rotated
    async with pool.acquire() as conn:
        rotation = await messages.rotate_node_key(conn, settings)
    rotated = env_settings(tmp_path, database_url)
    assert rotation.current_id == keyring(rotated).current_id != old_id
    assert rotation.rewrapped == 2 and rotation.retired == [old_id]
    assert await pool.fetchval("SELECT array_agg(DISTINCT key_id) FROM conversations") == [
        rotation.current_id
    ]

    # and, every process restarted, the old key is forgotten
    async with pool.acquire() as conn:
        forgotten = await messages.rotate_node_key(conn, rotated, forget_retired=True)
    assert forgotten.forgotten == [old_id]
    final = env_settings(tmp_path, database_url)
    assert keyring(final).ids() == [rotation.current_id]

    # Then everything still opens with the new key alone
    seen = await messages.conversation(pool, keyring(final), bruno, first.conversation_id)
    assert (seen.subject, seen.messages[0].html) == ("Un", "<p>Premier</p>")


async def test_rotating_with_the_environment_variable(
    pool: asyncpg.Pool, tmp_path: Path, database_url: str
) -> None:
    old, new = encryption.encode_key(encryption.new_key()), encryption.encode_key(encryption.new_key())
    before = env_settings(tmp_path, database_url, VBG_MESSAGES_KEY=old)
    amina, bruno = await member(pool, "amina"), await member(pool, "bruno")
    written = await write(pool, before, amina, ["bruno"], "Sujet", "Corps")
    assert not (before.data_dir / "messages_key").exists()

    # The operator puts the new key first and keeps the old one, then rotates
    both = env_settings(tmp_path, database_url, VBG_MESSAGES_KEY=f"{new},{old}")
    async with pool.acquire() as conn:
        rotation = await messages.rotate_node_key(conn, both)
    assert rotation.rewrapped == 1

    # and removes the old key: the conversation opens with the new one alone
    after = env_settings(tmp_path, database_url, VBG_MESSAGES_KEY=new)
    seen = await messages.conversation(pool, keyring(after), bruno, written.conversation_id)
    assert seen.subject == "Sujet"
    with pytest.raises(encryption.KeyringError):
        await messages.conversation(pool, keyring(before), bruno, written.conversation_id)


def test_a_malformed_key_stops_the_node(tmp_path: Path) -> None:
    from node.settings import SettingsError

    with pytest.raises(SettingsError, match="VBG_MESSAGES_KEY"):
        load({"VBG_DATA_DIR": str(tmp_path), "VBG_SECRET_KEY": TEST_SECRET, "VBG_MESSAGES_KEY": "court"})


def test_a_sealed_value_opens_only_where_it_was_written() -> None:
    key = encryption.new_key()
    sealed = encryption.seal(key, b"secret", encryption.field_aad(1, "subject"))
    assert encryption.open_sealed(key, sealed, encryption.field_aad(1, "subject")) == b"secret"
    for aad in (encryption.field_aad(2, "subject"), encryption.field_aad(1, "message x source")):
        with pytest.raises(encryption.KeyringError):
            encryption.open_sealed(key, sealed, aad)
    with pytest.raises(encryption.KeyringError):
        encryption.open_sealed(encryption.new_key(), sealed, encryption.field_aad(1, "subject"))


def test_a_conversation_key_is_kept_unwrapped_for_its_wrapped_value_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> None:
    # Given a conversation key wrapped by the node key, opened once
    monkeypatch.setattr(encryption, "CONVERSATION_CIPHERS", 3)
    old = encryption.encode_key(encryption.new_key())
    keyring = encryption.keyring_of(env_settings(tmp_path, database_url, VBG_MESSAGES_KEY=old))
    key = encryption.new_key()
    wrapped = keyring.wrap(key, 7)
    kept = keyring.conversation_cipher(wrapped, 7)

    # Then it is kept for that very wrapped value and conversation
    assert kept.key == key and keyring.conversation_cipher(wrapped, 7) is kept
    # and anything else is unwrapped afresh, so refused as before: another conversation's
    # id, a changed wrapped value, a node key not in the keyring
    tampered = encryption.Wrapped(wrapped.key_id, wrapped.wrapped[:-1] + bytes([wrapped.wrapped[-1] ^ 1]))
    stranger = encryption.Keyring([encryption.new_key()]).wrap(key, 7)
    for bad, conversation_id in ((wrapped, 8), (tampered, 7), (stranger, 7)):
        with pytest.raises(encryption.KeyringError):
            keyring.conversation_cipher(bad, conversation_id)

    # When three other conversations are opened, the least recently used one is let go
    for other in (11, 12, 13):
        keyring.conversation_cipher(keyring.wrap(encryption.new_key(), other), other)
    again = keyring.conversation_cipher(wrapped, 7)
    assert again is not kept and again.key == key

    # When the node keys change (a rotation), every process drops what it kept
    new = encryption.encode_key(encryption.new_key())
    encryption.keyring_of(env_settings(tmp_path, database_url, VBG_MESSAGES_KEY=f"{new},{old}"))
    assert keyring.conversation_cipher(wrapped, 7) is not again


async def test_a_new_message_is_a_notification_that_never_says_what(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    from node import notification_mail, notifications

    amina, bruno = await member(pool, "amina"), await member(pool, "bruno")
    written = await write(pool, settings, amina, ["bruno"], "Sujet Pangolin", "Texte Tatou")
    async with pool.acquire() as conn:
        await messages.reply(conn, keyring(settings), amina, written.conversation_id, "Encore Tatou")
    # one unread notification for the conversation, however many messages
    (item,) = (await notifications.page_for(pool, bruno)).items
    assert item["kind"] == "new_message" and item["actor_name"] == "amina"
    row = await pool.fetchrow("SELECT * FROM notifications")
    assert "Pangolin" not in str(dict(row)) and "Tatou" not in str(dict(row))
    assert "Pangolin" not in notification_mail.describe({**dict(item), "public_title": None})
    assert (
        await notifications.open_notification(pool, bruno, item["id"])
        == f"/messages/{written.conversation_id}"
    )
    # reading the conversation reads its notification too; the next message notifies again
    async with pool.acquire() as conn:
        await messages.reply(conn, keyring(settings), amina, written.conversation_id, "Et encore")
    await messages.mark_read(pool, bruno, written.conversation_id)
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE read_at IS NULL") == 0


async def test_forgetting_keeps_a_key_that_still_seals_a_queued_activity(
    pool: asyncpg.Pool, settings: Settings, tmp_path: Path, database_url: str
) -> None:
    # Given a private activity sealed under the first key, still waiting in the inbox queue
    first = keyring(settings)
    sealed = first.seal_transit(b'{"type": "Create"}', "https://peer.example/a/1")
    await pool.execute(
        "INSERT INTO inbox_items (activity_id, activity_type, actor_uri, document) VALUES ($1, 'Create', $2, $3)",
        "https://peer.example/a/1",
        "https://peer.example/u/x",
        {"id": "https://peer.example/a/1", "vbg:sealed": sealed},
    )
    # When the key is rotated and the old one forgotten
    async with pool.acquire() as conn:
        await messages.rotate_node_key(conn, settings)
        rotated = env_settings(tmp_path, database_url)
        done = await messages.rotate_node_key(conn, rotated, forget_retired=True)
    # Then the old key stays while the queue needs it
    assert done.forgotten == [] and first.current_id in keyring(env_settings(tmp_path, database_url)).ids()
    assert keyring(env_settings(tmp_path, database_url)).open_transit(sealed, "https://peer.example/a/1")
