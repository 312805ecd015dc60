"""E-mails about notifications: immediate messages and daily or weekly digests.

Run by the mail worker before it sends (``federation.mailer.process_due``), only when
the node sends e-mail. Each member chooses (``notification_settings.email_mode``,
default ``daily``)::

    immediate  one e-mail for what arrived since the last one, IMMEDIATE_DELAY after
               it arrived (time to read it in the app first: what is read is not sent)
    daily      a digest when the last one (or the account's creation) is a day old
    weekly     the same, a week
    off        nothing (the unsubscribe link sets this, without login)

Registration decisions go at once to anyone but ``off``: the applicant is not in the
app yet. A notification read in the app before its e-mail left is never e-mailed.

What an e-mail says: who, what kind, where (the community; a thread's title only in
public communities) and a link. **Never the text of a post** (design §5); a
moderator's reason is the moderator's own words, meant for the member. Every e-mail
carries a ``List-Unsubscribe`` link signed for its member (:func:`unsubscribe_token`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import urlencode

import asyncpg

from node import mail
from node.i18n import _
from node.notifications import target_of
from node.settings import Settings

IMMEDIATE_DELAY = timedelta(minutes=2)
PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
DIGEST_MAX_ITEMS = 50
BATCH_MEMBERS = 50

# --- unsubscribe tokens --------------------------------------------------------------


def unsubscribe_token(settings: Settings, user_id: int) -> str:
    """A token that proves the link was sent to ``user_id`` (HMAC with the node's secret)."""
    key = hashlib.sha256(b"vbg-unsubscribe:" + settings.secret_key.reveal().encode()).digest()
    mac = hmac.new(key, str(user_id).encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def unsubscribe_valid(settings: Settings, user_id: int, token: str) -> bool:
    return hmac.compare_digest(unsubscribe_token(settings, user_id).encode(), token.encode())


def unsubscribe_url(settings: Settings, user_id: int) -> str:
    query = urlencode({"u": user_id, "t": unsubscribe_token(settings, user_id)})
    return settings.url(f"/desabonnement?{query}")


# --- what is due -----------------------------------------------------------------------

ITEM_COLUMNS = """
n.id, n.user_id, n.kind, n.post_id, n.thread_id, n.reason, n.created_at,
coalesce(nullif(au.display_name, ''), au.username, ar.display_name, ar.username, '') AS actor_name,
CASE WHEN c.visibility = 'public' THEN t.title END AS public_title, c.title AS community_title,
su.display_name AS subject_name, r.state AS report_state
"""
ITEM_JOINS = """
JOIN users u ON u.id = n.user_id
LEFT JOIN notification_settings s ON s.user_id = n.user_id
LEFT JOIN users au ON au.id = n.actor_user_id
LEFT JOIN actors ar ON ar.id = n.actor_remote_id
LEFT JOIN threads t ON t.id = n.thread_id
LEFT JOIN communities c ON c.id = t.community_id
LEFT JOIN users su ON su.id = n.subject_user_id
LEFT JOIN reports r ON r.id = n.report_id
"""
# Members with something to send now; locks their pending rows (two workers never
# send the same thing twice).
DUE_IMMEDIATE = f"""
SELECT {ITEM_COLUMNS}, u.email
FROM notifications n {ITEM_JOINS}
WHERE n.emailed_at IS NULL AND n.read_at IS NULL AND n.created_at <= now() - $1::interval
  AND coalesce(s.email_mode, 'daily') <> 'off'
  AND (coalesce(s.email_mode, 'daily') = 'immediate' OR n.kind LIKE 'registration_%')
  AND (u.status = 'approved' OR n.kind LIKE 'registration_%')
  AND (t.deleted_at IS NULL OR n.kind = 'moderation') AND ar.hidden IS NOT TRUE
ORDER BY n.user_id, n.id
LIMIT $2
FOR UPDATE OF n SKIP LOCKED
"""
DUE_DIGEST = f"""
SELECT {ITEM_COLUMNS}, u.email, coalesce(s.email_mode, 'daily') AS email_mode
FROM notifications n {ITEM_JOINS}
WHERE n.emailed_at IS NULL AND n.read_at IS NULL
  AND coalesce(s.email_mode, 'daily') IN ('daily', 'weekly')
  AND u.status = 'approved'
  AND coalesce(s.last_digest_at, u.created_at) <= now() - CASE coalesce(s.email_mode, 'daily')
        WHEN 'weekly' THEN $1::interval ELSE $2::interval END
  AND (t.deleted_at IS NULL OR n.kind = 'moderation') AND ar.hidden IS NOT TRUE
ORDER BY n.user_id, n.id DESC
LIMIT $3
FOR UPDATE OF n SKIP LOCKED
"""
MARK_EMAILED = "UPDATE notifications SET emailed_at = now() WHERE id = ANY($1::bigint[])"
DIGEST_SENT = """
INSERT INTO notification_settings (user_id, last_digest_at) VALUES ($1, now())
ON CONFLICT (user_id) DO UPDATE SET last_digest_at = now()
"""


def describe(item: asyncpg.Record) -> str:
    """One line saying who, what and where — never what a post says."""
    actor = item["actor_name"] or _("Quelqu'un")
    where = (
        _("dans « %(title)s »") % {"title": item["public_title"]}
        if item["public_title"]
        else _("dans une discussion de « %(community)s »") % {"community": item["community_title"] or "?"}
    )
    kind = item["kind"]
    lines = {
        "reply_followed": _("%(actor)s a répondu %(where)s"),
        "reply_to_me": _("%(actor)s a répondu à votre message %(where)s"),
        "mention": _("%(actor)s vous a mentionné·e %(where)s"),
        "expert_answer": _("%(actor)s a marqué une réponse d'expert %(where)s"),
        "moderation": _("Un de vos messages %(where)s a été retiré par la modération. Raison : %(reason)s"),
        "report_handled": _("Votre signalement a été examiné par l'équipe de modération."),
        "registration_approved": _("Votre demande d'inscription a été acceptée. Bienvenue !"),
        "registration_refused": _("Votre demande d'inscription n'a pas été acceptée. Raison : %(reason)s"),
        "new_report": _("Un nouveau signalement attend la modération."),
        "new_application": _("Nouvelle demande d'inscription : %(subject)s"),
        # who wrote and what stay out of e-mails: the member reads it once logged in
        "new_message": _("Vous avez reçu un nouveau message privé (connectez-vous pour le lire)."),
    }
    return lines[kind] % {
        "actor": actor,
        "where": where,
        "reason": item["reason"] or "—",
        "subject": item["subject_name"] or "?",
    }


def _body(settings: Settings, items: Sequence[asyncpg.Record], intro: str, user_id: int) -> str:
    lines = [_("Bonjour,"), "", intro, ""]
    for item in items[:DIGEST_MAX_ITEMS]:
        lines.append("- " + describe(item))
        lines.append("  " + settings.url(target_of(item["kind"], item["post_id"], item["thread_id"])))
    if len(items) > DIGEST_MAX_ITEMS:
        lines.append(_("… et %(n)d autres.") % {"n": len(items) - DIGEST_MAX_ITEMS})
    lines += [
        "",
        _("Toutes vos notifications : %(url)s") % {"url": settings.url("/notifications")},
        _("Choisir ce que vous recevez : %(url)s") % {"url": settings.url("/notifications/reglages")},
        _("Ne plus recevoir ces e-mails : %(url)s") % {"url": unsubscribe_url(settings, user_id)},
        "",
        "— " + settings.node_name,
    ]
    return "\n".join(lines) + "\n"


def _headers(settings: Settings, user_id: int) -> dict[str, str]:
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(settings, user_id)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _by_member(rows: Sequence[asyncpg.Record]) -> dict[int, list[asyncpg.Record]]:
    members: dict[int, list[asyncpg.Record]] = {}
    for row in rows:
        members.setdefault(row["user_id"], []).append(row)
    return members


async def _queue(
    conn: asyncpg.Connection,
    settings: Settings,
    items: list[asyncpg.Record],
    subject: str,
    intro: str,
    kind: str,
) -> None:
    user_id = items[0]["user_id"]
    # An address the queue refuses (checked before any SQL): the items are marked
    # e-mailed all the same, so they are not tried again at every pass.
    with contextlib.suppress(mail.MailError):
        await mail.enqueue_mail(
            conn,
            to=items[0]["email"],
            subject=subject,
            body=_body(settings, items, intro, user_id),
            kind=kind,
            user_id=user_id,
            headers=_headers(settings, user_id),
        )
    await conn.execute(MARK_EMAILED, [i["id"] for i in items])


def _subject(settings: Settings, items: Sequence[asyncpg.Record]) -> str:
    if len(items) == 1:
        first = describe(items[0]).split(" Raison")[0]
        return f"[{settings.node_name}] {first}"[:300]
    return _("[%(node)s] %(n)d nouvelles notifications") % {"node": settings.node_name, "n": len(items)}


async def compose_due(pool: asyncpg.Pool, settings: Settings, *, delay: timedelta = IMMEDIATE_DELAY) -> int:
    """Queue the notification e-mails that are due; returns how many e-mails."""
    queued = 0
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(DUE_IMMEDIATE, delay, BATCH_MEMBERS * 10)
        for items in _by_member(rows).values():
            await _queue(
                conn, settings, items, _subject(settings, items), _("Du nouveau pour vous :"), "notification"
            )
            queued += 1
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            DUE_DIGEST, PERIODS["weekly"], PERIODS["daily"], BATCH_MEMBERS * DIGEST_MAX_ITEMS
        )
        for user_id, items in _by_member(rows).items():
            weekly = items[0]["email_mode"] == "weekly"
            intro = _("Votre résumé de la semaine :") if weekly else _("Votre résumé du jour :")
            subject = _("[%(node)s] Votre résumé : %(n)d notification(s)") % {
                "node": settings.node_name,
                "n": len(items),
            }
            await _queue(conn, settings, items, subject, intro, "digest")
            await conn.execute(DIGEST_SENT, user_id)
            queued += 1
    return queued
