"""URLs that serve both the forum's HTML and ActivityStreams JSON say ``Vary: Accept``
on both answers, so that no cache ever hands one to a client asking for the other."""

from __future__ import annotations

import asyncpg
import httpx

from federation import policy
from tests.delivery_kit import community, member, new_thread

AP = {"accept": "application/activity+json"}


def vary(response: httpx.Response) -> list[str]:
    return [v.strip().lower() for v in response.headers.get("vary", "").split(",") if v.strip()]


async def test_html_and_json_of_the_same_url_both_vary_on_accept(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    # Given a public community with a thread by amina, on an open node
    async with pool.acquire() as conn:
        await policy.set_federation_mode(conn, "open")
    group = await community(pool, "juridique", "public")
    amina = await member(pool, "amina")
    created = await new_thread(pool, group, amina)
    urls = ["/c/juridique", f"/t/{created.thread_id}", f"/p/{created.post_id}", "/u/amina"]
    for url in urls:
        # When a browser and a server ask for the same URL
        page = await client.get(url)
        document = await client.get(url, headers=AP)
        if document.status_code == 200:
            assert document.headers["content-type"].startswith("application/activity+json"), url
        # Then both answers vary on Accept, once (an opening post's JSON redirects to its Page;
        # /u/amina has no HTML profile yet, its 404 varies too)
        assert document.status_code in (200, 301), url
        assert vary(page).count("accept") == 1, url
        assert vary(document).count("accept") == 1, url


async def test_pages_without_a_json_twin_do_not_vary(client: httpx.AsyncClient) -> None:
    for url in ("/", "/communautes", "/recherche?q=x", "/connexion"):
        assert "accept" not in vary(await client.get(url)), url
