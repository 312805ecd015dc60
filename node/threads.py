"""Threads and replies: writing them (edit history, tombstones, outbox events) and
reading them (thread pages, thread lists, unread markers).

Every write loads its target through the visibility rules of
``node.communities`` (what may not be read is missing: NotFound), runs in one
transaction, and — when the community federates — writes its outbox event in
that same transaction (docs/architecture.md §2):

    kind  post.created | post.updated | post.deleted | thread.pinned | thread.unpinned
          | post.liked | post.unliked
    payload {"post_id", "thread_id", "community_id", "actor_user_id"}

Markdown is rendered once, at write time (``posts.content_html``); the search
vector is kept by a trigger (migration 0020).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import asyncpg

from node import access, audit, events, keyset, markup, notifications
from node.communities import (
    Community,
    author_listed_sql,
    author_shown_sql,
    can_read,
    federated,
    is_reader,
    listed_sql,
    readable_sql,
)
from node.db import MAX_BIGINT, Conn
from node.errors import BadRequest, Forbidden, NotFound
from node.i18n import _
from node.sessions import User

MAX_TITLE = 200
MAX_BODY = 50_000
MAX_REASON = 500
PAGE_SIZE = 50  # replies per thread page (page 1 also holds the opening post)
LIST_PAGE_SIZE = 30  # threads per list page
LOCKED_MESSAGE = "Cette discussion est verrouillée : il n'est plus possible d'y répondre."
REMOTE_LOCKED_MESSAGE = (
    "Cette discussion est verrouillée sur le serveur de sa communauté : il n'est plus possible d'y répondre."
)
FOLLOW_PENDING_MESSAGE = (
    "L'abonnement de notre serveur à cette communauté distante attend encore l'accord de ses "
    "modérateur·rice·s : il n'est pas encore possible d'y écrire."
)
NOT_FOLLOWED_MESSAGE = (
    "Notre serveur n'est pas abonné à cette communauté distante : il n'est pas possible d'y écrire."
)
# The charter's rules a moderator names when removing a post (templates/pages/charter.html,
# same numbers); 0: another reason, said in the text.
REMOVAL_RULES: dict[int, str] = {
    2: "Informations permettant d'identifier une personne accompagnée",
    3: "Confidentialité des échanges",
    4: "Respect, bienveillance et non-jugement",
    5: "Avis présenté comme une consultation ou une procédure d'urgence",
    0: "Autre raison",
}


# --- Input ------------------------------------------------------------------


def _check_text(value: str, name: str, max_length: int, label: str) -> str:
    if "\x00" in value or "\ufffd" in value:
        raise BadRequest(fields={name: f"{label} contient des caractères invalides."})
    value = value.strip()
    if not value:
        raise BadRequest(fields={name: f"{label} est obligatoire."})
    if len(value) > max_length:
        raise BadRequest(fields={name: f"{label} est trop long ({max_length} caractères au plus)."})
    return value


def check_title(title: str) -> str:
    title = _check_text(title, "title", MAX_TITLE, "Le titre")
    return " ".join(title.split())


def check_body(body: str) -> str:
    return _check_text(body, "body", MAX_BODY, "Le message")


# --- Loading targets through the visibility rules ------------------------------

REF_COLUMNS = """
       t.id AS thread_id, t.title, t.locked, t.pinned, t.expert_answer_id, t.last_activity_at,
       t.community_id, c.name AS community_name, c.visibility, c.actor_id AS community_actor_id,
       (SELECT gf.state FROM group_follows gf WHERE gf.community_id = t.community_id) AS follow_state,
       EXISTS (SELECT 1 FROM community_experts e
               WHERE e.community_id = t.community_id AND e.user_id = $2) AS viewer_is_expert
"""
SELECT_POST_REF = f"""
SELECT p.id, p.author_id, p.is_opening, p.deleted_at, p.source, p.updated_at, {REF_COLUMNS}
FROM posts p JOIN threads t ON t.id = p.thread_id JOIN communities c ON c.id = t.community_id
WHERE p.id = $1 AND t.deleted_at IS NULL
  AND {author_shown_sql("p.remote_author_id")} AND {author_shown_sql("t.remote_author_id")}
"""
SELECT_THREAD_REF = f"""
SELECT (SELECT id FROM posts WHERE thread_id = t.id AND is_opening) AS opening_id, {REF_COLUMNS}
FROM threads t JOIN communities c ON c.id = t.community_id
WHERE t.id = $1 AND t.deleted_at IS NULL AND {author_shown_sql("t.remote_author_id")}
"""


def _readable(row: asyncpg.Record | None, viewer: User | None) -> asyncpg.Record:
    if row is None or not can_read(viewer, row["visibility"]):
        raise NotFound()
    return row


async def load_post(conn: Conn, post_id: int, viewer: User | None, *, lock: bool = False) -> asyncpg.Record:
    """A post with its thread and community, if ``viewer`` may read it (else NotFound)."""
    query = SELECT_POST_REF + (" FOR UPDATE OF p, t" if lock else "")
    return _readable(await conn.fetchrow(query, post_id, viewer.id if viewer else None), viewer)


async def load_thread(
    conn: Conn, thread_id: int, viewer: User | None, *, lock: bool = False
) -> asyncpg.Record:
    """A thread with its community, if ``viewer`` may read it (else NotFound)."""
    query = SELECT_THREAD_REF + (" FOR UPDATE OF t" if lock else "")
    return _readable(await conn.fetchrow(query, thread_id, viewer.id if viewer else None), viewer)


def may_animate(viewer: User | None, ref: asyncpg.Record) -> bool:
    """Experts of the thread's community and moderators pin, lock, mark expert answers."""
    return viewer is not None and viewer.is_approved and (viewer.is_moderator or ref["viewer_is_expert"])


def may_see_history(viewer: User | None, ref: asyncpg.Record) -> bool:
    """Animators, and the post's own author (her own words, her own versions)."""
    own = viewer is not None and viewer.is_approved and ref["author_id"] == viewer.id
    return own or may_animate(viewer, ref)


def _check_writable(ref: Mapping[str, Any], *, reply: bool = False) -> None:
    """A community of another server takes our members' posts once our node's follow is
    accepted there (the group would refuse them otherwise), and a thread its group has
    locked takes no reply, not even an animator's of ours (the lock is the origin's).
    ``ref`` carries ``community_actor_id``, ``follow_state`` (and ``locked`` for a reply)."""
    if ref["community_actor_id"] is None:
        return
    if ref["follow_state"] != "accepted":
        raise Forbidden(FOLLOW_PENDING_MESSAGE if ref["follow_state"] == "pending" else NOT_FOLLOWED_MESSAGE)
    if reply and ref["locked"]:
        raise Forbidden(REMOTE_LOCKED_MESSAGE)


def writable(ref: Mapping[str, Any], *, reply: bool = False) -> bool:
    """What :func:`_check_writable` allows, for pages that offer the form or not."""
    try:
        _check_writable(ref, reply=reply)
    except Forbidden:
        return False
    return True


SELECT_FOLLOW_STATE = "SELECT state FROM group_follows WHERE community_id = $1"


def _require_member(viewer: User | None) -> User:
    if viewer is None or not is_reader(viewer):
        raise NotFound()
    return viewer


# --- Outbox -----------------------------------------------------------------------


async def _emit(
    conn: asyncpg.Connection, kind: events.PostKind, ref: Mapping[str, Any], post_id: int | None, actor: User
) -> None:
    """Tell the federation workers, in the caller's transaction (never for local communities).

    ``ref`` carries ``thread_id``, ``community_id`` and ``visibility``."""
    if not federated(ref["visibility"]):
        return
    event = events.PostEvent(post_id, ref["thread_id"], ref["community_id"], actor.id)
    await events.emit(conn, kind, event)


# --- Writing --------------------------------------------------------------------

INSERT_THREAD = """
INSERT INTO threads (community_id, author_id, title) VALUES ($1, $2, $3)
RETURNING id, community_id
"""
INSERT_POST = """
INSERT INTO posts (thread_id, author_id, parent_id, is_opening, source, content_html)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
"""
SELECT_PARENT = "SELECT thread_id, deleted_at FROM posts WHERE id = $1"
BUMP_THREAD = """
UPDATE threads SET reply_count = reply_count + 1, last_activity_at = now() WHERE id = $1
"""
INSERT_EDIT = """
INSERT INTO post_edits (post_id, editor_id, previous_title, previous_source) VALUES ($1, $2, $3, $4)
"""
UPDATE_POST = "UPDATE posts SET source = $2, content_html = $3, updated_at = now() WHERE id = $1"
UPDATE_TITLE = "UPDATE threads SET title = $2 WHERE id = $1"
DELETE_POST = """
UPDATE posts SET deleted_at = now(), removal_rule = $2, removal_reason = $3 WHERE id = $1 AND deleted_at IS NULL
"""
DROP_REPLY = """
UPDATE threads SET reply_count = greatest(reply_count - 1, 0),
       expert_answer_id = CASE WHEN expert_answer_id = $2 THEN NULL ELSE expert_answer_id END
WHERE id = $1
"""
REMOVE_THREAD = "UPDATE threads SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING id"
SET_PINNED = "UPDATE threads SET pinned = $2 WHERE id = $1"
SET_LOCKED = "UPDATE threads SET locked = $2 WHERE id = $1"
SET_EXPERT_ANSWER = "UPDATE threads SET expert_answer_id = $2 WHERE id = $1"


@dataclass(frozen=True)
class Created:
    thread_id: int
    post_id: int


async def create_thread(
    conn: asyncpg.Connection, community: Community, author: User, title: str, body: str
) -> Created:
    """Start a thread in ``community`` (approved members only)."""
    _require_member(author)
    if not can_read(author, community.visibility):
        raise NotFound()
    title, body = check_title(title), check_body(body)
    html = markup.render(body)
    async with conn.transaction():
        if community.remote:
            state = await conn.fetchval(SELECT_FOLLOW_STATE, community.id)
            _check_writable({"community_actor_id": community.actor_id, "follow_state": state})
        thread = await conn.fetchrow(INSERT_THREAD, community.id, author.id, title)
        post_id: int = await conn.fetchval(INSERT_POST, thread["id"], author.id, None, True, body, html)
        await notifications.auto_follow(conn, author.id, thread["id"])
        ref = {
            "thread_id": thread["id"],
            "community_id": community.id,
            "visibility": community.visibility,
        }
        await _emit(conn, "post.created", ref, post_id, author)
    return Created(thread["id"], post_id)


async def create_reply(
    conn: asyncpg.Connection, thread_id: int, author: User, body: str, parent_id: int | None = None
) -> int:
    """Answer a thread, or one of its posts (``parent_id``); locked threads accept
    replies from animators only."""
    _require_member(author)
    body = check_body(body)
    html = markup.render(body)
    async with conn.transaction():
        ref = await load_thread(conn, thread_id, author, lock=True)
        _check_writable(ref, reply=True)
        if ref["locked"] and not may_animate(author, ref):
            raise Forbidden(LOCKED_MESSAGE)
        parent_id = await _check_parent(conn, ref, parent_id)
        post_id: int = await conn.fetchval(INSERT_POST, thread_id, author.id, parent_id, False, body, html)
        await conn.execute(BUMP_THREAD, thread_id)
        await notifications.notify_reply(conn, post_id)
        await notifications.auto_follow(conn, author.id, thread_id)
        await _emit(conn, "post.created", ref, post_id, author)
    return post_id


async def _check_parent(conn: asyncpg.Connection, ref: asyncpg.Record, parent_id: int | None) -> int:
    """The post being answered: the given one of this thread, else the opening post."""
    if parent_id is None:
        opening: int = ref["opening_id"]
        return opening
    parent = await conn.fetchrow(SELECT_PARENT, parent_id)
    if parent is None or parent["thread_id"] != ref["thread_id"]:
        raise NotFound()
    if parent["deleted_at"] is not None:
        raise BadRequest("Ce message a été supprimé : répondez plutôt à la discussion.")
    return parent_id


async def edit_post(
    conn: asyncpg.Connection, post_id: int, editor: User, body: str, title: str | None = None
) -> None:
    """The author changes their post (and the title, for an opening post); the
    previous version goes to ``post_edits``."""
    _require_member(editor)
    body = check_body(body)
    new_title = check_title(title) if title is not None else None
    html = markup.render(body)
    async with conn.transaction():
        ref = await load_post(conn, post_id, editor, lock=True)
        if ref["deleted_at"] is not None:
            raise NotFound()
        if ref["author_id"] != editor.id:
            raise Forbidden("Vous ne pouvez modifier que vos propres messages.")
        _check_writable(ref)
        title_changes = ref["is_opening"] and new_title is not None and new_title != ref["title"]
        if body == ref["source"] and not title_changes:
            return
        previous_title = ref["title"] if ref["is_opening"] else None
        await conn.execute(INSERT_EDIT, post_id, editor.id, previous_title, ref["source"])
        if title_changes:
            await conn.execute(UPDATE_TITLE, ref["thread_id"], new_title)
        await conn.execute(UPDATE_POST, post_id, body, html)
        await _emit(conn, "post.updated", ref, post_id, editor)


def removal_text(rule: int | None, reason: str) -> str:
    """What the tombstone and the author's notification say of a moderator's removal."""
    label = REMOVAL_RULES.get(rule) if rule else None
    if label and reason:
        return f"{_(label)} (charte, règle {rule}) — {reason}"
    return f"{_(label)} (charte, règle {rule})" if label else reason


async def delete_post(
    conn: asyncpg.Connection, post_id: int, actor: User, reason: str = "", rule: int | None = None
) -> None:
    """Soft-delete a post: its author, or a moderator (audited, with a charter rule from
    ``REMOVAL_RULES`` and/or a reason: shown on the tombstone and sent to the author).
    A tombstone stays in the thread; an opening post deleted by its author leaves the
    thread in place, one removed by a moderator takes the whole thread away (lists,
    search, pages; its ActivityPub ids answer a Tombstone)."""
    _require_member(actor)
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        raise BadRequest(fields={"reason": f"La raison est trop longue ({MAX_REASON} caractères au plus)."})
    if rule is not None and rule not in REMOVAL_RULES:
        raise BadRequest(fields={"rule": "Choisissez une règle de la charte."})
    async with conn.transaction():
        ref = await load_post(conn, post_id, actor, lock=True)
        if ref["deleted_at"] is not None:
            raise NotFound()
        own = ref["author_id"] == actor.id
        if not own and not actor.is_moderator:
            raise Forbidden("Vous ne pouvez supprimer que vos propres messages.")
        if not own and not (reason or rule):
            raise BadRequest(
                fields={"reason": "Indiquez la règle de la charte ou la raison de la suppression."}
            )
        if not own and rule == 0 and not reason:
            raise BadRequest(fields={"reason": "Précisez la raison de la suppression."})
        shown = "" if own else removal_text(rule, reason)
        await conn.execute(DELETE_POST, post_id, None if own else rule, shown[:MAX_REASON])
        if not ref["is_opening"]:
            await conn.execute(DROP_REPLY, ref["thread_id"], post_id)
        elif not own:
            await remove_thread(conn, ref["thread_id"])
        if not own:
            await _audit(conn, "post.delete", actor, "post", post_id, shown)
            if ref["author_id"] is not None:
                await notifications.notify_member(
                    conn,
                    ref["author_id"],
                    "moderation",
                    thread_id=ref["thread_id"],
                    post_id=post_id,
                    reason=shown,
                )
        await _emit(conn, "post.deleted", ref, post_id, actor)


async def remove_thread(conn: asyncpg.Connection, thread_id: int) -> bool:
    """Take a thread away whose opening post is gone (removed by a moderator, or
    deleted by its remote author: a Note's title *is* its first line). It leaves every
    list and search; its posts stay as tombstones for the ActivityPub ids. False when
    it was removed already. The caller emits what must go out."""
    return await conn.fetchval(REMOVE_THREAD, thread_id) is not None


INSERT_LIKE = """
INSERT INTO post_likes (post_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING post_id
"""
DELETE_LIKE = "DELETE FROM post_likes WHERE post_id = $1 AND user_id = $2 RETURNING post_id"
ADD_TO_LIKES = "UPDATE posts SET likes_count = greatest(likes_count + $2, 0) WHERE id = $1"
SELECT_LIKED = "SELECT post_id FROM post_likes WHERE user_id = $1 AND post_id = ANY($2::bigint[])"


async def set_liked(conn: asyncpg.Connection, post_id: int, member: User, liked: bool) -> bool:
    """A member likes a post (« J'aime ») or takes the like back; returns whether anything
    changed (liking twice, or unliking a post not liked, changes nothing and emits nothing).
    Not on one's own posts nor on deleted ones."""
    _require_member(member)
    async with conn.transaction():
        ref = await load_post(conn, post_id, member)
        if ref["deleted_at"] is not None:
            raise NotFound()
        if ref["author_id"] == member.id:
            raise Forbidden("Vous ne pouvez pas aimer vos propres messages.")
        changed = await conn.fetchval(INSERT_LIKE if liked else DELETE_LIKE, post_id, member.id)
        if changed is None:
            return False
        await conn.execute(ADD_TO_LIKES, post_id, 1 if liked else -1)
        await _emit(conn, "post.liked" if liked else "post.unliked", ref, post_id, member)
    return True


async def liked_by(conn: Conn, user_id: int, post_ids: list[int]) -> set[int]:
    """Which of these posts the member likes (one query; none when no post is liked at all)."""
    if not post_ids:
        return set()
    return {r["post_id"] for r in await conn.fetch(SELECT_LIKED, user_id, post_ids)}


# --- Remote posts ---------------------------------------------------------------------
# What other servers send, stored by federation's handlers after their protocol checks
# (signature, author, addressing, policy). The handlers never write these tables
# themselves (tests/test_boundaries.py). Reads of remote_tombstones and inbox_items
# below are federation's tables, read so a thread and its relay are one statement.

POST_REF_COLUMNS = """
SELECT p.id, p.thread_id, t.community_id, p.is_opening, p.remote_author_id,
       p.deleted_at IS NOT NULL AS deleted, t.locked, t.deleted_at IS NOT NULL AS thread_deleted
FROM posts p JOIN threads t ON t.id = p.thread_id
"""
SELECT_REF_BY_ID = POST_REF_COLUMNS + "WHERE p.id = $1"
SELECT_REF_BY_AP_ID = POST_REF_COLUMNS + "WHERE p.ap_id = $1"
SELECT_OPENING_REF = POST_REF_COLUMNS + "WHERE p.thread_id = $1 AND p.is_opening"


@dataclass(frozen=True)
class PostRef:
    """Where a post sits and who wrote it, for the federation's checks."""

    id: int
    thread_id: int
    community_id: int
    is_opening: bool
    remote_author_id: int | None
    deleted: bool
    thread_locked: bool
    thread_deleted: bool


def _post_ref(row: asyncpg.Record | None) -> PostRef | None:
    if row is None:
        return None
    return PostRef(
        row["id"],
        row["thread_id"],
        row["community_id"],
        row["is_opening"],
        row["remote_author_id"],
        row["deleted"],
        row["locked"],
        row["thread_deleted"],
    )


async def post_ref(conn: Conn, post_id: int) -> PostRef | None:
    return _post_ref(await conn.fetchrow(SELECT_REF_BY_ID, post_id))


async def opening_post_ref(conn: Conn, thread_id: int) -> PostRef | None:
    return _post_ref(await conn.fetchrow(SELECT_OPENING_REF, thread_id))


async def post_ref_by_ap_id(conn: Conn, ap_id: str) -> PostRef | None:
    return _post_ref(await conn.fetchrow(SELECT_REF_BY_AP_ID, ap_id))


INSERT_REMOTE_REPLY = """
INSERT INTO posts (thread_id, parent_id, source, content_html, ap_id, remote_author_id)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
"""
INSERT_REMOTE_EDIT = """
INSERT INTO post_edits (post_id, editor_actor_id, previous_title, previous_source)
SELECT p.id, $2, CASE WHEN p.is_opening THEN t.title END, p.source
FROM posts p JOIN threads t ON t.id = p.thread_id
WHERE p.id = $1
"""
# A new thread, its opening post and the group's relay events (none for a thread of a
# remote community: $7 NULL, $8 false) in one statement, unless
# a Delete of the object arrived first or the object is already stored (then: NULL).
INSERT_REMOTE_THREAD = """
WITH fresh AS (
    SELECT WHERE NOT EXISTS (SELECT FROM remote_tombstones WHERE object_id = $3)
             AND NOT EXISTS (SELECT FROM posts WHERE ap_id = $3)
), thread AS (
    INSERT INTO threads (community_id, title, ap_id, remote_author_id)
    SELECT $1, $2, $3, $4 FROM fresh
    RETURNING id
), post AS (
    INSERT INTO posts (thread_id, is_opening, source, content_html, ap_id, remote_author_id)
    SELECT id, true, $5, $6, $3, $4 FROM thread
), events AS (
    INSERT INTO outbox_events (kind, payload)
    SELECT 'relay.announce', $7::jsonb FROM thread WHERE $7::jsonb IS NOT NULL
    UNION ALL
    SELECT 'relay.announce_page', jsonb_build_object('community_id', $1::bigint, 'thread_id', id)
    FROM thread WHERE $8
)
SELECT id FROM thread
"""
# store_remote_thread for many at once (the inbox worker's batches): the relay events
# take the activity straight from its inbox row (no JSON encoded again), in the order
# of the items; a NULL thread id for an object already deleted or stored. Ids are
# distinct (the caller's duty): two rows with one id would violate ap_id's key.
INSERT_REMOTE_THREADS = """
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::boolean[])
        AS i (item_id, community_id, author_id, ap_id, title, source, content_html, announce_page)
), fresh AS (
    SELECT * FROM input i
    WHERE NOT EXISTS (SELECT FROM remote_tombstones WHERE object_id = i.ap_id)
      AND NOT EXISTS (SELECT FROM posts WHERE ap_id = i.ap_id)
), thread AS (
    INSERT INTO threads (community_id, title, ap_id, remote_author_id)
    SELECT community_id, title, ap_id, author_id FROM fresh ORDER BY item_id
    RETURNING id, ap_id
), made AS (  -- each new thread beside its input, joined once (the planner loops over both)
    SELECT t.id AS thread_id, f.* FROM thread t JOIN fresh f USING (ap_id)
), post AS (
    INSERT INTO posts (thread_id, is_opening, source, content_html, ap_id, remote_author_id)
    SELECT thread_id, true, source, content_html, ap_id, author_id FROM made
), events AS (
    INSERT INTO outbox_events (kind, payload)
    SELECT e.kind, e.payload FROM (
        SELECT m.item_id, 0 AS n, 'relay.announce' AS kind,
               jsonb_build_object('community_id', m.community_id, 'activity', x.document) AS payload
        FROM made m JOIN inbox_items x ON x.id = m.item_id
        UNION ALL
        SELECT m.item_id, 1, 'relay.announce_page',
               jsonb_build_object('community_id', m.community_id, 'thread_id', m.thread_id)
        FROM made m WHERE m.announce_page
    ) e ORDER BY e.item_id, e.n
)
SELECT i.item_id, m.thread_id FROM input i LEFT JOIN made m USING (item_id)
"""
SOFT_DELETE_AUTHOR_POSTS = """
UPDATE posts SET deleted_at = now() WHERE remote_author_id = $1 AND deleted_at IS NULL
RETURNING thread_id
"""
# Reply counts and last activity of the threads it answered (migration 0072).
RECOUNT_THREADS = "SELECT vbg_threads_recount($1::bigint[])"
# Their posts numbered again in the pages' order (migration 0185).
RENUMBER_THREADS = "SELECT vbg_threads_renumber($1::bigint[])"
SOFT_DELETE_AUTHOR_THREADS = """
UPDATE threads SET deleted_at = now() WHERE remote_author_id = $1 AND deleted_at IS NULL
"""
RECOUNT_LIKES = """
UPDATE posts p SET likes_count = (SELECT count(*) FROM post_likes l WHERE l.post_id = p.id)
WHERE p.id = ANY($1::bigint[])
"""
DELETE_AUTHOR_LIKES = "DELETE FROM post_likes WHERE actor_id = $1 RETURNING post_id"
INSERT_REMOTE_LIKE = """
INSERT INTO post_likes (post_id, actor_id, activity_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING post_id
"""
DELETE_REMOTE_LIKE = "DELETE FROM post_likes WHERE post_id = $1 AND actor_id = $2 RETURNING post_id"
DELETE_REMOTE_LIKE_BY_ACTIVITY = (
    "DELETE FROM post_likes WHERE activity_id = $1 AND actor_id = $2 RETURNING post_id"
)


# The federated communities where a member has a post (their followers know the member).
SELECT_AUTHOR_COMMUNITIES = """
SELECT DISTINCT c.id, c.visibility
FROM posts p JOIN threads t ON t.id = p.thread_id JOIN communities c ON c.id = t.community_id
WHERE p.author_id = $1 AND p.deleted_at IS NULL AND c.visibility IN ('public', 'members')
"""


async def federated_communities_of_author(conn: Conn, user_id: int) -> list[asyncpg.Record]:
    """(id, visibility) of the public and members-only communities where the member
    has a post still online."""
    result: list[asyncpg.Record] = await conn.fetch(SELECT_AUTHOR_COMMUNITIES, user_id)
    return result


SELECT_IDS_BY_AP_IDS = "SELECT ap_id, id FROM posts WHERE ap_id = ANY($1::text[])"
# A change the thread page shows (a remote image stored, refused…) without a new post.
BUMP_VERSION_OF_POST = """
UPDATE threads t SET version = t.version + 1 FROM posts p WHERE p.id = $1 AND t.id = p.thread_id
RETURNING t.id
"""


async def post_ids_by_ap_ids(conn: Conn, ap_ids: list[str]) -> dict[str, int]:
    """The ids of the posts stored under these ActivityPub ids."""
    return {r["ap_id"]: r["id"] for r in await conn.fetch(SELECT_IDS_BY_AP_IDS, ap_ids)}


async def bump_version_of_post(conn: Conn, post_id: int) -> int | None:
    """Make cached pages of the post's thread stale; the thread id (None: no such post)."""
    thread_id: int | None = await conn.fetchval(BUMP_VERSION_OF_POST, post_id)
    return thread_id


@dataclass(frozen=True)
class RemoteThread:
    """A new thread to store for a stored inbox activity (``item_id``: its
    ``inbox_items`` row, whose document the group relays)."""

    item_id: int
    community_id: int
    author_id: int
    ap_id: str
    title: str
    source: str
    content_html: str
    announce_page: bool


async def store_remote_thread(
    conn: asyncpg.Connection,
    thread: RemoteThread,
    relay: Mapping[str, Any] | None,
) -> int | None:
    """A new thread opened by a remote author, with the group's relay events
    (``relay``: the ``relay.announce`` payload; ``announce_page``: also its Page), in
    one round trip; None when the object was deleted already or is stored already.
    ``relay`` None (and ``announce_page`` false): a thread of a remote community, which
    its own group relays, never us."""
    thread_id: int | None = await conn.fetchval(
        INSERT_REMOTE_THREAD,
        thread.community_id,
        thread.title,
        thread.ap_id,
        thread.author_id,
        thread.source,
        thread.content_html,
        relay,
        thread.announce_page,
    )
    return thread_id


async def store_remote_threads(conn: asyncpg.Connection, new: list[RemoteThread]) -> dict[int, int | None]:
    """What store_remote_thread does, for many in one round trip: item id → its thread
    id (None: deleted or stored already)."""
    rows = await conn.fetch(
        INSERT_REMOTE_THREADS,
        [n.item_id for n in new],
        [n.community_id for n in new],
        [n.author_id for n in new],
        [n.ap_id for n in new],
        [n.title for n in new],
        [n.source for n in new],
        [n.content_html for n in new],
        [n.announce_page for n in new],
    )
    return {r["item_id"]: r["thread_id"] for r in rows}


async def store_remote_reply(
    conn: asyncpg.Connection,
    thread_id: int,
    parent_id: int,
    author_id: int,
    ap_id: str,
    source: str,
    content_html: str,
    mentioned: Sequence[str] = (),
) -> int:
    """A remote author's reply in ``thread_id``; the thread is bumped and what it
    concerns is notified (the author answered, the thread's followers, the members
    ``mentioned``: local usernames the post's Mention tags name). Returns the post id."""
    post_id: int = await conn.fetchval(
        INSERT_REMOTE_REPLY, thread_id, parent_id, source, content_html, ap_id, author_id
    )
    await conn.execute(BUMP_THREAD, thread_id)
    await notifications.notify_reply(conn, post_id, mentioned=list(mentioned))
    return post_id


async def apply_remote_edit(
    conn: asyncpg.Connection, post: PostRef, editor_actor_id: int, title: str, source: str, content_html: str
) -> None:
    """A remote author's new version of ``post``; the previous one goes to the history
    (and, for an opening post, the thread takes the new title)."""
    await conn.execute(INSERT_REMOTE_EDIT, post.id, editor_actor_id)
    await conn.execute(UPDATE_POST, post.id, source, content_html)
    if post.is_opening:
        await conn.execute(UPDATE_TITLE, post.thread_id, title)


async def remove_remote_post(conn: asyncpg.Connection, post: PostRef) -> None:
    """Soft-delete ``post`` as the forum does for a local one: the tombstone stays,
    a reply leaves the thread's count (and its expert-answer mark). An opening post
    takes its thread away (:func:`remove_thread`): NodeBB and Lemmy remove the topic,
    and a Note's title is its deleted text's first line."""
    await conn.execute(DELETE_POST, post.id, None, "")
    if not post.is_opening:
        await conn.execute(DROP_REPLY, post.thread_id, post.id)
    else:
        await remove_thread(conn, post.thread_id)


# --- Remote communities: what their origin group's moderators decide (issue 11) -----
# Applied by federation.handlers.remote_group once the group (the authority of its own
# community) relayed it; only ever on posts and threads of that community.

SELECT_POST_AUTHOR = "SELECT author_id FROM posts WHERE id = $1"
SELECT_AUTHOR_POSTS_IN = """
SELECT p.id, p.thread_id, t.community_id, p.is_opening, p.remote_author_id,
       p.deleted_at IS NOT NULL AS deleted, t.locked, t.deleted_at IS NOT NULL AS thread_deleted
FROM posts p JOIN threads t ON t.id = p.thread_id
WHERE p.remote_author_id = $1 AND t.community_id = $2 AND p.deleted_at IS NULL
ORDER BY p.id
LIMIT $3
"""
REMOVE_BY_ORIGIN = """
UPDATE posts SET deleted_at = now(), removal_rule = NULL, removal_reason = $2, removed_by_origin = true
WHERE id = $1 AND deleted_at IS NULL
"""
RESTORE_BY_ORIGIN = """
UPDATE posts SET deleted_at = NULL, removal_reason = '', removed_by_origin = false
WHERE id = $1 AND deleted_at IS NOT NULL AND removed_by_origin
RETURNING is_opening
"""
RESTORE_REPLY = "UPDATE threads SET reply_count = reply_count + 1, last_activity_at = now() WHERE id = $1"
RESTORE_THREAD = "UPDATE threads SET deleted_at = NULL WHERE id = $1"
SET_REMOTE_PINNED = "UPDATE threads SET pinned = $2 WHERE id = $1 AND pinned <> $2 RETURNING id"
SET_REMOTE_LOCKED = "UPDATE threads SET locked = $2 WHERE id = $1 AND locked <> $2 RETURNING id"
ORIGIN_REMOVAL_MAX = 10_000  # posts of one banned author removed by one Block


async def remove_by_origin(conn: asyncpg.Connection, post: PostRef, reason: str) -> None:
    """A post of a remote community removed by its origin (its author, or the group's
    moderators: ``reason`` then says so and why): soft-deleted as :func:`remove_remote_post`
    does. Our member's own post there gets a ``moderation`` notification with the reason."""
    reason = " ".join(reason.split())[:MAX_REASON]
    await conn.execute(REMOVE_BY_ORIGIN, post.id, reason)
    if not post.is_opening:
        await conn.execute(DROP_REPLY, post.thread_id, post.id)
    else:
        await remove_thread(conn, post.thread_id)
    author_id = await conn.fetchval(SELECT_POST_AUTHOR, post.id)
    if author_id is not None and reason:
        await notifications.notify_member(
            conn, author_id, "moderation", thread_id=post.thread_id, post_id=post.id, reason=reason
        )


async def restore_by_origin(conn: asyncpg.Connection, post: PostRef) -> bool:
    """Undo a removal by the origin (its author or its group's moderators restored the
    post): the post, and the thread it opened, are back. False (nothing changed) when
    the post is not removed, or was removed here (by a local moderator: that stays)."""
    is_opening = await conn.fetchval(RESTORE_BY_ORIGIN, post.id)
    if is_opening is None:
        return False
    await conn.execute(RESTORE_THREAD if is_opening else RESTORE_REPLY, post.thread_id)
    return True


async def remove_author_in_community(
    conn: asyncpg.Connection, actor_id: int, community_id: int, reason: str
) -> int:
    """Every post of the remote actor in that remote community removed by its origin
    (a ban with its content removed); returns how many (at most ``ORIGIN_REMOVAL_MAX``)."""
    rows = await conn.fetch(SELECT_AUTHOR_POSTS_IN, actor_id, community_id, ORIGIN_REMOVAL_MAX)
    for row in rows:
        ref = _post_ref(row)
        assert ref is not None
        await remove_by_origin(conn, ref, reason)
    return len(rows)


async def set_remote_pinned(conn: asyncpg.Connection, thread_id: int, pinned: bool) -> bool:
    """The origin group pinned (``featured``) or unpinned a thread; False: no change."""
    return await conn.fetchval(SET_REMOTE_PINNED, thread_id, pinned) is not None


async def set_remote_locked(conn: asyncpg.Connection, thread_id: int, locked: bool) -> bool:
    """The origin group locked or unlocked a thread; False: no change."""
    return await conn.fetchval(SET_REMOTE_LOCKED, thread_id, locked) is not None


async def remove_remote_author(conn: asyncpg.Connection, actor_id: int) -> int:
    """Everything a deleted remote actor wrote or liked goes: its posts and the threads
    it opened are soft-deleted (counts recomputed), its likes dropped. Returns how many
    posts were deleted."""
    threads = [r["thread_id"] for r in await conn.fetch(SOFT_DELETE_AUTHOR_POSTS, actor_id)]
    await conn.execute(RECOUNT_THREADS, sorted(set(threads)))
    await conn.execute(SOFT_DELETE_AUTHOR_THREADS, actor_id)
    liked = [r["post_id"] for r in await conn.fetch(DELETE_AUTHOR_LIKES, actor_id)]
    await conn.execute(RECOUNT_LIKES, liked)
    return len(threads)


async def set_remote_like(
    conn: asyncpg.Connection, post_id: int, actor_id: int, activity_id: str | None
) -> bool:
    """A remote actor's like of a post (one per actor and post); False when already liked."""
    if await conn.fetchval(INSERT_REMOTE_LIKE, post_id, actor_id, activity_id) is None:
        return False
    await conn.execute(ADD_TO_LIKES, post_id, 1)
    return True


async def remove_remote_like(
    conn: asyncpg.Connection, actor_id: int, *, activity_id: str | None = None, post_id: int | None = None
) -> int | None:
    """Take back a remote actor's like, named by the Like's id or else by the post;
    returns the post it was on (None: no such like)."""
    found = None
    if activity_id:
        found = await conn.fetchval(DELETE_REMOTE_LIKE_BY_ACTIVITY, activity_id, actor_id)
    if found is None and post_id is not None:
        found = await conn.fetchval(DELETE_REMOTE_LIKE, post_id, actor_id)
    if found is not None:
        await conn.execute(ADD_TO_LIKES, found, -1)
    return found


async def _audit(
    conn: asyncpg.Connection, action: str, actor: User, target_type: str, target_id: int, reason: str = ""
) -> None:
    await audit.record(
        conn,
        action,
        actor_id=actor.id,
        actor_label=actor.username,
        target_type=target_type,
        target_id=target_id,
        reason=reason,
    )


async def _animated_thread(conn: asyncpg.Connection, thread_id: int, actor: User) -> asyncpg.Record:
    ref = await load_thread(conn, thread_id, _require_member(actor), lock=True)
    if not may_animate(actor, ref):
        raise Forbidden(
            "Seul·e·s les expert·e·s de la communauté et les modérateur·rice·s peuvent faire cela."
        )
    return ref


async def set_pinned(conn: asyncpg.Connection, thread_id: int, actor: User, pinned: bool) -> None:
    """Pin a thread at the top of its community (experts, moderators); audited."""
    async with conn.transaction():
        ref = await _animated_thread(conn, thread_id, actor)
        if ref["pinned"] == pinned:
            return
        await conn.execute(SET_PINNED, thread_id, pinned)
        await _audit(conn, "thread.pin" if pinned else "thread.unpin", actor, "thread", thread_id)
        await _emit(conn, "thread.pinned" if pinned else "thread.unpinned", ref, ref["opening_id"], actor)


async def set_locked(conn: asyncpg.Connection, thread_id: int, actor: User, locked: bool) -> None:
    """Close a thread to new replies, or reopen it (experts, moderators); audited."""
    async with conn.transaction():
        ref = await _animated_thread(conn, thread_id, actor)
        if ref["locked"] == locked:
            return
        await conn.execute(SET_LOCKED, thread_id, locked)
        await _audit(conn, "thread.lock" if locked else "thread.unlock", actor, "thread", thread_id)


async def set_expert_answer(conn: asyncpg.Connection, post_id: int, actor: User, marked: bool) -> int:
    """Mark a reply as the expert answer of its thread, or unmark it; returns the thread id."""
    async with conn.transaction():
        post = await load_post(conn, post_id, _require_member(actor))
        ref = await _animated_thread(conn, post["thread_id"], actor)
        if post["is_opening"] or post["deleted_at"] is not None:
            raise BadRequest("Seule une réponse visible peut être marquée comme réponse de l'expert.")
        current = ref["expert_answer_id"]
        if marked and current != post_id:
            await conn.execute(SET_EXPERT_ANSWER, ref["thread_id"], post_id)
            await _audit(conn, "thread.expert_answer", actor, "post", post_id)
            await notifications.notify_expert_answer(conn, post_id, actor.id)
        elif not marked and current == post_id:
            await conn.execute(SET_EXPERT_ANSWER, ref["thread_id"], None)
            await _audit(conn, "thread.expert_answer_remove", actor, "post", post_id)
        thread_id: int = ref["thread_id"]
        return thread_id


# --- Reading: a thread page ---------------------------------------------------------

# The published document the thread discusses (documents space), read with the head
# rather than in a round trip of its own; ``documents.of_thread_head`` makes it a
# ThreadDocument. Columns prefixed ``document_`` (one unique row per thread at most).
SELECT_HEAD_DOCUMENT = """
SELECT d.id AS document_id, d.doc_type AS document_type, d.remote AS document_remote,
       d.tags AS document_tags, d.language AS document_language, d.licence AS document_licence,
       d.origin AS document_origin, v.number AS document_version, v.media_type AS document_media_type,
       v.size AS document_size, v.file_name AS document_file_name,
       v.stored_name IS NOT NULL AS document_stored
FROM documents d
JOIN LATERAL (SELECT * FROM document_versions v WHERE v.document_id = d.id ORDER BY v.number DESC LIMIT 1) v ON true
WHERE d.thread_id = t.id AND d.deleted_at IS NULL AND d.status = 'published'
"""
# ``policy_version`` changes with every instance policy change (migration 0050): what a
# page shows depends on it as well as on the thread's ``version`` (a block hides posts).
SELECT_THREAD_HEAD = f"""
SELECT t.id, t.title, t.locked, t.pinned, t.expert_answer_id, t.reply_count, t.created_at,
       t.last_activity_at, t.version, t.community_id, c.name AS community_name, c.title AS community_title,
       c.visibility, c.actor_id AS community_actor_id,
       t.ap_id IS NOT NULL AND c.actor_id IS NOT NULL AS remote_thread,
       (SELECT gf.state FROM group_follows gf WHERE gf.community_id = t.community_id) AS follow_state,
       (SELECT value #>> '{{}}' FROM node_settings WHERE key = 'policy_version') AS policy_version,
       EXISTS (SELECT 1 FROM community_experts e
               WHERE e.community_id = t.community_id AND e.user_id = $2) AS viewer_is_expert,
       (SELECT r.read_at FROM thread_reads r WHERE r.thread_id = t.id AND r.user_id = $2) AS read_at,
       coalesce((SELECT f.following FROM thread_follows f WHERE f.thread_id = t.id AND f.user_id = $2), false)
           AS following,
       doc.*
FROM threads t JOIN communities c ON c.id = t.community_id
LEFT JOIN LATERAL ({SELECT_HEAD_DOCUMENT}) doc ON true
WHERE t.id = $1 AND t.deleted_at IS NULL AND {author_shown_sql("t.remote_author_id")}
"""
# The number of the thread's last post shown (posts of hidden authors left out, tombstones
# kept): the page count. Asked only when the thread's version or the instance policy
# changed (see thread_head); read backwards by posts_thread_number, it stops at the first
# post shown.
SELECT_LAST_NUMBER = """
SELECT p.number FROM posts p LEFT JOIN actors a ON a.id = p.remote_author_id
WHERE p.thread_id = $1 AND a.hidden IS NOT TRUE
ORDER BY p.number DESC
LIMIT 1
"""
# One query for every post of the page with its author (local member or remote
# actor: LEFT JOINs, author_id may be NULL) and the post it answers. A page is a range
# of post numbers (migration 0185: read by index, however deep in the thread). Posts of
# hidden authors are left out, and so is the context of a reply to one of them.
AUTHOR_NAME = "coalesce(nullif({u}.display_name, ''), nullif({a}.display_name, ''), {a}.username, '?')"
SELECT_PAGE_POSTS = f"""
SELECT p.id, p.author_id, p.is_opening, p.content_html, p.created_at, p.updated_at, p.deleted_at,
       p.likes_count, p.shares_count, {AUTHOR_NAME.format(u="u", a="a")} AS author_name,
       u.profession AS author_profession, u.username AS author_username, p.removal_reason,
       a.username AS remote_username, a.domain AS remote_domain,
       CASE WHEN coalesce(a.url, a.uri) ~ '^https?://' THEN coalesce(a.url, a.uri) END AS remote_profile,
       pp.id AS parent_id, pp.is_opening AS parent_is_opening, pp.deleted_at AS parent_deleted_at,
       left(pp.source, 200) AS parent_source,
       {AUTHOR_NAME.format(u="pu", a="pa")} AS parent_author
FROM posts p
LEFT JOIN users u ON u.id = p.author_id
LEFT JOIN actors a ON a.id = p.remote_author_id
LEFT JOIN (posts pp LEFT JOIN actors pa ON pa.id = pp.remote_author_id)
    ON pp.id = p.parent_id AND pa.hidden IS NOT TRUE
LEFT JOIN users pu ON pu.id = pp.author_id
WHERE p.thread_id = $1 AND p.number BETWEEN $2 AND $3 AND a.hidden IS NOT TRUE
ORDER BY p.number, p.id
"""
UPSERT_READ = """
INSERT INTO thread_reads (user_id, thread_id, read_at) VALUES ($1, $2, $3)
ON CONFLICT (user_id, thread_id) DO UPDATE SET read_at = greatest(thread_reads.read_at, EXCLUDED.read_at)
"""


@dataclass
class ThreadHead:
    """What a thread page shows besides its posts, and which posts it shows: those
    numbered ``first`` to ``last``."""

    thread: asyncpg.Record
    page: int
    pages: int
    can_animate: bool
    can_reply: bool
    first: int
    last: int


def page_count(total: int, size: int) -> int:
    return max(1, -(-total // size))


def page_numbers(page: int) -> tuple[int, int]:
    """The post numbers page ``page`` shows: 1 (the opening post) to 51, then 50 a page."""
    return (1, PAGE_SIZE + 1) if page == 1 else (PAGE_SIZE * (page - 1) + 2, PAGE_SIZE * page + 1)


def page_of(number: int) -> int:
    """The page showing the post numbered ``number``."""
    return max(0, number - 2) // PAGE_SIZE + 1


async def thread_head(
    conn: Conn, thread_id: int, viewer: User | None, page: int, numbers: LastNumbers | None = None
) -> ThreadHead:
    """The thread (with its ``version``: a page's posts are the same while it is) and the
    viewer's rights; marks the thread read for a member. Missing or unreadable: 404."""
    viewer_id = viewer.id if viewer and viewer.is_approved else None
    thread = _readable(await conn.fetchrow(SELECT_THREAD_HEAD, thread_id, viewer_id), viewer)
    pages = page_of(await _last_number(conn, thread, numbers))
    if page > pages:
        raise NotFound()
    if viewer_id is not None:
        await mark_read(conn, viewer_id, thread, thread["read_at"])
        if viewer is not None and viewer.unread_notifications:  # known from the session: no query otherwise
            await notifications.mark_thread_read(conn, viewer_id, thread_id)
    animate = may_animate(viewer, thread)
    can_reply = is_reader(viewer) and (not thread["locked"] or animate) and writable(thread, reply=True)
    return ThreadHead(thread, page, pages, animate, can_reply, *page_numbers(page))


LastNumbers: TypeAlias = dict[tuple[int, int, str | None], int]
LAST_NUMBERS_MAX = 4096


async def _last_number(conn: Conn, thread: asyncpg.Record, numbers: LastNumbers | None) -> int:
    """The number of the thread's last post shown; with ``numbers`` (one per app:
    versions are per database), remembered for as long as the thread's ``version``
    (bumped by any change to the thread or its posts) and the instance policy's version
    (which decides whose posts are hidden) stay the same."""
    key = (thread["id"], thread["version"], thread["policy_version"])
    number = numbers.get(key) if numbers is not None else None
    if number is None:
        number = int(await conn.fetchval(SELECT_LAST_NUMBER, thread["id"]) or 1)
        if numbers is not None:
            if len(numbers) >= LAST_NUMBERS_MAX:
                numbers.clear()
            numbers[key] = number
    return number


async def page_posts(conn: Conn, head: ThreadHead) -> list[asyncpg.Record]:
    """The posts of the page ``head`` describes, oldest first (opening post first)."""
    return list(await conn.fetch(SELECT_PAGE_POSTS, head.thread["id"], head.first, head.last))


async def mark_read(conn: Conn, user_id: int, thread: asyncpg.Record, read_at: datetime | None) -> None:
    """Record that the member saw the thread as of its last activity (written only when
    something is new, so reading a thread again costs no write)."""
    if read_at is None or read_at < thread["last_activity_at"]:
        await conn.execute(UPSERT_READ, user_id, thread["id"], thread["last_activity_at"])


SELECT_POST_NUMBER = f"""
SELECT p.thread_id, c.visibility, p.number
FROM posts p JOIN threads t ON t.id = p.thread_id JOIN communities c ON c.id = t.community_id
WHERE p.id = $1 AND t.deleted_at IS NULL
  AND {author_shown_sql("p.remote_author_id")} AND {author_shown_sql("t.remote_author_id")}
"""


async def post_location(conn: Conn, post_id: int, viewer: User | None) -> tuple[int, int]:
    """(thread id, page number) where the post is shown, if the viewer may read it."""
    row = _readable(await conn.fetchrow(SELECT_POST_NUMBER, post_id), viewer)
    return row["thread_id"], page_of(row["number"])


SELECT_EDITS = """
SELECT e.previous_title, e.previous_source, e.edited_at, coalesce(u.display_name, '') AS editor
FROM post_edits e LEFT JOIN users u ON u.id = e.editor_id
WHERE e.post_id = $1
ORDER BY e.edited_at DESC, e.id DESC
"""


async def history(
    conn: Conn, post_id: int, viewer: User | None
) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
    """A post and its previous versions: its author, moderators and the community's experts."""
    ref = await load_post(conn, post_id, viewer)
    if not may_see_history(viewer, ref):
        raise NotFound()
    return ref, list(await conn.fetch(SELECT_EDITS, post_id))


# --- Reading: thread lists -------------------------------------------------------------

# Thread lists go page by page with a keyset — "the threads after the last one shown" —
# never with OFFSET and never with a total count: a page deep in a community's history,
# or the home of a member who follows every community, costs what a first page does.
LIST_COLUMNS = f"""
SELECT t.id, t.title, t.pinned, t.locked, t.reply_count, t.created_at, t.last_activity_at,
       t.expert_answer_id IS NOT NULL AS answered,
       c.name AS community_name, c.title AS community_title,
       {AUTHOR_NAME.format(u="u", a="a")} AS author_name,
       ($1::bigint IS NOT NULL AND (r.read_at IS NULL OR t.last_activity_at > r.read_at)) AS unread
"""
LIST_JOINS = """
LEFT JOIN users u ON u.id = t.author_id
LEFT JOIN actors a ON a.id = t.remote_author_id
LEFT JOIN thread_reads r ON r.thread_id = t.id AND r.user_id = $1
"""
# Members miss threads of hidden authors; visitors (no member id in $1) silenced ones too.
LISTED = listed_sql("a", "$1::bigint IS NOT NULL")
# $2 community, ($3, $4, $5) the cursor (pinned, last activity, id), $6 how many.
# Older threads: down threads_community_activity from the cursor. Newer ones: up that
# index from the cursor, nearest first (then reversed for display), one branch per value
# of ``pinned`` — the unpinned threads after the cursor (when it is an unpinned one), then
# the pinned ones — so each branch is an equality and a (last activity, id) range the
# index walks and stops at the page's count. (As one row comparison on the three columns,
# the planner priced it by ``pinned`` alone and read every newer thread, then sorted.)
_COMMUNITY_WHERE = f"t.community_id = $2 AND t.deleted_at IS NULL AND {LISTED}"
LIST_COMMUNITY_THREADS = {
    "older": f"""{LIST_COLUMNS}
FROM threads t JOIN communities c ON c.id = t.community_id {LIST_JOINS}
WHERE {_COMMUNITY_WHERE} AND (t.pinned, t.last_activity_at, t.id) < ($3, $4, $5)
ORDER BY t.pinned DESC, t.last_activity_at DESC, t.id DESC
LIMIT $6
""",
    "newer": f"""
WITH newer AS (
    (SELECT t.id, t.pinned, t.last_activity_at FROM threads t LEFT JOIN actors a ON a.id = t.remote_author_id
     WHERE {_COMMUNITY_WHERE} AND NOT t.pinned AND NOT $3 AND (t.last_activity_at, t.id) > ($4, $5)
     ORDER BY t.last_activity_at, t.id
     LIMIT $6)
    UNION ALL
    (SELECT t.id, t.pinned, t.last_activity_at FROM threads t LEFT JOIN actors a ON a.id = t.remote_author_id
     WHERE {_COMMUNITY_WHERE} AND t.pinned AND (NOT $3 OR (t.last_activity_at, t.id) > ($4, $5))
     ORDER BY t.last_activity_at, t.id
     LIMIT $6)
)
{LIST_COLUMNS}
FROM newer n JOIN threads t ON t.id = n.id JOIN communities c ON c.id = t.community_id {LIST_JOINS}
ORDER BY t.pinned, t.last_activity_at, t.id
LIMIT $6
""",
}
# The home: the followed communities' threads by last activity, by one of two paths
# whose costs grow with different things, so that together they stay flat:
# - ``recent``: the node's threads newest first (index threads_activity), each checked
#   against the member's follows by a per-row index probe, stopping at the page's count;
#   it reads about (page size ÷ the followed share of the activity) rows, whatever the
#   history's length or the number of communities followed; asked only of a member who
#   follows more than HOME_FEW_FOLLOWS communities, and only HOME_WINDOW rows deep;
# - ``by_community``: each followed community's next threads by its own index (migration 0115),
#   merged — page size × communities followed rows; for the others, or when the window
#   held less than a page (followed communities that are quiet next to the rest).
# Both give the same rows (tests/test_threads_pages.py). $2 the viewer reads members-only
# communities, ($3, $4) the cursor (pinned threads are not first at home), $5 how many.
HOME_FEW_FOLLOWS = 20
HOME_WINDOW = 1000
LIST_FOLLOWED_THREADS = {
    direction: f"""
WITH recent AS MATERIALIZED (
    SELECT r.id, r.last_activity_at FROM (
        SELECT t.id, t.last_activity_at, t.community_id FROM threads t
        WHERE (SELECT count(*) FROM community_follows WHERE user_id = $1) > {HOME_FEW_FOLLOWS}
          AND t.deleted_at IS NULL AND (t.last_activity_at, t.id) {op} ($3, $4)
          AND {author_listed_sql("t.remote_author_id", "$1::bigint IS NOT NULL")}
        ORDER BY t.last_activity_at {order}, t.id {order}
        LIMIT {HOME_WINDOW}
    ) r
    WHERE (SELECT {readable_sql("c", "$2")} FROM community_follows f JOIN communities c ON c.id = f.community_id
           WHERE f.user_id = $1 AND f.community_id = r.community_id)
    ORDER BY r.last_activity_at {order}, r.id {order}
    LIMIT $5
), by_community AS (
    SELECT n.id, n.last_activity_at
    FROM community_follows f
    JOIN communities c ON c.id = f.community_id AND {readable_sql("c", "$2")}
    CROSS JOIN LATERAL (
        SELECT t.id, t.last_activity_at FROM threads t
        WHERE t.community_id = f.community_id AND t.deleted_at IS NULL
          AND {author_listed_sql("t.remote_author_id", "$1::bigint IS NOT NULL")}
          AND (t.last_activity_at, t.id) {op} ($3, $4)
        ORDER BY t.last_activity_at {order}, t.id {order}
        LIMIT $5
    ) n
    WHERE f.user_id = $1 AND (SELECT count(*) FROM recent) < $5
    ORDER BY n.last_activity_at {order}, n.id {order}
    LIMIT $5
), shown AS (
    SELECT id FROM recent WHERE (SELECT count(*) FROM recent) >= $5
    UNION ALL
    SELECT id FROM by_community
)
{LIST_COLUMNS}
FROM shown JOIN threads t ON t.id = shown.id JOIN communities c ON c.id = t.community_id {LIST_JOINS}
ORDER BY t.last_activity_at {order}, t.id {order}
"""
    for direction, op, order in (("older", "<", "DESC"), ("newer", ">", "ASC"))
}
LIST_PUBLIC_THREADS = f"""{LIST_COLUMNS}
FROM threads t JOIN communities c ON c.id = t.community_id {LIST_JOINS}
WHERE c.visibility = 'public' AND t.deleted_at IS NULL AND {LISTED}
ORDER BY t.last_activity_at DESC, t.id DESC
LIMIT $2
"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"([01])\.(\d{1,17})\.(\d{1,19})")


@dataclass(frozen=True)
class ListCursor:
    """A place in a thread list: the (pinned, last activity, id) of a thread, as
    ``?avant=`` (the threads listed after it) or ``?apres=`` (those before it)."""

    pinned: bool
    at: datetime
    id: int

    def token(self) -> str:
        return f"{int(self.pinned)}.{(self.at - _EPOCH) // timedelta(microseconds=1)}.{self.id}"

    @classmethod
    def parse(cls, token: str) -> ListCursor:
        """The cursor a token names; anything else is a missing page."""
        match = _CURSOR.fullmatch(token)
        if match is None or not 0 < int(match[3]) <= MAX_BIGINT:
            raise NotFound()
        pinned, micros, thread_id = match.groups()
        try:
            at = _EPOCH + timedelta(microseconds=int(micros))
        except OverflowError as exc:
            raise NotFound() from exc
        return cls(pinned == "1", at, int(thread_id))

    @classmethod
    def of(cls, row: asyncpg.Record) -> ListCursor:
        return cls(row["pinned"], row["last_activity_at"], row["id"])


LIST_START = ListCursor(True, datetime.max.replace(tzinfo=UTC), MAX_BIGINT)


@dataclass(frozen=True)
class ListPosition:
    """Where a list page starts: at the top, after a thread (``avant``), or before one (``apres``)."""

    cursor: ListCursor = LIST_START
    newer: bool = False

    @classmethod
    def from_query(cls, older_than: str | None, newer_than: str | None) -> ListPosition:
        if newer_than:
            return cls(ListCursor.parse(newer_than), newer=True)
        return cls(ListCursor.parse(older_than)) if older_than else cls()

    @property
    def at_top(self) -> bool:
        return self.cursor == LIST_START


@dataclass
class ThreadList:
    """One page of threads, with the tokens of the pages around it (None: no such page)."""

    threads: list[asyncpg.Record]
    newer: str | None
    older: str | None


async def _list(
    conn: Conn, queries: dict[str, str], args: tuple[object, ...], at: ListPosition
) -> ThreadList:
    query = queries["newer" if at.newer else "older"]
    rows = list(await conn.fetch(query, *args, LIST_PAGE_SIZE + 1))
    rows, has_newer, has_older = keyset.window(rows, LIST_PAGE_SIZE, backwards=at.newer, at_top=at.at_top)
    return ThreadList(
        rows,
        ListCursor.of(rows[0]).token() if has_newer else None,
        ListCursor.of(rows[-1]).token() if has_older else None,
    )


def _member_id(viewer: User | None) -> int | None:
    return viewer.id if viewer is not None and viewer.is_approved else None


async def community_threads(
    conn: Conn, community: Community, viewer: User | None, at: ListPosition = ListPosition()
) -> ThreadList:
    """A community's threads: pinned first, then by last activity (the caller checked visibility)."""
    c = at.cursor
    args = (_member_id(viewer), community.id, c.pinned, c.at, c.id)
    return await _list(conn, LIST_COMMUNITY_THREADS, args, at)


async def followed_threads(conn: Conn, viewer: User, at: ListPosition = ListPosition()) -> ThreadList:
    """The member's home: threads of the communities they follow, by last activity."""
    args = (_member_id(viewer), is_reader(viewer), at.cursor.at, at.cursor.id)
    return await _list(conn, LIST_FOLLOWED_THREADS, args, at)


async def public_threads(conn: Conn, limit: int = 10) -> list[asyncpg.Record]:
    """The latest threads of public communities (the anonymous home page)."""
    return list(await conn.fetch(LIST_PUBLIC_THREADS, None, limit))


# --- A member's exposure (node.access.member_visibility) ------------------------

POSTS_PUBLICLY = """
SELECT EXISTS (
    SELECT 1 FROM posts p
    JOIN threads t ON t.id = p.thread_id
    JOIN communities c ON c.id = t.community_id
    WHERE p.author_id = $1 AND c.visibility = 'public' AND p.deleted_at IS NULL AND t.deleted_at IS NULL
)
"""


async def member_visibility(conn: Conn, user_id: int) -> str:
    """``public`` once the member has a post online in a public community (their name is
    on public pages then), else ``members``: what their actor document may show whom."""
    public: bool = await conn.fetchval(POSTS_PUBLICLY, user_id)
    return access.member_visibility(public)


# The hosts of the remote groups whose communities hold a post of the member (at most a few).
SELECT_POSTED_ORIGINS = """
SELECT DISTINCT ga.domain FROM posts p
JOIN threads t ON t.id = p.thread_id
JOIN communities c ON c.id = t.community_id
JOIN actors ga ON ga.id = c.actor_id
WHERE p.author_id = $1 AND p.deleted_at IS NULL AND t.deleted_at IS NULL
LIMIT 100
"""


async def member_origins(conn: Conn, user_id: int) -> frozenset[str]:
    """The hosts of the remote groups where the member has a post online: each of those
    servers shows her posts, so it may see her actor in full (``access.actor_decision``)."""
    return frozenset(r["domain"] for r in await conn.fetch(SELECT_POSTED_ORIGINS, user_id))


# --- Backfill: what a followed remote community already held ------------------------
# Stored by ``federation.backfill`` after its checks (fetched from the object's own
# origin, author on that origin). Old content: no relay and no outbox event (the origin
# group federates its own content), no notification; each post keeps its ``published``
# date (never later than now), so the thread lists and pages show it in its place.


@dataclass(frozen=True)
class BackfilledPost:
    ap_id: str
    author_id: int  # the remote author's actors.id
    title: str  # an opening post's thread title ('' for a reply)
    source: str
    content_html: str
    published: datetime | None


INSERT_BACKFILLED_THREADS = """
WITH input AS (
    SELECT i.n, i.ap_id, i.author_id, i.title, i.source, i.content_html,
           least(coalesce(i.published, now()), now()) AS at
    FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])
        WITH ORDINALITY AS i (ap_id, author_id, title, source, content_html, published, n)
), fresh AS (
    SELECT * FROM input i
    WHERE NOT EXISTS (SELECT FROM remote_tombstones WHERE object_id = i.ap_id)
      AND NOT EXISTS (SELECT FROM posts WHERE ap_id = i.ap_id)
), thread AS (
    INSERT INTO threads (community_id, title, ap_id, remote_author_id, created_at, last_activity_at)
    SELECT $1, title, ap_id, author_id, at, at FROM fresh ORDER BY n
    ON CONFLICT (ap_id) DO NOTHING
    RETURNING id, ap_id
), post AS (
    INSERT INTO posts (thread_id, is_opening, source, content_html, ap_id, remote_author_id, created_at)
    SELECT t.id, true, f.source, f.content_html, f.ap_id, f.author_id, f.at
    FROM thread t JOIN fresh f USING (ap_id)
)
SELECT ap_id, id FROM thread
"""
INSERT_BACKFILLED_REPLY = """
INSERT INTO posts (thread_id, parent_id, source, content_html, ap_id, remote_author_id, created_at)
SELECT $1, $2, $3, $4, $5, $6, least(coalesce($7::timestamptz, now()), now())
WHERE NOT EXISTS (SELECT FROM remote_tombstones WHERE object_id = $5)
ON CONFLICT (ap_id) DO NOTHING
RETURNING id
"""
SET_FEATURED = """
UPDATE threads SET pinned = (ap_id = ANY($2::text[]))
WHERE community_id = $1 AND ap_id IS NOT NULL AND pinned <> (ap_id = ANY($2::text[]))
"""
SELECT_BACKFILL_THREAD = """
SELECT t.ap_id, t.community_id FROM threads t WHERE t.id = $1 AND t.deleted_at IS NULL
"""


async def store_backfilled_threads(
    conn: asyncpg.Connection, community_id: int, posts: list[BackfilledPost]
) -> dict[str, int]:
    """New threads of a remote community in one statement: ActivityPub id → thread id of
    those stored (not those deleted by their author already or stored already). Ids are
    distinct (the caller's duty)."""
    rows = await conn.fetch(
        INSERT_BACKFILLED_THREADS,
        community_id,
        [p.ap_id for p in posts],
        [p.author_id for p in posts],
        [p.title for p in posts],
        [p.source for p in posts],
        [p.content_html for p in posts],
        [p.published for p in posts],
    )
    return {r["ap_id"]: r["id"] for r in rows}


async def store_backfilled_reply(
    conn: asyncpg.Connection, thread_id: int, parent_id: int, post: BackfilledPost
) -> int | None:
    """A reply of a remote thread; None when deleted by its author already or stored
    already. The thread's counts: :func:`recount` once the replies are in."""
    post_id: int | None = await conn.fetchval(
        INSERT_BACKFILLED_REPLY,
        thread_id,
        parent_id,
        post.source,
        post.content_html,
        post.ap_id,
        post.author_id,
        post.published,
    )
    return post_id


async def recount(conn: Conn, thread_ids: list[int]) -> None:
    """Reply counts, last activity and post numbers of these threads, from their posts
    (backfilled replies, written with their older dates, take their place in the pages)."""
    ids = sorted(set(thread_ids))
    await conn.execute(RECOUNT_THREADS, ids)
    await conn.execute(RENUMBER_THREADS, ids)


async def set_featured(conn: Conn, community_id: int, ap_ids: list[str]) -> None:
    """The remote community's pinned threads are exactly those of ``ap_ids`` (its
    group's ``featured`` collection)."""
    await conn.execute(SET_FEATURED, community_id, ap_ids)


async def backfill_thread(conn: Conn, thread_id: int) -> tuple[str | None, int] | None:
    """(ActivityPub id, community id) of a thread not deleted; None when there is none."""
    row = await conn.fetchrow(SELECT_BACKFILL_THREAD, thread_id)
    return None if row is None else (row["ap_id"], row["community_id"])
