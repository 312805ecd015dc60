"""Open moderation: removal reasons on the tombstone and to the author, authors' own
history, no moderator deciding a report about her own post, suspension reasons,
refused applications reconsidered or erased; the member directory (opt-in)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from node import accounts, reports, threads
from node.communities import find
from node.errors import BadRequest, Forbidden
from node.sessions import User
from tests.helpers import PASSWORD, csrf, login, make_community, make_user, new_client, post_form


async def member(pool: asyncpg.Pool, username: str, role: str = "member", status: str = "approved") -> User:
    user_id = await make_user(pool, username, role=role, status=status, email=f"{username}@example.org")
    return User(user_id, username, username, role, status)


async def start(pool: asyncpg.Pool, author: User, body: str = "Texte du sujet") -> threads.Created:
    async with pool.acquire() as conn:
        community = await find(conn, "medical")
        assert community is not None
        return await threads.create_thread(conn, community, author, "Un sujet", body)


async def test_a_removal_names_the_rule_and_reason_on_the_tombstone_and_to_the_author(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    await member(pool, "modo", role="moderator")
    created = await start(pool, amina)
    async with pool.acquire() as conn:
        reply = await threads.create_reply(conn, created.thread_id, amina, "Mme Diallo, 12 rue des Lilas")
    await login(client, "modo")
    page = f"/p/{reply}/supprimer"
    form = await client.get(page)
    assert "Règle de la charte enfreinte" in form.text
    # « Autre raison » without a text, or a rule that does not exist: the form again, nothing removed
    for bad in ({"rule": "0", "reason": ""}, {"rule": "9", "reason": "x"}, {"rule": "", "reason": ""}):
        assert (await post_form(client, page, bad)).status_code == 400
    assert await pool.fetchval("SELECT deleted_at FROM posts WHERE id = $1", reply) is None
    # When the moderator removes it under rule 2 with a precision
    done = await post_form(client, page, {"rule": "2", "reason": "Adresse d'une patiente."})
    assert done.status_code == 303
    # Then the tombstone says why (never the removed text) …
    thread = await client.get(f"/t/{created.thread_id}")
    assert "Message retiré par la modération" in thread.text
    assert "(charte, règle 2) — Adresse d&#39;une patiente." in thread.text
    assert "rue des Lilas" not in thread.text
    # … and so does the author's notification
    reason = await pool.fetchval(
        "SELECT reason FROM notifications WHERE user_id = $1 AND kind = 'moderation'", amina.id
    )
    assert reason.startswith("Informations permettant d'identifier") and reason.endswith(
        "Adresse d'une patiente."
    )


async def test_authors_see_the_history_of_their_own_posts(
    client: httpx.AsyncClient, pool: asyncpg.Pool, app: Starlette
) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    await member(pool, "bea")
    created = await start(pool, amina, "Première version")
    async with pool.acquire() as conn:
        await threads.edit_post(conn, created.post_id, amina, "Seconde version")
    await login(client, "amina")
    own = await client.get(f"/p/{created.post_id}/historique")
    assert own.status_code == 200 and "Première version" in own.text
    assert "/historique" in (await client.get(f"/t/{created.thread_id}")).text
    async with new_client(app) as other:
        await login(other, "bea")
        assert (await other.get(f"/p/{created.post_id}/historique")).status_code == 404


async def test_a_moderator_cannot_decide_a_report_about_her_own_post(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    modo = await member(pool, "modo", role="moderator")
    other = await member(pool, "autre", role="moderator")
    bea = await member(pool, "bea")
    created = await start(pool, modo)
    async with pool.acquire() as conn:
        target = await reports.reportable(conn, created.post_id, bea, "http://testserver")
        report_id = await reports.file_report(conn, target, bea, "Propos déplacés", forward=False)
        with pytest.raises(Forbidden):
            await reports.decide(conn, report_id, "dismissed", modo, "")
        assert await conn.fetchval("SELECT state FROM reports WHERE id = $1", report_id) == "open"
        await reports.decide(conn, report_id, "resolved", other, "")
    assert await pool.fetchval("SELECT state FROM reports WHERE id = $1", report_id) == "resolved"


async def test_the_suspension_reason_is_shown_to_the_member_at_login(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    admin = await member(pool, "admin", role="admin")
    amina = await member(pool, "amina")
    async with pool.acquire() as conn:
        await accounts.suspend(conn, admin, amina.id, "Partage répété de dossiers identifiables")
    token = await csrf(client)
    wrong = await client.post(
        "/connexion", data={"username": "amina", "password": "faux-mot-de-passe", "csrf_token": token}
    )
    assert "Partage répété" not in wrong.text
    page = await client.post(
        "/connexion", data={"username": "amina", "password": PASSWORD, "csrf_token": token}
    )
    assert page.status_code == 403
    assert "Raison donnée : Partage répété de dossiers identifiables" in page.text
    async with pool.acquire() as conn:
        await accounts.reactivate(conn, admin, amina.id)
    assert await pool.fetchval("SELECT suspension_reason FROM users WHERE id = $1", amina.id) == ""


async def test_an_admin_reconsiders_or_erases_a_refused_application(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await member(pool, "admin", role="admin")
    first = await make_user(pool, "refusee", status="refused", email="r@example.org")
    second = await make_user(pool, "effacee", status="refused", email="e@example.org")
    approved = await make_user(pool, "amina", email="a@example.org")
    await login(client, "admin")
    page = await client.get(f"/admin/membres/{first}")
    assert "Réexaminer la demande" in page.text
    back = await post_form(client, f"/admin/membres/{first}/reexaminer", {}, page=f"/admin/membres/{first}")
    assert back.status_code == 303
    assert await pool.fetchval("SELECT status FROM users WHERE id = $1", first) == "pending"
    gone = await post_form(client, f"/admin/membres/{second}/effacer", {}, page=f"/admin/membres/{second}")
    assert gone.status_code == 303
    assert "ont été effacées" in (await client.get(gone.headers["location"])).text
    assert await pool.fetchval("SELECT count(*) FROM users WHERE id = $1", second) == 0
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'registration.erase'") == 1
    # An approved member is neither reconsidered nor erased
    for action in ("reexaminer", "effacer"):
        refused = await post_form(client, f"/admin/membres/{approved}/{action}", {}, page="/admin")
        assert refused.status_code == 404
    assert await pool.fetchval("SELECT status FROM users WHERE id = $1", approved) == "approved"


async def test_the_directory_lists_only_members_who_chose_it(
    client: httpx.AsyncClient, pool: asyncpg.Pool, app: Starlette
) -> None:
    await make_community(pool, "medical", title="Prise en charge médicale")
    await make_user(
        pool, "amina", display_name="Amina Sow", organisation="Hôpital de Pikine", email="a@example.org"
    )
    await make_user(pool, "bea", display_name="Béa Discrète", email="b@example.org")
    await login(client, "amina")
    await post_form(client, "/c/medical/suivre", {}, page="/c/medical")
    async with new_client(app) as bea:
        await login(bea, "bea")
        assert "Amina Sow" not in (await bea.get("/membres")).text
        done = await post_form(client, "/compte/annuaire", {"shown": "1"}, page="/compte")
        assert done.status_code == 303
        listing = await bea.get("/membres")
        assert "Amina Sow" in listing.text and "Hôpital de Pikine" in listing.text
        assert "Prise en charge médicale" in listing.text
        assert 'href="/u/amina"' in listing.text
        assert "@bea" not in listing.text
        assert "Amina Sow" in (await bea.get("/membres?q=pikine")).text
        assert "Amina Sow" not in (await bea.get("/membres?q=dakar")).text
    async with new_client(app) as anonymous:
        assert (await anonymous.get("/membres")).status_code == 404


async def test_delete_post_service_checks_the_rule(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    modo = await member(pool, "modo", role="moderator")
    created = await start(pool, amina)
    async with pool.acquire() as conn:
        with pytest.raises(BadRequest):
            await threads.delete_post(conn, created.post_id, modo, "", 7)
        await threads.delete_post(conn, created.post_id, modo, "", 4)
    row = await pool.fetchrow("SELECT removal_rule, removal_reason FROM posts WHERE id = $1", created.post_id)
    assert row["removal_rule"] == 4 and "règle 4" in row["removal_reason"]


async def test_the_reports_page_tells_a_moderator_to_leave_her_own_case_to_another(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_community(pool, "medical")
    modo = await member(pool, "modo", role="moderator")
    bea = await member(pool, "bea")
    created = await start(pool, modo)
    async with pool.acquire() as conn:
        target = await reports.reportable(conn, created.post_id, bea, "http://testserver")
        report_id = await reports.file_report(conn, target, bea, "Propos déplacés", forward=False)
    await login(client, "modo")
    page = await client.get("/moderation/signalements")
    assert "une autre personne de l'équipe de modération doit le traiter" in page.text
    assert f"/moderation/signalements/{report_id}/traiter" not in page.text
    refused = await post_form(
        client, f"/moderation/signalements/{report_id}/traiter", {}, page="/moderation/signalements"
    )
    assert refused.status_code == 403
