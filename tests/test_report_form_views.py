"""« Signaler » : a member reports a post for the node's moderators (report_form_views,
node.reports.file_report), through the real app and PostgreSQL."""

from __future__ import annotations

import asyncpg
import httpx
from starlette.applications import Starlette

from node import communities, reports, threads
from node.sessions import User
from tests.helpers import csrf, login, make_community, make_user, new_client, post_form

THANKS = "Merci, votre signalement a été transmis à l'équipe de modération."
FORWARD = "Transmettre aussi au serveur de l'auteur"
REMOTE = "https://masto.example/users/mona"


async def a_thread(pool: asyncpg.Pool, visibility: str = "members") -> tuple[int, int, int]:
    """A thread by amina with a reply by binta: (thread, amina's opening post, binta's reply)."""
    await make_community(pool, "medical", visibility=visibility)
    amina = await make_user(pool, "amina")
    binta = await make_user(pool, "binta")
    async with pool.acquire() as conn:
        found = await communities.find(conn, "medical")
        assert found is not None
        created = await threads.create_thread(
            conn, found, User(amina, "amina", "Amina", "member", "approved"), "Un sujet", "Texte d'Amina."
        )
        reply = await threads.create_reply(
            conn, created.thread_id, User(binta, "binta", "Binta", "member", "approved"), "Réponse de Binta."
        )
    return created.thread_id, created.post_id, reply


async def a_remote_reply(pool: asyncpg.Pool, thread_id: int) -> int:
    """A reply by mona of masto.example, as the inbox stores one."""
    actor = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, inbox, shared_inbox)"
        " VALUES ($1, 'Person', false, 'mona', 'masto.example', $1 || '/inbox', 'https://masto.example/inbox')"
        " RETURNING id",
        REMOTE,
    )
    post_id: int = await pool.fetchval(
        "INSERT INTO posts (thread_id, parent_id, remote_author_id, source, content_html, ap_id)"
        " SELECT $1, id, $2, 'Texte de Mona.', '<p>Texte de Mona.</p>', $3"
        " FROM posts WHERE thread_id = $1 AND is_opening RETURNING id",
        thread_id,
        actor,
        "https://masto.example/users/mona/statuses/1",
    )
    return post_id


async def report(client: httpx.AsyncClient, post_id: int, reason: str, **extra: str) -> httpx.Response:
    return await post_form(client, f"/p/{post_id}/signaler", {"reason": reason, **extra})


async def test_a_member_reports_a_post_and_a_moderator_sees_it(
    client: httpx.AsyncClient, pool: asyncpg.Pool, app: Starlette
) -> None:
    # Given binta, a member, reading amina's thread
    thread_id, opening, _ = await a_thread(pool)
    await login(client, "binta")
    # When she opens the form, then reports amina's post
    form = await client.get(f"/p/{opening}/signaler")
    assert form.status_code == 200
    assert "Texte d&#39;Amina." in form.text and FORWARD not in form.text  # local author: nothing to forward
    answer = await report(client, opening, "  Propos blessants.  ")
    # Then she is back on the thread, thanked
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/t/{thread_id}?page=1&signale=1#p{opening}"
    assert THANKS in (await client.get(answer.headers["location"])).text
    # And one open report names her, the post and its ActivityPub id, audited, not forwarded
    row = await pool.fetchrow("SELECT * FROM reports")
    binta = await pool.fetchval("SELECT id FROM users WHERE username = 'binta'")
    assert (row["reporter_user_id"], row["post_ids"], row["state"]) == (binta, [opening], "open")
    assert row["target_ids"] == [f"http://testserver/t/{thread_id}"]
    assert row["content"] == "Propos blessants."
    assert row["community_id"] == await pool.fetchval("SELECT id FROM communities WHERE name = 'medical'")
    audit = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'report.create'")
    assert (audit["actor_label"], audit["target_id"]) == ("binta", str(row["id"]))
    assert await pool.fetchval("SELECT count(*) FROM outbox_events WHERE kind = 'report.forwarded'") == 0
    # And a moderator sees it on the reports page, reported by @binta
    await make_user(pool, "modo", role="moderator")
    async with new_client(app) as moderator:
        await login(moderator, "modo")
        page = await moderator.get("/moderation/signalements")
    assert f'id="signalement-{row["id"]}"' in page.text
    assert "@binta" in page.text and "Propos blessants." in page.text


async def test_an_empty_or_too_long_reason_is_refused_in_french(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    _, opening, _ = await a_thread(pool)
    await login(client, "binta")
    empty = await report(client, opening, "   ")
    long = await report(client, opening, "x" * (reports.REASON_MAX + 1))
    assert empty.status_code == 400 and "Ce champ est obligatoire." in empty.text
    assert long.status_code == 400 and "Ce champ est trop long (1000 caractères au plus)." in long.text
    assert await pool.fetchval("SELECT count(*) FROM reports") == 0
    exact = await report(client, opening, "x" * reports.REASON_MAX)
    assert exact.status_code == 303


async def test_a_second_open_report_of_the_same_post_is_refused(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given binta already reported amina's post
    _, opening, _ = await a_thread(pool)
    await login(client, "binta")
    assert (await report(client, opening, "Une fois.")).status_code == 303
    # When she reports it again while the report is open
    again = await report(client, opening, "Deux fois.")
    # Then she is told so, and nothing more is stored
    assert again.status_code == 409
    assert "Vous avez déjà signalé ce message" in again.text
    assert await pool.fetchval("SELECT count(*) FROM reports") == 1
    # And once a moderator has dealt with it, she may report the post again
    moderator_id = await make_user(pool, "modo", role="moderator")
    async with pool.acquire() as conn:
        report_id = await conn.fetchval("SELECT id FROM reports")
        await reports.decide(
            conn, report_id, "resolved", User(moderator_id, "modo", "Modo", "moderator", "approved"), ""
        )
    assert (await report(client, opening, "Encore.")).status_code == 303
    assert await pool.fetchval("SELECT count(*) FROM reports") == 2


async def test_visitors_pending_accounts_authors_and_deleted_posts_get_a_missing_page(
    client: httpx.AsyncClient, pool: asyncpg.Pool, app: Starlette
) -> None:
    thread_id, opening, reply = await a_thread(pool, visibility="public")
    # A visitor, even on a public post
    assert (await client.get(f"/p/{opening}/signaler")).status_code == 404
    assert (await client.post(f"/p/{opening}/signaler", data={"reason": "x"})).status_code == 404
    # A pending account
    await make_user(pool, "attente", status="pending")
    async with new_client(app) as pending:
        await login(pending, "attente")
        assert (await pending.get(f"/p/{opening}/signaler")).status_code == 404
        token = await csrf(pending, "/en-attente")
        refused = await pending.post(f"/p/{opening}/signaler", data={"reason": "x", "csrf_token": token})
        assert refused.status_code == 404
    # The author of the post, a missing post, a deleted post, a post of a deleted thread
    await login(client, "binta")
    assert (await client.get(f"/p/{reply}/signaler")).status_code == 404
    assert (await client.get(f"/p/{reply + 1000}/signaler")).status_code == 404
    await pool.execute("UPDATE threads SET deleted_at = now() WHERE id = $1", thread_id)
    assert (await client.get(f"/p/{opening}/signaler")).status_code == 404
    assert (await report(client, opening, "Trop tard.")).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM reports") == 0


async def test_a_report_without_csrf_token_is_forbidden(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    _, opening, _ = await a_thread(pool)
    await login(client, "binta")
    answer = await client.post(f"/p/{opening}/signaler", data={"reason": "Sans jeton."})
    assert answer.status_code == 403
    assert await pool.fetchval("SELECT count(*) FROM reports") == 0


async def test_the_report_link_shows_under_other_members_posts_only(
    client: httpx.AsyncClient, pool: asyncpg.Pool, app: Starlette
) -> None:
    thread_id, opening, reply = await a_thread(pool, visibility="public")
    remote = await a_remote_reply(pool, thread_id)
    await pool.execute("UPDATE posts SET deleted_at = now() WHERE id = $1", reply)
    await login(client, "amina")
    page = (await client.get(f"/t/{thread_id}")).text
    assert f'href="/p/{remote}/signaler">Signaler</a>' in page
    assert f"/p/{opening}/signaler" not in page  # her own post
    assert f"/p/{reply}/signaler" not in page  # deleted
    async with new_client(app) as visitor:
        assert "/signaler" not in (await visitor.get(f"/t/{thread_id}")).text


async def test_a_remote_authors_post_is_forwarded_when_asked(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a reply by mona of masto.example in amina's thread
    thread_id, _, _ = await a_thread(pool)
    remote = await a_remote_reply(pool, thread_id)
    await login(client, "binta")
    # Then the form offers to forward the report, checked by default
    form = await client.get(f"/p/{remote}/signaler")
    assert FORWARD in form.text and 'name="forward" value="1" checked' in form.text
    # When binta reports it with the box checked, an outbox event asks for the Flag
    assert (await report(client, remote, "Spam.", forward="1")).status_code == 303
    row = await pool.fetchrow("SELECT id, target_ids FROM reports")
    assert row["target_ids"] == ["https://masto.example/users/mona/statuses/1"]
    events = await pool.fetch("SELECT kind, payload FROM outbox_events WHERE kind = 'report.forwarded'")
    assert [e["payload"] for e in events] == [{"report_id": row["id"]}]
    audit = await pool.fetchval("SELECT details FROM audit_log WHERE action = 'report.create'")
    assert audit["forwarded"] is True


async def test_a_remote_authors_post_is_not_forwarded_when_unchecked(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    thread_id, _, _ = await a_thread(pool)
    remote = await a_remote_reply(pool, thread_id)
    await login(client, "binta")
    assert (await report(client, remote, "Spam.")).status_code == 303
    assert await pool.fetchval("SELECT count(*) FROM reports") == 1
    assert await pool.fetchval("SELECT count(*) FROM outbox_events WHERE kind = 'report.forwarded'") == 0


async def test_a_local_authors_post_is_never_forwarded(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    _, opening, _ = await a_thread(pool, visibility="public")
    await login(client, "binta")
    assert (await report(client, opening, "Hors sujet.", forward="1")).status_code == 303
    assert await pool.fetchval("SELECT count(*) FROM outbox_events WHERE kind = 'report.forwarded'") == 0
