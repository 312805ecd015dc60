"""Notification e-mails (node.notification_mail) through the mail worker to a real SMTP
server on loopback: immediate and digest, never a post's text, unsubscribe without login."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import asyncpg
import httpx

from federation import mailer
from node import notification_mail, notifications, threads
from node.communities import find
from node.sessions import User
from node.settings import Settings, parse_smtp_url
from tests.helpers import csrf_from, make_community, make_user
from tests.smtpserver import Recorder, smtp_server

SECRET_TEXT = "Patiente de 23 ans vue aux urgences"
SECRET_TITLE = "Cas difficile à Kaolack"


async def member(pool: asyncpg.Pool, username: str, mode: str | None = None) -> User:
    user_id = await make_user(
        pool, username, email=f"{username}@example.org", display_name=username.capitalize()
    )
    if mode is not None:
        await notifications.set_email_mode(pool, user_id, mode)
    return User(user_id, username, username.capitalize(), "member", "approved")


async def thread(
    pool: asyncpg.Pool, author: User, community: str = "medical", title: str = SECRET_TITLE
) -> int:
    async with pool.acquire() as conn:
        c = await find(conn, community)
        assert c is not None
        return (await threads.create_thread(conn, c, author, title, SECRET_TEXT)).thread_id


async def reply(pool: asyncpg.Pool, thread_id: int, author: User, body: str = SECRET_TEXT) -> int:
    async with pool.acquire() as conn:
        return await threads.create_reply(conn, thread_id, author, body)


def sending(settings: Settings, server: Recorder) -> Settings:
    return replace(settings, smtp=parse_smtp_url(f"smtp://127.0.0.1:{server.port}?timeout=5"))


async def age(pool: asyncpg.Pool, interval: str) -> None:
    """Everything happened ``interval`` ago (accounts, notifications)."""
    await pool.execute(f"UPDATE notifications SET created_at = created_at - interval '{interval}'")
    await pool.execute(f"UPDATE users SET created_at = created_at - interval '{interval}'")


async def test_an_immediate_email_says_who_and_where_never_what(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    await make_community(pool, "medical")  # members-only
    amina, bea = await member(pool, "amina", "immediate"), await member(pool, "bea")
    thread_id = await thread(pool, amina)
    post_id = await reply(pool, thread_id, bea)
    async with smtp_server() as server:
        # Not before the delay that lets her read it in the app first
        await mailer.process_due(pool, sending(settings, server))
        assert server.received == []
        await age(pool, "3 minutes")
        await mailer.process_due(pool, sending(settings, server))
        [got] = server.received
    assert got.rcpt_tos == ["amina@example.org"]
    text = got.message.get_content()
    assert "Bea a répondu à votre message" in text
    assert f"http://testserver/p/{post_id}" in text
    # Never the post's text, nor a members-only thread's title
    for secret in (SECRET_TEXT, SECRET_TITLE):
        assert secret not in text and secret not in str(got.message["Subject"])
    assert "Medical" in text  # where: the community
    assert got.message["List-Unsubscribe"].strip().startswith("<http://testserver/desabonnement?u=")
    # Sent once
    async with smtp_server() as server:
        await mailer.process_due(pool, sending(settings, server))
        assert server.received == []


async def test_a_public_threads_title_may_be_named(settings: Settings, pool: asyncpg.Pool) -> None:
    await make_community(pool, "ouvert", visibility="public")
    amina, bea = await member(pool, "amina", "immediate"), await member(pool, "bea")
    thread_id = await thread(pool, amina, "ouvert", "Ressources publiques")
    await reply(pool, thread_id, bea)
    await age(pool, "3 minutes")
    async with smtp_server() as server:
        await mailer.process_due(pool, sending(settings, server))
        [got] = server.received
    assert "« Ressources publiques »" in got.message.get_content()
    assert SECRET_TEXT not in got.message.get_content()


async def test_read_notifications_are_not_emailed(settings: Settings, pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina, bea = await member(pool, "amina", "immediate"), await member(pool, "bea")
    await reply(pool, await thread(pool, amina), bea)
    await notifications.mark_all_read(pool, amina.id)
    await age(pool, "3 minutes")
    async with smtp_server() as server:
        await mailer.process_due(pool, sending(settings, server))
        assert server.received == []


async def test_a_daily_digest_groups_a_days_notifications(settings: Settings, pool: asyncpg.Pool) -> None:
    # Given Amina (daily digest, the default) with three notifications from two threads
    await make_community(pool, "medical")
    amina, bea, chloe = (
        await member(pool, "amina"),
        await member(pool, "bea"),
        await member(pool, "chloe", "off"),
    )
    first, second = await thread(pool, amina), await thread(pool, amina, title="Autre cas")
    await reply(pool, first, bea)
    await reply(pool, first, chloe)
    await reply(pool, second, bea)
    async with smtp_server() as server:
        # Not before a day since her last digest (here: her account's creation)
        await mailer.process_due(pool, sending(settings, server))
        assert server.received == []
        await age(pool, "25 hours")
        await mailer.process_due(pool, sending(settings, server))
        # Then one e-mail lists Amina's three; Béa (who follows the first thread since she
        # replied) gets hers about Chloé's reply; Chloé, who chose « off », none
        by_rcpt = {r.rcpt_tos[0]: r for r in server.received}
        assert sorted(by_rcpt) == ["amina@example.org", "bea@example.org"]
        assert by_rcpt["bea@example.org"].message.get_content().count("Chloe a répondu") == 1
        server.received.remove(by_rcpt["bea@example.org"])
        text = server.received[0].message.get_content()
        assert text.count("a répondu à votre message") == 3
        assert "résumé du jour" in text and SECRET_TEXT not in text
        assert "3 notification" in str(server.received[0].message["Subject"])
        # And the next digest waits another day, even with something new
        await reply(pool, second, chloe)
        await pool.execute("UPDATE notifications SET created_at = created_at - interval '1 hour'")
        await mailer.process_due(pool, sending(settings, server))
        assert len(server.received) == 1
        await pool.execute(
            "UPDATE notification_settings SET last_digest_at = now() - interval '25 hours' WHERE user_id = $1",
            amina.id,
        )
        await mailer.process_due(pool, sending(settings, server))
        assert [r.rcpt_tos for r in server.received] == [["amina@example.org"]] * 2
        assert server.received[1].message.get_content().count("a répondu à votre message") == 1


async def test_weekly_digest_waits_a_week(settings: Settings, pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina, bea = await member(pool, "amina", "weekly"), await member(pool, "bea")
    await reply(pool, await thread(pool, amina), bea)
    async with smtp_server() as server:
        await age(pool, "2 days")
        await mailer.process_due(pool, sending(settings, server))
        assert server.received == []
        await age(pool, "6 days")
        await mailer.process_due(pool, sending(settings, server))
        assert "résumé de la semaine" in server.received[0].message.get_content()


async def test_registration_decisions_are_emailed_at_once(settings: Settings, pool: asyncpg.Pool) -> None:
    applicant = await make_user(pool, "nouvelle", status="refused", email="nouvelle@example.org")
    await notifications.notify_member(
        pool, applicant, "registration_refused", reason="Profession non vérifiable"
    )
    await age(pool, "3 minutes")
    async with smtp_server() as server:
        await mailer.process_due(pool, sending(settings, server))
        [got] = server.received
    assert "Profession non vérifiable" in got.message.get_content()


async def test_unsubscribe_works_without_login_and_only_with_the_right_token(
    settings: Settings, pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    amina = await member(pool, "amina", "immediate")
    bea = await member(pool, "bea", "immediate")
    url = notification_mail.unsubscribe_url(settings, amina.id).removeprefix("http://testserver")
    # A wrong token, or Amina's token for Béa, is a missing page and changes nothing
    forged = url.replace(f"u={amina.id}", f"u={bea.id}")
    assert (await client.get(forged)).status_code == 404
    assert (await client.post(forged)).status_code == 404
    assert (await client.get(url + "x")).status_code == 404
    # The link shows a confirmation (anonymous), and its button unsubscribes
    page = await client.get(url)
    assert page.status_code == 200 and "Me désabonner" in page.text
    done = await client.post(
        "/desabonnement",
        data={"u": str(amina.id), "t": url.split("t=")[1], "csrf_token": csrf_from(page.text)},
    )
    assert done.status_code == 200 and "C'est fait" in done.text
    assert (await notifications.preferences(pool, amina.id)).email_mode == "off"
    assert (await notifications.preferences(pool, bea.id)).email_mode == "immediate"
    # RFC 8058 one-click: a POST to the link itself, from the mail client
    await notifications.set_email_mode(pool, amina.id, "daily")
    one_click = await client.post(url, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert (await notifications.preferences(pool, amina.id)).email_mode == "off"


async def test_no_smtp_means_no_composing(settings: Settings, pool: asyncpg.Pool) -> None:
    await make_community(pool, "medical")
    amina, bea = await member(pool, "amina", "immediate"), await member(pool, "bea")
    await reply(pool, await thread(pool, amina), bea)
    await age(pool, "3 minutes")
    await mailer.process_due(pool, settings)
    assert await pool.fetchval("SELECT count(*) FROM mail_queue") == 0
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE emailed_at IS NOT NULL") == 0
    assert timedelta(minutes=2) == notification_mail.IMMEDIATE_DELAY
