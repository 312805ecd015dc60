"""Accounts and forms in a real browser (Debian's Chromium, Playwright), on a phone
(390 px wide) and on a desktop, against a real node process; and an accessibility pass
(axe-core from the npm registry, fetched by ./dev test into .cache/, injected by the test
into each page: never served by the node) on the main pages.

Run under ``flock /tmp/vbg-heavy.lock`` (a node process and Chromium)."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pyotp
import pytest
from playwright.async_api import Browser, Page, ViewportSize

from tests.browser_kit import login, logout
from tests.helpers import PASSWORD, add_thread, make_community, make_user
from tests.liveserver import LiveNode

ROOT = Path(__file__).resolve().parents[1]
AXE = sorted(ROOT.glob(".cache/axe-core-*/axe.min.js"))
AXE_SOURCE = AXE[-1].read_text(encoding="utf-8") if AXE else ""
VIEWPORTS: dict[str, ViewportSize] = {
    "phone": {"width": 390, "height": 844},
    "desktop": {"width": 1280, "height": 800},
}
CASE = "Résumé du cas : patiente vue le 3 mars, orientation vers le service juridique."

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
async def node(database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[LiveNode]:
    await make_user(pool, "admin", role="admin", display_name="Admin du nœud")
    await make_user(pool, "amina", display_name="Dr Amina K.", email="amina@example.org")
    community_id = await make_community(
        pool, "medical", visibility="members", title="Prise en charge médicale"
    )
    await add_thread(pool, community_id, author_id=2)
    live = LiveNode(database_url, tmp_path / "node").start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(params=sorted(VIEWPORTS))
async def page(request: pytest.FixtureRequest, browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=VIEWPORTS[request.param], accept_downloads=True)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def test_a_member_resets_her_password_with_the_link_an_admin_gave_her(
    page: Page, node: LiveNode
) -> None:
    # Given an admin who issues a reset link for amina
    await login(page, node.url, "admin")
    await page.goto(node.url + "/admin/membres/2")
    await page.click("form[action$='/lien-de-reinitialisation'] button")
    link = await page.input_value("#reset-url")
    await logout(page)
    # When amina opens it and chooses a new password
    await page.goto(link)
    await page.fill("input[name=new_password]", "un-tout-nouveau-secret")
    await page.fill("input[name=new_password_confirm]", "un-tout-nouveau-secret")
    await page.click("form[action^='/reinitialiser/'] button")
    # Then she is asked to log in, and the new password works
    assert "Votre mot de passe a été changé" in await page.content()
    await login(page, node.url, "amina", "un-tout-nouveau-secret")
    assert "Dr Amina K." in await page.inner_text("header")
    # And the link is spent
    await page.goto(link)
    assert "plus valable" in await page.content()


async def test_two_factor_enrolment_then_login_with_a_code(page: Page, node: LiveNode) -> None:
    await login(page, node.url, "amina")
    await page.goto(node.url + "/compte/double-authentification")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form[action$='/commencer'] button")
    assert await page.locator(".qr svg").count() == 1
    secret = await page.inner_text("#totp-secret")
    await page.fill("input[name=totp_code]", pyotp.TOTP(secret).now())
    await page.click("form[action$='/activer'] button")
    codes = await page.locator("ul.codes code").all_inner_texts()
    assert len(codes) == 10
    await page.goto(node.url + "/compte")
    await logout(page)
    # When she logs in again: the password, then a code
    await login(page, node.url, "amina")
    assert await page.locator("input[name=totp_code]").count() == 1
    await page.fill("input[name=totp_code]", pyotp.TOTP(secret).at(time.time() + 30))
    await page.click("form[action='/connexion/code'] button")
    assert "Dr Amina K." in await page.inner_text("header")


async def test_a_reply_sent_with_a_stale_form_keeps_its_text_and_is_sent_again(
    page: Page, node: LiveNode, pool: asyncpg.Pool
) -> None:
    # Given amina writing a reply while her session changes in another tab
    await login(page, node.url, "amina")
    await page.goto(node.url + "/t/1")
    await page.fill("textarea[name=body]", CASE)
    other = await page.context.new_page()
    await other.goto(node.url + "/")
    await logout(other)
    await login(other, node.url, "amina")
    # Not waiting for the tab to be gone: that wait (Page.close) never ended in about one
    # run out of four on this machine, holding the whole test command.
    await other.close(run_before_unload=True)
    # When she sends it
    await page.click("form[action='/t/1/repondre'] button >> nth=0")
    # Then the page says what happened and keeps her text
    assert "plus valable" in await page.content()
    assert await page.input_value("textarea[name=body]") == CASE
    # And one click sends it again
    await page.click("form button:has-text('Renvoyer le formulaire')")
    assert CASE in await page.content()
    assert await pool.fetchval("SELECT count(*) FROM posts WHERE source = $1", CASE) == 1


async def test_a_members_only_link_opened_logged_out_leads_to_login_and_back(
    page: Page, node: LiveNode
) -> None:
    await page.goto(node.url + "/t/1")
    assert "Page introuvable" in await page.content()
    await page.click("a:has-text('Se connecter pour y accéder')")
    await page.fill("input[name=username]", "amina")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form[action='/connexion'] button")
    assert page.url == node.url + "/t/1"
    assert "Un fil" in await page.content()


async def test_a_member_exports_then_deletes_her_account(
    page: Page, node: LiveNode, pool: asyncpg.Pool
) -> None:
    await login(page, node.url, "amina")
    await page.goto(node.url + "/compte")
    async with page.expect_download() as downloading:
        await page.click("a[href='/compte/export']")
    download = await downloading.value
    saved = await download.path()
    archive = zipfile.ZipFile(io.BytesIO(await asyncio.to_thread(Path(saved).read_bytes)))
    assert json.loads(archive.read("profil.json"))["username"] == "amina"
    await page.goto(node.url + "/compte/supprimer")
    await page.check("input[name=posts][value=keep]")
    await page.fill("input[name=current_password]", PASSWORD)
    await page.check("input[name=confirm]")
    await page.click("form[action='/compte/supprimer'] button")
    assert "a été supprimé" in await page.content()
    assert await pool.fetchval("SELECT status FROM users WHERE username = 'amina'") == "deleted"
    await page.goto(node.url + "/compte")
    assert "Page introuvable" in await page.content()


# ---------------------------------------------------------------- accessibility

ANONYMOUS_PAGES = ["/", "/connexion", "/inscription", "/mot-de-passe-oublie", "/a-propos", "/mentions-legales",
                   "/t/1"]  # fmt: skip
MEMBER_PAGES = ["/", "/communautes", "/c/medical", "/t/1", "/p/1/repondre", "/recherche?q=fil", "/compte",
                "/compte/double-authentification", "/admin", "/admin/membres", "/moderation"]  # fmt: skip


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    await page.add_script_tag(content=AXE_SOURCE)
    # page.evaluate has no timeout of its own: a check that never ends fails here instead
    # of holding the whole test run until CI's limit.
    result = await asyncio.wait_for(
        page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})"), 120
    )
    assert result["testEngine"]["name"] == "axe-core" and result["passes"]
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.skipif(not AXE, reason="axe-core is fetched by ./dev test into .cache/")
async def test_the_main_pages_have_no_serious_accessibility_violation(
    browser: Browser, node: LiveNode
) -> None:
    # axe-core is injected by the test; the node's CSP (no inline script) is bypassed for it only.
    context = await browser.new_context(bypass_csp=True, viewport=VIEWPORTS["phone"])
    page = await context.new_page()
    found: dict[str, list[dict[str, Any]]] = {}
    for path in ANONYMOUS_PAGES:
        await page.goto(node.url + path)
        found["anonyme " + path] = await serious_violations(page)
    # A form sent back with errors
    await page.goto(node.url + "/inscription")
    await page.evaluate("document.querySelectorAll('[required]').forEach(e => e.removeAttribute('required'))")
    await page.click("form[action='/inscription'] button")
    found["inscription en erreur"] = await serious_violations(page)
    await login(page, node.url, "admin")
    for path in MEMBER_PAGES:
        await page.goto(node.url + path)
        found["membre " + path] = await serious_violations(page)
    await context.close()
    assert len(found) >= 15
    assert {k: v for k, v in found.items() if v} == {}
