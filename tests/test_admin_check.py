"""``vbg-node admin check`` (issue 16): what it reports, in French, and its exit status."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path

import pytest
from aiohttp import web

from federation import checks as network_checks
from node import checks
from node.settings import load
from tests.conftest import TEST_SECRET
from tests.interop import INTEROP, VBG_NODE
from tests.liveserver import free_port


async def run_check(env: dict[str, str], *args: str) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VBG_")}
    proc = await asyncio.create_subprocess_exec(
        VBG_NODE, "admin", "check", *args, env={**base, **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_a_production_node_in_http_with_test_settings_fails_the_check(
    database_url: str, tmp_path: Path
) -> None:
    # Given a node on a public name, in http, with the test setting and an example secret
    env = {
        "DATABASE_URL": database_url,
        "VBG_DATA_DIR": str(tmp_path / "data"),
        "VBG_BASE_URL": "http://forum.example.org",
        "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
        "VBG_SECRET_KEY": "CHANGE-ME-TO-A-LONG-RANDOM-STRING",
    }
    # When the admin runs the check
    status, out = await run_check(env)
    # Then it says what is wrong, in French, and fails
    assert status == 1, out
    assert "[ERREUR] L'adresse publique http://forum.example.org n'est pas en https" in out
    assert "[ERREUR] VBG_DEV_ALLOW_PRIVATE_PEERS=1 est activé" in out
    assert "[ERREUR] Le secret du nœud (VBG_SECRET_KEY) est faible" in out
    assert "[ERREUR] Certificat TLS : l'adresse publique n'est pas en https." in out
    # And what is right, too
    assert "[OK] La base est à jour (aucune migration en attente)." in out
    assert "[OK] PostgreSQL " in out
    assert "est inscriptible" in out and "Espace disque" in out


async def test_a_sound_local_node_passes_and_names_pending_migrations(
    server_dsn: str, database_url: str, tmp_path: Path
) -> None:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    await conn.execute(
        "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)"
    )
    await conn.close()
    # (no VBG_SECRET_KEY: the node generates a strong one into its data folder)
    env = {"DATABASE_URL": database_url, "VBG_DATA_DIR": str(tmp_path / "data")}
    status, out = await run_check(env)
    assert status == 0, out
    assert "[ATTENTION] Migrations en attente" in out
    assert "[ERREUR]" not in out


async def test_an_unwritable_data_folder_is_an_error(tmp_path: Path) -> None:
    settings = load({"VBG_DATA_DIR": str(tmp_path / "data"), "VBG_SECRET_KEY": TEST_SECRET})
    blocker = tmp_path / "file"
    blocker.write_text("")
    # A data folder below a plain file cannot be created, even by root
    unwritable = checks.Context(settings, None, {})
    object.__setattr__(settings, "data_dir", blocker / "data")
    findings = await checks.data_folder(unwritable)
    assert findings[0].level == checks.ERROR
    assert "n'est pas inscriptible" in findings[0].text


async def test_a_group_readable_secret_file_is_an_error(tmp_path: Path) -> None:
    settings = load({"VBG_DATA_DIR": str(tmp_path), "VBG_BASE_URL": "https://forum.example.org"})
    os.chmod(tmp_path / "secret_key", 0o644)
    findings = await checks.secrets_(checks.Context(settings, None, {}))
    assert [f.level for f in findings][0] == checks.ERROR
    assert "chmod 600" in findings[0].text


async def test_the_database_being_down_is_an_error(tmp_path: Path) -> None:
    settings = load({"VBG_DATA_DIR": str(tmp_path), "VBG_SECRET_KEY": TEST_SECRET})
    findings = await checks.database(checks.Context(settings, None, {}))
    assert findings == [checks.Finding(checks.ERROR, findings[0].text)]
    assert "ne répond pas" in findings[0].text


@pytest.fixture
async def peer_clock() -> AsyncIterator[tuple[str, list[float]]]:
    """A peer on loopback whose Date header is offset by the seconds in the list."""
    offset = [0.0]

    async def nodeinfo(request: web.Request) -> web.Response:
        import time

        return web.json_response({}, headers={"Date": formatdate(time.time() + offset[0], usegmt=True)})

    app = web.Application()
    app.router.add_get("/.well-known/nodeinfo", nodeinfo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}", offset
    finally:
        await runner.cleanup()


async def test_clock_skew_against_a_peer(tmp_path: Path, peer_clock: tuple[str, list[float]]) -> None:
    origin, offset = peer_clock
    settings = load({"VBG_DATA_DIR": str(tmp_path), "VBG_SECRET_KEY": TEST_SECRET,
                     "VBG_DEV_ALLOW_PRIVATE_PEERS": "1"})  # fmt: skip
    ctx = checks.Context(settings, None, {}, peers=[origin])
    # A peer on time
    [finding] = await network_checks.clock(ctx)
    assert finding.level == checks.OK, finding
    # A peer whose clock is 10 minutes ahead of ours: we are 600 s behind
    offset[0] = 600
    [finding] = await network_checks.clock(ctx)
    assert finding.level == checks.ERROR
    assert (
        "600 s en retard" in finding.text
        or "599 s en retard" in finding.text
        or "601 s en retard" in finding.text
    )


def short_lived_certificate(folder: Path, days: int) -> tuple[Path, Path, Path]:
    """A local CA (shared interop kit) and a leaf for localhost valid ``days`` days."""
    subprocess.run(
        ["bash", str(INTEROP / "make_ca.sh"), str(folder), "localhost"], check=True, capture_output=True
    )
    key, csr, crt = folder / "short.key", folder / "short.csr", folder / "short.crt"
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", "/CN=localhost"], check=True, capture_output=True)  # fmt: skip
    ext = folder / "short.ext"
    ext.write_text("subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(folder / "ca.crt"),
                    "-CAkey", str(folder / "ca.key"), "-CAcreateserial", "-out", str(crt),
                    "-days", str(days), "-extfile", str(ext)], check=True, capture_output=True)  # fmt: skip
    return folder / "ca.crt", crt, key


async def test_a_certificate_ending_soon_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not INTEROP.is_dir():
        pytest.skip("no interop kit (../shared/interop)")
    ca, crt, key = short_lived_certificate(tmp_path, 5)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(crt), str(key))
    port = free_port()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port, ssl=context)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    try:
        settings = load({"VBG_DATA_DIR": str(tmp_path / "d"), "VBG_SECRET_KEY": TEST_SECRET,
                         "VBG_BASE_URL": f"https://localhost:{port}"})  # fmt: skip
        [finding] = await network_checks.certificate(checks.Context(settings, None, {}))
    finally:
        server.close()
        await server.wait_closed()
    assert finding.level == checks.ERROR, finding
    assert "expire dans 5 jours" in finding.text or "expire dans 4 jours" in finding.text
