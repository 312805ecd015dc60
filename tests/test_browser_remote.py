"""A remote community in a real browser (issue 11, quality bars): headless Chromium on
node B, node A a second real process; B's member searches A's community by its address,
follows it, opens a thread that came from A, replies, and sees the notification of the
answer A's member writes there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from node import threads
from tests.browser_kit import browser, login  # noqa: F401  (fixture)
from tests.helpers import eventually
from tests.interop import NodeSpec, RealNode, real_nodes

pytestmark = [
    pytest.mark.browser,
    pytest.mark.federation,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
async def nodes(server_dsn: str, template_db: str, tmp_path: Path) -> AsyncIterator[dict[str, RealNode]]:
    specs = [NodeSpec("a", "127.0.0.91", public_communities=("entraide",)), NodeSpec("b", "127.0.0.1")]
    async with real_nodes(server_dsn, template_db, tmp_path, specs) as started:
        a, b = started["a"], started["b"]
        await asyncio.gather(a.admin("allow-domain", b.domain), b.admin("allow-domain", a.domain))
        yield started


async def test_search_follow_reply_and_see_the_answer(browser: Browser, nodes: dict[str, RealNode]) -> None:  # noqa: F811
    a, b = nodes["a"], nodes["b"]
    amina = await a.member("amina")
    await b.member("bruno")
    created = await a.new_thread("entraide", amina, "Fiche réflexe urgences", "La voici, à relire.")
    name = f"entraide@{a.domain}"
    page = await (await browser.new_context()).new_page()
    await login(page, b.url(""), "bruno")

    # When Bruno types the community's address in the search box of the communities page
    await page.goto(b.url("/communautes"))
    await page.fill("#f-adresse", a.group("entraide"))
    await page.click("form[action='/communautes'] button")
    # Then its card shows, with « Suivre »
    await page.wait_for_selector(f"form[action='/c/{name}/suivre']")
    # When he follows it
    await page.click(f"form[action='/c/{name}/suivre'] button")

    # Then once A accepted, the thread written on A is listed on the community's page
    async def listed() -> bool:
        await page.goto(b.url(f"/c/{name}"))
        return "Fiche réflexe urgences" in await page.content()

    await eventually(listed, "the backfilled thread is listed on B", within=30, every=0.5)
    # When he opens it and replies
    await page.click("text=Fiche réflexe urgences")
    await page.fill("textarea[name=body]", "Relue : ajoutez le numéro du **3919**.")
    await page.click("form[action$='/repondre'] button:not([name])")
    assert "3919" in await page.content()

    # And A's member answers his reply on A
    async def his_post_on_a() -> int | None:
        found: int | None = await a.pool.fetchval(
            "SELECT id FROM posts WHERE thread_id = $1 AND remote_author_id IS NOT NULL", created.thread_id
        )
        return found

    his_post = await eventually(his_post_on_a, "A stores Bruno's reply")
    async with a.pool.acquire() as conn:
        await threads.create_reply(conn, created.thread_id, amina, "Merci Bruno, c'est ajouté.", his_post)

    # Then Bruno sees the notification of the answer on B, and it opens the answer
    async def notified() -> bool:
        await page.goto(b.url("/notifications"))
        text = " ".join((await page.inner_text("main")).split())
        return "a répondu à votre message dans « Fiche réflexe urgences »" in text

    await eventually(notified, "B notifies Bruno of the answer", within=30, every=0.5)
    await page.click("ul.notifications button.link")
    assert "ajouté" in await page.inner_text("main")
