"""A member's own account: change e-mail, download her data, delete her account."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace

import asyncpg
import httpx
from starlette.applications import Starlette

from federation import mailer
from node import account_deletion, accounts
from node.settings import Settings, parse_smtp_url
from node.web.app import create_app
from tests.delivery_kit import (  # noqa: F401  (fixtures)
    community,
    fakes,
    fixture_fed_settings,
    fixture_open_node,
    follower,
    jobs,
    member,
    new_thread,
    process_outbox,
)
from tests.helpers import PASSWORD, login, make_user, new_client, post_form
from tests.smtpserver import smtp_server


async def test_my_data_downloads_as_a_zip_of_json_and_html(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member with a profile and a thread
    amina = await member(pool)
    group = await community(pool, "medical", "members")
    await new_thread(pool, group, amina, "Orientation <juridique>")
    await login(client, "amina")
    # When she downloads her data
    response = await client.get("/compte/export")
    # Then it is a ZIP with her profile, her posts in JSON and a readable page
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == [
        "conversations.json",
        "index.html",
        "messages-forum.json",
        "profil.json",
    ]
    assert json.loads(archive.read("profil.json"))["username"] == "amina"
    [post] = json.loads(archive.read("messages-forum.json"))
    assert (
        post["thread_title"] == "Orientation <juridique>" and post["source"] == "Bonjour à toutes et à tous."
    )
    page = archive.read("index.html").decode()
    assert "Orientation &lt;juridique&gt;" in page and "<script" not in page
    # And nobody else gets it
    async with new_client(app) as visitor:
        assert (await visitor.get("/compte/export")).status_code == 404


async def test_deleting_my_account_keeps_my_posts_as_a_deleted_member_and_tells_the_partners(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    app = create_app(fed_settings, pool=pool)
    async with fakes(1) as (partner,):
        # Given a member who posted in a public community a partner instance follows
        group = await community(pool, "medical", "public")
        await follower(pool, group, partner, "alice")
        amina = await member(pool)
        created = await new_thread(pool, group, amina)
        await process_outbox(fed_settings, pool)
        async with new_client(app) as browser:
            await login(browser, "amina")
            # When she deletes her account, keeping her posts
            wrong = await post_form(
                browser,
                "/compte/supprimer",
                {"current_password": "faux-mot-de-passe", "posts": "keep", "confirm": "on"},
            )
            assert (
                wrong.status_code == 400
                and await pool.fetchval("SELECT status FROM users WHERE id = $1", amina.id) == "approved"
            )
            done = await post_form(
                browser, "/compte/supprimer", {"current_password": PASSWORD, "posts": "keep", "confirm": "on"}
            )
            assert done.status_code == 200 and "a été supprimé" in done.text
            # Then she is logged out and cannot log in again; her handle stays reserved
            assert (await browser.get("/compte")).status_code == 404
            assert (
                await post_form(browser, "/connexion", {"username": "amina", "password": PASSWORD})
            ).status_code == 400
        row = await pool.fetchrow(
            "SELECT status, display_name, email, bio FROM users WHERE id = $1", amina.id
        )
        assert (row["status"], row["display_name"], row["bio"]) == ("deleted", "membre supprimé", "")
        assert row["email"].endswith("@localhost")
        assert await accounts.name_taken(pool, "amina")
        # And her post stays, signed « membre supprimé »
        async with new_client(app) as visitor:
            page = await visitor.get(f"/t/{created.thread_id}")
        assert "membre supprimé" in page.text and "Bonjour à toutes et à tous." in page.text
        # And the partner gets a Delete of her actor, signed by it
        await process_outbox(fed_settings, pool)
        deletes = [r for r in await jobs(pool) if r["activity"]["type"] == "Delete"]
        assert len(deletes) == 1
        activity = deletes[0]["activity"]
        assert activity["actor"] == activity["object"] == "http://testserver/u/amina"
        assert deletes[0]["domain"] == partner.domain
        assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'account.delete'") == 1


async def test_deleting_my_account_can_remove_my_posts(pool: asyncpg.Pool) -> None:
    amina = await member(pool)
    group = await community(pool, "medical", "members")
    created = await new_thread(pool, group, amina)
    async with pool.acquire() as conn:
        await account_deletion.delete_account(conn, amina, PASSWORD, "remove")
    assert await pool.fetchval("SELECT deleted_at IS NOT NULL FROM posts WHERE id = $1", created.post_id)
    kinds = [r["kind"] for r in await pool.fetch("SELECT kind FROM outbox_events ORDER BY id")]
    assert "post.deleted" in kinds and kinds[-1] == "person.deleted"


async def test_a_new_email_address_is_confirmed_by_a_link_sent_to_it(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "amina", email="amina@old.example")
    async with smtp_server() as server:
        smtp = replace(settings, smtp=parse_smtp_url(f"smtp://127.0.0.1:{server.port}?timeout=5"))
        app: Starlette = create_app(smtp, pool=pool)
        async with new_client(app) as browser:
            await login(browser, "amina")
            # When she asks for a new address
            asked = await post_form(
                browser,
                "/compte/adresse",
                {"email": "amina@new.example", "email_password": PASSWORD},
                page="/compte",
            )
            assert asked.status_code == 303
            # Then nothing changes yet; the new address gets a link, the old one a notice
            assert (
                await pool.fetchval("SELECT email FROM users WHERE username = 'amina'") == "amina@old.example"
            )
            assert await mailer.process_due(pool, smtp) == 2
            by_address = {m.rcpt_tos[0]: m.message.get_content() for m in server.received}
            link = next(
                line for line in by_address["amina@new.example"].splitlines() if "/confirmer/" in line
            )
            path = link.split("http://testserver", 1)[1]
            assert "changement d'adresse" in by_address["amina@old.example"]
            # When the link is opened and confirmed
            assert "Confirmer" in (await browser.get(path)).text
            assert (await post_form(browser, path, {})).status_code == 303
        assert await pool.fetchval("SELECT email FROM users WHERE username = 'amina'") == "amina@new.example"
        # And a spent link is dead
        async with new_client(app) as other:
            assert (await post_form(other, path, {})).status_code == 404


async def test_without_email_the_address_changes_at_once_with_the_password(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "amina", email="amina@old.example")
    await login(client, "amina")
    wrong = await post_form(
        client, "/compte/adresse", {"email": "a@new.example", "email_password": "pas-le-bon"}, page="/compte"
    )
    assert wrong.status_code == 400 and "incorrect" in wrong.text
    assert (
        await post_form(
            client, "/compte/adresse", {"email": "a@new.example", "email_password": PASSWORD}, page="/compte"
        )
    ).status_code == 303
    assert await pool.fetchval("SELECT email FROM users WHERE username = 'amina'") == "a@new.example"
