"""Library pages (``/documents``, ``/c/{name}/documents``): walked page by page with a
keyset, filters kept in the links, and their cached rendering replaced as soon as what
they show changes (node.web.document_views, migration 0145)."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx

from federation import policy
from node import communities, documents
from node.sessions import User
from tests.helpers import NEXT_PAGE, PREVIOUS_PAGE, csrf, link, login, make_community, make_user, new_client
from tests.remote_kit import make_remote_community


def listed(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<a href="/documents/(\d+)"><strong>', html)]


async def add_documents(pool: asyncpg.Pool, count: int, *, community: str = "medical") -> list[int]:
    """``count`` documents by amina, alternately protocols and practical sheets."""
    author = await pool.fetchrow("SELECT id, username FROM users WHERE username = 'amina'")
    user = User(author["id"], author["username"], author["username"], "member", "approved")
    ids = []
    async with pool.acquire() as conn:
        found = await communities.find(conn, community)
        assert found is not None
        for i in range(count):
            meta = documents.Metadata(
                title=f"Fiche {i}", doc_type="fiche" if i % 2 else "protocole", tags=("accueil",)
            )
            file = documents.NewFile(f"stored-{community}-{i}.txt", "text/plain", 1000 + i, f"fiche-{i}.txt")
            ids.append(await documents.create_document(conn, found, user, meta, file))
    return ids


async def walk(client: httpx.AsyncClient, path: str) -> list[list[int]]:
    """Every page from ``path`` on, following « Suivants »."""
    pages: list[list[int]] = []
    url: str | None = path
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, url
        pages.append(listed(response.text))
        url = link(NEXT_PAGE, response.text)
        assert len(pages) < 10
    return pages


async def test_library_pages_list_every_document_once_by_keyset_with_their_filters(
    client: httpx.AsyncClient, pool: asyncpg.Pool, app: Any
) -> None:
    await make_user(pool, "amina")
    await make_user(pool, "modo", role="moderator")
    await make_community(pool, "medical")
    await login(client, "amina")
    ids = await add_documents(pool, 65)
    modo = User(await pool.fetchval("SELECT id FROM users WHERE username = 'modo'"), "modo", "modo", "moderator", "approved")  # fmt: skip
    async with pool.acquire() as conn:
        for featured in (ids[3], ids[10]):
            await documents.set_featured(conn, featured, modo, True)
    # featured first, then the latest
    expected = [ids[10], ids[3]] + [i for i in reversed(ids) if i not in (ids[3], ids[10])]

    for path in ("/c/medical/documents", "/documents"):
        pages = await walk(client, path)
        assert [len(p) for p in pages] == [30, 30, 5]
        assert [i for p in pages for i in p] == expected

    # « Précédents » from the last page gives the second page back, and the first link the top.
    last = await client.get(link(NEXT_PAGE, (await client.get(link(NEXT_PAGE, (await client.get("/documents")).text) or "")).text) or "")  # fmt: skip
    back = await client.get(link(PREVIOUS_PAGE, last.text) or "")
    assert listed(back.text) == expected[30:60]
    first = await client.get(link(PREVIOUS_PAGE, back.text) or "")
    assert listed(first.text) == expected[:30] and link(PREVIOUS_PAGE, first.text) is None

    # A filter stays in every link: only practical sheets, every one of them.
    sheets = [i for i in expected if ids.index(i) % 2]
    pages = await walk(client, "/c/medical/documents?type=fiche")
    assert [i for p in pages for i in p] == sheets and len(pages) == 2
    # A search still goes by page number.
    found = await client.get("/documents?q=fiche")
    assert len(listed(found.text)) == 30 and link(NEXT_PAGE, found.text) == "/documents?q=fiche&page=2"
    # A search page past the last one is a missing page.
    assert (await client.get("/documents?q=fiche&page=3")).status_code == 200
    assert (await client.get("/documents?q=fiche&page=4")).status_code == 404
    # A cursor that is not one is a missing page.
    assert (await client.get("/documents?avant=1.2")).status_code == 404
    assert (await client.get("/documents?apres=x")).status_code == 404


async def test_a_library_cursor_past_every_document_is_a_missing_page(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given 35 documents, Amina on the first page of the library
    await make_user(pool, "amina")
    await make_community(pool, "medical")
    await login(client, "amina")
    ids = await add_documents(pool, 35)
    amina = User(await pool.fetchval("SELECT id FROM users WHERE username = 'amina'"), "amina", "amina", "member", "approved")  # fmt: skip
    first = (await client.get("/documents")).text
    onwards = link(NEXT_PAGE, first)
    assert onwards is not None and listed(first) == ids[::-1][:30]
    # When the five oldest, which filled the next page, are deleted before she follows the link
    async with pool.acquire() as conn:
        for doc in ids[:5]:
            await documents.delete_document(conn, doc, amina)
    # Then the next page is a missing page, as in every keyset list, not an empty page
    assert (await client.get(onwards)).status_code == 404
    # And so is the page before the first document, while the top is still a page
    top = (await client.get("/documents")).text
    assert listed(top) == ids[::-1][:30] and link(NEXT_PAGE, top) is None and link(PREVIOUS_PAGE, top) is None
    async with pool.acquire() as conn:
        newest = (await documents.list_documents(conn, amina, documents.Filters())).documents[0]
    assert (await client.get(f"/documents?apres={newest.cursor.token()}")).status_code == 404
    # While a filter that matches nothing leaves the top page a page, saying so
    none = await client.get("/documents?type=rapport")
    assert none.status_code == 200 and "Aucun document ne correspond" in none.text


async def test_a_cached_library_page_changes_as_soon_as_what_it_shows_changes(
    client: httpx.AsyncClient, pool: asyncpg.Pool, app: Any
) -> None:
    await make_user(pool, "amina")
    await make_user(pool, "modo", role="moderator")
    community_id = await make_community(pool, "medical", visibility="public", title="Prise en charge")
    await login(client, "amina")
    [doc] = await add_documents(pool, 1)
    amina = User(await pool.fetchval("SELECT id FROM users WHERE username = 'amina'"), "amina", "amina", "member", "approved")  # fmt: skip
    modo = User(await pool.fetchval("SELECT id FROM users WHERE username = 'modo'"), "modo", "modo", "moderator", "approved")  # fmt: skip

    async with new_client(app) as visitor:
        for _ in range(2):  # the second answer comes from the cache
            assert listed((await visitor.get("/documents")).text) == [doc]
            assert listed((await client.get("/c/medical/documents")).text) == [doc]

        async with pool.acquire() as conn:
            await documents.set_featured(conn, doc, modo, True)
        assert "mis en avant" in (await client.get("/c/medical/documents")).text

        async with pool.acquire() as conn:
            file = documents.NewFile("stored-v2.txt", "text/plain", 5000, "v2.txt")
            await documents.add_version(conn, doc, amina, file)
        assert "version 2" in (await client.get("/c/medical/documents")).text

        async with pool.acquire() as conn:
            await communities.update_community(
                conn, community_id, title="Santé et accueil", description="", rules="", actor=modo
            )
        assert "Santé et accueil" in (await client.get("/c/medical/documents")).text
        assert "Santé et accueil" in (await client.get("/documents")).text

        # The community becomes members-only: the visitor's cached page must not list it.
        await pool.execute("UPDATE communities SET visibility = 'members' WHERE id = $1", community_id)
        assert listed((await visitor.get("/documents")).text) == []
        assert (await visitor.get("/c/medical/documents")).status_code == 404
        assert listed((await client.get("/documents")).text) == [doc]

        async with pool.acquire() as conn:
            await documents.delete_document(conn, doc, amina)
        assert listed((await client.get("/documents")).text) == []
        assert listed((await client.get("/c/medical/documents")).text) == []

        # The community itself goes: its library with it.
        await pool.execute("DELETE FROM communities WHERE id = $1", community_id)
        assert (await client.get("/c/medical/documents")).status_code == 404


async def test_the_library_version_ignores_what_no_page_shows(pool: asyncpg.Pool) -> None:
    """The documents worker's claims and retries (attempts, next attempt) keep the cache."""
    await make_user(pool, "amina")
    await make_community(pool, "medical")
    [doc] = await add_documents(pool, 1)
    before = await documents.library_version(pool)
    await pool.execute(
        "UPDATE document_versions SET attempts = attempts + 1, next_attempt_at = now() WHERE document_id = $1",
        doc,
    )
    await pool.execute("UPDATE communities SET description = 'Autre texte'")
    assert await documents.library_version(pool) == before
    await pool.execute("UPDATE document_versions SET size = 1 WHERE document_id = $1", doc)
    assert await documents.library_version(pool) != before


async def test_a_remote_communitys_library_is_read_only_here(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    """Documents of a followed community come from its server (federation); a member
    here reads its library but publishes there, not in our copy."""
    await make_user(pool, "amina")
    await make_community(pool, "medical")
    await login(client, "amina")
    remote = await make_remote_community(pool)

    assert f'href="/c/{remote.name}/documents"' in (await client.get(f"/c/{remote.name}")).text
    library = await client.get(f"/c/{remote.name}/documents")
    assert library.status_code == 200 and "Déposer un document" not in library.text
    assert "Déposer un document" in (await client.get("/c/medical/documents")).text
    assert (await client.get(f"/c/{remote.name}/documents/nouveau")).status_code == 404
    token = await csrf(client, "/c/medical/documents/nouveau")
    response = await client.post(
        f"/c/{remote.name}/documents/nouveau",
        data={"csrf_token": token, "title": "Protocole"},
        files={"file": ("a.txt", b"Texte du protocole\n", "text/plain")},
    )
    assert response.status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM documents") == 0


async def test_a_remote_authors_document_follows_the_instance_policy_in_cached_pages(
    client: httpx.AsyncClient, pool: asyncpg.Pool, app: Any
) -> None:
    """Silenced: out of what visitors see; suspended: out of every library, members' too."""
    await make_user(pool, "amina")
    community_id = await make_community(pool, "medical", visibility="public")
    await login(client, "amina")
    zed = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, display_name)"
        " VALUES ('https://evil.example/users/zed', 'Person', false, 'zed', 'evil.example', 'Zed') RETURNING id"
    )
    thread_id = await pool.fetchval(
        "INSERT INTO threads (community_id, remote_author_id, title, ap_id)"
        " VALUES ($1, $2, 'Protocole distant', 'https://evil.example/pages/1') RETURNING id",
        community_id, zed,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO posts (thread_id, remote_author_id, is_opening, source, content_html, ap_id)"
        " VALUES ($1, $2, true, 'Texte', '<p>Texte</p>', 'https://evil.example/pages/1')",
        thread_id, zed,
    )  # fmt: skip
    async with pool.acquire() as conn:
        file = documents.RemoteFile("https://evil.example/files/p.pdf", "application/pdf", "p.pdf", 1000)
        doc = await documents.record_remote(
            conn, documents.RemoteDocument("https://evil.example/pages/1", file), "link"
        )
    assert doc is not None

    async with new_client(app) as visitor:
        for browser in (client, visitor):
            assert listed((await browser.get("/documents")).text) == [doc]
            assert listed((await browser.get("/c/medical/documents")).text) == [doc]

        async with pool.acquire() as conn:
            await policy.block_domain(
                conn, policy.BlockRequest("evil.example", "silence"), own_domain="testserver"
            )
        assert listed((await visitor.get("/documents")).text) == []
        assert listed((await visitor.get("/c/medical/documents")).text) == []
        assert listed((await client.get("/c/medical/documents")).text) == [doc]

        async with pool.acquire() as conn:
            await policy.suspend_domain(conn, "evil.example", own_domain="testserver")
        assert listed((await client.get("/documents")).text) == []
        assert listed((await client.get("/c/medical/documents")).text) == []
