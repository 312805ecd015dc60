"""Private conversations in the browser: /messages pages, and who may reach them.

The access test walks the app's route table: every route whose path starts with
``/messages/{id}`` (view, reply, mark read, leave, block, report, attachments …)
is tried, GET and POST with a valid CSRF token, by a third member, a moderator
(without a report), an administrator and an anonymous visitor — each must get the
same 404 as for a conversation that does not exist, and nothing may change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from tests.helpers import csrf, login, make_user, new_client, post_form
from tests.image_samples import assert_no_metadata, jpeg_with_metadata
from tests.messages_kit import BODY, SUBJECT, client_at, start_conversation


def unread_badge(html: str) -> int:
    match = re.search(r'id="nav-messages">Messages(?: <span class="badge new"[^>]*>(\d+)</span>)?</a>', html)
    assert match, "no Messages link in the header"
    return int(match.group(1) or 0)


async def test_start_reply_and_unread_count_in_the_header(app: Starlette, pool: asyncpg.Pool) -> None:
    await make_user(pool, "amina")
    await make_user(pool, "bruno")
    async with client_at(app, 1) as amina, client_at(app, 2) as bruno:
        await login(amina, "amina")
        await login(bruno, "bruno")

        # Amina starts a conversation with Bruno
        url = await start_conversation(amina, "bruno")
        page = await amina.get(url)
        assert SUBJECT in page.text and "<strong>souhaite</strong>" in page.text

        # Bruno sees one unread message in the header and in his list; the title never shows the subject
        listing = await bruno.get("/messages")
        assert unread_badge(listing.text) == 1 and SUBJECT in listing.text
        assert "<title>Messages privés" in listing.text
        page = await bruno.get(url)
        assert SUBJECT not in page.text.split("</title>")[0] and BODY not in page.text.split("</title>")[0]
        assert unread_badge(page.text) == 0  # reading it counts it read, on this very page
        assert unread_badge((await bruno.get("/messages")).text) == 0

        # He answers; Amina's count goes up, and down when she reads
        response = await post_form(
            bruno, f"{url}/repondre", {"body": "D'accord, j'appelle la juriste."}, page=url
        )
        assert response.status_code == 303
        assert unread_badge((await amina.get("/")).text) == 1
        assert "j'appelle la juriste" in (await amina.get(url)).text
        assert unread_badge((await amina.get("/messages")).text) == 0

        # An empty reply is a French form error and stores nothing
        count = await pool.fetchval("SELECT count(*) FROM messages")
        response = await post_form(amina, f"{url}/repondre", {"body": "   "}, page=url)
        assert response.status_code == 400 and "obligatoire" in response.text
        assert await pool.fetchval("SELECT count(*) FROM messages") == count


async def test_mark_read_leave_block_and_preferences(app: Starlette, pool: asyncpg.Pool) -> None:
    await make_user(pool, "amina")
    await make_user(pool, "bruno")
    await make_user(pool, "chloe")
    async with client_at(app, 1) as amina, client_at(app, 2) as bruno, client_at(app, 3) as chloe:
        for client, name in ((amina, "amina"), (bruno, "bruno"), (chloe, "chloe")):
            await login(client, name)
        url = await start_conversation(amina, "bruno, chloe")
        conversation_id = url.rsplit("/", 1)[1]

        # mark read from the list
        assert (await post_form(bruno, f"{url}/lu", {}, page="/messages")).status_code == 303
        assert unread_badge((await bruno.get("/messages")).text) == 0

        # Chloé leaves: the conversation is gone for her only
        assert (await post_form(chloe, f"{url}/quitter", {}, page=f"{url}/quitter")).status_code == 303
        assert (await chloe.get(url)).status_code == 404
        assert "a quitté" in (await amina.get(url)).text

        # Bruno blocks Amina from the conversation: her next message does not reach him
        amina_key = f"u{await pool.fetchval('SELECT id FROM users WHERE username = $1', 'amina')}"
        response = await post_form(bruno, f"{url}/bloquer", {"participant": amina_key}, page=url)
        assert response.status_code == 303
        await post_form(amina, f"{url}/repondre", {"body": "Message après blocage"}, page=url)
        assert "Message après blocage" in (await amina.get(url)).text
        assert "Message après blocage" not in (await bruno.get(url)).text
        assert unread_badge((await bruno.get("/messages")).text) == 0
        prefs = await bruno.get("/messages/preferences")
        assert "@amina" in prefs.text

        # Bruno accepts messages from experts only: Amina is refused with a French error
        response = await post_form(bruno, "/messages/preferences", {"accept_from": "experts"})
        assert response.status_code == 303
        response = await post_form(
            amina, "/messages/nouveau", {"recipients": "bruno", "subject": "S", "body": "B"}
        )
        assert response.status_code == 400 and "ne reçoit pas de messages" in response.text
        bad = await post_form(bruno, "/messages/preferences", {"accept_from": "tout-le-monde"})
        assert bad.status_code == 400
        assert conversation_id


async def test_a_reported_message_reaches_the_moderators_alone(app: Starlette, pool: asyncpg.Pool) -> None:
    await make_user(pool, "amina")
    await make_user(pool, "bruno")
    await make_user(pool, "modo", role="moderator")
    async with client_at(app, 1) as amina, client_at(app, 2) as bruno, client_at(app, 3) as modo:
        for client, name in ((amina, "amina"), (bruno, "bruno"), (modo, "modo")):
            await login(client, name)
        url = await start_conversation(amina, "bruno", body="Insulte caractérisée")
        await post_form(amina, f"{url}/repondre", {"body": "Autre message, non signalé"}, page=url)
        message_id = await pool.fetchval("SELECT min(id) FROM messages")

        # Bruno reports the first message
        report_url = f"{url}/m/{message_id}/signaler"
        response = await post_form(bruno, report_url, {"reason": "Propos insultants"})
        assert response.status_code == 303 and "signale=1" in response.headers["location"]

        # The moderators' list shows who and when, not what
        listing = await modo.get("/moderation/messages")
        assert "Insulte" not in listing.text and "@bruno" in listing.text
        report_id = await pool.fetchval("SELECT id FROM message_reports")
        opened = await modo.get(f"/moderation/messages/{report_id}")
        assert "Insulte caractérisée" in opened.text and "Propos insultants" in opened.text
        assert "Autre message" not in opened.text and SUBJECT not in opened.text
        assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'message_report.open'") == 1
        assert (await amina.get(f"/moderation/messages/{report_id}")).status_code == 404

        # Deciding closes it
        response = await post_form(
            modo,
            f"/moderation/messages/{report_id}/decision",
            {"decision": "resolved"},
            page="/moderation/messages",
        )
        assert response.status_code == 303
        assert await pool.fetchval("SELECT state FROM message_reports") == "resolved"


# --- access, generated from the route table ----------------------------------------------

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


def routes_of(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from routes_of(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            yield prefix + route.path, route


def conversation_routes(app: Starlette) -> list[tuple[str, str]]:
    """(method, path template) of every route touching one conversation."""
    found = []
    for path, route in routes_of(app.routes):
        if re.match(r"/messages/\{id(:\w+)?\}", path):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                found.append((method, path))
    return found


def concrete(path: str, values: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: values.get(m.group(1), "1"), path)


async def state_of(pool: asyncpg.Pool) -> tuple[Any, ...]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM message_reports),"
        " (SELECT count(*) FROM message_blocks), (SELECT count(*) FROM audit_log),"
        " (SELECT array_agg((left_at, unread, last_read_at) ORDER BY id) FROM conversation_participants)"
    )
    return tuple(row)


async def test_every_conversation_url_answers_outsiders_like_a_missing_one(
    app: Starlette, pool: asyncpg.Pool
) -> None:
    # Given a conversation between Amina and Bruno, and outsiders
    await make_user(pool, "amina")
    await make_user(pool, "bruno")
    await make_user(pool, "chloe")
    await make_user(pool, "modo", role="moderator")
    await make_user(pool, "admin", role="admin")
    async with client_at(app, 1) as amina:
        await login(amina, "amina")
        fields = {"recipients": "bruno", "subject": SUBJECT, "body": BODY}
        sent = await send_with_file(
            amina, "/messages/nouveau", "/messages/nouveau", fields, "a.jpg", jpeg_with_metadata()
        )
        assert sent.status_code == 303, sent.text
        url = sent.headers["location"].split("#")[0]
    conversation_id = url.rsplit("/", 1)[1]
    message_id = str(await pool.fetchval("SELECT id FROM messages"))
    attachment_id = str(await pool.fetchval("SELECT id FROM message_attachments"))
    bruno_key = f"u{await pool.fetchval('SELECT id FROM users WHERE username = $1', 'bruno')}"
    routes = conversation_routes(app)
    assert ("GET", "/messages/{id:id}") in routes and ("POST", "/messages/{id:id}/repondre") in routes
    assert ("POST", "/messages/{id:id}/m/{mid:id}/signaler") in routes and (
        "POST",
        "/messages/{id:id}/lu",
    ) in routes
    assert ("GET", "/messages/{id:id}/pieces/{aid:id}") in routes
    form = {"body": "intrusion", "reason": "intrusion", "participant": bruno_key}
    before = await state_of(pool)

    for name in ("chloe", "modo", "admin", None):
        async with client_at(app, 9) if name else new_client(app) as outsider:
            if name:
                await login(outsider, name)
            token = await csrf(outsider, "/" if name else "/connexion")
            for method, template in routes:
                # When the outsider tries the real conversation and a missing one
                for target in (conversation_id, "999999"):
                    path = concrete(template, {"id": target, "mid": message_id, "aid": attachment_id})
                    if method == "GET":
                        response = await outsider.get(path)
                    else:
                        response = await outsider.post(path, data={**form, "csrf_token": token})
                    # Then the answers are the same 404, and say nothing of the content
                    assert response.status_code == 404, f"{name} {method} {path}: {response.status_code}"
                    assert SUBJECT not in response.text and "souhaite" not in response.text
    assert await state_of(pool) == before


async def test_pages_need_an_approved_member(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_user(pool, "paula", status="pending")
    for path in ("/messages", "/messages/nouveau", "/messages/preferences", "/moderation/messages"):
        assert (await client.get(path)).status_code == 404
    await login(client, "paula")
    for path in ("/messages", "/messages/nouveau", "/messages/preferences"):
        assert (await client.get(path)).status_code == 404


async def send_with_file(
    client: httpx.AsyncClient, path: str, page: str, fields: dict[str, str], filename: str, data: bytes
) -> httpx.Response:
    token = await csrf(client, page)
    return await client.post(path, data={**fields, "csrf_token": token}, files={"file": (filename, data)})


async def test_an_attachment_is_cleaned_sealed_and_served_to_participants_only(
    app: Starlette, pool: asyncpg.Pool, settings: Any
) -> None:
    await make_user(pool, "amina")
    await make_user(pool, "bruno")
    await make_user(pool, "chloe")
    async with client_at(app, 1) as amina, client_at(app, 2) as bruno, client_at(app, 3) as chloe:
        for client, name in ((amina, "amina"), (bruno, "bruno"), (chloe, "chloe")):
            await login(client, name)
        # Amina sends a photo carrying EXIF and GPS data
        photo = jpeg_with_metadata()
        fields = {"recipients": "bruno", "subject": "Constat", "body": "La photo du constat."}
        response = await send_with_file(
            amina, "/messages/nouveau", "/messages/nouveau", fields, "IMG_0042 Mme D.jpg", photo
        )
        assert response.status_code == 303, response.text
        url = response.headers["location"].split("#")[0]
        attachment_id = await pool.fetchval("SELECT id FROM message_attachments")

        # The stored file is sealed: neither an image nor its metadata
        stored = next((settings.data_dir / "message_files").rglob("*.bin")).read_bytes()
        assert not stored.startswith(b"\xff\xd8") and b"Exif" not in stored and b"GPS" not in stored

        # Bruno sees it and downloads a clean JPEG, as an attachment, sandboxed
        page = await bruno.get(url)
        assert f"/pieces/{attachment_id}" in page.text and "IMG_0042 Mme D.jpg" in page.text
        download = await bruno.get(f"{url}/pieces/{attachment_id}")
        assert download.status_code == 200 and download.content.startswith(b"\xff\xd8")
        assert_no_metadata(download.content)
        assert download.headers["content-type"] == "image/jpeg"
        assert download.headers["content-disposition"].startswith("attachment;")
        assert "sandbox" in download.headers["content-security-policy"]
        assert download.headers["x-content-type-options"] == "nosniff"
        assert "no-store" in download.headers["cache-control"]

        # Chloé, outside the conversation, gets the same 404 as for a missing file
        missing = await chloe.get(f"{url}/pieces/999999")
        refused = await chloe.get(f"{url}/pieces/{attachment_id}")
        assert refused.status_code == missing.status_code == 404

        # A file of a refused kind is a French form error, and nothing is stored
        response = await send_with_file(
            amina, f"{url}/repondre", url, {"body": "Et ceci"}, "script.sh", b"#!/bin/sh\nrm -rf /\x00\x01"
        )
        assert response.status_code == 400
        assert await pool.fetchval("SELECT count(*) FROM messages") == 1
