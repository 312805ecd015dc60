"""Server-side sessions (design §5).

The browser holds a random token in an ``HttpOnly`` cookie; the ``sessions`` table
holds its SHA-256 only, so a database leak does not leak live sessions. A session
is created (rotated) at every login and deleted at logout; a password change
deletes every session of the member but the one making the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

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


INSERT_SESSION = """
INSERT INTO sessions (token_hash, user_id, expires_at, user_agent, ip)
VALUES ($1, $2, now() + $3::interval, $4, $5)
RETURNING id, last_seen_at
"""
SELECT_SESSION = """
SELECT s.id AS session_id, s.last_seen_at, u.id, u.username, u.display_name, u.role, u.status
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE s.token_hash = $1 AND s.expires_at > now()
"""
TOUCH_SESSION = "UPDATE sessions SET last_seen_at = now(), expires_at = now() + $2::interval WHERE id = $1"
DELETE_SESSION = "DELETE FROM sessions WHERE token_hash = $1"
DELETE_OTHER_SESSIONS = "DELETE FROM sessions WHERE user_id = $1 AND id <> $2"
DELETE_USER_SESSIONS = "DELETE FROM sessions WHERE user_id = $1"
DELETE_ONE_OF_USER = "DELETE FROM sessions WHERE user_id = $1 AND id = $2"
LIST_SESSIONS = """
SELECT id, created_at, last_seen_at, user_agent, ip FROM sessions
WHERE user_id = $1 AND expires_at > now() ORDER BY last_seen_at DESC
"""


async def create(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, user_agent: str, ip: str) -> str:
    """Open a new session for ``user_id``; return the token to put in the cookie."""
    token = new_token()
    await conn.fetchrow(INSERT_SESSION, token_hash(token), user_id, LIFETIME, user_agent[:300], ip)
    return token


async def lookup(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> Session | None:
    row = await conn.fetchrow(SELECT_SESSION, token_hash(token))
    if row is None:
        return None
    user = User(row["id"], row["username"], row["display_name"], row["role"], row["status"])
    return Session(row["session_id"], user, token, row["last_seen_at"])


async def touch(conn: asyncpg.Connection | asyncpg.Pool, session: Session, now: datetime) -> None:
    """Extend a live session, at most once every few minutes (keeps writes rare)."""
    if now - session.last_seen_at >= TOUCH_EVERY:
        await conn.execute(TOUCH_SESSION, session.id, LIFETIME)


async def end(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> None:
    await conn.execute(DELETE_SESSION, token_hash(token))


async def end_others(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, keep_session_id: int) -> None:
    await conn.execute(DELETE_OTHER_SESSIONS, user_id, keep_session_id)


async def end_all(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> None:
    await conn.execute(DELETE_USER_SESSIONS, user_id)


async def end_one(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, session_id: int) -> None:
    await conn.execute(DELETE_ONE_OF_USER, user_id, session_id)


async def list_for(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_SESSIONS, user_id)
