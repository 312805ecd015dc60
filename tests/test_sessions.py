"""Server-side sessions: rotation at login, password change, ending sessions from /compte."""

from __future__ import annotations

import asyncpg
import httpx
from starlette.applications import Starlette

from node import sessions
from tests.helpers import PASSWORD, csrf, login, make_user, post_form


def session_cookie(response: httpx.Response) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(sessions.COOKIE + "="):
            return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError("no session cookie set")


async def page_as(app: Starlette, token: str, path: str) -> httpx.Response:
    """GET ``path`` from a fresh browser holding only the session cookie ``token``."""
    transport = httpx.ASGITransport(app=app, client=("192.0.2.9", 1))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies={sessions.COOKIE: token}
    ) as browser:
        return await browser.get(path)


async def browser(app: Starlette, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 1))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_login_rotates_the_session(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member logged in once
    await make_user(pool, "amina")
    first = session_cookie(await login(client, "amina"))

    # When she logs in again on the same browser
    second = session_cookie(await login(client, "amina"))

    # Then the cookie changed, the old token no longer opens anything, and one session remains
    assert first != second
    assert (await page_as(app, first, "/compte")).status_code == 404
    assert (await page_as(app, second, "/compte")).status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 1


async def test_a_forged_or_ended_session_cookie_is_cleared(app: Starlette, pool: asyncpg.Pool) -> None:
    response = await page_as(app, "jeton-inconnu", "/compte")
    assert response.status_code == 404
    assert any(
        h.startswith(sessions.COOKIE + "=;") and "Max-Age=0" in h
        for h in response.headers.get_list("set-cookie")
    )


async def test_password_change_ends_other_sessions_and_rotates_this_one(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member logged in on two browsers
    await make_user(pool, "amina")
    here = session_cookie(await login(client, "amina"))
    async with await browser(app, "192.0.2.77") as other:
        elsewhere = session_cookie(await login(other, "amina"))

    # When she changes her password here
    form = {
        "current_password": PASSWORD,
        "new_password": "nouveau-secret-123",
        "new_password_confirm": "nouveau-secret-123",
    }
    response = await post_form(client, "/compte/mot-de-passe", form, page="/compte")

    # Then this browser holds a new session, and both old tokens are dead
    assert response.status_code == 303
    rotated = session_cookie(response)
    assert rotated not in (here, elsewhere)
    assert (await client.get("/compte")).status_code == 200
    assert (await page_as(app, here, "/compte")).status_code == 404
    assert (await page_as(app, elsewhere, "/compte")).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 1
    # and the new password works while the old one does not
    async with await browser(app, "192.0.2.78") as later:
        assert (
            await post_form(later, "/connexion", {"username": "amina", "password": PASSWORD})
        ).status_code == 400
        await login(later, "amina", "nouveau-secret-123")


async def test_password_change_needs_the_current_password(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "amina")
    await login(client, "amina")
    before = await pool.fetchval("SELECT password_hash FROM users")
    form = {
        "current_password": "pas-le-bon",
        "new_password": "nouveau-secret-123",
        "new_password_confirm": "nouveau-secret-123",
    }
    response = await post_form(client, "/compte/mot-de-passe", form, page="/compte")
    assert response.status_code == 400
    assert "Le mot de passe actuel est incorrect." in response.text
    assert await pool.fetchval("SELECT password_hash FROM users") == before
    mismatch = {
        "current_password": PASSWORD,
        "new_password": "nouveau-secret-123",
        "new_password_confirm": "autre-chose-1234",
    }
    response = await post_form(client, "/compte/mot-de-passe", mismatch, page="/compte")
    assert response.status_code == 400
    assert "ne correspondent pas" in response.text
    assert await pool.fetchval("SELECT password_hash FROM users") == before


async def test_member_lists_and_ends_her_sessions(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member logged in here and on a phone
    await make_user(pool, "amina")
    await login(client, "amina")
    async with await browser(app, "192.0.2.55") as phone:
        phone.headers["user-agent"] = "Telephone-de-test/1.0"
        phone_token = session_cookie(await login(phone, "amina"))

    # When she looks at her account, she sees both sessions with their browser and address
    page = await client.get("/compte")
    assert "Telephone-de-test/1.0" in page.text
    assert "192.0.2.55" in page.text and "203.0.113.7" in page.text
    phone_id = await pool.fetchval("SELECT id FROM sessions WHERE ip = '192.0.2.55'")

    # And when she ends the phone's session
    response = await post_form(client, f"/compte/sessions/{phone_id}/fin", {}, page="/compte")

    # Then the phone is logged out and this browser is not
    assert response.status_code == 303
    assert (await page_as(app, phone_token, "/compte")).status_code == 404
    assert (await client.get("/compte")).status_code == 200


async def test_a_member_cannot_end_someone_elses_session(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "amina")
    await make_user(pool, "binta")
    async with await browser(app, "192.0.2.56") as other:
        binta_token = session_cookie(await login(other, "binta"))
    binta_session = await pool.fetchval("SELECT id FROM sessions")
    await login(client, "amina")
    token = await csrf(client, "/compte")
    await client.post(f"/compte/sessions/{binta_session}/fin", data={"csrf_token": token})
    assert (await page_as(app, binta_token, "/compte")).status_code == 200


async def test_profile_edit(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await make_user(pool, "amina")
    await login(client, "amina")
    form = {
        "display_name": "Dr Amina K.",
        "profession": "medical",
        "profession_detail": "Gynécologue",
        "organisation": "Hôpital régional",
        "country": "Mali",
        "bio": "J'accompagne des survivantes depuis 10 ans.",
    }
    response = await post_form(client, "/compte/profil", form, page="/compte")
    assert response.status_code == 303
    row = await pool.fetchrow("SELECT * FROM users WHERE username = 'amina'")
    assert (row["display_name"], row["profession"], row["country"]) == ("Dr Amina K.", "medical", "Mali")
    # a bad value changes nothing
    bad = await post_form(
        client, "/compte/profil", {**form, "display_name": "", "bio": "b" * 5000}, page="/compte"
    )
    assert bad.status_code == 400
    assert "Ce champ est obligatoire." in bad.text and "trop long" in bad.text
    assert await pool.fetchval("SELECT display_name FROM users") == "Dr Amina K."
