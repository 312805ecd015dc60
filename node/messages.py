"""Private conversations: who is in them, what they say (sealed at rest), blocks,
preferences and reports. Owns the tables of migration 0100.

A conversation has a subject, participants (local members, or remote actors on
other servers) and messages. Its subject and every body are sealed with the
conversation's own key (``node.encryption``); nothing readable is stored. Only a
participant who has not left reads a conversation: to everyone else — another
member, a moderator, a visitor — it is missing (NotFound), whatever the reason.

    start ──▶ conversation + participants + first message ──▶ reply … ──▶ leave
                                     └── remote participants: outbox event
                                         ``message.created {"message_id"}`` in the same
                                         transaction (federation.outbox sends it)

Blocks: a member's block hides every later message of the blocked person from
them, and the blocked person is not told (their message is stored and shown to
them and to the others as usual). Who may write to a member is their preference:
``all`` (members of this node and of partner nodes), ``local`` or ``experts``.

A participant may report a message: the report is their consent for the
moderators to read that one message; every moderator who opens it is written to
the audit log.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg

from node import audit, encryption, events, keyset, markup, notifications
from node.db import Conn
from node.encryption import Cipher, Keyring, Wrapped, field_aad, new_key
from node.errors import BadRequest, Conflict, NotFound
from node.sessions import User
from node.settings import Settings
from node.storage import Storage, StorageError

MAX_SUBJECT = 200
MAX_BODY = 20_000
MAX_REASON = 1000
MAX_RECIPIENTS = 20
PAGE_SIZE = 30
ACCEPT_FROM = ("all", "local", "experts")
REMOTE_POLICIES = ("partners", "fediverse", "none")
STAFF_ROLES = ("expert", "moderator", "admin")
REFUSED = "{name} ne reçoit pas de messages de votre part (ses préférences le limitent)."


@dataclass(frozen=True)
class Party:
    """A participant or an author: a local member (user_id) or a remote actor (actor_id)."""

    user_id: int | None = None
    actor_id: int | None = None


# --- Input ------------------------------------------------------------------------


def _text(value: str, name: str, max_length: int, label: str) -> str:
    if "\x00" in value or "\ufffd" in value:
        raise BadRequest(fields={name: f"{label} contient des caractères invalides."})
    value = value.strip()
    if not value:
        raise BadRequest(fields={name: f"{label} est obligatoire."})
    if len(value) > max_length:
        raise BadRequest(fields={name: f"{label} est trop long ({max_length} caractères au plus)."})
    return value


def check_subject(subject: str) -> str:
    return " ".join(_text(subject, "subject", MAX_SUBJECT, "Le sujet").split())


def check_body(body: str) -> str:
    return _text(body, "body", MAX_BODY, "Le message")


# --- Sealing ------------------------------------------------------------------------


class Sealer:
    """Seals and opens the fields of one conversation with its key (or its cipher, as
    the keyring keeps it: :func:`sealer_of`)."""

    def __init__(self, conversation_id: int, key: bytes, cipher: Cipher | None = None) -> None:
        self.conversation_id = conversation_id
        self.key = key
        self.cipher = cipher or Cipher(key)

    def seal(self, what: str, text: str) -> bytes:
        return self.cipher.seal(text.encode("utf-8"), field_aad(self.conversation_id, what))

    def open(self, what: str, sealed: bytes) -> str:
        return self.cipher.open(bytes(sealed), field_aad(self.conversation_id, what)).decode("utf-8")

    def seal_bytes(self, what: str, data: bytes) -> bytes:
        return self.cipher.seal(data, field_aad(self.conversation_id, what))

    def open_bytes(self, what: str, sealed: bytes) -> bytes:
        return self.cipher.open(bytes(sealed), field_aad(self.conversation_id, what))


def sealer_of(keyring: Keyring, row: Mapping[str, Any]) -> Sealer:
    """The sealer of a conversation row (``id``, ``key_id``, ``wrapped_key``)."""
    wrapped = Wrapped(row["key_id"], bytes(row["wrapped_key"]))
    cipher = keyring.conversation_cipher(wrapped, row["id"])
    return Sealer(row["id"], cipher.key, cipher)


def _body_what(message_uuid: uuid.UUID, part: str) -> str:
    return f"message {message_uuid} {part}"


SELECT_KEY = "SELECT id, key_id, wrapped_key FROM conversations WHERE id = $1"


async def sealer_for(conn: Conn, keyring: Keyring, conversation_id: int) -> Sealer:
    row = await conn.fetchrow(SELECT_KEY, conversation_id)
    if row is None:
        raise NotFound()
    return sealer_of(keyring, row)


# --- Who may write to whom ------------------------------------------------------------

SELECT_LOCAL_RECIPIENTS = """
SELECT u.id, u.username, u.display_name, coalesce(p.accept_from, 'all') AS accept_from
FROM users u LEFT JOIN message_preferences p ON p.user_id = u.id
WHERE lower(u.username) = ANY ($1::text[]) AND u.status = 'approved'
"""
SELECT_REMOTE_POLICY = "SELECT value #>> '{}' FROM node_settings WHERE key = 'messages_remote'"
SET_REMOTE_POLICY = """
INSERT INTO node_settings (key, value) VALUES ('messages_remote', to_jsonb($1::text))
ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()
"""


def may_write(author: User | None, accept_from: str, *, remote_author: bool = False) -> bool:
    """Does a recipient whose preference is ``accept_from`` accept this author?"""
    if accept_from == "all":
        return True
    if remote_author or author is None:
        return False
    return accept_from == "local" or author.role in STAFF_ROLES


async def remote_policy(conn: Conn) -> str:
    value = await conn.fetchval(SELECT_REMOTE_POLICY)
    return value if value in REMOTE_POLICIES else "partners"


async def set_remote_policy(conn: asyncpg.Connection, value: str, *, actor_label: str) -> None:
    if value not in REMOTE_POLICIES:
        raise BadRequest(f"Valeur inconnue : {value}.")
    async with conn.transaction():
        await conn.execute(SET_REMOTE_POLICY, value)
        await audit.record(conn, "messages.remote_policy", actor_label=actor_label, details={"value": value})


@dataclass(frozen=True)
class Recipient:
    party: Party
    name: str


async def local_recipients(conn: Conn, author: User, usernames: Sequence[str]) -> list[Recipient]:
    """The local members named (usernames, without duplicates or the author), each
    accepting messages from ``author``; a French field error otherwise."""
    wanted = list(dict.fromkeys(n.strip().lstrip("@").lower() for n in usernames if n.strip()))
    wanted = [n for n in wanted if n != author.username.lower()]
    if not wanted:
        raise BadRequest(fields={"recipients": "Indiquez au moins un·e destinataire."})
    if len(wanted) > MAX_RECIPIENTS:
        raise BadRequest(fields={"recipients": f"{MAX_RECIPIENTS} destinataires au plus."})
    rows = {r["username"].lower(): r for r in await conn.fetch(SELECT_LOCAL_RECIPIENTS, wanted)}
    missing = [n for n in wanted if n not in rows]
    if missing:
        raise BadRequest(fields={"recipients": f"Membre introuvable : {', '.join(missing)}."})
    for row in rows.values():
        if not may_write(author, row["accept_from"]):
            raise BadRequest(
                fields={"recipients": REFUSED.format(name=row["display_name"] or row["username"])}
            )
    return [Recipient(Party(user_id=r["id"]), r["display_name"] or r["username"]) for r in rows.values()]


# --- Writing ---------------------------------------------------------------------

NEXT_CONVERSATION_ID = "SELECT nextval(pg_get_serial_sequence('conversations', 'id'))"
INSERT_CONVERSATION = """
INSERT INTO conversations (id, ap_context, key_id, wrapped_key, subject_sealed, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
"""
INSERT_PARTICIPANTS = """
INSERT INTO conversation_participants (conversation_id, user_id, actor_id, last_read_at)
SELECT $1, t.user_id, t.actor_id, CASE WHEN t.reader THEN now() END
FROM unnest($2::bigint[], $3::bigint[], $4::boolean[]) AS t(user_id, actor_id, reader)
ON CONFLICT DO NOTHING
"""
INSERT_MESSAGE = """
INSERT INTO messages (conversation_id, uuid, ap_id, author_user_id, author_actor_id, source_sealed, html_sealed,
                      created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, now()))
ON CONFLICT DO NOTHING
RETURNING id, created_at
"""
# Everyone still there who sees the message (the author, and the others but those who
# block the author) has it as the last one of the conversation (the list's order,
# node.messages.LIST); the others among them have one more unread. $4 its time.
COUNT_UNREAD = """
UPDATE conversation_participants p
SET unread = unread + (p.user_id IS DISTINCT FROM $2)::int, last_message_at = greatest(p.last_message_at, $4)
WHERE p.conversation_id = $1 AND p.user_id IS NOT NULL AND p.left_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM message_blocks b WHERE b.user_id = p.user_id AND b.created_at <= $4
                  AND (b.blocked_user_id = $2 OR b.blocked_actor_id = $3))
RETURNING p.user_id, p.user_id IS DISTINCT FROM $2 AS told
"""
BUMP_CONVERSATION = (
    "UPDATE conversations SET last_message_at = greatest(last_message_at, now()) WHERE id = $1"
)
HAS_REMOTE = """
SELECT EXISTS (SELECT 1 FROM conversation_participants
               WHERE conversation_id = $1 AND actor_id IS NOT NULL AND left_at IS NULL)
"""


@dataclass(frozen=True)
class Written:
    conversation_id: int
    message_id: int


def context_uri(base_url: str) -> str:
    return f"{base_url}/messages/c/{uuid.uuid4()}"


def message_uri(base_url: str, message_uuid: uuid.UUID | str) -> str:
    return f"{base_url}/messages/m/{message_uuid}"


async def _new_conversation(
    conn: asyncpg.Connection, keyring: Keyring, subject: str, context: str, created_by: int | None
) -> Sealer:
    conversation_id: int = await conn.fetchval(NEXT_CONVERSATION_ID)
    sealer = Sealer(conversation_id, new_key())
    wrapped = keyring.wrap(sealer.key, conversation_id)
    await conn.execute(
        INSERT_CONVERSATION,
        conversation_id,
        context,
        wrapped.key_id,
        wrapped.wrapped,
        sealer.seal("subject", subject),
        created_by,
    )
    return sealer


async def _add_participants(
    conn: asyncpg.Connection, conversation_id: int, parties: Sequence[Party], reader: Party
) -> None:
    await conn.execute(
        INSERT_PARTICIPANTS,
        conversation_id,
        [p.user_id for p in parties],
        [p.actor_id for p in parties],
        [p == reader for p in parties],
    )


@dataclass(frozen=True)
class NewMessage:
    author: Party
    source: str
    html: str
    ap_id: str | None = None
    created_at: datetime | None = None


async def _add_message(conn: asyncpg.Connection, sealer: Sealer, message: NewMessage) -> int | None:
    """Store one message (None: its ActivityPub id is already stored) and count it unread."""
    message_uuid = uuid.uuid4()
    stored = await conn.fetchrow(
        INSERT_MESSAGE,
        sealer.conversation_id,
        message_uuid,
        message.ap_id,
        message.author.user_id,
        message.author.actor_id,
        sealer.seal(_body_what(message_uuid, "source"), message.source),
        sealer.seal(_body_what(message_uuid, "html"), message.html),
        message.created_at,
    )
    if stored is None:
        return None
    seen = await conn.fetch(
        COUNT_UNREAD,
        sealer.conversation_id,
        message.author.user_id,
        message.author.actor_id,
        stored["created_at"],
    )
    await notifications.notify_new_message(
        conn,
        [r["user_id"] for r in seen if r["told"]],
        sealer.conversation_id,
        actor_id=message.author.user_id,
        actor_remote_id=message.author.actor_id,
    )
    await conn.execute(BUMP_CONVERSATION, sealer.conversation_id)
    message_id: int = stored["id"]
    return message_id


async def _emit_if_remote(conn: asyncpg.Connection, conversation_id: int, message_id: int) -> None:
    if await conn.fetchval(HAS_REMOTE, conversation_id):
        await events.emit(conn, "message.created", events.MessageCreated(message_id))


async def start(
    conn: asyncpg.Connection,
    keyring: Keyring,
    base_url: str,
    author: User,
    recipients: Sequence[Recipient],
    subject: str,
    body: str,
    attachment: NewAttachment | None = None,
    storage: Storage | None = None,
) -> Written:
    """Start a conversation between ``author`` and ``recipients`` (checked by
    :func:`local_recipients` or the federation's resolver) with its first message."""
    subject, body = check_subject(subject), check_body(body)
    me = Party(user_id=author.id)
    async with conn.transaction():
        sealer = await _new_conversation(conn, keyring, subject, context_uri(base_url), author.id)
        await _add_participants(conn, sealer.conversation_id, [me, *(r.party for r in recipients)], me)
        message_id = await _add_message(conn, sealer, NewMessage(me, body, markup.render(body)))
        assert message_id is not None
        if attachment is not None and storage is not None:
            await _store_attachment(conn, storage, sealer, message_id, attachment)
        await _emit_if_remote(conn, sealer.conversation_id, message_id)
    return Written(sealer.conversation_id, message_id)


async def reply(
    conn: asyncpg.Connection,
    keyring: Keyring,
    author: User,
    conversation_id: int,
    body: str,
    attachment: NewAttachment | None = None,
    storage: Storage | None = None,
) -> Written:
    """A participant's answer (NotFound for anyone else, or after leaving)."""
    body = check_body(body)
    async with conn.transaction():
        await _participant(conn, author, conversation_id, lock=True)
        sealer = await sealer_for(conn, keyring, conversation_id)
        message_id = await _add_message(
            conn, sealer, NewMessage(Party(user_id=author.id), body, markup.render(body))
        )
        assert message_id is not None
        if attachment is not None and storage is not None:
            await _store_attachment(conn, storage, sealer, message_id, attachment)
        await conn.execute(MARK_READ, conversation_id, author.id)
        await notifications.mark_conversation_read(conn, author.id, conversation_id)
        await _emit_if_remote(conn, conversation_id, message_id)
    return Written(conversation_id, message_id)


# --- Reading ---------------------------------------------------------------------

SELECT_PARTICIPANT = """
SELECT p.id, p.last_read_at, p.unread FROM conversation_participants p
WHERE p.conversation_id = $1 AND p.user_id = $2 AND p.left_at IS NULL
"""
MARK_READ = """
UPDATE conversation_participants SET unread = 0, last_read_at = now()
WHERE conversation_id = $1 AND user_id = $2 AND left_at IS NULL
"""
LEAVE = """
UPDATE conversation_participants SET left_at = now(), unread = 0
WHERE conversation_id = $1 AND user_id = $2 AND left_at IS NULL
"""
# Messages a member sees: all of the conversation's but those written, after the
# block, by someone they block (a member, or a remote actor: one test each, so that each
# is a lookup in its partial index, message_blocks_user or message_blocks_actor).
VISIBLE = """
NOT EXISTS (SELECT 1 FROM message_blocks b
            WHERE b.user_id = {viewer} AND b.blocked_user_id = m.author_user_id AND b.created_at <= m.created_at)
AND NOT EXISTS (SELECT 1 FROM message_blocks b
                WHERE b.user_id = {viewer} AND b.blocked_actor_id = m.author_actor_id AND b.created_at <= m.created_at)
"""
# What a reader is shown of each message but its body (SELECT_BODIES, for those not opened
# lately: node.messages keeps the bodies of the pages read lately); has_files: whether
# it has attachments (index message_attachments_message), so a page without any does not
# ask for them.
SELECT_MESSAGES = f"""
SELECT m.id, m.uuid, m.created_at, m.author_user_id, m.author_actor_id,
       coalesce(nullif(u.display_name, ''), u.username, nullif(a.display_name, ''), a.username) AS author_name,
       CASE WHEN a.id IS NULL THEN u.username ELSE a.username || '@' || a.domain END AS author_handle,
       EXISTS (SELECT 1 FROM message_attachments f WHERE f.message_id = m.id) AS has_files
FROM messages m
LEFT JOIN users u ON u.id = m.author_user_id
LEFT JOIN actors a ON a.id = m.author_actor_id
WHERE m.conversation_id = $1 AND {VISIBLE.format(viewer="$2")}
ORDER BY m.created_at, m.id
"""
# One page of the messages a member sees, the newest first (index messages_conversation);
# $1 the conversation, $2 the member, $3 how many, $4 the cursor (a message of this
# conversation, else an empty page; see node.keyset): keyset pages, never OFFSET.
_MESSAGE_KEY = "((SELECT k.created_at FROM messages k WHERE k.id = $4 AND k.conversation_id = $1), $4)"
MESSAGES_PAGE = keyset.forms(
    SELECT_MESSAGES.replace(
        "ORDER BY m.created_at, m.id", "{cursor}\nORDER BY m.created_at {order}, m.id {order}"
    )
    + "LIMIT $3\n",
    onwards=f"(m.created_at, m.id) < {_MESSAGE_KEY}",
    backwards=f"(m.created_at, m.id) > {_MESSAGE_KEY}",
    order="DESC",
)
MESSAGES_PAGE_SIZE = 50
SELECT_ONE_MESSAGE = SELECT_MESSAGES.replace("ORDER BY m.created_at, m.id", "AND m.id = $3")
SELECT_CONVERSATION = (
    "SELECT id, key_id, wrapped_key, subject_sealed, ap_context, created_at FROM conversations WHERE id = $1"
)
# What a page of a conversation shows besides its messages, in one query: its participants
# (name and handle), each row with the conversation's key and subject, and among them
# the reader's own participation; no row at all unless $2 is a current participant
# (SELECT_PARTICIPANT's condition), so nothing is read for anyone else.
SELECT_READING = """
SELECT p.user_id, p.actor_id, p.left_at, p.last_read_at, p.unread,
       coalesce(nullif(u.display_name, ''), u.username, nullif(a.display_name, ''), a.username) AS name,
       CASE WHEN a.id IS NULL THEN u.username ELSE a.username || '@' || a.domain END AS handle,
       c.id, c.key_id, c.wrapped_key, c.subject_sealed
FROM conversation_participants p
JOIN conversations c ON c.id = p.conversation_id
LEFT JOIN users u ON u.id = p.user_id
LEFT JOIN actors a ON a.id = p.actor_id
WHERE p.conversation_id = $1
  AND EXISTS (SELECT 1 FROM conversation_participants me
              WHERE me.conversation_id = $1 AND me.user_id = $2 AND me.left_at IS NULL)
ORDER BY p.id
"""
SELECT_BODIES = (
    "SELECT id, uuid, html_sealed FROM messages WHERE conversation_id = $1 AND id = ANY($2::bigint[])"
)


async def _participant(conn: Conn, user: User, conversation_id: int, *, lock: bool = False) -> asyncpg.Record:
    """The member's participation, if they are in the conversation and have not left."""
    if not user.is_approved:
        raise NotFound()
    row = await conn.fetchrow(SELECT_PARTICIPANT + (" FOR UPDATE" if lock else ""), conversation_id, user.id)
    if row is None:
        raise NotFound()
    return row


class Message(NamedTuple):
    """A message as its reader gets it (a named tuple: made 50 times a page, and hashed as
    the key of its rendered article, node.web.messages_views)."""

    id: int
    uuid: uuid.UUID
    author_name: str
    author_handle: str
    mine: bool
    html: str
    created_at: datetime
    unread: bool


@dataclass(frozen=True)
class Conversation:
    id: int
    subject: str
    participants: list[asyncpg.Record]
    messages: list[Message]  # oldest first
    unread: int  # the reader's unread count here, before this reading
    attachments: dict[int, list[Attachment]] = field(default_factory=dict)  # by message id
    older: int | None = None  # cursor of the page of older messages (None: none, or every message read)
    newer: int | None = None  # cursor of the page of newer messages (None: this is the latest page)


def _unread(message: asyncpg.Record, last_read_at: datetime | None, user: User) -> bool:
    if message["author_user_id"] == user.id:
        return False
    return last_read_at is None or message["created_at"] > last_read_at


def _message(r: asyncpg.Record, html: str, last_read_at: datetime | None, user: User) -> Message:
    return Message(
        r["id"],
        r["uuid"],
        r["author_name"] or "?",
        r["author_handle"] or "",
        r["author_user_id"] == user.id,
        html,
        r["created_at"],
        _unread(r, last_read_at, user),
    )


# Message bodies (HTML) opened lately, by conversation and message uuid, least recently
# used first: a message never changes once written (nothing updates messages.html_sealed),
# so a page read again fetches and opens only the bodies it has not opened lately. Each
# entry was opened — authenticated — from its sealed value; it is only ever looked up for
# a message the SQL has just shown this reader (participation and blocks checked on every
# request). In this process's memory only, like the keyring's unwrapped conversation keys:
# what the running server reads anyway (node.encryption: what encryption at rest covers).
OPENED_BODIES = 1000
_opened: OrderedDict[tuple[int, uuid.UUID], str] = OrderedDict()


async def _bodies(
    conn: Conn, sealer: Sealer, rows: Sequence[asyncpg.Record], *, keep: bool
) -> dict[int, str]:
    """The opened body of each message of ``rows`` (``id``, ``uuid``) by message id: from
    the bodies opened lately, the others fetched and opened (and kept if ``keep``)."""
    found: dict[int, str] = {}
    missing: list[int] = []
    cid = sealer.conversation_id
    for r in rows:
        html = _opened.get((cid, r["uuid"]))
        if html is None:
            missing.append(r["id"])
        else:
            _opened.move_to_end((cid, r["uuid"]))
            found[r["id"]] = html
    if missing:
        for r in await conn.fetch(SELECT_BODIES, cid, missing):
            html = found[r["id"]] = sealer.open(_body_what(r["uuid"], "html"), r["html_sealed"])
            if keep:
                _opened[(cid, r["uuid"])] = html
                if len(_opened) > OPENED_BODIES:
                    _opened.popitem(last=False)
    return found


async def conversation(
    conn: Conn, keyring: Keyring, user: User, conversation_id: int, at: keyset.At | None = None
) -> Conversation:
    """What ``user`` reads of a conversation (NotFound unless a current participant): a
    page of at most MESSAGES_PAGE_SIZE messages from ``at`` (the top: the latest ones;
    a cursor not naming a message of this conversation is a missing page), or every
    message when ``at`` is None (the member's data export). The participation is
    checked before anything is read (in the same query)."""
    if not user.is_approved:
        raise NotFound()
    participants = await conn.fetch(SELECT_READING, conversation_id, user.id)
    me = next((p for p in participants if p["user_id"] == user.id and p["left_at"] is None), None)
    if me is None:
        raise NotFound()
    sealer = sealer_of(keyring, me)
    older = newer = None
    if at is None:
        rows = list(await conn.fetch(SELECT_MESSAGES, conversation_id, user.id))
    else:
        fetched = await conn.fetch(
            MESSAGES_PAGE[at.form], conversation_id, user.id, MESSAGES_PAGE_SIZE + 1, *keyset.cursor_args(at)
        )
        page = keyset.page(list(fetched), at, MESSAGES_PAGE_SIZE)
        rows, older, newer = page.items[::-1], page.next, page.previous
    # A page's bodies are kept opened for its next reading; every message of an export is not.
    bodies = await _bodies(conn, sealer, rows, keep=at is not None)
    shown = [_message(r, bodies[r["id"]], me["last_read_at"], user) for r in rows]
    subject = sealer.open("subject", me["subject_sealed"])
    with_files = [r["id"] for r in rows if r["has_files"]]
    files = await attachments_of(conn, sealer, with_files) if with_files else {}
    return Conversation(conversation_id, subject, participants, shown, me["unread"], files, older, newer)


async def one_message(
    conn: Conn, keyring: Keyring, user: User, conversation_id: int, message_id: int
) -> Message:
    """One message of a conversation as ``user`` reads it (NotFound unless she is a
    current participant and sees it)."""
    me = await _participant(conn, user, conversation_id)
    found = await conn.fetchrow(SELECT_ONE_MESSAGE, conversation_id, user.id, message_id)
    if found is None:
        raise NotFound()
    row = await conn.fetchrow(SELECT_CONVERSATION, conversation_id)
    bodies = await _bodies(conn, sealer_of(keyring, row), [found], keep=False)
    return _message(found, bodies[found["id"]], me["last_read_at"], user)


async def require_participant(conn: Conn, user: User, conversation_id: int) -> None:
    """NotFound unless ``user`` is a current participant of the conversation."""
    await _participant(conn, user, conversation_id)


async def mark_read(conn: Conn, user: User, conversation_id: int) -> None:
    await _participant(conn, user, conversation_id)
    await conn.execute(MARK_READ, conversation_id, user.id)
    await notifications.mark_conversation_read(conn, user.id, conversation_id)


async def leave(conn: Conn, user: User, conversation_id: int) -> None:
    """The member leaves: the conversation disappears for them; the others keep it."""
    await _participant(conn, user, conversation_id)
    await conn.execute(LEAVE, conversation_id, user.id)
    await notifications.mark_conversation_read(conn, user.id, conversation_id)


# A member's conversations, the one with the newest message she sees first (index
# conversation_participants_recent: her rows' last_message_at, kept by COUNT_UNREAD and
# unblock); $1 the member, $2 how many, $3 the cursor (a conversation she is in; see
# node.keyset): keyset pages, never OFFSET.
_LIST_KEY = """((SELECT k.last_message_at FROM conversation_participants k
                 WHERE k.conversation_id = $3 AND k.user_id = $1 AND k.left_at IS NULL), $3)"""
LIST = keyset.forms(
    """
SELECT c.id, c.key_id, c.wrapped_key, c.subject_sealed, p.unread, p.last_message_at AS last_at,
       (SELECT string_agg(coalesce(nullif(u.display_name, ''), u.username, nullif(a.display_name, ''), a.username),
                          ', ' ORDER BY o.id)
        FROM conversation_participants o
        LEFT JOIN users u ON u.id = o.user_id LEFT JOIN actors a ON a.id = o.actor_id
        WHERE o.conversation_id = c.id AND o.user_id IS DISTINCT FROM $1 AND o.left_at IS NULL) AS others
FROM conversation_participants p
JOIN conversations c ON c.id = p.conversation_id
WHERE p.user_id = $1 AND p.left_at IS NULL AND p.last_message_at IS NOT NULL {cursor}
ORDER BY p.last_message_at {order}, p.conversation_id {order}
LIMIT $2
""",
    onwards=f"(p.last_message_at, p.conversation_id) < {_LIST_KEY}",
    backwards=f"(p.last_message_at, p.conversation_id) > {_LIST_KEY}",
    order="DESC",
)


@dataclass(frozen=True)
class Summary:
    id: int
    subject: str
    others: str
    unread: int
    last_at: datetime


@dataclass(frozen=True)
class Listing:
    """One page of a member's conversations, with the cursors of the pages around it
    (conversation ids; None: no such page)."""

    conversations: list[Summary]
    previous: int | None
    next: int | None


async def listing(conn: Conn, keyring: Keyring, user: User, at: keyset.At = keyset.At()) -> Listing:
    """The member's conversations, the latest message first, a page from ``at`` (a
    cursor naming a conversation she is not in is a missing page)."""
    if not user.is_approved:
        return Listing([], None, None)
    rows = await conn.fetch(LIST[at.form], user.id, PAGE_SIZE + 1, *keyset.cursor_args(at))
    page = keyset.page(list(rows), at, PAGE_SIZE)
    shown = [
        Summary(
            r["id"],
            sealer_of(keyring, r).open("subject", r["subject_sealed"]),
            r["others"] or "",
            r["unread"],
            r["last_at"],
        )
        for r in page.items
    ]
    return Listing(shown, page.previous, page.next)


UNREAD_TOTAL = """
SELECT coalesce(sum(unread), 0) FROM conversation_participants WHERE user_id = $1 AND left_at IS NULL
"""


async def unread_total(conn: Conn, user_id: int) -> int:
    total: int = await conn.fetchval(UNREAD_TOTAL, user_id)
    return int(total)


# --- Blocks and preferences ---------------------------------------------------------

INSERT_BLOCK_USER = """
INSERT INTO message_blocks (user_id, blocked_user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""
INSERT_BLOCK_ACTOR = """
INSERT INTO message_blocks (user_id, blocked_actor_id) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""
DELETE_BLOCK = "DELETE FROM message_blocks WHERE user_id = $1 AND id = $2 RETURNING id"
# A lifted block shows its member again what the person wrote meanwhile: each of her
# conversations takes anew the last message she sees (read backwards from the newest,
# down to the first one she sees); only the rows that change are written.
RESORT_AFTER_UNBLOCK = f"""
WITH fresh AS (
    SELECT p.id, (SELECT m.created_at FROM messages m
                  WHERE m.conversation_id = p.conversation_id AND {VISIBLE.format(viewer="$1")}
                  ORDER BY m.created_at DESC LIMIT 1) AS at
    FROM conversation_participants p WHERE p.user_id = $1 AND p.left_at IS NULL
)
UPDATE conversation_participants p SET last_message_at = fresh.at
FROM fresh
WHERE p.user_id = $1 AND p.left_at IS NULL AND p.id = fresh.id AND p.last_message_at IS DISTINCT FROM fresh.at
"""
LIST_BLOCKS = """
SELECT b.id, b.created_at,
       coalesce(nullif(u.display_name, ''), u.username, nullif(a.display_name, ''), a.username) AS name,
       CASE WHEN a.id IS NULL THEN u.username ELSE a.username || '@' || a.domain END AS handle
FROM message_blocks b
LEFT JOIN users u ON u.id = b.blocked_user_id LEFT JOIN actors a ON a.id = b.blocked_actor_id
WHERE b.user_id = $1 ORDER BY b.created_at DESC
"""
SELECT_MEMBER_BY_NAME = "SELECT id FROM users WHERE lower(username) = lower($1) AND status <> 'pending'"


async def block(conn: Conn, user: User, party: Party) -> None:
    """``user`` no longer receives what ``party`` writes from now on (they are not told)."""
    if party.user_id == user.id:
        raise BadRequest(fields={"name": "Vous ne pouvez pas vous bloquer vous-même."})
    if party.user_id is not None:
        await conn.execute(INSERT_BLOCK_USER, user.id, party.user_id)
    elif party.actor_id is not None:
        await conn.execute(INSERT_BLOCK_ACTOR, user.id, party.actor_id)


SELECT_OTHER_PARTICIPANT = """
SELECT user_id, actor_id FROM conversation_participants
WHERE conversation_id = $1 AND (user_id = $2 OR actor_id = $3) AND user_id IS DISTINCT FROM $4
"""


def party_key(participant: asyncpg.Record) -> str:
    """How a page names a participant in a form: ``u12`` (member) or ``a34`` (remote actor)."""
    if participant["user_id"] is not None:
        return f"u{participant['user_id']}"
    return f"a{participant['actor_id']}"


async def participant_party(conn: Conn, user: User, conversation_id: int, key: str) -> Party:
    """Another participant of a conversation ``user`` is in, named by :func:`party_key`."""
    await _participant(conn, user, conversation_id)
    kind, number = key[:1], key[1:]
    if kind not in ("u", "a") or not number.isdigit() or len(number) > 18:
        raise NotFound()
    wanted = int(number)
    row = await conn.fetchrow(
        SELECT_OTHER_PARTICIPANT,
        conversation_id,
        wanted if kind == "u" else None,
        wanted if kind == "a" else None,
        user.id,
    )
    if row is None:
        raise NotFound()
    return Party(row["user_id"], row["actor_id"])


async def block_member(conn: Conn, user: User, username: str) -> None:
    member_id = await conn.fetchval(SELECT_MEMBER_BY_NAME, username.strip().lstrip("@"))
    if member_id is None:
        raise BadRequest(fields={"name": "Membre introuvable."})
    await block(conn, user, Party(user_id=member_id))


async def unblock(conn: asyncpg.Connection, user: User, block_id: int) -> None:
    async with conn.transaction():
        if await conn.fetchval(DELETE_BLOCK, user.id, block_id) is None:
            raise NotFound()
        await conn.execute(RESORT_AFTER_UNBLOCK, user.id)


async def blocks_of(conn: Conn, user: User) -> list[asyncpg.Record]:
    result: list[asyncpg.Record] = await conn.fetch(LIST_BLOCKS, user.id)
    return result


SELECT_PREFERENCE = "SELECT accept_from FROM message_preferences WHERE user_id = $1"
UPSERT_PREFERENCE = """
INSERT INTO message_preferences (user_id, accept_from) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET accept_from = excluded.accept_from, updated_at = now()
"""


async def preference_of(conn: Conn, user_id: int) -> str:
    value = await conn.fetchval(SELECT_PREFERENCE, user_id)
    return str(value) if value else "all"


async def set_preference(conn: Conn, user: User, accept_from: str) -> None:
    if accept_from not in ACCEPT_FROM:
        raise BadRequest(fields={"accept_from": "Choix invalide."})
    await conn.execute(UPSERT_PREFERENCE, user.id, accept_from)


# --- Reports ---------------------------------------------------------------------

SELECT_MESSAGE_REF = f"""
SELECT m.id, m.uuid, m.conversation_id, m.author_user_id FROM messages m
WHERE m.id = $1 AND m.conversation_id = $2 AND {VISIBLE.format(viewer="$3")}
"""
INSERT_REPORT = """
INSERT INTO message_reports (message_id, reporter_id, reason_sealed) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING id
"""
DUPLICATE_REPORT = "Vous avez déjà signalé ce message ; l'équipe de modération ne l'a pas encore traité."


async def message_ref(conn: Conn, user: User, conversation_id: int, message_id: int) -> asyncpg.Record:
    """A message the participant sees (NotFound otherwise)."""
    await _participant(conn, user, conversation_id)
    row = await conn.fetchrow(SELECT_MESSAGE_REF, message_id, conversation_id, user.id)
    if row is None:
        raise NotFound()
    return row


async def report(
    conn: asyncpg.Connection, keyring: Keyring, user: User, conversation_id: int, message_id: int, reason: str
) -> int:
    """File a participant's report of one message (not their own)."""
    reason = _text(reason, "reason", MAX_REASON, "La raison")
    async with conn.transaction():
        ref = await message_ref(conn, user, conversation_id, message_id)
        if ref["author_user_id"] == user.id:
            raise BadRequest(fields={"reason": "Vous ne pouvez pas signaler votre propre message."})
        sealer = await sealer_for(conn, keyring, conversation_id)
        report_id = await conn.fetchval(
            INSERT_REPORT, message_id, user.id, sealer.seal(f"report of {ref['uuid']} by {user.id}", reason)
        )
        if report_id is None:
            raise Conflict(DUPLICATE_REPORT)
    return int(report_id)


# Reports in one state, newest first (index message_reports_list); $1 the state, $2 how
# many, $3 the cursor (a report in that state; see node.keyset): keyset pages, no cap.
_REPORT_KEY = "((SELECT k.created_at FROM message_reports k WHERE k.id = $3 AND k.state = $1), $3)"
LIST_REPORTS = keyset.forms(
    """
SELECT r.id, r.state, r.created_at, r.resolved_at, ru.username AS reporter, rb.username AS resolved_by_name
FROM message_reports r
LEFT JOIN users ru ON ru.id = r.reporter_id
LEFT JOIN users rb ON rb.id = r.resolved_by
WHERE r.state = $1 {cursor}
ORDER BY r.created_at {order}, r.id {order}
LIMIT $2
""",
    onwards=f"(r.created_at, r.id) < {_REPORT_KEY}",
    backwards=f"(r.created_at, r.id) > {_REPORT_KEY}",
    order="DESC",
)
REPORTS_PAGE_SIZE = 50
REPORT_STATES = ("open", "resolved", "dismissed")
SELECT_REPORT = """
SELECT r.id, r.state, r.created_at, r.reporter_id, r.reason_sealed, ru.username AS reporter,
       m.id AS message_id, m.uuid, m.html_sealed, m.created_at AS message_at, m.author_user_id,
       coalesce(nullif(u.display_name, ''), u.username, nullif(a.display_name, ''), a.username) AS author_name,
       CASE WHEN a.id IS NULL THEN u.username ELSE a.username || '@' || a.domain END AS author_handle,
       c.id AS conversation_id, c.key_id, c.wrapped_key
FROM message_reports r
JOIN messages m ON m.id = r.message_id
JOIN conversations c ON c.id = m.conversation_id
LEFT JOIN users ru ON ru.id = r.reporter_id
LEFT JOIN users u ON u.id = m.author_user_id
LEFT JOIN actors a ON a.id = m.author_actor_id
WHERE r.id = $1
"""
DECIDE_REPORT = """
UPDATE message_reports SET state = $2, resolved_at = now(), resolved_by = $3
WHERE id = $1 AND state = 'open' RETURNING id
"""
COUNT_OPEN_REPORTS = "SELECT count(*) FROM message_reports WHERE state = 'open'"


def _require_moderator(user: User) -> None:
    if not user.is_moderator:
        raise NotFound()


async def reports(
    conn: Conn, moderator: User, state: str = "open", at: keyset.At = keyset.At()
) -> keyset.Page:
    """The moderators' list: who reported and when, never what (opening one is audited);
    a page from ``at`` (a report id in ``state``)."""
    _require_moderator(moderator)
    if state not in REPORT_STATES:
        raise NotFound()
    rows = await conn.fetch(LIST_REPORTS[at.form], state, REPORTS_PAGE_SIZE + 1, *keyset.cursor_args(at))
    return keyset.page(list(rows), at, REPORTS_PAGE_SIZE)


async def count_open_reports(conn: Conn) -> int:
    count: int = await conn.fetchval(COUNT_OPEN_REPORTS)
    return count


@dataclass(frozen=True)
class OpenedReport:
    row: asyncpg.Record
    reason: str
    html: str
    author_name: str
    author_handle: str


async def open_report(
    conn: asyncpg.Connection, keyring: Keyring, moderator: User, report_id: int
) -> OpenedReport:
    """One reported message, for a moderator; the opening is written to the audit log."""
    _require_moderator(moderator)
    async with conn.transaction():
        row = await conn.fetchrow(SELECT_REPORT, report_id)
        if row is None:
            raise NotFound()
        await audit.record(
            conn,
            "message_report.open",
            actor_id=moderator.id,
            target_type="message_report",
            target_id=report_id,
        )
    sealer = sealer_of(
        keyring, {"id": row["conversation_id"], "key_id": row["key_id"], "wrapped_key": row["wrapped_key"]}
    )
    reason = sealer.open(f"report of {row['uuid']} by {row['reporter_id']}", row["reason_sealed"])
    html = sealer.open(_body_what(row["uuid"], "html"), row["html_sealed"])
    return OpenedReport(row, reason, html, row["author_name"] or "?", row["author_handle"] or "")


async def decide_report(conn: asyncpg.Connection, moderator: User, report_id: int, state: str) -> None:
    _require_moderator(moderator)
    if state not in ("resolved", "dismissed"):
        raise BadRequest("Décision inconnue.")
    async with conn.transaction():
        if await conn.fetchval(DECIDE_REPORT, report_id, state, moderator.id) is None:
            raise NotFound()
        await audit.record(
            conn,
            f"message_report.{state}",
            actor_id=moderator.id,
            target_type="message_report",
            target_id=report_id,
        )


# --- Key rotation -----------------------------------------------------------------

SELECT_TO_REWRAP = (
    "SELECT id, key_id, wrapped_key FROM conversations WHERE key_id <> $1 ORDER BY id LIMIT $2 FOR UPDATE"
)
REWRAP = "UPDATE conversations SET key_id = $2, wrapped_key = $3 WHERE id = $1"
KEYS_IN_USE = "SELECT DISTINCT key_id FROM conversations"
# Node keys sealing private activities still queued (federation.private_messages seals
# them ``key_id.ciphertext``): an incoming one not yet handled, an outgoing one not yet
# delivered (deliveries retry for about two days).
QUEUED_KEY_IDS = """
SELECT DISTINCT split_part(document->>'vbg:sealed', '.', 1) FROM inbox_items
WHERE status IN ('pending', 'processing') AND document ? 'vbg:sealed'
UNION
SELECT DISTINCT split_part(a.json->>'vbg:sealed', '.', 1)
FROM delivery_jobs j JOIN activities a ON a.id = j.activity_id
WHERE j.state IN ('pending', 'in_flight') AND a.json ? 'vbg:sealed'
"""


async def rewrap_all(conn: asyncpg.Connection, keyring: Keyring, batch: int = 500) -> int:
    """Wrap every conversation key with the keyring's current node key (batches of
    ``batch``, one transaction each); the number re-wrapped. Contents are untouched:
    they stay sealed with their conversation's key."""
    done = 0
    while True:
        async with conn.transaction():
            rows = await conn.fetch(SELECT_TO_REWRAP, keyring.current_id, batch)
            for row in rows:
                wrapped = keyring.wrap(
                    keyring.unwrap(Wrapped(row["key_id"], bytes(row["wrapped_key"])), row["id"]), row["id"]
                )
                await conn.execute(REWRAP, row["id"], wrapped.key_id, wrapped.wrapped)
        done += len(rows)
        if len(rows) < batch:
            return done


async def key_ids_in_use(conn: Conn) -> set[str]:
    return {r["key_id"] for r in await conn.fetch(KEYS_IN_USE)}


@dataclass(frozen=True)
class Rotation:
    current_id: str
    rewrapped: int
    retired: list[str]  # key ids still in the keyring, no longer the current one
    forgotten: list[str]


async def rotate_node_key(
    conn: asyncpg.Connection, settings: Settings, *, forget_retired: bool = False
) -> Rotation:
    """``vbg-node admin rotate-messages-key``.

    Key file (``VBG_DATA_DIR/messages_key``): a new node key goes first in the file
    (the old ones stay, so running processes still open what they wrap), then every
    conversation key is re-wrapped with it. Once every process has been restarted,
    ``forget_retired`` re-wraps any straggler and removes the old keys from the file.
    ``VBG_MESSAGES_KEY``: the operator puts the new key first in the variable; this
    re-wraps everything with it; the old key is then removed from the variable by hand.
    """
    keyring = encryption.keyring_of(settings)
    if settings.messages_key_from_env or forget_retired:
        rewrapped = await rewrap_all(conn, keyring)
    else:
        keyring = encryption.Keyring([encryption.new_key(), *keyring.keys])
        encryption.write_file(settings.data_dir, keyring)
        rewrapped = await rewrap_all(conn, keyring)
    forgotten: list[str] = []
    if forget_retired and not settings.messages_key_from_env:
        # Keys still sealing a private activity waiting in a federation queue stay too.
        in_use = await key_ids_in_use(conn) | {r[0] for r in await conn.fetch(QUEUED_KEY_IDS)}
        kept = [k for i, k in enumerate(keyring.keys) if i == 0 or encryption.key_id(k) in in_use]
        forgotten = [i for i in keyring.ids() if i not in {encryption.key_id(k) for k in kept}]
        keyring = encryption.Keyring(kept)
        encryption.write_file(settings.data_dir, keyring)
    return Rotation(keyring.current_id, rewrapped, keyring.ids()[1:], forgotten)


# --- Other servers (called by federation: node makes no network call) ----------------

SELECT_KNOWN_ACTORS = """
SELECT a.id, a.uri, a.username, a.domain, a.display_name, coalesce(i.approved, false) AS partner
FROM actors a LEFT JOIN instances i ON i.domain = a.domain
WHERE NOT a.local AND a.deleted_at IS NULL AND a.kind = 'Person'
  AND (a.uri = ANY ($1::text[]) OR lower(a.username || '@' || a.domain) = ANY ($1::text[]))
"""


def remote_allowed(policy: str, partner: bool) -> bool:
    """May we exchange private messages with a member of that server?"""
    return policy == "fediverse" or (policy == "partners" and partner)


async def remote_recipients(conn: Conn, handles: Sequence[str]) -> list[Recipient]:
    """Remote members already known to the node (``name@domain`` or actor URL), on
    servers the messages policy allows; a French field error otherwise."""
    wanted = list(
        dict.fromkeys(h.strip().lstrip("@").lower() if "://" not in h else h.strip() for h in handles)
    )
    if not wanted:
        return []
    policy = await remote_policy(conn)
    rows = await conn.fetch(SELECT_KNOWN_ACTORS, wanted)
    found: list[Recipient] = []
    for handle in wanted:
        row = next((r for r in rows if handle in (r["uri"], f"{r['username']}@{r['domain']}".lower())), None)
        if row is None or not remote_allowed(policy, row["partner"]):
            raise BadRequest(fields={"recipients": f"Membre d'un nœud partenaire introuvable : {handle}."})
        found.append(Recipient(Party(actor_id=row["id"]), row["display_name"] or row["username"]))
    return found


async def unknown_remote(conn: Conn, names: Sequence[str]) -> list[str]:
    """The ``name@domain`` handles among ``names`` of actors the node does not know yet
    (the page asks federation to look them up: node makes no network call)."""
    handles = [n.strip().lstrip("@").lower() for n in names if "@" in n.strip().lstrip("@")][:MAX_RECIPIENTS]
    if not handles:
        return []
    known = {f"{r['username']}@{r['domain']}".lower() for r in await conn.fetch(SELECT_KNOWN_ACTORS, handles)}
    return [h for h in handles if h not in known]


async def recipients(conn: Conn, author: User, names: Sequence[str]) -> list[Recipient]:
    """Local usernames and remote handles (``name@domain``) of a new conversation."""
    local = [n for n in names if n.strip() and "@" not in n.strip().lstrip("@")]
    remote = [n for n in names if n.strip() and "@" in n.strip().lstrip("@")]
    found = await local_recipients(conn, author, local) if local or not remote else []
    found += await remote_recipients(conn, remote)
    if len(found) > MAX_RECIPIENTS:
        raise BadRequest(fields={"recipients": f"{MAX_RECIPIENTS} destinataires au plus."})
    return found


@dataclass(frozen=True)
class OutgoingParty:
    uri: str | None  # a remote actor's id (None for a local member)
    inbox: str | None
    username: str | None  # a local member's
    partner: bool


@dataclass(frozen=True)
class OutgoingMessage:
    """A local member's message as it leaves for the other servers (opened)."""

    uuid: uuid.UUID
    author_username: str
    context: str
    subject: str
    source: str
    html: str
    created_at: datetime
    previous: str | None  # the ActivityPub id of the message before it (inReplyTo)
    others: list[OutgoingParty]


SELECT_OUTGOING = """
SELECT m.id, m.uuid, m.created_at, m.source_sealed, m.html_sealed, m.author_user_id, u.username,
       c.id AS conversation_id, c.ap_context, c.key_id, c.wrapped_key, c.subject_sealed
FROM messages m JOIN conversations c ON c.id = m.conversation_id JOIN users u ON u.id = m.author_user_id
WHERE m.id = $1
"""
SELECT_PREVIOUS = """
SELECT coalesce(ap_id, $4 || '/messages/m/' || uuid::text) FROM messages
WHERE conversation_id = $1 AND (created_at, id) < ($2, $3)
ORDER BY created_at DESC, id DESC LIMIT 1
"""
SELECT_OUTGOING_PARTIES = """
SELECT a.uri, a.inbox, u.username, coalesce(i.approved, false) AS partner
FROM conversation_participants p
LEFT JOIN users u ON u.id = p.user_id
LEFT JOIN actors a ON a.id = p.actor_id
LEFT JOIN instances i ON i.domain = a.domain
WHERE p.conversation_id = $1 AND p.left_at IS NULL AND p.user_id IS DISTINCT FROM $2
ORDER BY p.id
"""


async def outgoing(conn: Conn, keyring: Keyring, base_url: str, message_id: int) -> OutgoingMessage | None:
    """What ``federation.outbox`` sends for one local message (None: not a local one)."""
    row = await conn.fetchrow(SELECT_OUTGOING, message_id)
    if row is None:
        return None
    sealer = sealer_of(
        keyring, {"id": row["conversation_id"], "key_id": row["key_id"], "wrapped_key": row["wrapped_key"]}
    )
    previous = await conn.fetchval(
        SELECT_PREVIOUS, row["conversation_id"], row["created_at"], row["id"], base_url
    )
    parties = await conn.fetch(SELECT_OUTGOING_PARTIES, row["conversation_id"], row["author_user_id"])
    return OutgoingMessage(
        row["uuid"],
        row["username"],
        row["ap_context"],
        sealer.open("subject", row["subject_sealed"]),
        sealer.open(_body_what(row["uuid"], "source"), row["source_sealed"]),
        sealer.open(_body_what(row["uuid"], "html"), row["html_sealed"]),
        row["created_at"],
        previous,
        [OutgoingParty(p["uri"], p["inbox"], p["username"], p["partner"]) for p in parties],
    )


SELECT_SERVED = """
SELECT m.id FROM messages m
WHERE m.uuid = $1 AND m.author_user_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM conversation_participants p JOIN actors a ON a.id = p.actor_id
              WHERE p.conversation_id = m.conversation_id AND a.domain = $2)
"""
SELECT_CONTEXT_SERVED = """
SELECT c.id FROM conversations c
WHERE c.ap_context = $1
  AND EXISTS (SELECT 1 FROM conversation_participants p JOIN actors a ON a.id = p.actor_id
              WHERE p.conversation_id = c.id AND a.domain = $2)
"""
SELECT_CONTEXT_ITEMS = """
SELECT coalesce(ap_id, $2 || '/messages/m/' || uuid::text) AS uri FROM messages
WHERE conversation_id = $1 ORDER BY created_at, id
"""


async def served_to_server(
    conn: Conn, keyring: Keyring, base_url: str, message_uuid: uuid.UUID, domain: str
) -> OutgoingMessage | None:
    """A local message for a signed GET from ``domain``: only a participant's server gets it."""
    message_id = await conn.fetchval(SELECT_SERVED, message_uuid, domain)
    return None if message_id is None else await outgoing(conn, keyring, base_url, message_id)


async def context_for_server(conn: Conn, base_url: str, context: str, domain: str) -> list[str] | None:
    """The ids of a conversation's messages, for a participant's server only (else None)."""
    conversation_id = await conn.fetchval(SELECT_CONTEXT_SERVED, context, domain)
    if conversation_id is None:
        return None
    return [r["uri"] for r in await conn.fetch(SELECT_CONTEXT_ITEMS, conversation_id, base_url)]


@dataclass(frozen=True)
class IncomingMessage:
    """A private message from another server, verified and parsed by federation."""

    author_actor_id: int
    author_partner: bool
    ap_id: str
    context: str | None
    in_reply_to: str | None
    subject: str | None
    html: str
    source: str
    local_user_ids: list[int]
    other_actor_ids: list[int]


SELECT_LOCAL_TARGETS = """
SELECT u.id FROM users u LEFT JOIN message_preferences p ON p.user_id = u.id
WHERE u.id = ANY ($1::bigint[]) AND u.status = 'approved'
  AND coalesce(p.accept_from, 'all') = 'all'
  AND NOT EXISTS (SELECT 1 FROM message_blocks b WHERE b.user_id = u.id AND b.blocked_actor_id = $2)
"""
SELECT_BY_CONTEXT = "SELECT id, key_id, wrapped_key FROM conversations WHERE ap_context = $1"
SELECT_BY_MESSAGE = """
SELECT c.id, c.key_id, c.wrapped_key FROM messages m JOIN conversations c ON c.id = m.conversation_id
WHERE m.ap_id = $1 OR m.uuid::text = $2
"""
IS_PARTICIPANT = """
SELECT EXISTS (SELECT 1 FROM conversation_participants WHERE conversation_id = $1 AND actor_id = $2)
"""
SUBJECT_OF_LINE = 80


def _subject_of(message: IncomingMessage) -> str:
    if message.subject and message.subject.strip():
        return " ".join(message.subject.split())[:MAX_SUBJECT]
    first = markup.to_plain(message.source, SUBJECT_OF_LINE)
    return first or "(sans sujet)"


async def _existing(
    conn: asyncpg.Connection, keyring: Keyring, base_url: str, message: IncomingMessage
) -> Sealer | None:
    row = await conn.fetchrow(SELECT_BY_CONTEXT, message.context) if message.context else None
    if row is None and message.in_reply_to:
        prefix = f"{base_url}/messages/m/"
        local = message.in_reply_to[len(prefix) :] if message.in_reply_to.startswith(prefix) else ""
        row = await conn.fetchrow(SELECT_BY_MESSAGE, message.in_reply_to, local)
    return None if row is None else sealer_of(keyring, row)


async def receive_remote(
    conn: asyncpg.Connection, keyring: Keyring, base_url: str, message: IncomingMessage
) -> int | None:
    """Store a private message from another server; its id, or None when dropped: the
    messages policy refuses its server, or none of the local people it is addressed to
    accepts it (a preference, or a block: the sender is not told)."""
    if not remote_allowed(await remote_policy(conn), message.author_partner):
        return None
    targets = [
        r["id"]
        for r in await conn.fetch(SELECT_LOCAL_TARGETS, message.local_user_ids, message.author_actor_id)
    ]
    if not targets:
        return None
    author = Party(actor_id=message.author_actor_id)
    async with conn.transaction():
        sealer = await _existing(conn, keyring, base_url, message)
        if sealer is None:
            sealer = await _new_conversation(
                conn, keyring, _subject_of(message), message.context or message.ap_id, None
            )
            parties = [
                author,
                *(Party(user_id=u) for u in targets),
                *(Party(actor_id=a) for a in message.other_actor_ids),
            ]
            await _add_participants(conn, sealer.conversation_id, parties, author)
        elif not await conn.fetchval(IS_PARTICIPANT, sealer.conversation_id, message.author_actor_id):
            return None  # nobody joins a conversation by writing to it
        html = markup.sanitize(message.html)
        return await _add_message(conn, sealer, NewMessage(author, message.source, html, message.ap_id))


# --- Attachments ---------------------------------------------------------------------
# A file goes through node.uploads (kind from the content, metadata stripped) before it
# comes here; it is then sealed whole with the conversation's key and stored under a
# random ``.bin`` name: the stored file says neither its kind nor its name.

FILES_AREA = "message_files"
MAX_ATTACHMENTS = 1  # per message, from the web form

INSERT_ATTACHMENT = """
INSERT INTO message_attachments (message_id, uuid, stored_name, kind, size, name_sealed)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
"""
SELECT_ATTACHMENTS = """
SELECT id, message_id, uuid, kind, size, name_sealed FROM message_attachments
WHERE message_id = ANY ($1::bigint[]) ORDER BY id
"""
SELECT_ATTACHMENT = f"""
SELECT t.id, t.uuid, t.stored_name, t.kind, t.size, t.name_sealed, m.conversation_id
FROM message_attachments t JOIN messages m ON m.id = t.message_id
WHERE t.id = $1 AND m.conversation_id = $2 AND {VISIBLE.format(viewer="$3")}
"""
SELECT_STORED_FILES = """
SELECT t.stored_name FROM message_attachments t JOIN messages m ON m.id = t.message_id
WHERE m.conversation_id = $1
"""


@dataclass(frozen=True)
class NewAttachment:
    """A cleaned file (``node.uploads.CleanFile``) to attach: its path, kind and name."""

    path: Path
    kind: str
    size: int
    name: str


@dataclass(frozen=True)
class Attachment:
    id: int
    message_id: int
    kind: str
    size: int
    name: str


def _file_what(attachment_uuid: uuid.UUID, part: str) -> str:
    return f"attachment {attachment_uuid} {part}"


def _seal_file(sealer: Sealer, attachment_uuid: uuid.UUID, source: Path, target: Path) -> None:
    """Seal ``source`` into ``target`` (run in a thread: up to the upload cap in memory)."""
    target.write_bytes(sealer.seal_bytes(_file_what(attachment_uuid, "file"), source.read_bytes()))


async def _store_attachment(
    conn: asyncpg.Connection, storage: Storage, sealer: Sealer, message_id: int, attachment: NewAttachment
) -> None:
    attachment_uuid = uuid.uuid4()
    sealed_path = attachment.path.with_name(attachment.path.name + ".sealed")
    try:
        await asyncio.to_thread(_seal_file, sealer, attachment_uuid, attachment.path, sealed_path)
        stored = await storage.put_file(sealed_path, "bin")
    finally:
        sealed_path.unlink(missing_ok=True)
    name = sealer.seal(_file_what(attachment_uuid, "name"), attachment.name)
    await conn.execute(
        INSERT_ATTACHMENT, message_id, attachment_uuid, stored, attachment.kind, attachment.size, name
    )


async def attachments_of(
    conn: Conn, sealer: Sealer, message_ids: Sequence[int]
) -> dict[int, list[Attachment]]:
    shown: dict[int, list[Attachment]] = {}
    for row in await conn.fetch(SELECT_ATTACHMENTS, list(message_ids)):
        name = sealer.open(_file_what(row["uuid"], "name"), row["name_sealed"])
        shown.setdefault(row["message_id"], []).append(
            Attachment(row["id"], row["message_id"], row["kind"], row["size"], name)
        )
    return shown


@dataclass(frozen=True)
class AttachmentFile:
    kind: str
    name: str
    data: bytes


async def attachment_file(
    conn: Conn, keyring: Keyring, storage: Storage, user: User, conversation_id: int, attachment_id: int
) -> AttachmentFile:
    """An attachment of a message the participant sees, opened (NotFound otherwise)."""
    await _participant(conn, user, conversation_id)
    row = await conn.fetchrow(SELECT_ATTACHMENT, attachment_id, conversation_id, user.id)
    if row is None:
        raise NotFound()
    sealer = await sealer_for(conn, keyring, conversation_id)
    try:
        handle = await storage.open(row["stored_name"])
    except (OSError, StorageError) as exc:
        raise NotFound() from exc
    with handle:
        sealed = await asyncio.to_thread(handle.read)
    data = sealer.open_bytes(_file_what(row["uuid"], "file"), sealed)
    return AttachmentFile(row["kind"], sealer.open(_file_what(row["uuid"], "name"), row["name_sealed"]), data)
