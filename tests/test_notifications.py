"""Notifications (node.notifications): each kind produced once, for the members it
concerns who may read its subject; followed threads; the page, the header count and
the settings."""

from __future__ import annotations

import asyncpg
import httpx
from starlette.applications import Starlette

from node import accounts, notifications, reports, sessions, threads
from node.communities import find
from node.sessions import User
from node.settings import Settings
from tests.helpers import eventually, login, make_community, make_user, post_form


async def member(pool: asyncpg.Pool, username: str, role: str = "member", status: str = "approved") -> User:
    user_id = await make_user(pool, username, role=role, status=status, email=f"{username}@example.org")
    return User(user_id, username, username, role, status)


async def start(pool: asyncpg.Pool, author: User, body: str = "Corps du sujet") -> threads.Created:
    async with pool.acquire() as conn:
        community = await find(conn, "medical")
        assert community is not None
        return await threads.create_thread(conn, community, author, "PPE après exposition", body)


async def reply(
    pool: asyncpg.Pool, thread_id: int, author: User, body: str = "Une réponse", parent: int | None = None
) -> int:
    async with pool.acquire() as conn:
        return await threads.create_reply(conn, thread_id, author, body, parent)


async def received(pool: asyncpg.Pool, user: User) -> list[tuple[str, int | None]]:
    rows = await pool.fetch("SELECT kind, post_id FROM notifications WHERE user_id = $1 ORDER BY id", user.id)
    return [(r["kind"], r["post_id"]) for r in rows]


async def test_a_reply_notifies_the_author_and_followers_once_each(pool: asyncpg.Pool) -> None:
    # Given a thread by Amina, followed by Chloé, and a reply by Béa (who then follows it too)
    await make_community(pool, "medical")
    amina, bea, chloe, dora = [await member(pool, n) for n in ("amina", "bea", "chloe", "dora")]
    created = await start(pool, amina)
    await notifications.set_following(pool, chloe.id, created.thread_id, True)
    first = await reply(pool, created.thread_id, bea)
    # Then Amina learns of a reply to her post, Chloé of a reply in a followed thread; not Béa, not Dora
    assert await received(pool, amina) == [("reply_to_me", first)]
    assert await received(pool, chloe) == [("reply_followed", first)]
    assert await received(pool, bea) == [] and await received(pool, dora) == []
    # When Chloé answers Béa's reply
    second = await reply(pool, created.thread_id, chloe, parent=first)
    # Then Béa (the post answered, and an automatic follower) gets one reply_to_me, Amina a followed reply
    assert await received(pool, bea) == [("reply_to_me", second)]
    assert await received(pool, amina) == [("reply_to_me", first), ("reply_followed", second)]
    assert await received(pool, chloe) == [("reply_followed", first)]
    # And notifying the same post again produces nothing new
    assert await notifications.notify_reply(pool, second) == 0


async def test_unfollowing_stops_notifications_and_replying_again_does_not_refollow(
    pool: asyncpg.Pool,
) -> None:
    await make_community(pool, "medical")
    amina, bea = await member(pool, "amina"), await member(pool, "bea")
    created = await start(pool, amina)
    await notifications.set_following(pool, amina.id, created.thread_id, False)
    await reply(pool, created.thread_id, amina, "Je complète")
    assert not await notifications.is_following(pool, amina.id, created.thread_id)
    await reply(pool, created.thread_id, bea, "Une réponse au fil", parent=None)
    # The reply answers the opening post: still « reply to my post » (Discourse does the same)
    assert [k for k, _ in await received(pool, amina)] == ["reply_to_me"]
    third = await reply(pool, created.thread_id, bea, "Encore")
    assert ("reply_followed", third) not in await received(pool, amina)


async def test_mentions_notify_named_members_who_may_read(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina, bea = await member(pool, "amina"), await member(pool, "bea")
    gone = await member(pool, "gone", status="suspended")
    created = await start(pool, amina)
    # When Amina names Béa, a suspended member, herself, a remote account, an e-mail and nobody
    post = await reply(
        pool, created.thread_id, amina, "Merci @bea et @gone, @amina, @bea@ailleurs.org, x@bea.org, @personne"
    )
    # Then only Béa is notified, once, as a mention
    assert await received(pool, bea) == [("mention", post)]
    assert await received(pool, gone) == []
    assert await received(pool, amina) == []


async def test_a_member_who_lost_access_is_never_notified(pool: asyncpg.Pool) -> None:
    # Given Chloé following a members-only thread, then suspended
    await make_community(pool, "medical")
    amina, bea, chloe = [await member(pool, n) for n in ("amina", "bea", "chloe")]
    created = await start(pool, amina)
    await notifications.set_following(pool, chloe.id, created.thread_id, True)
    await pool.execute("UPDATE users SET status = 'suspended' WHERE id = $1", chloe.id)
    # When Béa replies
    await reply(pool, created.thread_id, bea)
    # Then Chloé gets nothing
    assert await received(pool, chloe) == []


async def test_a_muted_kind_falls_back_to_the_next_or_to_nothing(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina, bea = await member(pool, "amina"), await member(pool, "bea")
    created = await start(pool, amina)
    async with pool.acquire() as conn:
        await notifications.save_preferences(conn, amina, "off", {"reply_followed"})
    post = await reply(pool, created.thread_id, bea)
    assert await received(pool, amina) == [("reply_followed", post)]
    async with pool.acquire() as conn:
        await notifications.save_preferences(conn, amina, "off", set())
    await reply(pool, created.thread_id, bea, "Encore")
    assert len(await received(pool, amina)) == 1


async def test_expert_answer_and_moderation_notify_the_author(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina, bea = await member(pool, "amina"), await member(pool, "bea")
    mod = await member(pool, "modo", role="moderator")
    created = await start(pool, amina)
    answer = await reply(pool, created.thread_id, bea, "La réponse")
    async with pool.acquire() as conn:
        await threads.set_expert_answer(conn, answer, mod, True)
        await threads.delete_post(conn, answer, mod, "Données personnelles d'une patiente")
    assert ("expert_answer", answer) in await received(pool, amina)
    row = await pool.fetchrow("SELECT kind, reason FROM notifications WHERE user_id = $1", bea.id)
    assert dict(row) == {"kind": "moderation", "reason": "Données personnelles d'une patiente"}
    # An author deleting her own post is not notified
    own = await reply(pool, created.thread_id, bea, "Oups")
    async with pool.acquire() as conn:
        await threads.delete_post(conn, own, bea)
    assert [k for k, _ in await received(pool, bea)] == ["moderation"]


async def test_registrations_and_reports_reach_moderators_and_back(pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    mod = await member(pool, "modo", role="moderator")
    admin = await member(pool, "admin", role="admin")
    amina, bea = await member(pool, "amina"), await member(pool, "bea")
    # An application reaches every moderator and admin
    applicant = await make_user(pool, "nouvelle", status="pending", email="nouvelle@example.org")
    async with pool.acquire() as conn:
        await notifications.notify_moderators(conn, "new_application", applicant_id=applicant)
        await accounts.approve(conn, applicant, mod)
    rows = await pool.fetch("SELECT user_id, kind FROM notifications ORDER BY user_id, kind")
    assert {(r["user_id"], r["kind"]) for r in rows} == {
        (mod.id, "new_application"),
        (admin.id, "new_application"),
        (applicant, "registration_approved"),
    }
    # A report reaches moderators (not the reporter), its decision the reporter
    created = await start(pool, amina)
    async with pool.acquire() as conn:
        target = await reports.reportable(conn, created.post_id, bea, "http://testserver")
        report_id = await reports.file_report(conn, target, bea, "Propos déplacés", forward=False)
        await reports.decide(conn, report_id, "resolved", mod, "")
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE kind = 'new_report'") == 2
    assert (
        await pool.fetchval(
            "SELECT kind FROM notifications WHERE user_id = $1 AND report_id = $2", bea.id, report_id
        )
        == "report_handled"
    )


async def test_the_registration_form_notifies_moderators(settings: Settings, pool: asyncpg.Pool) -> None:
    mod = await member(pool, "modo", role="moderator")
    async with pool.acquire() as conn:
        await accounts.register(
            conn,
            accounts.Registration(
                username="nouvelle",
                display_name="Nouvelle",
                email="nouvelle@example.org",
                password="un-mot-de-passe-solide",
                password_confirm="un-mot-de-passe-solide",
                profession="medical",
                profession_detail="",
                organisation="Hôpital",
                country="Sénégal",
                motivation="Je travaille avec des survivantes.",
                charter_accepted=True,
            ),
            settings,
        )
    assert [k for k, _ in await received(pool, mod)] == ["new_application"]


# ---------------------------------------------------------------- pages


async def test_header_count_page_open_and_mark_all(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given a reply to Amina's thread
    await make_community(pool, "medical")
    amina, bea = await member(pool, "amina"), await member(pool, "bea")
    created = await start(pool, amina)
    first = await reply(pool, created.thread_id, bea)
    second = await reply(pool, created.thread_id, bea, "Deuxième")
    await login(client, "amina")
    # Then her header shows 2
    home = await client.get("/communautes")
    assert 'id="unread-notifications">2<' in home.text
    page = await client.get("/notifications")
    assert (
        page.status_code == 200
        and "a répondu à votre message" in page.text
        and "PPE après exposition" in page.text
    )
    [n1, n2] = [r["id"] for r in await pool.fetch("SELECT id FROM notifications ORDER BY id")]
    # When she opens the first: marked read, and she lands on the reply
    opened = await post_form(client, f"/notifications/{n1}", {}, page="/notifications")
    assert opened.status_code == 303 and opened.headers["location"] == f"/p/{first}"
    assert 'id="unread-notifications">1<' in (await client.get("/communautes")).text
    # Someone else's notification is missing
    assert (await post_form(client, "/notifications/999999", {}, page="/notifications")).status_code == 404
    # Mark all read: no count left
    await post_form(client, "/notifications/tout-lu", {}, page="/notifications")
    assert "unread-notifications" not in (await client.get("/communautes")).text
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE read_at IS NULL") == 0
    assert second and n2


async def test_viewing_the_thread_marks_its_notifications_read(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await make_community(pool, "medical")
    amina, bea = await member(pool, "amina"), await member(pool, "bea")
    created = await start(pool, amina)
    await reply(pool, created.thread_id, bea)
    await login(client, "amina")
    await client.get(f"/t/{created.thread_id}")
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE read_at IS NULL") == 0


async def test_follow_button_and_settings(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina, bea = await member(pool, "amina"), await member(pool, "bea")
    created = await start(pool, amina)
    await login(client, "bea")
    page = await client.get(f"/t/{created.thread_id}")
    assert "Suivre ce fil" in page.text
    done = await post_form(
        client, f"/t/{created.thread_id}/suivre", {"action": "follow"}, page=f"/t/{created.thread_id}"
    )
    assert done.status_code == 303
    assert await notifications.is_following(pool, bea.id, created.thread_id)
    assert "Ne plus suivre ce fil" in (await client.get(f"/t/{created.thread_id}")).text
    # A thread that does not exist is missing
    assert (
        await post_form(client, "/t/999999/suivre", {"action": "follow"}, page="/notifications")
    ).status_code == 404
    # Settings: weekly digest, mentions only
    saved = await post_form(client, "/notifications/reglages", {"email_mode": "weekly", "kind": "mention"})
    assert saved.status_code == 303
    prefs = await notifications.preferences(pool, bea.id)
    assert prefs.email_mode == "weekly" and "mention" not in prefs.muted and "reply_followed" in prefs.muted
    bad = await post_form(client, "/notifications/reglages", {"email_mode": "toujours"})
    assert bad.status_code == 400
    assert (await notifications.preferences(pool, bea.id)).email_mode == "weekly"


async def test_bookmarks(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina = await member(pool, "amina")
    await member(pool, "bea")
    created = await start(pool, amina)
    await login(client, "bea")
    saved = await post_form(
        client, f"/p/{created.post_id}/enregistrer", {"action": "save"}, page=f"/t/{created.thread_id}"
    )
    assert saved.status_code == 303
    listing = await client.get("/enregistres")
    assert "PPE après exposition" in listing.text
    await post_form(client, f"/p/{created.post_id}/enregistrer", {"action": "unsave"}, page="/enregistres")
    assert "PPE après exposition" not in (await client.get("/enregistres")).text


async def test_notification_pages_are_for_members_only(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    for path in ("/notifications", "/notifications/reglages", "/enregistres"):
        assert (await client.get(path)).status_code in (303, 404)


async def test_a_remote_reply_notifies_like_a_local_one_but_its_text_mentions_nobody_here(
    pool: asyncpg.Pool,
) -> None:
    # Given Amina's thread followed by Béa, and a remote author
    await make_community(pool, "medical")
    amina, bea = await member(pool, "amina"), await member(pool, "bea")
    created = await start(pool, amina)
    await notifications.set_following(pool, bea.id, created.thread_id, True)
    remote = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, display_name)"
        " VALUES ('https://ailleurs.example/users/zoe', 'Person', false, 'zoe', 'ailleurs.example', 'Zoé')"
        " RETURNING id"
    )
    chloe = await member(pool, "chloe")
    # When her reply arrives (« @chloe » names chloe on her own server, not ours)
    async with pool.acquire() as conn, conn.transaction():
        post_id = await threads.store_remote_reply(
            conn,
            created.thread_id,
            created.post_id,
            remote,
            "https://ailleurs.example/notes/1",
            "Merci @chloe",
            "<p>Merci @chloe</p>",
        )
    # Then Amina (her post answered) and Béa (following) are notified, Chloé is not
    assert await received(pool, amina) == [("reply_to_me", post_id)]
    assert await received(pool, bea) == [("reply_followed", post_id)]
    assert await received(pool, chloe) == []
    # And federation may name local members a Mention tag resolved
    assert await notifications.notify_reply(pool, post_id, ["chloe"]) == 1
    assert await received(pool, chloe) == [("mention", post_id)]
    actor = await pool.fetchval("SELECT actor_remote_id FROM notifications WHERE user_id = $1", amina.id)
    assert actor == remote


class Recording:
    """The app's pool, recording the statements run through it (sessions are looked up
    and touched through the pool itself)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.queries: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._pool, name)

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        self.queries.append(query)
        return await self._pool.fetchrow(query, *args)

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        self.queries.append(query)
        rows: list[asyncpg.Record] = await self._pool.fetch(query, *args)
        return rows

    async def fetchval(self, query: str, *args: object) -> object:
        self.queries.append(query)
        return await self._pool.fetchval(query, *args)

    async def execute(self, query: str, *args: object) -> str:
        self.queries.append(query)
        status: str = await self._pool.execute(query, *args)
        return status


async def test_the_header_count_rides_with_the_cached_session(
    app: Starlette, pool: asyncpg.Pool, client: httpx.AsyncClient, database_url: str
) -> None:
    # Given the session cache of a web process, and Amina logged in
    cache = sessions.SessionCache()
    await cache.start(database_url)
    app.state.session_cache = cache
    try:
        await make_community(pool, "medical")
        amina, bea = await member(pool, "amina"), await member(pool, "bea")
        created = await start(pool, amina)
        recorder = Recording(pool)
        app.state.pool = recorder
        await login(client, "amina")
        # Then the count is read with the session, in its one query …
        await client.get("/communautes")
        assert sum("unread_notifications" in q for q in recorder.queries) == 1
        # … and a page view served from the cached session reads neither
        recorder.queries.clear()
        await client.get("/communautes")
        assert recorder.queries and not any("notifications" in q for q in recorder.queries)
        # And a reply elsewhere (another process: NOTIFY) shows in her next pages without waiting for expiry
        await reply(pool, created.thread_id, bea)

        async def shows_one() -> bool:
            return 'id="unread-notifications">1<' in (await client.get("/communautes")).text

        assert await eventually(shows_one, "the count shows the new notification", within=3)
    finally:
        await cache.stop()
