"""Headless Chromium (Debian's) driven by Playwright: the ``browser`` fixture and the
login/logout steps the browser tests share."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.helpers import PASSWORD

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """One Chromium for the test process (launching it costs about a second)."""
    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def browser(chromium: Browser) -> AsyncIterator[Browser]:
    """The browser of one test: every context (cookies, storage, pages) it opens is
    closed after it, so no test sees another's."""
    assert not chromium.contexts
    try:
        yield chromium
    finally:
        for context in chromium.contexts:
            await context.close()


async def login(page: Page, base: str, username: str, password: str = PASSWORD) -> None:
    await page.goto(base + "/connexion")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("form[action^='/connexion'] button")


async def logout(page: Page) -> None:
    await page.click("form[action='/deconnexion'] button")
