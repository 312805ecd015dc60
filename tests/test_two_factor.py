"""Two-factor authentication: enrolment, login with a code or a recovery code, and the
node's requirement for moderators and admins."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import asyncpg
import httpx
import pyotp
from starlette.applications import Starlette

from node.settings import Settings
from node.web.app import create_app
from tests.helpers import PASSWORD, csrf_from, login, make_user, new_client, post_form

PAGE = "/compte/double-authentification"


def captured(pattern: str, html: str) -> str:
    """The first group of ``pattern`` in the page; fails the test when the page lacks it."""
    found = re.search(pattern, html)
    assert found is not None, f"{pattern} not in the page"
    return found.group(1)


async def enrol(client: httpx.AsyncClient) -> tuple[str, list[str]]:
    """Turn the factor on through the pages; returns the secret and the recovery codes."""
    started = await post_form(client, PAGE + "/commencer", {"password": PASSWORD}, page=PAGE)
    assert started.status_code == 200 and "<svg" in started.text
    secret = captured(r'<code id="totp-secret">([A-Z2-7]+)</code>', started.text)
    done = await client.post(
        PAGE + "/activer", data={"totp_code": pyotp.TOTP(secret).now(), "csrf_token": csrf_from(started.text)}
    )
    assert done.status_code == 200, done.text
    codes = re.findall(r"<code>([0-9a-f]{5}-[0-9a-f]{5})</code>", done.text)
    assert len(codes) == 10
    return secret, codes


async def password_step(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await post_form(client, "/connexion", {"username": username, "password": PASSWORD})


async def test_a_member_enrols_then_logs_in_with_a_code_or_a_recovery_code(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "amina")
    await login(client, "amina")
    secret, codes = await enrol(client)
    sealed = await pool.fetchval("SELECT totp_secret_sealed FROM users WHERE username = 'amina'")
    assert secret.encode() not in sealed  # sealed, not stored as is
    async with new_client(app) as phone:
        # When she logs in, the password alone opens no session
        step = await password_step(phone, "amina")
        assert step.status_code == 200 and 'name="ticket"' in step.text
        assert await pool.fetchval("SELECT count(*) FROM sessions") == 1
        ticket = captured(r'name="ticket" value="([^"]+)"', step.text)
        wrong = await phone.post(
            "/connexion/code",
            data={"ticket": ticket, "totp_code": "000000", "csrf_token": csrf_from(step.text), "next": "/"},
        )
        assert wrong.status_code == 400 and "ne correspond pas" in wrong.text
        # With a fresh code (the activation spent this step's): a session; the same code again is refused
        code = pyotp.TOTP(secret).at(time.time() + 30)
        ok = await phone.post(
            "/connexion/code",
            data={"ticket": ticket, "totp_code": code, "csrf_token": csrf_from(step.text), "next": "/compte"},
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/compte"
    async with new_client(app) as laptop:
        step = await password_step(laptop, "amina")
        ticket = captured(r'name="ticket" value="([^"]+)"', step.text)
        token = csrf_from(step.text)
        replay = await laptop.post(
            "/connexion/code", data={"ticket": ticket, "totp_code": code, "csrf_token": token}
        )
        assert replay.status_code == 400
        # A recovery code works once
        used = await laptop.post(
            "/connexion/code", data={"ticket": ticket, "totp_code": codes[0].upper(), "csrf_token": token}
        )
        assert used.status_code == 303
    async with new_client(app) as other:
        step = await password_step(other, "amina")
        ticket = captured(r'name="ticket" value="([^"]+)"', step.text)
        again = await other.post(
            "/connexion/code",
            data={"ticket": ticket, "totp_code": codes[0], "csrf_token": csrf_from(step.text)},
        )
        assert again.status_code == 400
        # A ticket from another browser is worth nothing
    async with new_client(app) as thief:
        stolen = await post_form(
            thief,
            "/connexion/code",
            {"ticket": ticket, "totp_code": pyotp.TOTP(secret).at(time.time() + 30)},
            page="/connexion",
        )
        assert stolen.status_code == 303 and stolen.headers["location"].startswith(
            "/connexion?fait=code-expire"
        )
    actions = {r["action"] for r in await pool.fetch("SELECT action FROM audit_log")}
    assert "2fa.enable" in actions


async def test_the_node_can_require_it_of_moderators_and_admins(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    app = create_app(replace(settings, require_2fa=True), pool=pool)
    await make_user(pool, "olga", role="moderator")
    await make_user(pool, "amina")
    async with new_client(app) as member:
        await login(member, "amina")
        assert (await member.get("/compte")).status_code == 200  # members are not asked
    async with new_client(app) as moderator:
        await login(moderator, "olga")
        # Every page leads to enrolment until she has a second factor
        page = await moderator.get("/moderation")
        assert page.status_code == 303 and page.headers["location"] == PAGE + "?requise=1"
        assert "demande aux modérateur·rice·s" in (await moderator.get(PAGE + "?requise=1")).text
        await enrol(moderator)
        assert (await moderator.get("/moderation")).status_code == 200
        # And she cannot turn it off
        assert "ne peut pas être désactivée" in (await moderator.get(PAGE)).text


async def test_an_admin_turns_off_a_lost_phone(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "admin", role="admin")
    amina = await make_user(pool, "amina")
    async with new_client(app) as browser:
        await login(browser, "amina")
        await enrol(browser)
    await login(client, "admin")
    page = f"/admin/membres/{amina}"
    assert (
        await post_form(client, f"{page}/double-authentification/desactiver", {}, page=page)
    ).status_code == 303
    async with new_client(app) as browser:
        await login(browser, "amina")  # the password alone again
    assert "2fa.disable_by_admin" in {r["action"] for r in await pool.fetch("SELECT action FROM audit_log")}
