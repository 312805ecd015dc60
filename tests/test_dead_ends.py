"""No dead ends: a members-only link leads to login and back, the node's contact and
its legal page are always one click away."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from node.settings import Settings, SettingsError, load
from node.web.app import create_app
from tests.helpers import (
    PASSWORD,
    add_thread,
    csrf_from,
    login,
    make_community,
    make_user,
    new_client,
    post_form,
)

CONTACT = "responsables@vbg.example.org"


async def test_a_members_only_link_opened_logged_out_leads_to_login_and_back(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a thread in a members-only community
    await make_user(pool, "amina")
    community_id = await make_community(pool, "medical")
    await add_thread(pool, community_id, author_id=1)
    # When a logged-out member opens its link
    page = await client.get("/t/1?page=1")
    # Then the missing page offers to log in and come back
    assert page.status_code == 404
    assert 'href="/connexion?next=%2Ft%2F1%3Fpage%3D1"' in page.text
    login_page = await client.get("/connexion?next=%2Ft%2F1%3Fpage%3D1")
    response = await client.post(
        "/connexion",
        data={
            "username": "amina",
            "password": PASSWORD,
            "next": "/t/1?page=1",
            "csrf_token": csrf_from(login_page.text),
        },
    )
    assert response.headers["location"] == "/t/1?page=1"
    assert (await client.get("/t/1?page=1")).status_code == 200


async def test_the_contact_address_is_shown_wherever_a_person_needs_it(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    app = create_app(replace(settings, contact_email=CONTACT), pool=pool)
    await make_user(pool, "admin", role="admin")
    suspended = await make_user(pool, "sara")
    await pool.execute("UPDATE users SET status = 'suspended' WHERE id = $1", suspended)
    refused = await make_user(pool, "nadia", status="pending")
    await pool.execute(
        "UPDATE users SET status = 'refused', refusal_reason = 'Profil incomplet' WHERE id = $1", refused
    )
    async with new_client(app) as browser:
        assert CONTACT in (await browser.get("/")).text  # footer
        assert CONTACT in (await browser.get("/a-propos")).text
        assert CONTACT in (await browser.get("/mentions-legales")).text
        answer = await post_form(browser, "/connexion", {"username": "sara", "password": PASSWORD})
        assert answer.status_code == 403 and CONTACT in answer.text
        await login(browser, "nadia")
        assert CONTACT in (await browser.get("/en-attente")).text


async def test_an_admin_writes_the_legal_page_and_the_edit_is_audited(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "admin", role="admin")
    await make_user(pool, "amina")
    # Before any edit the page says what the node stores
    assert "Ce que le nœud enregistre" in (await client.get("/mentions-legales")).text
    await login(client, "admin")
    text = "## Hébergeur\n\nHôpital de Panzi, Bukavu. <script>x</script>"
    assert (await post_form(client, "/admin/mentions-legales", {"source": text})).status_code == 303
    async with new_client(app) as visitor:
        page = (await visitor.get("/mentions-legales")).text
    assert "<h2>Hébergeur</h2>" in page and "Hôpital de Panzi" in page and "<script>" not in page
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'site_page.edit'") == 1
    empty = await post_form(client, "/admin/mentions-legales", {"source": "  "})
    assert empty.status_code == 400
    async with new_client(app) as member:
        await login(member, "amina")
        refused = await post_form(member, "/admin/mentions-legales", {"source": "x"}, page="/")
        assert refused.status_code == 404


def test_a_malformed_contact_or_time_zone_fails_loudly(tmp_path: Any) -> None:
    with pytest.raises(SettingsError, match="VBG_CONTACT_EMAIL"):
        load({"VBG_DATA_DIR": str(tmp_path), "VBG_CONTACT_EMAIL": "pas une adresse"})
    with pytest.raises(SettingsError, match="VBG_TIMEZONE"):
        load({"VBG_DATA_DIR": str(tmp_path), "VBG_TIMEZONE": "Afrique/Bukavu"})
    assert (
        load({"VBG_DATA_DIR": str(tmp_path), "VBG_TIMEZONE": "Africa/Lubumbashi"}).timezone
        == "Africa/Lubumbashi"
    )


async def test_dates_are_shown_in_the_node_zone_then_the_members_own_labelled(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    # Given a node in Kinshasa's zone and a session opened at 12:00 UTC
    app = create_app(replace(settings, timezone="Africa/Kinshasa"), pool=pool)
    await make_user(pool, "amina")
    async with new_client(app) as browser:
        await login(browser, "amina")
        await pool.execute("UPDATE sessions SET created_at = '2026-03-03 12:00+00'")
        # Then her account page shows 13:00 labelled UTC+1
        assert "3 mars 2026 à 13:00 (UTC+1)" in (await browser.get("/compte")).text
        # When she chooses Bukavu's zone, it shows 14:00 (UTC+2)
        assert (
            await post_form(
                browser, "/compte/fuseau-horaire", {"timezone": "Africa/Lubumbashi"}, page="/compte"
            )
        ).status_code == 303
        assert "3 mars 2026 à 14:00 (UTC+2)" in (await browser.get("/compte")).text
        # And an unknown zone is refused with a field error
        bad = await post_form(browser, "/compte/fuseau-horaire", {"timezone": "Mars/Olympus"}, page="/compte")
        assert bad.status_code == 400 and "dans la liste" in bad.text
