"""A conversation's page read again comes from what the process keeps (node.messages: the
bodies opened lately; node.web.messages_views: each message's rendered article): each
reader still gets her own page — her unread marks, « Signaler » under the others'
messages only, dates in her time zone — the same as a fresh rendering, and nothing kept
reaches a reader the page query does not show it to (a blocked author's later message,
a participant who left)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from node import messages
from node.web import messages_views
from node.web.forum_views import FragmentCache
from tests.helpers import login, make_user, post_form
from tests.messages_kit import client_at, start_conversation

ARTICLE = re.compile(r'<article class="post message[^"]*" id="m\d+">.*?</article>', re.S)


def articles(html: str) -> list[str]:
    return ARTICLE.findall(html)


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    saved = messages_views.articles
    messages._opened.clear()
    messages_views.articles = FragmentCache(messages_views.ARTICLES_CACHE_SIZE)
    yield
    messages_views.articles = saved
    messages._opened.clear()


def forget_everything() -> None:
    """Empty both caches: the next page is opened and rendered afresh."""
    messages._opened.clear()
    messages_views.articles = FragmentCache(messages_views.ARTICLES_CACHE_SIZE)


async def test_each_reader_gets_her_own_page_from_the_kept_messages(
    app: Starlette, pool: asyncpg.Pool, fresh_caches: None
) -> None:
    await make_user(pool, "amina")
    await make_user(pool, "bruno")
    chloe_id = await make_user(pool, "chloe")
    await pool.execute("UPDATE users SET timezone = 'Asia/Tokyo' WHERE id = $1", chloe_id)
    async with client_at(app, 1) as amina, client_at(app, 2) as bruno, client_at(app, 3) as chloe:
        for client, name in ((amina, "amina"), (bruno, "bruno"), (chloe, "chloe")):
            await login(client, name)
        url = await start_conversation(amina, "bruno, chloe", body="Premier **message** d'Amina.")
        await post_form(bruno, f"{url}/repondre", {"body": "Réponse de Bruno."}, page=url)
        await post_form(amina, f"{url}/repondre", {"body": "Seconde réponse d'Amina."}, page=url)

        # Chloé reads first: every message new to her, « Signaler » under each, dates at UTC+9
        first = articles((await chloe.get(url)).text)
        assert len(first) == 3 and all('class="post message unread"' in a for a in first)
        assert all("/signaler" in a and "(UTC+9)" in a for a in first)
        assert messages._opened  # the bodies were kept for the next reading
        # Read again, from the caches: nothing new any more, and the same as a fresh rendering
        again = articles((await chloe.get(url)).text)
        assert not any("unread" in a or "nouveau" in a for a in again)
        forget_everything()
        assert articles((await chloe.get(url)).text) == again

        # Bruno, after Chloé filled the caches: his own message without « Signaler », UTC dates
        page = articles((await bruno.get(url)).text)
        assert ["Réponse de Bruno." in a for a in page] == [False, True, False]
        assert ["/signaler" in a for a in page] == [True, False, True]
        assert all("(UTC)" in a and "UTC+9" not in a for a in page)
        assert 'class="post message unread"' in page[2]  # Amina's answer after his
        seen = articles((await bruno.get(url)).text)
        forget_everything()
        assert articles((await bruno.get(url)).text) == seen

        # Bruno blocks Amina; her next message, read (and kept) by Chloé, never reaches him
        amina_key = f"u{await pool.fetchval('SELECT id FROM users WHERE username = $1', 'amina')}"
        await post_form(bruno, f"{url}/bloquer", {"participant": amina_key}, page=url)
        await post_form(amina, f"{url}/repondre", {"body": "Message après blocage."}, page=url)
        assert "Message après blocage." in (await chloe.get(url)).text
        assert "Message après blocage." not in (await bruno.get(url)).text

        # Chloé leaves: the page she read a moment ago is missing for her
        assert (await post_form(chloe, f"{url}/quitter", {}, page=f"{url}/quitter")).status_code == 303
        assert (await chloe.get(url)).status_code == 404


async def test_a_kept_body_is_the_stored_message_it_was_opened_from(
    app: Starlette, pool: asyncpg.Pool, fresh_caches: None
) -> None:
    # What is kept does not stand in for opening: a body not opened lately is opened from
    # its sealed value, and a value that does not open (another message's) fails as before.
    await make_user(pool, "amina")
    await make_user(pool, "bruno")
    async with client_at(app, 1) as amina, client_at(app, 2) as bruno:
        await login(amina, "amina")
        await login(bruno, "bruno")
        url = await start_conversation(amina, "bruno", body="Texte d'origine.")
        await post_form(amina, f"{url}/repondre", {"body": "Deuxième message."}, page=url)
        shown = await bruno.get(url)
        assert "Texte d'origine." in shown.text and "Deuxième message." in shown.text
        # a later message whose stored value was swapped for another's does not open
        await post_form(amina, f"{url}/repondre", {"body": "Troisième message."}, page=url)
        await pool.execute(
            "UPDATE messages SET html_sealed = (SELECT html_sealed FROM messages ORDER BY id LIMIT 1)"
            " WHERE id = (SELECT max(id) FROM messages)"
        )
        bruno_safe = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False,
                                                                      client=("198.51.100.2", 40002)),
                                       base_url="http://testserver", cookies=bruno.cookies)  # fmt: skip
        async with bruno_safe:
            assert (await bruno_safe.get(url)).status_code == 500


async def test_a_page_whose_every_message_is_hidden_from_its_reader_is_still_a_page(
    app: Starlette, pool: asyncpg.Pool, fresh_caches: None
) -> None:
    # Bruno blocked Amina, who then writes to Bruno and Chloé: Bruno is a participant of
    # a conversation in which he is shown no message at all.
    await make_user(pool, "amina")
    await make_user(pool, "bruno")
    await make_user(pool, "chloe")
    async with client_at(app, 1) as amina, client_at(app, 2) as bruno:
        await login(amina, "amina")
        await login(bruno, "bruno")
        first = await start_conversation(amina, "bruno")
        amina_key = f"u{await pool.fetchval('SELECT id FROM users WHERE username = $1', 'amina')}"
        await post_form(bruno, f"{first}/bloquer", {"participant": amina_key}, page=first)
        url = await start_conversation(
            amina, "bruno, chloe", subject="Après le blocage", body="Caché à Bruno."
        )
        page = await bruno.get(url)
        assert page.status_code == 200
        assert "Après le blocage" in page.text and "Caché à Bruno." not in page.text
        assert articles(page.text) == []
