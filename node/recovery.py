"""One-time password reset links: nobody is locked out for good.

A link's life (table ``password_resets``, owned by this module)::

    issue ──> live ──use──> spent            (the password is set)
                │
                ├──another link of the account is used──> spent
                └──expires_at passes──> dead (never usable again)

Links are issued by an admin (web page or ``vbg-node admin reset-password``: the
admin passes the link on by phone or in person) or, when the node sends e-mail,
by the person herself. The table keeps only the SHA-256 of a link's token. Using a
link sets the password, spends the account's other live links, ends every session
of the account and writes the audit log, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from node import audit, mail, sessions
from node.accounts import check_password
from node.db import Conn
from node.errors import BadRequest
from node.security import hash_password, new_token, token_hash

ADMIN_LIFETIME = timedelta(hours=72)  # time to reach a partner by phone
EMAIL_LIFETIME = timedelta(hours=1)
MAX_TOKEN = 100
VIAS = ("admin", "cli", "email")

INSERT_RESET = """
INSERT INTO password_resets (user_id, token_hash, via, issued_by, expires_at)
VALUES ($1, $2, $3, $4, now() + $5::interval)
RETURNING expires_at
"""
SELECT_USERNAME = "SELECT username FROM users WHERE id = $1"
SELECT_LIVE = """
SELECT r.id, r.user_id, u.username, u.display_name, r.expires_at
FROM password_resets r JOIN users u ON u.id = r.user_id
WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now()
"""
# The row is locked so that two uses of one link at once set the password once.
SELECT_LIVE_LOCKED = SELECT_LIVE + " FOR UPDATE OF r"
SELECT_BY_LOGIN = """
SELECT id, username, email, status FROM users
WHERE (lower(email) = lower($1) OR lower(username) = lower($1))
  AND NOT email_conflict  -- a registration that gave another account's address owns no mailbox (0076)
ORDER BY lower(username) = lower($1) DESC
LIMIT 1
"""
SPEND_ALL = "UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL"
# A spent or expired link opens nothing (SELECT_LIVE): it is forgotten a day later.
PURGE_DEAD = "DELETE FROM password_resets WHERE coalesce(used_at, expires_at) < now() - interval '1 day'"
SET_PASSWORD = "UPDATE users SET password_hash = $2, password_changed_at = now() WHERE id = $1"


@dataclass(frozen=True)
class Link:
    """A freshly issued link: the token (shown once, never stored) and its expiry."""

    token: str
    expires_at: object

    def path(self) -> str:
        return f"/reinitialiser/{self.token}"


@dataclass(frozen=True)
class Target:
    """Whose password a live link resets."""

    reset_id: int
    user_id: int
    username: str
    display_name: str


async def issue(
    conn: asyncpg.Connection,
    user_id: int,
    *,
    via: str,
    actor_id: int | None = None,
    actor_label: str = "",
    lifetime: timedelta = ADMIN_LIFETIME,
) -> Link:
    """A new one-time link for ``user_id``, audited; earlier live links stay valid
    until used or expired (using any one spends them all)."""
    if via not in VIAS:
        raise ValueError(via)
    async with conn.transaction():
        username = await conn.fetchval(SELECT_USERNAME, user_id)
        if username is None:
            raise BadRequest("Ce compte n'existe pas.")
        token = new_token()
        expires_at = await conn.fetchval(INSERT_RESET, user_id, token_hash(token), via, actor_id, lifetime)
        await audit.record(
            conn,
            "password.reset_link",
            actor_id=actor_id,
            actor_label=actor_label,
            target_type="user",
            target_id=user_id,
            details={"username": username, "via": via, "expires_at": expires_at.isoformat()},
        )
    return Link(token, expires_at)


async def find(conn: Conn, token: str) -> Target | None:
    """The account a live link resets, or None (unknown, used or expired: one answer)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    row = await conn.fetchrow(SELECT_LIVE, token_hash(token))
    if row is None:
        return None
    return Target(row["id"], row["user_id"], row["username"], row["display_name"])


async def use(conn: asyncpg.Connection, token: str, new: str, confirm: str) -> Target | None:
    """Set the password through a live link; None when the link is not live.

    Ends every session of the account and spends its other links."""
    check_password(new, "new_password")
    if new != confirm:
        raise BadRequest(fields={"new_password_confirm": "Les deux mots de passe ne correspondent pas."})
    if not token or len(token) > MAX_TOKEN:
        return None
    async with conn.transaction():
        row = await conn.fetchrow(SELECT_LIVE_LOCKED, token_hash(token))
        if row is None:
            return None
        target = Target(row["id"], row["user_id"], row["username"], row["display_name"])
        await conn.execute(SET_PASSWORD, target.user_id, hash_password(new))
        await conn.execute(SPEND_ALL, target.user_id)
        await sessions.end_all(conn, target.user_id)
        await audit.record(
            conn,
            "password.reset",
            actor_id=target.user_id,
            actor_label=target.username,
            target_type="user",
            target_id=target.user_id,
            details={"username": target.username},
        )
    return target


RESET_MAIL = """Bonjour,

Une demande de nouveau mot de passe a été faite pour le compte « {username} » sur {node}.

Pour choisir un nouveau mot de passe, ouvrez ce lien dans l'heure qui vient (il ne sert qu'une fois) :
{url}

Si vous n'avez rien demandé, ignorez ce message : votre mot de passe ne change pas.
"""


async def send_by_email(conn: asyncpg.Connection, login: str, *, base_url: str, node_name: str) -> None:
    """Queue a one-hour link to the account whose e-mail or username is ``login``.

    Silent when there is no such account, or it is refused or suspended, or it has no
    real address: the page answers the same in every case (no oracle)."""
    login = login.strip()
    if not login or len(login) > 254:
        return
    row = await conn.fetchrow(SELECT_BY_LOGIN, login)
    if row is None or row["status"] not in ("approved", "pending") or row["email"].endswith("@localhost"):
        return
    async with conn.transaction():
        link = await issue(
            conn,
            row["id"],
            via="email",
            actor_id=row["id"],
            actor_label=row["username"],
            lifetime=EMAIL_LIFETIME,
        )
        await mail.enqueue_mail(
            conn,
            to=row["email"],
            subject=f"{node_name} : choisir un nouveau mot de passe",
            body=RESET_MAIL.format(username=row["username"], node=node_name, url=base_url + link.path()),
            kind="password_reset",
            user_id=row["id"],
        )


async def purge_dead(conn: Conn) -> int:
    """Delete links spent or expired for more than a day; how many."""
    status: str = await conn.execute(PURGE_DEAD)
    return int(status.split()[-1])
