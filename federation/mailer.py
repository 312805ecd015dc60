"""The mail worker: queued e-mails (``node.mail``) sent through ``VBG_SMTP_URL``.

The states and delays of a queued message are drawn in ``node.mail``; this module is
the only one that talks SMTP (``node`` makes no network call). It sleeps until
``NOTIFY vbg_mail`` (a message queued) or ``POLL_INTERVAL`` (retries that fell due),
claims up to ``BATCH`` due messages and sends them one after the other on one SMTP
connection::

    claim batch ── connect (TLS / STARTTLS as configured), log in ── fails ──> every
         │                                                         message: retry
         └─ for each message: MAIL FROM, RCPT TO, DATA
              250 ────────────────────────────> sent
              5xx (refused address or message) > failed (permanent)
              4xx ────────────────────────────> retry
              connection lost, time-out ──────> retry, and so does the rest of the batch

Without ``VBG_SMTP_URL`` the worker marks due messages ``dropped``: nothing piles up,
and nothing queued before an administrator configures SMTP is sent late. Logs name a
message by id and kind only: never an address, a subject or a body.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiosmtplib
import asyncpg

from node import housekeeping, mail, notification_mail
from node.mail import Failure, QueuedMail, Step
from node.settings import Settings, SmtpConfig

log = logging.getLogger(__name__)


def failure_of(exc: Exception) -> Failure:
    """An SMTP client error as a :class:`node.mail.Failure` (5xx: permanent)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return Failure(f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600)
    return Failure(f"{type(exc).__name__}: {exc}")


def client(config: SmtpConfig) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        username=config.username,
        password=config.password.reveal() if config.password else None,
        timeout=config.timeout,
        use_tls=config.tls == "implicit",
        start_tls=config.tls == "starttls",  # required when asked, never opportunistic
    )


async def send_batch(settings: Settings, mails: Sequence[QueuedMail]) -> list[Step]:
    """Send ``mails`` on one connection; one :class:`Step` per message, in order."""
    assert settings.smtp is not None
    smtp = client(settings.smtp)
    try:
        await smtp.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        failure = failure_of(exc)
        failure = Failure(failure.reason)  # a refused log-in or greeting is the server's, not the message's
        return [mail.after_failure(failure, m.attempts) for m in mails]
    steps: list[Step] = []
    try:
        for m in mails:
            if not smtp.is_connected:
                steps.append(mail.after_failure(Failure("connection lost"), m.attempts))
                continue
            steps.append(await _send_one(smtp, settings, m))
    finally:
        if smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()
    return steps


async def _send_one(smtp: aiosmtplib.SMTP, settings: Settings, m: QueuedMail) -> Step:
    try:
        await smtp.send_message(mail.to_message(m, settings))
    except (aiosmtplib.SMTPException, OSError) as exc:
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPTimeoutError | OSError):
            smtp.close()
        return mail.after_failure(failure_of(exc), m.attempts)
    return Step("sent")


async def process_due(pool: asyncpg.Pool, settings: Settings, limit: int = mail.BATCH) -> int:
    """Purge old finished rows (and, every few minutes, the node's other dead rows:
    ``node.housekeeping``), queue the notification e-mails that fell due
    (``node.notification_mail``), then send (or, without SMTP, drop) what is due;
    returns how many messages were handled."""
    await mail.purge_finished(pool)
    await housekeeping.tidy(pool)
    if settings.smtp is None:
        dropped = await mail.drop_due(pool)
        if dropped:
            log.info("mail: %d queued message(s) dropped: VBG_SMTP_URL is not set", dropped)
        return dropped
    await notification_mail.compose_due(pool, settings)
    claimed = await mail.claim_due(pool, limit)
    if not claimed:
        return 0
    steps = await send_batch(settings, claimed)
    for m, step in zip(claimed, steps, strict=True):
        await mail.record(pool, m, step)
        log.info("mail %d (%s), attempt %d: %s", m.id, m.kind, m.attempts, step.status)
    return len(claimed)
