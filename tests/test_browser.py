"""The main pages in a real browser: headless Chromium (Debian's package) driven by
Playwright, against a real node process (granian) on loopback.

Given a node with a moderator and a members-only community,
when a person registers, waits, is approved, logs in and writes,
then every step shows what a member expects — and an anonymous visitor sees nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser

from tests.browser_kit import login, logout
from tests.helpers import make_community, make_user
from tests.liveserver import LiveNode

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
async def node(database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[LiveNode]:
    await make_user(pool, "moderatrice", role="moderator", display_name="Mme Modératrice")
    await make_community(pool, "medical", visibility="members", title="Prise en charge médicale")
    live = LiveNode(database_url, tmp_path / "node").start()
    try:
        yield live
    finally:
        live.stop()


async def test_register_approve_write_edit_delete_search(browser: Browser, node: LiveNode) -> None:
    base = node.url
    page = await browser.new_page()

    # Given a person who asks for an account
    await page.goto(base + "/inscription")
    await page.fill("input[name=username]", "nadia")
    await page.fill("input[name=display_name]", "Dr Nadia K.")
    await page.fill("input[name=email]", "nadia@example.org")
    await page.fill("input[name=password]", "mot-de-passe-tres-long")
    await page.fill("input[name=password_confirm]", "mot-de-passe-tres-long")
    await page.select_option("select[name=profession]", "medical")
    await page.fill("input[name=organisation]", "Hôpital de Panzi")
    await page.fill("input[name=country]", "RD Congo")
    await page.fill("textarea[name=motivation]", "Je prends en charge des survivantes.")
    await page.check("input[name=charter]")
    await page.click("form[action='/inscription'] button")

    # Then she sees only the waiting page, even when she asks for a community
    assert "attente" in (await page.content()).lower()
    await page.goto(base + "/c/medical")
    assert "Prise en charge médicale" not in await page.content()
    await logout(page)

    # When the moderator approves her
    await login(page, base, "moderatrice")
    await page.goto(base + "/moderation")
    assert "Dr Nadia K." in await page.content()
    await page.click("form[action$='/approuver'] button")
    assert (
        "Dr Nadia K." not in await page.inner_text("ul.list")
        if await page.query_selector("ul.list")
        else True
    )
    await logout(page)

    # Then she can log in and start a thread
    await login(page, base, "nadia", "mot-de-passe-tres-long")
    await page.goto(base + "/c/medical/nouveau")
    await page.fill("input[name=title]", "Prophylaxie post-exposition après 72 heures")
    await page.fill(
        "textarea[name=body]", "Quelle **conduite** tenir quand la survivante arrive après 72 h ?"
    )
    await page.click("form[action='/c/medical/nouveau'] button")
    assert await page.inner_text("h1") == "Prophylaxie post-exposition après 72 heures"
    assert await page.inner_text(".post .body strong") == "conduite"
    thread_url = page.url.split("#")[0].split("?")[0]

    # And reply to it
    await page.fill("textarea[name=body]", "Orienter vers le centre de référence et documenter.")
    await page.click("form[action$='/repondre'] button")
    assert "Orienter vers le centre de référence" in await page.content()

    # When she edits her reply
    reply = page.locator(".post", has_text="Orienter vers le centre de référence").last
    await reply.locator("a[href$='/modifier']").click()
    await page.fill("textarea[name=body]", "Orienter vers le centre de référence, documenter et revoir à J7.")
    await page.click("form[action$='/modifier'] button")
    assert "revoir à J7" in await page.content()
    assert "modifié" in await page.content()

    # And deletes it
    reply = page.locator(".post", has_text="revoir à J7").last
    await reply.locator("a[href$='/supprimer']").click()
    await page.click("form[action$='/supprimer'] button")
    await page.goto(thread_url)
    content = await page.content()
    assert "revoir à J7" not in content
    assert "Message supprimé" in content

    # Then search finds the thread (accents folded), and not the deleted reply
    await page.goto(base + "/recherche?q=prophylaxie+exposition")
    assert "Prophylaxie post-exposition" in await page.content()
    await page.goto(base + "/recherche?q=J7")
    assert "revoir à J7" not in await page.content()

    # And an anonymous visitor cannot see the members-only thread
    anonymous = await browser.new_context()
    other = await anonymous.new_page()
    response = await other.goto(thread_url)
    assert response is not None and response.status == 404
    assert "Prophylaxie" not in await other.content()
    await anonymous.close()


async def test_a_form_posted_without_csrf_token_is_refused(browser: Browser, node: LiveNode) -> None:
    page = await browser.new_page()
    await login(page, node.url, "moderatrice")
    # When the page's CSRF field is removed before submitting the new-thread form
    await page.goto(node.url + "/c/medical/nouveau")
    await page.fill("input[name=title]", "Sans jeton")
    await page.fill("textarea[name=body]", "Ce message ne doit pas être publié.")
    await page.locator("input[name=csrf_token]").evaluate_all("els => els.forEach(e => e.remove())")
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.click("form[action='/c/medical/nouveau'] button")
    response = await posted.value
    # Then it is refused with a plain French sentence, the text comes back, nothing is published
    assert response.status == 403
    assert "plus valable" in await page.content()
    assert await page.input_value("textarea[name=body]") == "Ce message ne doit pas être publié."
    await page.goto(node.url + "/c/medical")
    assert "Sans jeton" not in await page.content()


async def test_follow_a_thread_then_open_the_notification_of_a_reply(
    browser: Browser,
    node: LiveNode,
    pool: asyncpg.Pool,
) -> None:
    from node import threads
    from node.communities import find
    from node.sessions import User

    base = node.url
    # Given a thread by the moderator, and two members
    await make_user(pool, "amina", display_name="Amina S.")
    await make_user(pool, "bea", display_name="Béa L.")
    moderator_id = await pool.fetchval("SELECT id FROM users WHERE username = 'moderatrice'")
    async with pool.acquire() as conn:
        community = await find(conn, "medical")
        assert community is not None
        moderator = User(moderator_id, "moderatrice", "Mme Modératrice", "moderator", "approved")
        created = await threads.create_thread(conn, community, moderator, "Suivi après PPE", "Quel suivi ?")

    # When Amina follows the thread (« Suivre ce fil »)
    amina = await (await browser.new_context()).new_page()
    await login(amina, base, "amina")
    await amina.goto(f"{base}/t/{created.thread_id}")
    assert await amina.query_selector("#unread-notifications") is None
    await amina.click("form[action$='/suivre'] button")
    assert "Ne plus suivre ce fil" in await amina.content()

    # And Béa replies in it
    bea = await (await browser.new_context()).new_page()
    await login(bea, base, "bea")
    await bea.goto(f"{base}/t/{created.thread_id}")
    await bea.fill("textarea[name=body]", "Un contrôle sérologique à six semaines.")
    await bea.click(f"form[action='/t/{created.thread_id}/repondre'] button")
    reply_anchor = bea.url.split("#")[1]

    # Then Amina sees the count in the header of her next page
    await amina.goto(base + "/communautes")
    assert await amina.inner_text("#unread-notifications") == "1"
    # And the notification on /notifications; opening it lands on the reply
    await amina.click("#nav-notifications")
    item = await amina.inner_text("ul.notifications li")
    assert "Béa L." in item and "Suivi après PPE" in item
    await amina.click("ul.notifications li form button")
    assert amina.url.endswith("#" + reply_anchor)
    assert "Un contrôle sérologique à six semaines." in await amina.inner_text(f"#{reply_anchor}")
    # And the count is gone
    assert await amina.query_selector("#unread-notifications") is None
