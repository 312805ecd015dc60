"""The documents space in a real browser (headless Chromium, a real node process):
upload a document with the form, find it by search, download it, upload a new version."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pikepdf
import pytest
from playwright.async_api import Browser

from tests.browser_kit import login
from tests.helpers import make_community, make_user
from tests.liveserver import LiveNode
from tests.samples_uploads import AUTHOR, docx, pdf_with_author

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
async def node(database_url: str, pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[LiveNode]:
    await make_user(pool, "amina", display_name="Dr Amina B.")
    await make_community(pool, "medical", visibility="members", title="Prise en charge médicale")
    live = LiveNode(database_url, tmp_path / "node").start()
    try:
        yield live
    finally:
        live.stop()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_upload_search_download_and_new_version(
    browser: Browser,
    node: LiveNode,
    tmp_path: Path,
) -> None:
    base = node.url
    pdf = await asyncio.to_thread(
        write, tmp_path / "protocole (version finale).pdf", pdf_with_author("Prophylaxie post exposition")
    )
    second = await asyncio.to_thread(
        write, tmp_path / "protocole-2026.docx", docx("Protocole révisé en 2026")
    )
    context = await browser.new_context(accept_downloads=True)
    page = await context.new_page()
    await login(page, base, "amina")

    # Given a member on her community's documents page, When she uploads a PDF with the form
    await page.goto(base + "/c/medical/documents")
    await page.click("a[href='/c/medical/documents/nouveau']")
    await page.fill("input[name=title]", "Protocole PEP")
    await page.set_input_files("input[name=file]", str(pdf))
    await page.select_option("select[name=doc_type]", "protocole")
    await page.fill("textarea[name=description]", "La **prophylaxie** dans les 72 heures.")
    await page.fill("input[name=tags]", "urgence, PEP")
    await page.click("form[action='/c/medical/documents/nouveau'] button")

    # Then she lands on the document's page, which says the file's size before the download
    assert await page.inner_text("h1") == "Protocole PEP"
    assert " Ko" in await page.inner_text("p.download")
    document_url = page.url

    # When she searches the library for a word of the PDF's text
    await page.goto(base + "/documents")
    await page.fill("input[name=q]", "exposition")
    await page.click("form.filters button")
    # Then she finds it
    await page.click("text=Protocole PEP")
    assert page.url == document_url

    # When she downloads it, Then she gets the PDF without its author
    async with page.expect_download() as info:
        await page.click("p.download a.button")
    download = await info.value
    data = await asyncio.to_thread(Path(await download.path()).read_bytes)
    assert download.suggested_filename == "protocole-pep.pdf"
    with pikepdf.open(io.BytesIO(data)) as downloaded:
        assert "/Author" not in downloaded.docinfo
    assert AUTHOR.encode() not in data

    # When she uploads a new version
    await page.set_input_files("form[action$='/version'] input[name=file]", str(second))
    await page.fill("form[action$='/version'] input[name=note]", "Révision 2026")
    await page.click("form[action$='/version'] button")

    # Then both versions are listed, the new one first, and the old one still downloads
    versions = await page.inner_text("ul.versions")
    assert "Version 2" in versions and "Version 1" in versions and "Révision 2026" in versions
    async with page.expect_download() as info:
        await page.click("ul.versions li:last-child a")
    old = await info.value
    assert (await asyncio.to_thread(Path(await old.path()).read_bytes)).startswith(b"%PDF-")
    await context.close()
