"""Server-side sessions (docs/architecture.md §5).

The browser holds a random token in an ``HttpOnly`` cookie; the ``sessions`` table
holds its SHA-256 only, so a database leak does not leak live sessions. A session
is created (rotated) at every login and deleted at logout; a password change
deletes every session of the member but the one making the change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import asyncpg

from node.db import Conn
from node.security import new_token, token_hash

COOKIE = "vbg_session"
ANON_COOKIE = "vbg_anon"
LIFETIME = timedelta(days=30)
TOUCH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    status: str
    # private messages not yet read (node.messages), read with the session
    unread_messages: int = 0
    timezone: str = ""  # empty: the node's VBG_TIMEZONE
    # unread notifications (node.notifications), read with the session, capped at 100
    unread_notifications: int = 0
    totp_enabled: bool = False  # a second factor is on (node.two_factor)

    @property
    def is_approved(self) -> bool:
        return self.status == "approved"

    @property
    def is_moderator(self) -> bool:
        return self.is_approved and self.role in {"moderator", "admin"}

    @property
    def is_admin(self) -> bool:
        return self.is_approved and self.role == "admin"


@dataclass(frozen=True)
class Session:
    id: int
    user: User
    token: str
    last_seen_at: datetime
    expires_at: datetime | None = None


INSERT_SESSION = """
INSERT INTO sessions (token_hash, user_id, expires_at, user_agent, ip)
VALUES ($1, $2, now() + $3::interval, $4, $5)
RETURNING id, last_seen_at
"""
SELECT_SESSION = """
SELECT s.id AS session_id, s.last_seen_at, s.expires_at, u.id, u.username, u.display_name, u.role, u.status,
       u.timezone, u.totp_enabled_at IS NOT NULL AS totp_enabled,
       (SELECT coalesce(sum(p.unread), 0) FROM conversation_participants p
        WHERE p.user_id = u.id AND p.left_at IS NULL)::int AS unread_messages,
       (SELECT count(*) FROM (SELECT 1 FROM notifications n
        WHERE n.user_id = u.id AND n.read_at IS NULL LIMIT 100) unread)::int AS unread_notifications
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE s.token_hash = $1 AND s.expires_at > now()
"""
TOUCH_SESSION = "UPDATE sessions SET last_seen_at = now(), expires_at = now() + $2::interval WHERE id = $1"
DELETE_SESSION = "DELETE FROM sessions WHERE token_hash = $1"
DELETE_OTHER_SESSIONS = "DELETE FROM sessions WHERE user_id = $1 AND id <> $2"
DELETE_USER_SESSIONS = "DELETE FROM sessions WHERE user_id = $1"
DELETE_ONE_OF_USER = "DELETE FROM sessions WHERE user_id = $1 AND id = $2"
# An expired session is never read again (SELECT_SESSION, LIST_SESSIONS): its address and
# browser are not kept past it.
PURGE_EXPIRED = "DELETE FROM sessions WHERE expires_at < now()"
LIST_SESSIONS = """
SELECT id, created_at, last_seen_at, user_agent, ip FROM sessions
WHERE user_id = $1 AND expires_at > now() ORDER BY last_seen_at DESC
"""


async def create(conn: Conn, user_id: int, user_agent: str, ip: str) -> str:
    """Open a new session for ``user_id``; return the token to put in the cookie."""
    token = new_token()
    await conn.fetchrow(INSERT_SESSION, token_hash(token), user_id, LIFETIME, user_agent[:300], ip)
    return token


async def lookup(conn: Conn, token: str) -> Session | None:
    row = await conn.fetchrow(SELECT_SESSION, token_hash(token))
    if row is None:
        return None
    user = User(
        row["id"],
        row["username"],
        row["display_name"],
        row["role"],
        row["status"],
        row["unread_messages"],
        row["timezone"],
        row["unread_notifications"],
        totp_enabled=row["totp_enabled"],
    )
    return Session(row["session_id"], user, token, row["last_seen_at"], row["expires_at"])


async def touch(conn: Conn, session: Session, now: datetime) -> Session:
    """Extend a live session, at most once every few minutes (keeps writes rare);
    returns the session as it now stands."""
    if now - session.last_seen_at >= TOUCH_EVERY:
        await conn.execute(TOUCH_SESSION, session.id, LIFETIME)
        return replace(session, last_seen_at=now, expires_at=now + LIFETIME)
    return session


async def purge_expired(conn: Conn) -> int:
    """Delete expired sessions; how many."""
    status: str = await conn.execute(PURGE_EXPIRED)
    return int(status.split()[-1])


async def end(conn: Conn, token: str) -> None:
    await conn.execute(DELETE_SESSION, token_hash(token))


async def end_others(conn: Conn, user_id: int, keep_session_id: int) -> None:
    await conn.execute(DELETE_OTHER_SESSIONS, user_id, keep_session_id)


async def end_all(conn: Conn, user_id: int) -> None:
    await conn.execute(DELETE_USER_SESSIONS, user_id)


async def end_one(conn: Conn, user_id: int, session_id: int) -> None:
    await conn.execute(DELETE_ONE_OF_USER, user_id, session_id)


async def list_for(conn: Conn, user_id: int) -> list[asyncpg.Record]:
    result: list[asyncpg.Record] = await conn.fetch(LIST_SESSIONS, user_id)
    return result


CHANNEL = "vbg_sessions"  # payload: a user id (a session of theirs ended, or the account changed)
CACHE_TTL = 30.0  # seconds: the longest a cached session lives even without notifications
CACHE_SIZE = 10_000


class SessionCache:
    """Sessions looked up recently, so a page costs no session query.

    Only trusted while :attr:`active`: a LISTEN connection receives ``vbg_sessions``
    notifications (sent by triggers when a session is deleted — logout, password
    change, suspension — or an account's name, role or status changes) and evicts
    that member's sessions at once, in every process. When the listening connection
    is lost the cache is emptied and bypassed until it is back. Entries also expire
    after ``CACHE_TTL`` seconds and at the session's own expiry.
    """

    def __init__(self, ttl: float = CACHE_TTL, size: int = CACHE_SIZE) -> None:
        self.ttl = ttl
        self.size = size
        self.active = False
        # Bumped at every eviction: a lookup that read the database before an eviction
        # does not put what it read (it may be the very session just ended).
        self.epoch = 0
        self._items: dict[bytes, tuple[float, Session]] = {}
        self._listener: asyncpg.Connection | None = None

    def get(self, key: bytes, now: datetime) -> Session | None:
        if not self.active:
            return None
        item = self._items.get(key)
        if item is None:
            return None
        stamp, session = item
        if time.monotonic() - stamp > self.ttl or (
            session.expires_at is not None and session.expires_at <= now
        ):
            self._items.pop(key, None)
            return None
        return session

    def put(self, key: bytes, session: Session, epoch: int) -> None:
        if not self.active or epoch != self.epoch:
            return
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[key] = (time.monotonic(), session)

    def evict_user(self, user_id: int) -> None:
        self.epoch += 1
        for key in [k for k, (_, s) in self._items.items() if s.user.id == user_id]:
            self._items.pop(key, None)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            self.evict_user(int(payload))
        except ValueError:
            self.epoch += 1
            self._items.clear()

    def _lost(self, _conn: object) -> None:
        self.active = False
        self.epoch += 1
        self._items.clear()

    async def start(self, dsn: str) -> None:
        """Listen on a connection of its own (not the pool's); then the cache is used."""
        conn = await asyncpg.connect(dsn)
        await conn.add_listener(CHANNEL, self._notified)
        conn.add_termination_listener(self._lost)
        self._listener = conn
        self.active = True

    async def stop(self) -> None:
        self.active = False
        self.epoch += 1
        self._items.clear()
        if self._listener is not None:
            await self._listener.close()
            self._listener = None


async def lookup_cached(
    pool: asyncpg.Pool, cache: SessionCache | None, token: str, now: datetime
) -> Session | None:
    """:func:`lookup` through ``cache`` when it is listening; touches the session."""
    key = token_hash(token)
    epoch = cache.epoch if cache is not None else 0
    session = cache.get(key, now) if cache is not None else None
    if session is None:
        session = await lookup(pool, token)
        if session is None:
            return None
    touched = await touch(pool, session, now)
    if cache is not None:
        cache.put(key, touched, epoch)
    return touched
