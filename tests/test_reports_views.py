"""The moderators' reports page: Flags filed by the real handler, shown to moderators
only, resolved or dismissed through CSRF-protected forms, every decision audited."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from federation import handlers
from federation.handlers.base import Context, VerifiedActor
from node import communities, threads
from node.sessions import User
from node.settings import Settings
from tests.helpers import csrf, login, make_community, make_user, new_client, post_form, without_next

PAGE = "/moderation/signalements"
MASTO = "masto.example"


async def remote_actor(pool: asyncpg.Pool, domain: str = MASTO, username: str = "mod") -> VerifiedActor:
    row = await pool.fetchrow(
        "INSERT INTO actors (uri, kind, local, username, domain, display_name, url, inbox)"
        " VALUES ($1, 'Person', false, $2, $3, $4, $5, $6) RETURNING id, uri, domain",
        f"https://{domain}/users/{username}",
        username,
        domain,
        f"Modération de {domain}",
        f"https://{domain}/@{username}",
        f"https://{domain}/users/{username}/inbox",
    )
    return VerifiedActor(row["id"], row["uri"], row["domain"])


async def handle(
    pool: asyncpg.Pool, settings: Settings, sender: VerifiedActor, activity: dict[str, Any]
) -> str:
    """Run the real handler of ``activity`` as the worker does (one transaction)."""
    async with pool.acquire() as conn, conn.transaction():
        outcome = await handlers.dispatch(Context(conn, settings, None, sender, activity))
    return outcome.state


_flags = iter(range(1, 10_000))


def flag(sender: VerifiedActor, targets: list[str], text: str) -> dict[str, Any]:
    return {
        "id": f"https://{sender.domain}/flags/{next(_flags)}",
        "type": "Flag",
        "actor": sender.uri,
        "content": text,
        "object": targets,
    }


async def thread_with_reply(pool: asyncpg.Pool, community: str = "psy") -> tuple[int, int, int]:
    """A members-only thread by amina with a reply by binta: (thread, opening post, reply)."""
    await make_community(pool, community, visibility="members")
    amina = await make_user(pool, "amina")
    binta = await make_user(pool, "binta")
    async with pool.acquire() as conn:
        found = await communities.find(conn, community)
        assert found is not None
        created = await threads.create_thread(
            conn,
            found,
            User(amina, "amina", "Amina", "member", "approved"),
            "Sujet sensible",
            "Secret du groupe.",
        )
        reply = await threads.create_reply(
            conn,
            created.thread_id,
            User(binta, "binta", "Binta", "member", "approved"),
            "Réponse très privée.",
        )
    return created.thread_id, created.post_id, reply


async def file_report(pool: asyncpg.Pool, settings: Settings, text: str = "Propos déplacés") -> int:
    thread_id, _, reply = await thread_with_reply(pool)
    sender = await remote_actor(pool)
    targets = [
        "http://testserver/u/binta",
        f"http://testserver/p/{reply}",
        f"http://testserver/t/{thread_id}",
        "https://elsewhere.example/notes/1",
    ]
    assert await handle(pool, settings, sender, flag(sender, targets, text)) == "done"
    report_id: int = await pool.fetchval("SELECT id FROM reports")
    return report_id


async def as_role(client: httpx.AsyncClient, pool: asyncpg.Pool, username: str, role: str) -> int:
    user_id = await make_user(pool, username, role=role)
    await login(client, username)
    return user_id


async def test_a_moderator_sees_an_incoming_report(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given a Flag from a Mastodon moderator naming a reply, a thread, a member and a foreign note
    report_id = await file_report(
        pool, settings, text="<script>alert(1)</script> Propos déplacés\nVoir <b>ici</b>"
    )
    reply = await pool.fetchval("SELECT id FROM posts WHERE NOT is_opening")
    opening = await pool.fetchval("SELECT id FROM posts WHERE is_opening")
    await as_role(client, pool, "modo", "moderator")

    # When the moderator opens the reports page
    page = await client.get(PAGE)

    # Then the report shows with its reporter, instance, text (escaped) and targets
    assert page.status_code == 200
    html = page.text
    assert f'id="signalement-{report_id}"' in html
    assert "@mod@masto.example" in html and "Modération de masto.example" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Propos déplacés" in html
    assert "<script>alert" not in html
    assert "Propos déplacés<br>Voir &lt;b&gt;ici&lt;/b&gt;" in html
    assert f'<a href="/p/{reply}">' in html and f'<a href="/p/{opening}">' in html
    # each reported post can be taken down from here (the moderator's delete confirmation)
    assert f'<a href="/p/{reply}/supprimer">' in html
    assert "Réponse très privée." in html and "Secret du groupe." in html and "Psy" in html
    assert '<a href="/u/binta">' in html
    # a foreign id is never a followed, referrer-leaking link
    assert '<a href="https://elsewhere.example/notes/1" rel="nofollow noopener noreferrer">' in html
    assert html.count('href="https://') == html.count('rel="nofollow noopener noreferrer"')
    # our own post URLs are folded into the posts they name, not listed again as ids
    assert f"http://testserver/p/{reply}</" not in html
    assert page.headers["cache-control"].startswith("private")


async def test_the_moderation_queue_counts_open_reports(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    await file_report(pool, settings)
    await as_role(client, pool, "modo", "moderator")
    queue = await client.get("/moderation")
    assert '<a href="/moderation/signalements">Signalements ouverts (1)</a>' in queue.text


@pytest.mark.parametrize("role", [None, "member", "expert"])
async def test_only_moderators_and_admins_see_reports(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, role: str | None
) -> None:
    report_id = await file_report(pool, settings)
    if role:
        await as_role(client, pool, "someone", role)
    missing = await client.get("/moderation/nulle-part")
    page = await client.get(PAGE)
    assert page.status_code == 404 and without_next(page.text) == without_next(missing.text)
    assert "Réponse très privée." not in page.text
    token = await csrf(client, "/connexion" if role is None else "/")
    refused = await client.post(f"{PAGE}/{report_id}/traiter", data={"csrf_token": token})
    assert refused.status_code == 404
    assert await pool.fetchval("SELECT state FROM reports") == "open"


async def test_an_admin_sees_reports_too(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    await file_report(pool, settings)
    await as_role(client, pool, "admin", "admin")
    assert (await client.get(PAGE)).status_code == 200


async def test_resolving_a_report_records_who_and_when_and_is_audited(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    report_id = await file_report(pool, settings)
    modo = await as_role(client, pool, "modo", "moderator")

    # When the moderator marks it resolved with a note
    response = await post_form(client, f"{PAGE}/{report_id}/traiter", {"note": "Message masqué."}, page=PAGE)

    # Then the report is closed, by whom and when, and the audit log says so
    assert response.status_code == 303 and response.headers["location"] == PAGE + "?fait=traite"
    row = await pool.fetchrow("SELECT * FROM reports WHERE id = $1", report_id)
    assert row["state"] == "resolved" and row["resolved_by"] == modo and row["resolved_at"] is not None
    audit = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'report.resolve'")
    assert audit["actor_id"] == modo and audit["actor_label"] == "modo"
    assert audit["target_type"] == "report" and audit["target_id"] == str(report_id)
    assert audit["reason"] == "Message masqué."
    assert audit["details"]["reporter"] == "https://masto.example/users/mod"
    # It leaves the open list and shows under « Traités » with the decision
    after = await client.get(response.headers["location"])
    assert "Signalement marqué comme traité." in after.text
    assert f'id="signalement-{report_id}"' not in after.text
    handled = await client.get(PAGE, params={"etat": "traites"})
    assert f'id="signalement-{report_id}"' in handled.text
    assert "@modo" in handled.text and "Message masqué." in handled.text
    assert "Signalements ouverts (0)" in (await client.get("/moderation")).text


async def test_dismissing_a_report_is_audited_and_cannot_be_decided_twice(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    report_id = await file_report(pool, settings)
    modo = await as_role(client, pool, "modo", "moderator")

    response = await post_form(client, f"{PAGE}/{report_id}/classer", {"note": ""}, page=PAGE)

    assert response.status_code == 303 and response.headers["location"] == PAGE + "?fait=classe"
    row = await pool.fetchrow("SELECT state, resolved_by FROM reports WHERE id = $1", report_id)
    assert tuple(row) == ("dismissed", modo)
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'report.dismiss'") == 1
    assert f'id="signalement-{report_id}"' in (await client.get(PAGE, params={"etat": "classes"})).text
    # a second decision on a closed report changes nothing
    again = await post_form(client, f"{PAGE}/{report_id}/traiter", {}, page=PAGE)
    assert again.status_code == 409 and "déjà été traité" in again.text
    assert await pool.fetchval("SELECT state FROM reports") == "dismissed"
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'report.%'") == 1


async def test_a_decision_without_csrf_token_is_refused(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    report_id = await file_report(pool, settings)
    await as_role(client, pool, "modo", "moderator")
    for action in ("traiter", "classer"):
        response = await client.post(f"{PAGE}/{report_id}/{action}", data={"note": "x"})
        assert response.status_code == 403
    assert await pool.fetchval("SELECT state FROM reports") == "open"
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'report.%'") == 0


async def test_an_unknown_report_is_a_missing_page(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    await file_report(pool, settings)
    await as_role(client, pool, "modo", "moderator")
    assert (await post_form(client, f"{PAGE}/999999/traiter", {}, page=PAGE)).status_code == 404
    assert (await post_form(client, f"{PAGE}/abc/traiter", {}, page=PAGE)).status_code == 404
    assert (await client.get(PAGE, params={"avant": "1.1"})).status_code == 404  # nothing that old
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'report.%'") == 0


async def test_an_over_long_note_is_refused(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    report_id = await file_report(pool, settings)
    await as_role(client, pool, "modo", "moderator")
    response = await post_form(client, f"{PAGE}/{report_id}/traiter", {"note": "x" * 1001}, page=PAGE)
    assert response.status_code == 400 and "trop long" in response.text
    assert await pool.fetchval("SELECT state FROM reports") == "open"


async def test_reports_are_paginated_newest_first(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given 21 reports, the last one received most recently
    thread_id, _, _ = await thread_with_reply(pool)
    sender = await remote_actor(pool)
    for n in range(21):
        activity = flag(sender, [f"http://testserver/t/{thread_id}"], f"Signalement numéro {n}")
        assert await handle(pool, settings, sender, activity) == "done"
    await pool.execute("UPDATE reports SET created_at = now() - make_interval(mins => 100 - id::int)")
    await as_role(client, pool, "modo", "moderator")

    first = (await client.get(PAGE)).text
    older = re.search(r'href="/moderation/signalements\?etat=ouverts&amp;avant=([0-9.]+)"', first)
    assert older is not None and "apres=" not in first
    second = (await client.get(PAGE, params={"etat": "ouverts", "avant": older[1]})).text

    assert first.index("Signalement numéro 20") < first.index("Signalement numéro 19")
    assert "Signalement numéro 0<" not in first and "Signalement numéro 0<" in second
    assert "Signalement numéro 1<" not in second and "avant=" not in second
    # And the page before the second one is the first again
    newer = re.search(r'href="/moderation/signalements\?etat=ouverts&amp;apres=([0-9.]+)"', second)
    assert newer is not None
    again = (await client.get(PAGE, params={"etat": "ouverts", "apres": newer[1]})).text
    assert again.count("Signalement numéro") == first.count("Signalement numéro") == 20
    assert "Signalement numéro 1<" in again and "Signalement numéro 0<" not in again
    # And a cursor that is not one is a missing page
    assert (await client.get(PAGE, params={"avant": "demain"})).status_code == 404


async def test_an_anonymous_visitor_gets_the_missing_page(
    app: Starlette, pool: asyncpg.Pool, settings: Settings
) -> None:
    await file_report(pool, settings)
    async with new_client(app) as visitor:
        assert (await visitor.get(PAGE)).status_code == 404


async def test_an_admin_can_block_a_reported_instance_from_the_report(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given a Flag from masto.example naming a reply written on other.example
    thread_id, opening, _ = await thread_with_reply(pool)
    author = await remote_actor(pool, "other.example", "troll")
    remote_reply = await pool.fetchval(
        "INSERT INTO posts (thread_id, parent_id, source, content_html, ap_id, remote_author_id)"
        " VALUES ($1, $2, 'Propos haineux', '<p>Propos haineux</p>', $3, $4) RETURNING id",
        thread_id,
        opening,
        "https://other.example/notes/9",
        author.id,
    )
    sender = await remote_actor(pool)
    assert (
        await handle(pool, settings, sender, flag(sender, ["https://other.example/notes/9"], "Haine"))
        == "done"
    )
    report_id = await pool.fetchval("SELECT id FROM reports")
    assert await pool.fetchval("SELECT post_ids FROM reports") == [remote_reply]

    # When a moderator who is not an admin opens the reports page, no block link shows
    await as_role(client, pool, "modo", "moderator")
    assert "Bloquer cette instance" not in (await client.get(PAGE)).text

    # When an admin opens it, both servers involved are offered, the reporter's first
    async with new_client(app) as admin:
        await admin_blocks_from_the_report(admin, client, pool, report_id)


async def admin_blocks_from_the_report(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, pool: asyncpg.Pool, report_id: int
) -> None:
    await as_role(admin, pool, "chef", "admin")
    html = (await admin.get(PAGE)).text
    link = f"/admin/federation?bloquer=masto.example&amp;signalement={report_id}#bloquer"
    assert f'<a href="{link}">' in html
    assert f'<a href="/admin/federation?bloquer=other.example&amp;signalement={report_id}#bloquer">' in html
    assert html.index("masto.example · ") < html.index("other.example · ")

    # Then the link only fills the block form in: nothing is blocked by following it
    form = await admin.get(f"/admin/federation?bloquer=other.example&signalement={report_id}")
    assert form.status_code == 200
    assert 'value="other.example" autofocus' in form.text
    assert f'value="Signalement n°{report_id}"' in form.text
    assert await pool.fetchval("SELECT count(*) FROM domain_blocks") == 0
    # and a crafted value stays text
    crafted = await admin.get('/admin/federation?bloquer="><script>x</script>&signalement=1;2')
    assert "<script>x" not in crafted.text and 'value="Signalement n°' not in crafted.text

    # When the admin submits the form, the domain is blocked and audited
    done = await post_form(
        admin,
        "/admin/federation/blocages",
        {
            "domain": "other.example",
            "severity": "suspend",
            "reason": "",
            "private_comment": f"Signalement n°{report_id}",
        },
        page="/admin/federation",
    )
    assert done.status_code == 303
    assert (
        await pool.fetchval("SELECT severity FROM domain_blocks WHERE domain = 'other.example'") == "suspend"
    )
    # the moderator's non-admin session is refused the policy page (a missing page)
    assert (await client.get("/admin/federation?bloquer=other.example")).status_code == 404
