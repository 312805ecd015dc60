"""Notifications, followed threads and bookmarks (tables of migration 0091).

A service that changes something a member should learn calls one ``notify_*``
function **in its own transaction**; each writes every notification of the event in
one statement (a reply in a thread followed by a thousand members is one INSERT …
SELECT, not a loop), and only for approved members who may read the subject and have
not turned that kind off. The same member gets one notification per event, of the
most specific kind (a reply to her post that also mentions her and is in a thread she
follows is a ``reply_to_me``)::

    event                          kind             who
    reply (local or remote)        reply_to_me      author of the post answered
                                   mention          members named « @nom » in it
                                   reply_followed   followers of the thread
    expert answer marked           expert_answer    the thread's author
    registration reviewed          registration_*   the applicant (mostly by e-mail)
    post removed by a moderator    moderation       its author, with the reason
    report decided                 report_handled   the member who reported
    report filed, application      new_report,      moderators and admins
                                   new_application

``notify_reply(conn, post_id)`` is what federation calls once a remote reply is stored
(the remote author is the actor). Followers: a thread's author and every member who
replies follow it automatically (:func:`auto_follow`), unless they chose « Ne plus
suivre ». The unread count rides with the session (``node.sessions``); triggers tell
the session caches when it changes. E-mails about notifications are composed by
``node.notification_mail`` in the mail worker, never here.
"""

from __future__ import annotations

from dataclasses import dataclass

from node import keyset
from node.db import Conn
from node.errors import BadRequest, NotFound
from node.sessions import User

KINDS = (
    "reply_followed",
    "reply_to_me",
    "mention",
    "expert_answer",
    "moderation",
    "report_handled",
    "registration_approved",
    "registration_refused",
    "new_report",
    "new_application",
    "new_message",
)
# What the settings page offers to turn off (registration kinds always go: the person
# is not in the app yet; moderators' kinds only to moderators).
MEMBER_KINDS = (
    "reply_followed", "reply_to_me", "mention", "expert_answer", "moderation", "report_handled", "new_message",
)  # fmt: skip
MODERATOR_KINDS = ("new_report", "new_application")
EMAIL_MODES = ("off", "immediate", "daily", "weekly")
PAGE_SIZE = 30
UNREAD_CAP = 100  # node.sessions counts unread ones up to this (the header shows « 99+ »)

# The member-side condition every notification statement shares: approved (only
# approved members read members-only and local communities; suspended or refused ones
# lost access) and not muted. ``{user}`` is the users alias, ``{kind}`` the kind expression.
RECIPIENT_OK = """
{user}.status = 'approved'
AND NOT EXISTS (SELECT 1 FROM notification_settings ns
                WHERE ns.user_id = {user}.id AND {kind} = ANY (ns.muted_kinds))
"""

# --- follows ---------------------------------------------------------------------

AUTO_FOLLOW = """
INSERT INTO thread_follows (user_id, thread_id) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""
SET_FOLLOW = """
INSERT INTO thread_follows (user_id, thread_id, following) VALUES ($1, $2, $3)
ON CONFLICT (user_id, thread_id) DO UPDATE SET following = EXCLUDED.following
"""
IS_FOLLOWING = "SELECT following FROM thread_follows WHERE user_id = $1 AND thread_id = $2"


async def auto_follow(conn: Conn, user_id: int, thread_id: int) -> None:
    """The author or a replier follows the thread, unless she chose not to before."""
    await conn.execute(AUTO_FOLLOW, user_id, thread_id)


async def set_following(conn: Conn, user_id: int, thread_id: int, following: bool) -> None:
    """« Suivre ce fil » / « Ne plus suivre » (the caller checked the thread is readable)."""
    await conn.execute(SET_FOLLOW, user_id, thread_id, following)


async def is_following(conn: Conn, user_id: int, thread_id: int) -> bool:
    return bool(await conn.fetchval(IS_FOLLOWING, user_id, thread_id))


# --- bookmarks -------------------------------------------------------------------

ADD_BOOKMARK = "INSERT INTO bookmarks (user_id, post_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
REMOVE_BOOKMARK = "DELETE FROM bookmarks WHERE user_id = $1 AND post_id = $2"
# Newest first by (created_at, post_id) (index bookmarks_user, migration 0161): $1 the
# member, $2 how many, $3 the cursor (a post the member bookmarked; see node.keyset).
_BOOKMARK_KEY = "((SELECT created_at FROM bookmarks WHERE user_id = $1 AND post_id = $3), $3)"
LIST_BOOKMARKS = keyset.forms(
    """
SELECT b.post_id, b.created_at, p.thread_id, p.is_opening, p.deleted_at, t.title,
       c.name AS community_name, c.title AS community_title,
       coalesce(nullif(u.display_name, ''), u.username, a.display_name, a.username, '?') AS author_name
FROM bookmarks b
JOIN posts p ON p.id = b.post_id
JOIN threads t ON t.id = p.thread_id AND t.deleted_at IS NULL
JOIN communities c ON c.id = t.community_id
LEFT JOIN users u ON u.id = p.author_id
LEFT JOIN actors a ON a.id = p.remote_author_id
WHERE b.user_id = $1 AND a.hidden IS NOT TRUE {cursor}
ORDER BY b.created_at {order}, b.post_id {order}
LIMIT $2
""",
    onwards=f"(b.created_at, b.post_id) < {_BOOKMARK_KEY}",
    backwards=f"(b.created_at, b.post_id) > {_BOOKMARK_KEY}",
    order="DESC",
)
BOOKMARKED = "SELECT post_id FROM bookmarks WHERE user_id = $1 AND post_id = ANY($2::bigint[])"


async def set_bookmark(conn: Conn, user_id: int, post_id: int, on: bool) -> None:
    await conn.execute(ADD_BOOKMARK if on else REMOVE_BOOKMARK, user_id, post_id)


async def bookmarks(conn: Conn, user: User, at: keyset.At = keyset.At()) -> keyset.Page:
    """The member's bookmarks, newest first (approved members read every community), a
    page from ``at`` (``post_id`` is the cursor)."""
    if not user.is_approved:
        return keyset.Page([], None, None)
    rows = await conn.fetch(LIST_BOOKMARKS[at.form], user.id, PAGE_SIZE + 1, *keyset.cursor_args(at))
    return keyset.page(list(rows), at, PAGE_SIZE, key="post_id")


# --- writing notifications ---------------------------------------------------------

# One statement for every notification of a reply: candidates with a rank (the most
# specific kind wins), then one row per member. Members may read the subject: approved
# (which reads every community of the node) — checked here, at write time; the page
# checks again at read time. The author never notifies herself.
MENTION_RE = r"(^|[^[:alnum:]_@/])@([A-Za-z0-9_]{3,30})(?![[:alnum:]_@])"
NOTIFY_REPLY = f"""
WITH p AS (
    SELECT p.id, p.thread_id, p.author_id, p.remote_author_id, p.parent_id, p.source
    FROM posts p JOIN threads t ON t.id = p.thread_id
    WHERE p.id = $1 AND NOT p.is_opening AND p.deleted_at IS NULL AND t.deleted_at IS NULL
),
candidates AS (
    SELECT pp.author_id AS user_id, 'reply_to_me' AS kind, 1 AS rank
    FROM p JOIN posts pp ON pp.id = p.parent_id
    WHERE pp.author_id IS NOT NULL AND pp.deleted_at IS NULL
    UNION ALL
    SELECT u.id, 'mention', 2 FROM users u
    WHERE lower(u.username) IN (
        SELECT lower(m[2]) FROM p, regexp_matches(p.source, '{MENTION_RE}', 'g') AS m
        WHERE p.remote_author_id IS NULL
        UNION SELECT lower(x) FROM unnest($2::text[]) AS x)
    UNION ALL
    SELECT f.user_id, 'reply_followed', 3
    FROM p JOIN thread_follows f ON f.thread_id = p.thread_id AND f.following
)
INSERT INTO notifications (user_id, kind, actor_user_id, actor_remote_id, thread_id, post_id)
SELECT DISTINCT ON (c.user_id) c.user_id, c.kind, p.author_id, p.remote_author_id, p.thread_id, p.id
FROM candidates c CROSS JOIN p JOIN users u ON u.id = c.user_id
WHERE c.user_id IS DISTINCT FROM p.author_id
  AND {RECIPIENT_OK.format(user="u", kind="c.kind")}
ORDER BY c.user_id, c.rank
ON CONFLICT DO NOTHING
"""


async def notify_reply(conn: Conn, post_id: int, mentioned: list[str] | None = None) -> int:
    """Notify what a new reply concerns: the author of the post it answers, members it
    mentions (« @nom » in a local post's text — a remote post's « @nom » names someone
    on its own server —, plus ``mentioned``: local usernames that federation resolved
    from a remote post's Mention tags), and the thread's followers. Local or remote
    author alike (``threads.store_remote_reply`` calls it for remote replies).
    Call it in the transaction that stores the reply; returns how many were written."""
    status: str = await conn.execute(NOTIFY_REPLY, post_id, mentioned or [])
    return int(status.split()[-1])


NOTIFY_THREAD_AUTHOR = f"""
INSERT INTO notifications (user_id, kind, actor_user_id, thread_id, post_id)
SELECT t.author_id, $3, $2, t.id, p.id
FROM posts p JOIN threads t ON t.id = p.thread_id JOIN users u ON u.id = t.author_id
WHERE p.id = $1 AND t.author_id IS DISTINCT FROM $2 AND p.deleted_at IS NULL
  AND {RECIPIENT_OK.format(user="u", kind="$3")}
ON CONFLICT DO NOTHING
"""


async def notify_expert_answer(conn: Conn, post_id: int, marked_by: int) -> None:
    """A reply was marked as the expert answer: tell the thread's author."""
    await conn.execute(NOTIFY_THREAD_AUTHOR, post_id, marked_by, "expert_answer")


NOTIFY_MEMBER = f"""
INSERT INTO notifications (user_id, kind, actor_user_id, thread_id, post_id, report_id, reason)
SELECT u.id, $2, $3, $4, $5, $6, $7 FROM users u
WHERE u.id = $1 AND ($2 LIKE 'registration_%' OR {RECIPIENT_OK.format(user="u", kind="$2")})
ON CONFLICT DO NOTHING
"""


async def notify_member(
    conn: Conn,
    user_id: int,
    kind: str,
    *,
    actor_id: int | None = None,
    thread_id: int | None = None,
    post_id: int | None = None,
    report_id: int | None = None,
    reason: str = "",
) -> None:
    """One notification to one member: ``moderation`` (her post removed, with the
    reason), ``report_handled``, ``registration_approved`` / ``registration_refused``
    (sent whatever the applicant's status: the e-mail is what she will read)."""
    if kind not in KINDS:
        raise ValueError(kind)
    await conn.execute(NOTIFY_MEMBER, user_id, kind, actor_id, thread_id, post_id, report_id, reason[:2000])


NOTIFY_NEW_MESSAGE = f"""
INSERT INTO notifications (user_id, kind, actor_user_id, actor_remote_id, conversation_id)
SELECT u.id, 'new_message', $2, $3, $4 FROM users u
WHERE u.id = ANY ($1::bigint[]) AND {RECIPIENT_OK.format(user="u", kind="'new_message'")}
ON CONFLICT DO NOTHING
"""
MARK_CONVERSATION_READ = """
UPDATE notifications SET read_at = now()
WHERE user_id = $1 AND conversation_id = $2 AND read_at IS NULL
"""


async def notify_new_message(
    conn: Conn,
    user_ids: list[int],
    conversation_id: int,
    *,
    actor_id: int | None,
    actor_remote_id: int | None,
) -> None:
    """« Nouveau message » to members of a private conversation (``node.messages``): at
    most one unread per member and conversation; it names who wrote, never what."""
    if user_ids:
        await conn.execute(NOTIFY_NEW_MESSAGE, user_ids, actor_id, actor_remote_id, conversation_id)


async def mark_conversation_read(conn: Conn, user_id: int, conversation_id: int) -> None:
    await conn.execute(MARK_CONVERSATION_READ, user_id, conversation_id)


NOTIFY_MODERATORS = f"""
INSERT INTO notifications (user_id, kind, actor_user_id, report_id, subject_user_id)
SELECT u.id, $1, $2, $3, $4 FROM users u
WHERE u.role IN ('moderator', 'admin') AND u.id IS DISTINCT FROM $2
  AND {RECIPIENT_OK.format(user="u", kind="$1")}
ON CONFLICT DO NOTHING
"""


async def notify_moderators(
    conn: Conn,
    kind: str,
    *,
    actor_id: int | None = None,
    report_id: int | None = None,
    applicant_id: int | None = None,
) -> None:
    """``new_report`` or ``new_application`` to every moderator and admin (one statement)."""
    if kind not in MODERATOR_KINDS:
        raise ValueError(kind)
    await conn.execute(NOTIFY_MODERATORS, kind, actor_id, report_id, applicant_id)


# --- reading ---------------------------------------------------------------------

ACTOR_NAME = "coalesce(nullif(au.display_name, ''), au.username, ar.display_name, ar.username)"
# A notification whose thread was deleted (but the removal notice itself), or whose
# remote author is now hidden, is left out.
# Newest first by id (index notifications_user); $1 the member, $2 how many, $3 whether
# she moderates, $4 the cursor (one of her notifications' id; see node.keyset).
LIST = keyset.forms(
    f"""
SELECT n.id, n.kind, n.created_at, n.read_at, n.reason, n.post_id, n.thread_id, n.report_id,
       {ACTOR_NAME} AS actor_name, au.username AS actor_username,
       t.title AS thread_title, c.title AS community_title, c.visibility,
       su.display_name AS subject_name, su.username AS subject_username,
       r.state AS report_state
FROM notifications n
LEFT JOIN users au ON au.id = n.actor_user_id
LEFT JOIN actors ar ON ar.id = n.actor_remote_id
LEFT JOIN threads t ON t.id = n.thread_id
LEFT JOIN communities c ON c.id = t.community_id
LEFT JOIN users su ON su.id = n.subject_user_id
LEFT JOIN reports r ON r.id = n.report_id
WHERE n.user_id = $1 AND (t.deleted_at IS NULL OR n.kind = 'moderation') AND ar.hidden IS NOT TRUE
  AND (n.kind NOT IN ('new_report', 'new_application') OR $3::boolean) {{cursor}}
ORDER BY n.id {{order}}
LIMIT $2
""",
    onwards="n.id < $4",
    backwards="n.id > $4",
    order="DESC",
)
SELECT_ONE = """
SELECT kind, post_id, thread_id, report_id, subject_user_id, conversation_id FROM notifications
WHERE id = $1 AND user_id = $2
"""
MARK_READ = "UPDATE notifications SET read_at = now() WHERE id = $1 AND user_id = $2 AND read_at IS NULL"
MARK_ALL_READ = "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL"
MARK_THREAD_READ = """
UPDATE notifications SET read_at = now() WHERE user_id = $1 AND thread_id = $2 AND read_at IS NULL
"""


async def page_for(conn: Conn, user: User, at: keyset.At = keyset.At()) -> keyset.Page:
    """The member's notifications, newest first, a page from ``at``."""
    rows = await conn.fetch(LIST[at.form], user.id, PAGE_SIZE + 1, user.is_moderator, *keyset.cursor_args(at))
    return keyset.page(list(rows), at, PAGE_SIZE)


def target_of(kind: str, post_id: int | None, thread_id: int | None) -> str:
    """Where a notification leads (a path of this node)."""
    if post_id is not None:
        return f"/p/{post_id}"
    if thread_id is not None:
        return f"/t/{thread_id}"
    return {
        "new_report": "/moderation/signalements",
        "new_application": "/moderation",
        "registration_approved": "/",
    }.get(kind, "/notifications")


async def open_notification(conn: Conn, user: User, notification_id: int) -> str:
    """Mark one of the member's notifications read; returns where it leads (NotFound
    for someone else's: same answer as a missing one)."""
    row = await conn.fetchrow(SELECT_ONE, notification_id, user.id)
    if row is None:
        raise NotFound()
    await conn.execute(MARK_READ, notification_id, user.id)
    if row["conversation_id"] is not None:
        return f"/messages/{row['conversation_id']}"
    return target_of(row["kind"], row["post_id"], row["thread_id"])


async def mark_all_read(conn: Conn, user_id: int) -> None:
    await conn.execute(MARK_ALL_READ, user_id)


async def mark_thread_read(conn: Conn, user_id: int, thread_id: int) -> None:
    """The member opened the thread: what told her about it is read."""
    await conn.execute(MARK_THREAD_READ, user_id, thread_id)


# --- settings --------------------------------------------------------------------

SELECT_SETTINGS = "SELECT email_mode, muted_kinds FROM notification_settings WHERE user_id = $1"
UPSERT_SETTINGS = """
INSERT INTO notification_settings (user_id, email_mode, muted_kinds) VALUES ($1, $2, $3)
ON CONFLICT (user_id) DO UPDATE SET email_mode = EXCLUDED.email_mode, muted_kinds = EXCLUDED.muted_kinds,
    updated_at = now()
"""
SET_EMAIL_MODE = """
INSERT INTO notification_settings (user_id, email_mode) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET email_mode = EXCLUDED.email_mode, updated_at = now()
"""


@dataclass(frozen=True)
class Preferences:
    email_mode: str = "daily"
    muted: frozenset[str] = frozenset()


async def preferences(conn: Conn, user_id: int) -> Preferences:
    row = await conn.fetchrow(SELECT_SETTINGS, user_id)
    return Preferences(row["email_mode"], frozenset(row["muted_kinds"])) if row else Preferences()


async def save_preferences(conn: Conn, user: User, email_mode: str, enabled: set[str]) -> None:
    """Store the settings page: e-mail frequency and which kinds stay on."""
    if email_mode not in EMAIL_MODES:
        raise BadRequest(fields={"email_mode": "Choisissez une fréquence proposée."})
    offered = MEMBER_KINDS + (MODERATOR_KINDS if user.is_moderator else ())
    muted = sorted(k for k in offered if k not in enabled)
    await conn.execute(UPSERT_SETTINGS, user.id, email_mode, muted)


async def set_email_mode(conn: Conn, user_id: int, email_mode: str) -> None:
    if email_mode not in EMAIL_MODES:
        raise ValueError(email_mode)
    await conn.execute(SET_EMAIL_MODE, user_id, email_mode)
