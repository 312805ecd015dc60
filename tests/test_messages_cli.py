"""``vbg-node admin rotate-messages-key`` and ``messages-remote``, end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from node import cli, encryption, messages
from node.sessions import User
from node.settings import load
from tests.conftest import TEST_SECRET
from tests.helpers import make_user


@pytest.fixture
def node_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "VBG_BASE_URL": "https://node.example",
        "VBG_DATA_DIR": str(tmp_path / "data"),
        "VBG_SECRET_KEY": TEST_SECRET,
        "VBG_LOG_LEVEL": "WARNING",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


async def vbg(*argv: str) -> int:
    return await asyncio.to_thread(cli.main, ["admin", *argv])


async def test_rotate_messages_key_from_the_command_line(
    pool: asyncpg.Pool, node_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a conversation written under the node's first key
    settings = load(node_env)
    amina = User(await make_user(pool, "amina"), "amina", "Amina", "member", "approved")
    bruno = User(await make_user(pool, "bruno"), "bruno", "Bruno", "member", "approved")
    async with pool.acquire() as conn:
        to = await messages.local_recipients(conn, amina, ["bruno"])
        written = await messages.start(
            conn, encryption.keyring_of(settings), settings.base_url, amina, to, "Sujet", "Corps"
        )
    first = encryption.keyring_of(settings).current_id

    # When the admin rotates, restarts, then forgets the old key
    assert await vbg("rotate-messages-key") == 0
    assert "conversations rechiffrées : 1" in capsys.readouterr().out
    assert await vbg("rotate-messages-key", "--forget-retired") == 0
    assert f"anciennes clés retirées : {first}" in capsys.readouterr().out

    # Then the conversation opens with the one remaining, new key
    now = encryption.keyring_of(load(node_env))
    assert now.ids() != [first] and len(now.ids()) == 1
    seen = await messages.conversation(pool, now, bruno, written.conversation_id)
    assert seen.subject == "Sujet"


async def test_messages_remote_policy(
    pool: asyncpg.Pool, node_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await vbg("messages-remote") == 0
    assert capsys.readouterr().out.strip().endswith(": partners")
    assert await vbg("messages-remote", "fediverse") == 0
    assert await messages.remote_policy(pool) == "fediverse"
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'messages.remote_policy'") == 1
