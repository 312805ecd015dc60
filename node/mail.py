"""Outgoing e-mail: the queue (table ``mail_queue``, migration 0090) and its state machine.

A service that wants a member to get an e-mail calls :func:`enqueue_mail` **inside its
own transaction**: the message is sent if and only if the change commits, and never
while a web request waits. The mail worker (``federation.mailer``, run by
``vbg-node worker`` and ``serve``) sends it through ``VBG_SMTP_URL``. Each row is a small
state machine — the only place where its states and delays are written down::

    pending ──claim (SKIP LOCKED; attempts + 1; next_attempt_at = now + LEASE)──> sending
      ▲   sending ─ the server accepted it (250) ────────────────────────────────> sent
      │           ─ permanent refusal (5xx: bad address, message refused) ────────> failed
      │           ─ VBG_SMTP_URL unset when the worker looks ────────────────────> dropped
      └────────── ─ connection error, time-out, 4xx: retry after
                    RETRY_DELAYS[attempts - 1]; no delay left ───────────────────> failed
    (a worker that dies while sending leaves the row pending: due again when its lease
    ends, so a message may be sent twice, never lost — at least once)

``sending`` is not stored: it is ``pending`` with ``next_attempt_at`` one lease ahead.
Finished rows (``sent``, ``failed``, ``dropped``) keep their address and subject for
``KEEP_FINISHED`` (what an admin needs to answer « did my e-mail leave? »), then the
worker deletes them. Deleting a member deletes her queued messages (foreign key).

What goes into a message is the caller's business, with one rule for every caller:
**never the text of a members-only post or of a private message** (docs/architecture.md §5) — say who
and where, and link to the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from node.db import Conn
from node.queues import QueueSpec
from node.settings import Settings

MAIL = QueueSpec(
    name="mail",
    table="mail_queue",
    channel="vbg_mail",
    lease=timedelta(minutes=5),  # longer than one SMTP session of a batch (SmtpConfig.timeout per step)
    retry_delays=(
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=6),
        timedelta(hours=12),
    ),  # 7 attempts over about a day: a password-reset link is stale long before that
    poll_interval=30.0,
    batch=20,  # messages sent on one SMTP connection
)
CHANNEL, LEASE, RETRY_DELAYS = MAIL.channel, MAIL.lease, MAIL.retry_delays
BATCH, POLL_INTERVAL = MAIL.batch, MAIL.poll_interval
KEEP_FINISHED = timedelta(days=7)
ERROR_MAX = 500

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_HEADER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,60}$")
# Headers the queue writes itself; a caller may not set them.
RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "sender", "reply-to"}
)


class MailError(ValueError):
    """A message that cannot be queued (bad address, subject or header): a caller's bug."""


@dataclass(frozen=True)
class QueuedMail:
    """A claimed row, as the worker sends it."""

    id: int
    kind: str
    recipient: str
    subject: str
    body: str
    attempts: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """Why an attempt did not end in ``sent``: ``permanent`` failures are not retried."""

    reason: str
    permanent: bool = False


@dataclass(frozen=True)
class Step:
    """What an attempt leads to: a final status, or ``pending`` again after ``delay``."""

    status: str
    error: str = ""
    delay: timedelta | None = None


def after_failure(failure: Failure, attempts: int) -> Step:
    """The next step after a failed attempt (attempt number ``attempts``)."""
    if not failure.permanent and attempts <= len(RETRY_DELAYS):
        return Step("pending", failure.reason, RETRY_DELAYS[attempts - 1])
    return Step("failed", failure.reason)


# ---------------------------------------------------------------- enqueueing

INSERT = """
INSERT INTO mail_queue (user_id, kind, recipient, subject, body, headers)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
"""


def check_address(address: str) -> str:
    """``address`` if it is one plain addr-spec (``name@domain``), else :class:`MailError`."""
    if not address or any(c in address for c in '\r\n<>,;"') or address.count("@") != 1:
        raise MailError("not a plain e-mail address")
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError) as exc:
        raise MailError("not a plain e-mail address") from exc
    if not parsed.username or not parsed.domain or len(address) > 320:
        raise MailError("not a plain e-mail address")
    return address


def _check_line(value: str, what: str, limit: int) -> str:
    if "\r" in value or "\n" in value:
        raise MailError(f"{what} must be one line")
    if not value.strip() or len(value) > limit:
        raise MailError(f"{what} must have 1 to {limit} characters")
    return value


def _check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not _HEADER_NAME.match(name) or name.lower() in RESERVED_HEADERS:
            raise MailError(f"header {name!r} may not be set")
        checked[name] = _check_line(value, f"header {name}", 2000)
    return checked


async def enqueue_mail(
    conn: Conn,
    *,
    to: str,
    subject: str,
    body: str,
    kind: str,
    user_id: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> int:
    """Queue one plain-text message to ``to``; returns its id.

    Call it inside the transaction of the change it announces (it commits or rolls back
    with it). ``kind`` names what it is (``password_reset``, ``notification`` …; logs
    and counts show it, never the subject or body). ``user_id``: the member it is for,
    so that deleting her drops it. ``headers``: extra headers such as
    ``List-Unsubscribe`` (not From/To/Subject/Date/Message-ID, which the queue sets).
    The body is sent as written: **never put the text of a members-only post or of a
    private message in it**. Raises :class:`MailError` for a malformed address,
    subject, kind or header (nothing is queued). Queued even when ``VBG_SMTP_URL`` is
    unset (the worker then drops it): use :func:`enabled` to decide whether to offer
    an e-mail at all.
    """
    if not _KIND.match(kind):
        raise MailError("kind must be a short lower-case identifier")
    checked = _check_headers(headers or {})
    if len(body) > 100_000:
        raise MailError("body too long")
    row_id: int = await conn.fetchval(
        INSERT, user_id, kind, check_address(to), _check_line(subject, "subject", 300), body, checked
    )
    return row_id


def enabled(settings: Settings) -> bool:
    """Does this node send e-mail (``VBG_SMTP_URL`` set)?"""
    return settings.smtp is not None


# ---------------------------------------------------------------- the worker's queries

CLAIM = """
WITH due AS (
    SELECT id FROM mail_queue
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE mail_queue m SET attempts = m.attempts + 1, next_attempt_at = now() + $2::interval
FROM due WHERE m.id = due.id
RETURNING m.id, m.kind, m.recipient, m.subject, m.body, m.headers, m.attempts
"""
# A final status for the claim ``attempts`` = $2 (a later claim, after the lease, wins).
FINISH = """
UPDATE mail_queue SET status = $3, error = $4, finished_at = now()
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
RETRY = """
UPDATE mail_queue SET next_attempt_at = now() + $3::interval, error = $4
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
DROP_DUE = """
UPDATE mail_queue SET status = 'dropped', error = 'VBG_SMTP_URL is not set', finished_at = now()
WHERE status = 'pending' AND next_attempt_at <= now()
"""
PURGE = "DELETE FROM mail_queue WHERE status <> 'pending' AND finished_at < now() - $1::interval"


async def claim_due(pool: Conn, limit: int = BATCH) -> list[QueuedMail]:
    """Claim up to ``limit`` due messages for one lease."""
    rows = await pool.fetch(CLAIM, limit, LEASE)
    return [
        QueuedMail(r["id"], r["kind"], r["recipient"], r["subject"], r["body"], r["attempts"], r["headers"])
        for r in rows
    ]


async def record(pool: Conn, mail: QueuedMail, step: Step) -> None:
    """Store what the attempt on ``mail`` led to (ignored if a later claim owns the row)."""
    error = step.error[:ERROR_MAX]
    if step.delay is not None:
        await pool.execute(RETRY, mail.id, mail.attempts, step.delay, error)
    else:
        await pool.execute(FINISH, mail.id, mail.attempts, step.status, error)


async def drop_due(pool: Conn) -> int:
    """No SMTP server configured: every due message becomes ``dropped``; returns how many."""
    status: str = await pool.execute(DROP_DUE)
    return int(status.split()[-1])


async def purge_finished(pool: Conn, older_than: timedelta = KEEP_FINISHED) -> int:
    status: str = await pool.execute(PURGE, older_than)
    return int(status.split()[-1])


def to_message(mail: QueuedMail, settings: Settings) -> EmailMessage:
    """The RFC 5322 message for a queued row (plain text, UTF-8)."""
    message = EmailMessage()
    message["From"] = Address(settings.node_name, addr_spec=settings.mail_from)
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(datetime.now(UTC), usegmt=True)
    message["Message-ID"] = make_msgid(f"mail{mail.id}", domain=settings.mail_from.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    for name, value in mail.headers.items():
        message[name] = value
    message.set_content(mail.body, charset="utf-8")
    return message
