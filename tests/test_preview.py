"""« Aperçu »: the server renders a message before it is published (no script)."""

from __future__ import annotations

import asyncpg
import httpx
from starlette.applications import Starlette

from tests.helpers import add_thread, login, make_community, make_user, post_form


async def test_the_preview_button_renders_the_text_and_publishes_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "amina")
    community_id = await make_community(pool, "medical")
    await add_thread(pool, community_id, author_id=1)
    await login(client, "amina")
    text = "Un point **important** :\n\n- premier\n- second <script>alert(1)</script>"
    for path, page, form in (
        ("/t/1/repondre", "/t/1", {"body": text}),
        ("/p/1/repondre", "/p/1/repondre", {"body": text}),
        ("/c/medical/nouveau", "/c/medical/nouveau", {"title": "Un titre", "body": text}),
        ("/p/1/modifier", "/p/1/modifier", {"title": "Un titre", "body": text}),
    ):
        response = await post_form(client, path, {**form, "apercu": "1"}, page=page)
        assert response.status_code == 200, path
        assert 'id="apercu"' in response.text and "<strong>important</strong>" in response.text
        assert "<li>premier</li>" in response.text and "<script>alert" not in response.text
        assert "Un point **important**" in response.text  # the text stays in the form
    assert await pool.fetchval("SELECT count(*) FROM posts") == 1
    assert await pool.fetchval("SELECT source FROM posts") == "Bonjour"
    assert await pool.fetchval("SELECT source FROM posts") == "Bonjour"
    assert await pool.fetchval("SELECT count(*) FROM threads") == 1


async def test_private_messages_have_the_preview_too(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "amina")
    await make_user(pool, "olga")
    await login(client, "amina")
    text = "Bonjour, **très** urgent"
    # A new conversation: previewed, nothing sent
    new = await post_form(
        client, "/messages/nouveau", {"recipients": "olga", "subject": "Cas", "body": text, "apercu": "1"}
    )
    assert new.status_code == 200 and "<strong>très</strong>" in new.text and 'id="apercu"' in new.text
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    # Sent, then a reply previewed, nothing more sent
    sent = await post_form(
        client, "/messages/nouveau", {"recipients": "olga", "subject": "Cas", "body": text}
    )
    path = sent.headers["location"].split("#")[0]
    reply = await post_form(
        client, path + "/repondre", {"body": "Suite *importante*", "apercu": "1"}, page=path
    )
    assert reply.status_code == 200 and "<em>importante</em>" in reply.text
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
