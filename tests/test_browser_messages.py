"""Private messages in a real browser (headless Chromium) against a real node process:
start a conversation, see the unread count go up in the other member's header and
down once read, reply, and the count comes back to the first member — through the
sessions cached in the web process (evicted by NOTIFY when a count changes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, Page

from tests.helpers import PASSWORD, make_user
from tests.liveserver import LiveNode

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed"),
]


async def login(page: Page, base: str, username: str) -> None:
    await page.goto(base + "/connexion")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form[action^='/connexion'] button")


@pytest.fixture
async def node(database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[LiveNode]:
    await make_user(pool, "amina", display_name="Dr Amina B.")
    await make_user(pool, "bruno", display_name="Bruno, juriste")
    live = LiveNode(database_url, tmp_path / "node").start()
    try:
        yield live
    finally:
        live.stop()


async def unread(page: Page, base: str) -> str:
    """The header's Messages link as shown (``Messages`` or ``Messages 2``)."""
    await page.goto(base + "/")
    return " ".join((await page.inner_text("#nav-messages")).split())


async def test_start_a_conversation_reply_and_unread_counts(browser: Browser, node: LiveNode) -> None:
    base = node.url
    amina = await (await browser.new_context()).new_page()
    bruno = await (await browser.new_context()).new_page()
    await login(amina, base, "amina")
    await login(bruno, base, "bruno")
    assert await unread(bruno, base) == "Messages"

    # Amina starts a conversation with Bruno from the Messages page
    await amina.goto(base + "/")
    await amina.click("#nav-messages")
    await amina.click("text=Nouvelle conversation")
    await amina.fill("input[name=recipients]", "bruno")
    await amina.fill("input[name=subject]", "Accompagnement de Mme D.")
    await amina.fill("textarea[name=body]", "Elle souhaite *porter plainte*. Pouvez-vous la recevoir ?")
    await amina.click("form[action='/messages/nouveau'] button")
    assert "Accompagnement de Mme D." in await amina.inner_text("h1")
    assert await amina.title() == "Messages privés · Réseau VBG"  # never the subject

    # Bruno's header counts one unread message; his list shows the conversation
    assert await unread(bruno, base) == "Messages 1"
    await bruno.click("#nav-messages")
    assert "Accompagnement de Mme D." in await bruno.inner_text("ul.conversations")
    await bruno.click("ul.conversations a")
    assert "porter plainte" in await bruno.inner_text("article.message .body em")
    assert " ".join((await bruno.inner_text("#nav-messages")).split()) == "Messages"
    conversation = bruno.url
    assert await unread(bruno, base) == "Messages"

    # He replies; Amina's count goes up, then down when she reads it
    await bruno.goto(conversation)
    await bruno.fill("textarea[name=body]", "Oui, **jeudi** à 10 h.")
    await bruno.click("form[action$='/repondre'] button")
    assert "jeudi" in await bruno.inner_text("main")
    assert await unread(amina, base) == "Messages 1"
    await amina.click("#nav-messages")
    await amina.click("ul.conversations a")
    assert "<strong>jeudi</strong>" in await amina.content()
    assert await unread(amina, base) == "Messages"
