"""A member changes her e-mail address.

When the node sends e-mail, the change waits (table ``email_changes``, owned here)
until the link sent to the new address is used, so nobody binds an address they do
not read; the old address is told. An address already used by another account gets,
instead of the link, a message saying so — the member's page says the same in both
cases (whose address is a member's is nobody's business, as at registration). Without
e-mail the change is made at once. Every change is audited.

    request ──> waiting ──confirm (within 48 h)──> applied
                   └──expires / a newer request──> dead
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from node import audit, mail
from node.accounts import EMAIL_OWNER, check_email
from node.errors import BadRequest, Conflict
from node.security import new_token, token_hash, verify_password

LIFETIME = timedelta(hours=48)
MAX_TOKEN = 100

SELECT_ACCOUNT = "SELECT username, email, password_hash FROM users WHERE id = $1"
SPEND_WAITING = "UPDATE email_changes SET used_at = now() WHERE user_id = $1 AND used_at IS NULL"
INSERT_CHANGE = """
INSERT INTO email_changes (user_id, new_email, token_hash, expires_at) VALUES ($1, $2, $3, now() + $4::interval)
"""
SELECT_WAITING = """
SELECT c.id, c.user_id, c.new_email, u.username FROM email_changes c JOIN users u ON u.id = c.user_id
WHERE c.token_hash = $1 AND c.used_at IS NULL AND c.expires_at > now() AND u.status <> 'deleted'
FOR UPDATE OF c
"""
SET_EMAIL = "UPDATE users SET email = $2 WHERE id = $1"
SPEND_ONE = "UPDATE email_changes SET used_at = now() WHERE id = $1"

CONFIRM_MAIL = """Bonjour,

Vous avez demandé que cette adresse devienne celle de votre compte « {username} » sur {node}.
Pour confirmer, ouvrez ce lien dans les 48 heures :
{url}

Si vous n'avez rien demandé, ignorez ce message : rien ne changera.
"""
TAKEN_MAIL = """Bonjour,

Quelqu'un a demandé que cette adresse devienne celle du compte « {username} » sur {node}.
Cette adresse est déjà celle d'un autre compte du nœud : rien n'a changé.
Si c'était vous, connectez-vous avec ce compte-là, ou demandez de l'aide aux responsables du nœud.
"""
NOTICE_MAIL = """Bonjour,

Un changement d'adresse e-mail a été demandé pour votre compte « {username} » sur {node}.
Il ne prendra effet que lorsque la nouvelle adresse l'aura confirmé.
Si vous n'êtes pas à l'origine de cette demande, changez votre mot de passe et prévenez les responsables du nœud.
"""


async def request_change(
    conn: asyncpg.Connection,
    user_id: int,
    password: str,
    new_email: str,
    *,
    base_url: str,
    node_name: str,
    by_mail: bool,
) -> str:
    """``"sent"`` (a link is on its way to the new address) or ``"changed"`` (no e-mail on
    this node: the address is changed at once)."""
    account = await conn.fetchrow(SELECT_ACCOUNT, user_id)
    if account is None or not verify_password(account["password_hash"], password):
        raise BadRequest(fields={"current_password": "Le mot de passe est incorrect."})
    new_email = check_email(new_email)
    if new_email.lower() == account["email"].lower():
        raise BadRequest(fields={"email": "C'est déjà l'adresse de votre compte."})
    owner = await conn.fetchval(EMAIL_OWNER, new_email)
    if not by_mail:
        if owner is not None:
            raise Conflict(fields={"email": "Cette adresse ne peut pas être utilisée."})
        try:
            async with conn.transaction():
                await conn.execute(SET_EMAIL, user_id, new_email)
                await _audit(conn, user_id, account["username"], "direct")
        except asyncpg.UniqueViolationError as exc:  # taken between the look-up and the update
            raise Conflict(fields={"email": "Cette adresse ne peut pas être utilisée."}) from exc
        return "changed"
    words = {"username": account["username"], "node": node_name}
    async with conn.transaction():
        await conn.execute(SPEND_WAITING, user_id)
        if owner is None:
            token = new_token()
            await conn.execute(INSERT_CHANGE, user_id, new_email, token_hash(token), LIFETIME)
            url = f"{base_url}/compte/adresse/confirmer/{token}"
            body = CONFIRM_MAIL.format(url=url, **words)
        else:
            body = TAKEN_MAIL.format(**words)
        subject = f"{node_name} : confirmer votre nouvelle adresse"
        await mail.enqueue_mail(
            conn, to=new_email, subject=subject, body=body, kind="email_change", user_id=user_id
        )
        if not account["email"].endswith("@localhost"):
            await mail.enqueue_mail(
                conn,
                to=account["email"],
                subject=f"{node_name} : changement d'adresse demandé",
                body=NOTICE_MAIL.format(**words),
                kind="email_change_notice",
                user_id=user_id,
            )
        await _audit(conn, user_id, account["username"], "requested")
    return "sent"


async def confirm(conn: asyncpg.Connection, token: str) -> bool:
    """Apply the change a live link stands for; False when the link is not live (or the
    address was taken meanwhile)."""
    if not token or len(token) > MAX_TOKEN:
        return False
    try:
        return await _apply(conn, token)
    except asyncpg.UniqueViolationError:  # the address was taken meanwhile
        return False


async def _apply(conn: asyncpg.Connection, token: str) -> bool:
    async with conn.transaction():
        row = await conn.fetchrow(SELECT_WAITING, token_hash(token))
        if row is None or await conn.fetchval(EMAIL_OWNER, row["new_email"]) is not None:
            return False
        await conn.execute(SET_EMAIL, row["user_id"], row["new_email"])
        await conn.execute(SPEND_ONE, row["id"])
        await _audit(conn, row["user_id"], row["username"], "confirmed")
    return True


async def _audit(conn: asyncpg.Connection, user_id: int, username: str, step: str) -> None:
    await audit.record(
        conn,
        "account.email",
        actor_id=user_id,
        actor_label=username,
        target_type="user",
        target_id=user_id,
        details={"username": username, "step": step},
    )
