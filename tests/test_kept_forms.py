"""Nothing typed is lost: every form of the app, refused, comes back as typed.

The walk is the one of ``tests/test_csrf.py`` (every POST route of the router), so
a form added later is covered the day it is added.
"""

from __future__ import annotations

import html
import re

import asyncpg
import httpx
from starlette.applications import Starlette

from tests.helpers import add_thread, csrf_from, login, make_community, make_user, new_client, post_form
from tests.routes import checked_routes

CASE = "Résumé du cas : patiente vue le 3 mars, <suivi> & orientation"
TITLE = "Orientation juridique à Bukavu"
SECRET = "mon-mot-de-passe-secret"


async def stale_token(app: Starlette) -> str:
    """The token of a session that has since ended (the member logged in again elsewhere)."""
    async with new_client(app) as old_tab:
        await login(old_tab, "admin")
        token = csrf_from((await old_tab.get("/compte")).text)
        await old_tab.post("/deconnexion", data={"csrf_token": token})
    return token


async def test_every_form_refused_for_a_stale_token_gives_back_what_was_typed(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given an admin whose page was opened in a session that has since ended
    await make_user(pool, "admin", role="admin")
    community_id = await make_community(pool, "medical")
    await add_thread(pool, community_id, author_id=1)
    token = await stale_token(app)
    await login(client, "admin")
    typed = {"body": CASE, "reason": CASE, "motivation": CASE, "title": TITLE, "password": SECRET}
    for path in checked_routes(app):
        # When she sends any form of the app with the stale token
        response = await client.post(path, data={**typed, "csrf_token": token})
        # Then nothing is saved, and the page gives back her text, never her password
        assert response.status_code == 403, f"POST {path} answered {response.status_code}"
        assert html.escape(CASE, quote=False) in response.text, f"POST {path} lost the text"
        assert TITLE in response.text, f"POST {path} lost the title"
        assert SECRET not in response.text, f"POST {path} showed a password"
        assert "CSRF" not in response.text


async def test_a_stale_reply_is_sent_again_from_the_page_that_kept_it(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member whose reply form carries a token of an earlier session
    await make_user(pool, "admin", role="admin")
    community_id = await make_community(pool, "medical")
    await add_thread(pool, community_id, author_id=1)
    await login(client, "admin")
    refused = await client.post("/t/1/repondre", data={"body": CASE, "csrf_token": "0" * 64})
    assert refused.status_code == 403
    # When she presses « Renvoyer le formulaire » on the page that kept her text
    assert "Renvoyer le formulaire" in refused.text
    resent = await client.post(
        "/t/1/repondre",
        data={"body": html.unescape(_textarea(refused.text)), "csrf_token": csrf_from(refused.text)},
    )
    # Then the reply is published as she wrote it
    assert resent.status_code == 303
    assert await pool.fetchval("SELECT source FROM posts ORDER BY id DESC LIMIT 1") == CASE


async def test_a_logged_out_member_keeps_her_text_and_is_told_to_log_in_in_another_tab(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "admin", role="admin")
    community_id = await make_community(pool, "medical")
    await add_thread(pool, community_id, author_id=1)
    # When a logged-out member sends a members' form
    response = await client.post("/t/1/repondre", data={"body": CASE, "csrf_token": "stale"})
    # Then the answer is the missing page every stranger gets, with her own text back
    assert response.status_code == 404
    assert html.escape(CASE, quote=False) in response.text
    assert 'href="/connexion" target="_blank"' in response.text


async def test_a_thread_locked_while_writing_keeps_the_reply_and_offers_no_form(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member writing a reply to a thread a moderator then locks
    await make_user(pool, "mod", role="moderator")
    await make_user(pool, "amina")
    community_id = await make_community(pool, "medical")
    await add_thread(pool, community_id, author_id=1)
    await login(client, "amina")
    form_page = await client.get("/p/1/repondre")
    assert 'action="/p/1/repondre"' in form_page.text
    async with new_client(app) as moderator:
        await login(moderator, "mod")
        assert (await post_form(moderator, "/t/1/animer", {"action": "lock"}, page="/t/1")).status_code == 303
    # When she sends it
    response = await client.post(
        "/p/1/repondre", data={"body": CASE, "csrf_token": csrf_from(form_page.text)}
    )
    # Then nothing is published, her text is there to copy, and no page offers a reply form
    assert response.status_code == 403
    assert html.escape(CASE, quote=False) in response.text
    assert "verrouillée pendant que vous écriviez" in response.text
    assert await pool.fetchval("SELECT count(*) FROM posts") == 1
    for path in ("/p/1/repondre", "/t/1"):
        assert '/repondre"' not in (await client.get(path)).text.replace('href="/p/1/repondre"', "")


def _textarea(page: str) -> str:
    match = re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S)
    assert match
    return match.group(1)


async def test_a_multipart_form_refused_for_a_stale_token_keeps_its_text_not_its_file(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member uploading a document with a description, from a stale page
    await make_user(pool, "admin", role="admin")
    await make_community(pool, "medical")
    await login(client, "admin")
    response = await client.post(
        "/c/medical/documents/nouveau",
        data={"title": TITLE, "description": CASE, "csrf_token": "0" * 64},
        files={"file": ("protocole.txt", b"Protocole PEP", "text/plain")},
    )
    # Then the title and description come back, and the page says the file must be chosen again
    assert response.status_code == 403
    assert TITLE in response.text and html.escape(CASE, quote=False) in response.text
    assert "fichiers ne sont jamais conservés" in response.text
