"""The command line says which database it uses and never creates a second embedded one
beside a running node."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from node import cli
from tests.conftest import TEST_SECRET


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port something listens on, like a running node."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


async def test_a_command_run_from_another_folder_beside_a_running_node_creates_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, listening_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a node running on its port, and a folder with no database (the wrong folder)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("VBG_DATA_DIR", str(tmp_path / "ailleurs"))
    monkeypatch.setenv("VBG_PORT", str(listening_port))
    monkeypatch.setenv("VBG_SECRET_KEY", TEST_SECRET)
    # When an admin command is run there
    rc = await asyncio.to_thread(cli.main, ["admin", "create-user", "olga", "--role", "admin"])
    # Then it refuses, says why, and creates no embedded database
    err = capsys.readouterr().err
    assert rc == 1
    assert "aucune base de données sous" in err and "Rien n'a été créé" in err
    assert not (tmp_path / "ailleurs" / "pgdata").exists()


async def test_a_command_says_which_database_it_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("VBG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VBG_SECRET_KEY", TEST_SECRET)
    assert (
        await asyncio.to_thread(
            cli.main, ["admin", "create-user", "olga", "--password", "un-mot-de-passe-solide"]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "base de données : PostgreSQL 127.0.0.1:5432/vbgt_" in err and "(DATABASE_URL)" in err
    assert "@" not in err.split("base de données :")[1].split("\n")[0]  # no user or password shown
