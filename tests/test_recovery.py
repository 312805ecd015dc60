"""Password recovery: one-time links issued by an admin (web and command line)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from federation import mailer
from node import cli
from node.settings import Settings, parse_smtp_url
from node.web.app import create_app
from tests.conftest import TEST_SECRET
from tests.helpers import login, make_user, new_client, post_form
from tests.smtpserver import Recorder, smtp_server

NEW_PASSWORD = "un-tout-nouveau-secret"
_LINK = re.compile(r"https?://[^\s\"<]+/reinitialiser/[A-Za-z0-9_-]+")


def link_path(text: str) -> str:
    match = _LINK.search(text)
    assert match, "no reset link in the answer"
    return "/reinitialiser/" + match.group(0).rsplit("/", 1)[1]


async def issue_as_admin(client: httpx.AsyncClient, member_id: int) -> str:
    response = await post_form(
        client, f"/admin/membres/{member_id}/lien-de-reinitialisation", {}, page=f"/admin/membres/{member_id}"
    )
    assert response.status_code == 200, response.text
    return link_path(response.text)


async def choose(
    client: httpx.AsyncClient, path: str, new: str, confirm: str | None = None
) -> httpx.Response:
    return await post_form(client, path, {"new_password": new, "new_password_confirm": confirm or new})


async def test_an_admin_link_resets_the_password_once_and_ends_every_session(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given an admin and a member logged in on another browser
    await make_user(pool, "admin", role="admin")
    amina = await make_user(pool, "amina")
    await login(client, "admin")
    async with new_client(app) as phone:
        await login(phone, "amina")
        # When the admin issues a link and the member uses it from a third browser
        path = await issue_as_admin(client, amina)
        async with new_client(app) as laptop:
            assert "amina" in (await laptop.get(path)).text
            response = await choose(laptop, path, NEW_PASSWORD)
            # Then she is sent to log in, her old session is gone, the new password works
            assert response.status_code == 303
            assert response.headers["location"] == "/connexion?fait=reinitialise"
            assert (await phone.get("/compte")).status_code == 404
            await login(laptop, "amina", NEW_PASSWORD)
            # And the link is spent
            spent = await laptop.get(path)
            assert spent.status_code == 404
            assert "plus valable" in spent.text
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["password.reset_link", "password.reset"]


async def test_a_wrong_confirmation_keeps_the_link_alive(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a live link
    await make_user(pool, "admin", role="admin")
    amina = await make_user(pool, "amina")
    await login(client, "admin")
    path = await issue_as_admin(client, amina)
    await client.post("/deconnexion", data={"csrf_token": "x"})
    # When the two passwords differ, or the new one is too short
    mismatch = await choose(client, path, NEW_PASSWORD, "autre-chose-encore")
    short = await choose(client, path, "court")
    # Then the form comes back with the field's error and the link still works
    assert mismatch.status_code == 400 and "ne correspondent pas" in mismatch.text
    assert short.status_code == 400 and "10 caractères" in short.text
    assert (await choose(client, path, NEW_PASSWORD)).status_code == 303


async def test_an_expired_or_unknown_link_is_one_dead_end(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "admin", role="admin")
    amina = await make_user(pool, "amina")
    await login(client, "admin")
    path = await issue_as_admin(client, amina)
    await pool.execute("UPDATE password_resets SET expires_at = now() - interval '1 second'")
    expired = await client.get(path)
    unknown = await client.get("/reinitialiser/nimportequoi")
    assert expired.status_code == unknown.status_code == 404
    assert expired.text == unknown.text
    assert (await choose(client, path, NEW_PASSWORD)).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'password.reset'") == 0


async def test_only_admins_issue_links(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await make_user(pool, "mod", role="moderator")
    amina = await make_user(pool, "amina")
    await login(client, "mod")
    response = await post_form(client, f"/admin/membres/{amina}/lien-de-reinitialisation", {}, page="/")
    assert response.status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM password_resets") == 0


@pytest.fixture
def node_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("VBG_BASE_URL", "http://testserver")
    monkeypatch.setenv("VBG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VBG_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("VBG_LOG_LEVEL", "WARNING")


@pytest.mark.usefixtures("node_env")
async def test_the_command_line_recreates_a_lost_admin_and_resets_passwords(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a node whose only admin forgot her password
    await make_user(pool, "olga", role="admin")
    # When the operator asks for a reset link from the command line
    assert await asyncio.to_thread(cli.main, ["admin", "reset-password", "Olga"]) == 0
    path = link_path(capsys.readouterr().out)
    # Then the link sets a new password
    assert (await choose(client, path, NEW_PASSWORD)).status_code == 303
    await login(client, "olga", NEW_PASSWORD)
    # And a new admin created without a password on the command line gets a link too
    assert await asyncio.to_thread(cli.main, ["admin", "create-user", "nadia", "--role", "admin"]) == 0
    out = capsys.readouterr().out
    assert "compte créé : nadia" in out
    async with new_client(app) as other:
        assert (await choose(other, link_path(out), NEW_PASSWORD)).status_code == 303
        await login(other, "nadia", NEW_PASSWORD)
        assert (await other.get("/admin")).status_code == 200
    # An unknown name is an error, not a silent success
    assert await asyncio.to_thread(cli.main, ["admin", "reset-password", "personne"]) == 1
    labels = await pool.fetch("SELECT actor_label FROM audit_log WHERE action = 'password.reset_link'")
    assert {r["actor_label"] for r in labels} == {"cli"}


# ---------------------------------------------------------------- by e-mail


def mailing_app(settings: Settings, pool: asyncpg.Pool, server: Recorder) -> tuple[Any, Settings]:
    smtp = parse_smtp_url(f"smtp://127.0.0.1:{server.port}?timeout=5")
    return create_app(replace(settings, smtp=smtp), pool=pool), replace(settings, smtp=smtp)


async def test_a_forgotten_password_is_reset_by_an_emailed_link_and_the_answer_reveals_nothing(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "amina", email="amina@example.org")
    async with smtp_server() as server:
        app, mailing = mailing_app(settings, pool, server)
        async with new_client(app) as browser:
            # When she asks by e-mail address, and someone asks for an unknown address
            known = await post_form(browser, "/mot-de-passe-oublie", {"login": "Amina@Example.org"})
            unknown = await post_form(browser, "/mot-de-passe-oublie", {"login": "personne@example.org"})
            # Then both answers are the same page
            assert known.status_code == unknown.status_code == 200
            assert known.text == unknown.text
            assert "Si un compte correspond" in known.text
            # And one e-mail leaves, through the worker, with a one-hour link
            assert await mailer.process_due(pool, mailing) == 1
            [got] = server.received
            assert got.rcpt_tos == ["amina@example.org"]
            path = link_path(got.message.get_content())
            assert (await choose(browser, path, NEW_PASSWORD)).status_code == 303
            await login(browser, "amina", NEW_PASSWORD)
    lifetime = await pool.fetchval("SELECT expires_at - created_at FROM password_resets WHERE via = 'email'")
    assert lifetime.total_seconds() == 3600


async def test_without_smtp_the_page_sends_to_an_admin(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await make_user(pool, "amina", email="amina@example.org")
    page = await client.get("/mot-de-passe-oublie")
    assert "n'envoie pas d'e-mails" in page.text
    sent = await post_form(client, "/mot-de-passe-oublie", {"login": "amina"}, page="/connexion")
    assert sent.status_code == 400
    assert await pool.fetchval("SELECT count(*) FROM mail_queue") == 0


async def test_requests_for_one_account_are_limited(settings: Settings, pool: asyncpg.Pool) -> None:
    await make_user(pool, "amina", email="amina@example.org")
    async with smtp_server() as server:
        app, _ = mailing_app(settings, pool, server)
        async with new_client(app) as browser:
            answers = [
                (await post_form(browser, "/mot-de-passe-oublie", {"login": "amina"})).status_code
                for _ in range(4)
            ]
    assert answers == [200, 200, 200, 429]
    assert await pool.fetchval("SELECT count(*) FROM mail_queue") == 3
