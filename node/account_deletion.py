"""A member deletes her own account.

What stays and what goes (one transaction, audited)::

    posts        « kept »:    stay in their threads, signed « membre supprimé »
                 « removed »: each deleted like a member deletes her own post
                              (tombstone in the thread, Delete federated)
    account row  kept as a tombstone (status 'deleted'): the username stays reserved
                 (nobody may take the handle other servers knew); name, e-mail,
                 password, profile, motivation, time zone wiped
    sessions, reset links, address changes, queued e-mail, follows, expert roles: deleted
    federation   outbox event person.deleted → Delete{Person} from the member's actor to
                 the follower instances of every community where she posted; her actor
                 document then answers 404 like any missing member

Private conversations keep her past messages for the other participants, signed
« membre supprimé »; she leaves each of them.
"""

from __future__ import annotations

import secrets

import asyncpg

from node import audit, events, sessions, threads
from node.errors import BadRequest
from node.security import hash_password, verify_password
from node.sessions import User

DELETED_NAME = "membre supprimé"
CHOICES = ("keep", "remove")

SELECT_HASH = "SELECT password_hash FROM users WHERE id = $1 AND status <> 'deleted'"
SELECT_OWN_POSTS = """
SELECT p.id FROM posts p WHERE p.author_id = $1 AND p.deleted_at IS NULL ORDER BY p.is_opening, p.id DESC
"""
# The federated communities where the member posted: their followers' instances know
# her and get the Delete (listed now: with « removed » her posts are gone when it is built).
SELECT_COMMUNITIES = """
SELECT DISTINCT c.id, c.visibility
FROM posts p JOIN threads t ON t.id = p.thread_id JOIN communities c ON c.id = t.community_id
WHERE p.author_id = $1 AND c.visibility IN ('public', 'members')
"""
SCRUB = """
UPDATE users SET status = 'deleted', deleted_at = now(), display_name = $2,
       email = 'supprime-' || id || '@localhost', password_hash = $3, profession = 'autre',
       profession_detail = '', organisation = '', country = '', motivation = '', bio = '', timezone = ''
WHERE id = $1
"""
CLEANUP = (
    "DELETE FROM password_resets WHERE user_id = $1",
    "DELETE FROM email_changes WHERE user_id = $1",
    "DELETE FROM mail_queue WHERE user_id = $1",
    "DELETE FROM community_follows WHERE user_id = $1",
    "DELETE FROM community_experts WHERE user_id = $1",
    "UPDATE conversation_participants SET left_at = now() WHERE user_id = $1 AND left_at IS NULL",
)


async def delete_account(conn: asyncpg.Connection, member: User, password: str, posts: str) -> None:
    """Delete ``member``'s account once her password is confirmed; ``posts`` is
    ``keep`` or ``remove``."""
    if posts not in CHOICES:
        raise BadRequest(fields={"posts": "Choisissez ce que deviennent vos messages."})
    if not verify_password(await conn.fetchval(SELECT_HASH, member.id), password):
        raise BadRequest(fields={"current_password": "Le mot de passe est incorrect."})
    async with conn.transaction():
        communities = [dict(r) for r in await conn.fetch(SELECT_COMMUNITIES, member.id)]
        removed = 0
        if posts == "remove":
            for row in await conn.fetch(SELECT_OWN_POSTS, member.id):
                await threads.delete_post(conn, row["id"], member)
                removed += 1
        for statement in CLEANUP:
            await conn.execute(statement, member.id)
        await conn.execute(SCRUB, member.id, DELETED_NAME, hash_password(secrets.token_urlsafe(32)))
        await sessions.end_all(conn, member.id)
        wrote_in = tuple(events.WroteIn(c["id"], c["visibility"]) for c in communities)
        await events.emit(conn, "person.deleted", events.PersonDeleted(member.id, wrote_in))
        await audit.record(
            conn,
            "account.delete",
            actor_id=member.id,
            actor_label=member.username,
            target_type="user",
            target_id=member.id,
            details={"username": member.username, "posts": posts, "removed": removed},
        )
