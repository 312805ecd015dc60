"""The outgoing e-mail queue (node.mail) and its worker (federation.mailer), against a
real SMTP server on loopback."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TypedDict

import asyncpg
import pytest

from federation import mailer
from federation.worker import MailWorker
from node import mail
from node.mail import Failure, MailError, Step
from node.settings import Settings, SettingsError, SmtpConfig, load, parse_smtp_url
from tests.helpers import make_user
from tests.smtpserver import Recorder, smtp_server

# ---------------------------------------------------------------- settings


def test_smtp_url_forms() -> None:
    assert parse_smtp_url("smtp://mail.example.org") == SmtpConfig("mail.example.org", 25, "none")
    starttls = parse_smtp_url("smtp://n%40d:p%3Ass@mail.example.org:587?starttls=1&timeout=10")
    assert (starttls.port, starttls.tls, starttls.username, starttls.timeout) == (587, "starttls", "n@d", 10)
    assert starttls.password is not None and starttls.password.reveal() == "p:ss"
    assert "p:ss" not in repr(starttls)
    implicit = parse_smtp_url("smtps://u:p@mail.example.org")
    assert (implicit.port, implicit.tls) == (465, "implicit")


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.org",
        "smtp://",
        "smtp://mail.example.org/path",
        "smtp://mail.example.org?tls=1",
        "smtps://mail.example.org?starttls=1",
        "smtp://mail.example.org?starttls=peut-etre",
        "smtp://mail.example.org:port",
        "smtp://mail.example.org?timeout=0",
    ],
)
def test_a_bad_smtp_url_fails_loudly(tmp_path: Path, url: str) -> None:
    with pytest.raises(SettingsError, match="VBG_SMTP_URL"):
        load({"VBG_DATA_DIR": str(tmp_path), "VBG_SMTP_URL": url})


def test_mail_from_defaults_to_the_node_host(tmp_path: Path) -> None:
    settings = load({"VBG_DATA_DIR": str(tmp_path), "VBG_BASE_URL": "https://vbg.example.org"})
    assert settings.mail_from == "ne-pas-repondre@vbg.example.org"
    assert settings.smtp is None and not mail.enabled(settings)
    with pytest.raises(SettingsError, match="VBG_MAIL_FROM"):
        load({"VBG_DATA_DIR": str(tmp_path), "VBG_MAIL_FROM": "pas une adresse"})


# ---------------------------------------------------------------- the state machine


def test_transient_failures_are_retried_with_growing_delays_then_fail() -> None:
    transient = Failure("451 try later")
    delays = [mail.after_failure(transient, n).delay for n in range(1, len(mail.RETRY_DELAYS) + 1)]
    assert delays == list(mail.RETRY_DELAYS)
    assert list(mail.RETRY_DELAYS) == sorted(mail.RETRY_DELAYS)
    assert mail.after_failure(transient, len(mail.RETRY_DELAYS) + 1) == Step("failed", "451 try later")


def test_permanent_failures_are_final_at_once() -> None:
    assert mail.after_failure(Failure("550 no such user", permanent=True), 1) == Step(
        "failed", "550 no such user"
    )


# ---------------------------------------------------------------- enqueueing


class MailFields(TypedDict, total=False):
    """The fields of a queued e-mail a test sets (the others keep :func:`_queue`'s defaults)."""

    subject: str
    kind: str
    headers: dict[str, str]


async def _queue(
    pool: asyncpg.Pool,
    to: str = "amina@example.org",
    *,
    subject: str = "Réinitialiser votre mot de passe",
    body: str = "Bonjour,\nvoici le lien.",
    kind: str = "test",
    user_id: int | None = None,
    headers: dict[str, str] | None = None,
) -> int:
    async with pool.acquire() as conn:
        return await mail.enqueue_mail(
            conn, to=to, subject=subject, body=body, kind=kind, user_id=user_id, headers=headers
        )


async def _row(pool: asyncpg.Pool, mail_id: int) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM mail_queue WHERE id = $1", mail_id)
    assert row is not None
    return row


@pytest.mark.parametrize(
    "to",
    [
        "",
        "amina",
        "a@b@c",
        "Amina <amina@example.org>",
        "amina@example.org\r\nBcc: x@y.z",
        "a@example.org, b@x.y",
    ],
)
async def test_a_malformed_address_queues_nothing(pool: asyncpg.Pool, to: str) -> None:
    with pytest.raises(MailError):
        await _queue(pool, to)
    assert await pool.fetchval("SELECT count(*) FROM mail_queue") == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Sujet\r\nBcc: x@example.org"},
        {"subject": " "},
        {"kind": "Pas un kind"},
        {"headers": {"Bcc": "x@example.org"}},
        {"headers": {"List-Unsubscribe": "<https://x>\nBcc: y@z"}},
        {"headers": {"Mauvais nom": "x"}},
    ],
)
async def test_header_injection_and_reserved_headers_are_refused(
    pool: asyncpg.Pool, fields: MailFields
) -> None:
    with pytest.raises(MailError):
        await _queue(pool, **fields)


async def test_a_message_is_queued_only_if_the_callers_transaction_commits(pool: asyncpg.Pool) -> None:
    # Given a service that queues a message then fails in the same transaction
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await mail.enqueue_mail(conn, to="amina@example.org", subject="S", body="B", kind="test")
                raise RuntimeError("the change failed")
    # Then nothing is queued
    assert await pool.fetchval("SELECT count(*) FROM mail_queue") == 0


async def test_deleting_the_member_drops_her_queued_mail(pool: asyncpg.Pool) -> None:
    user_id = await make_user(pool, "amina", email="amina@example.org")
    await _queue(pool, user_id=user_id)
    await pool.execute("DELETE FROM users WHERE id = $1", user_id)
    assert await pool.fetchval("SELECT count(*) FROM mail_queue") == 0


# ---------------------------------------------------------------- sending


def _smtp(settings: Settings, server: Recorder, url: str | None = None) -> Settings:
    return replace(settings, smtp=parse_smtp_url(url or f"smtp://127.0.0.1:{server.port}?timeout=5"))


async def test_a_queued_message_reaches_the_smtp_server(settings: Settings, pool: asyncpg.Pool) -> None:
    async with smtp_server() as server:
        # Given a message queued with an unsubscribe header
        mail_id = await _queue(
            pool,
            headers={
                "List-Unsubscribe": "<https://vbg.example.org/u/x>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        # When the worker runs once
        handled = await mailer.process_due(pool, _smtp(settings, server))
        # Then the server got it, as written, from the node's address
        assert handled == 1
        [got] = server.received
        assert got.rcpt_tos == ["amina@example.org"]
        assert got.mail_from == settings.mail_from
        message = got.message
        assert message["Subject"] == "Réinitialiser votre mot de passe"
        assert message["From"].addresses[0].display_name == settings.node_name
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["List-Unsubscribe"] == "<https://vbg.example.org/u/x>"
        assert message["Message-ID"] and message["Date"]
        assert message.get_content() == "Bonjour,\nvoici le lien.\n"
        row = await _row(pool, mail_id)
        assert (row["status"], row["attempts"], row["error"]) == ("sent", 1, "")
        assert row["finished_at"] is not None
        # And running again sends nothing twice
        assert await mailer.process_due(pool, _smtp(settings, server)) == 0
        assert len(server.received) == 1


async def test_one_connection_sends_a_batch_and_a_refused_address_fails_alone(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with smtp_server() as server:
        # Given three messages: one to an address the server refuses for good, one it defers
        server.refuse = {
            "nobody@example.org": "550 5.1.1 No such user",
            "later@example.org": "451 4.3.0 Try later",
        }
        ok = await _queue(pool, "amina@example.org")
        refused = await _queue(pool, "nobody@example.org")
        deferred = await _queue(pool, "later@example.org")
        # When the worker runs
        assert await mailer.process_due(pool, _smtp(settings, server)) == 3
        # Then the good one is sent, the refused one failed, the deferred one waits for a retry
        assert [r.rcpt_tos for r in server.received] == [["amina@example.org"]]
        assert (await _row(pool, ok))["status"] == "sent"
        failed = await _row(pool, refused)
        assert (failed["status"], failed["error"]) == ("failed", "550 5.1.1 No such user")
        waiting = await _row(pool, deferred)
        assert (waiting["status"], waiting["attempts"]) == ("pending", 1)
        assert waiting["error"].startswith("451")
        delay = await pool.fetchval("SELECT next_attempt_at - now() FROM mail_queue WHERE id = $1", deferred)
        assert timedelta(seconds=50) < delay <= mail.RETRY_DELAYS[0]


async def test_an_unreachable_server_means_a_retry_later(settings: Settings, pool: asyncpg.Pool) -> None:
    async with smtp_server() as server:
        port = server.port
    # Given a queued message and no server listening any more
    mail_id = await _queue(pool)
    down = replace(settings, smtp=parse_smtp_url(f"smtp://127.0.0.1:{port}?timeout=2"))
    # When the worker runs
    assert await mailer.process_due(pool, down) == 1
    # Then the message waits for its next attempt (not due yet: nothing more is claimed)
    row = await _row(pool, mail_id)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["error"]
    assert await mailer.process_due(pool, down) == 0
    # And once due again, with a server back up, it leaves
    async with smtp_server() as server:
        await pool.execute("UPDATE mail_queue SET next_attempt_at = now() WHERE id = $1", mail_id)
        assert await mailer.process_due(pool, _smtp(settings, server)) == 1
        assert len(server.received) == 1
    assert (await _row(pool, mail_id))["attempts"] == 2


async def test_the_worker_logs_in_when_the_url_has_credentials(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with smtp_server(credentials=("noeud", "s3cret:!")) as server:
        mail_id = await _queue(pool)
        wrong = f"smtp://noeud:faux@127.0.0.1:{server.port}?timeout=1"
        # A wrong password is the server's refusal, not the message's: retried later
        await mailer.process_due(pool, _smtp(settings, server, wrong))
        assert (await _row(pool, mail_id))["status"] == "pending"
        assert server.received == []
        await pool.execute("UPDATE mail_queue SET next_attempt_at = now()")
        right = f"smtp://noeud:s3cret%3A%21@127.0.0.1:{server.port}?timeout=5"
        await mailer.process_due(pool, _smtp(settings, server, right))
        assert (await _row(pool, mail_id))["status"] == "sent"
        assert len(server.received) == 1


async def test_without_smtp_queued_mail_is_dropped_not_kept(settings: Settings, pool: asyncpg.Pool) -> None:
    assert settings.smtp is None
    mail_id = await _queue(pool)
    assert await mailer.process_due(pool, settings) == 1
    row = await _row(pool, mail_id)
    assert (row["status"], row["attempts"]) == ("dropped", 0)


async def test_finished_messages_are_purged_after_a_week(settings: Settings, pool: asyncpg.Pool) -> None:
    old = await _queue(pool)
    recent = await _queue(pool)
    await mailer.process_due(pool, settings)  # both dropped
    await pool.execute("UPDATE mail_queue SET finished_at = now() - interval '8 days' WHERE id = $1", old)
    await mailer.process_due(pool, settings)
    assert [r["id"] for r in await pool.fetch("SELECT id FROM mail_queue")] == [recent]


async def test_a_claimed_message_is_not_claimed_twice(pool: asyncpg.Pool) -> None:
    await _queue(pool)
    first = await mail.claim_due(pool)
    second = await mail.claim_due(pool)
    assert [m.attempts for m in first] == [1]
    assert second == []


async def test_the_running_worker_is_woken_by_a_queued_message(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with smtp_server() as server:
        # Given the mail worker running and idle
        worker = MailWorker(_smtp(settings, server), pool)
        await worker.start()
        try:
            assert worker.running
            # When a message is queued (NOTIFY vbg_mail, long before the poll interval)
            await _queue(pool)
            # Then it is sent at once
            await server.wait_for(lambda s: len(s.received) == 1, within=mail.POLL_INTERVAL / 3)
        finally:
            await worker.stop()
        assert not worker.running
