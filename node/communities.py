"""Communities: creation, listing, visibility rules, experts and follows."""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from node import access, audit
from node.accounts import name_taken
from node.db import Conn
from node.errors import BadRequest, Conflict, NotFound
from node.sessions import User

VISIBILITIES = ("members", "public", "local")
NAME_RE = re.compile(r"^[a-z0-9_]{3,30}$")

INSERT_COMMUNITY = """
INSERT INTO communities (name, title, description, rules, visibility, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
"""


async def create_community(
    conn: asyncpg.Connection,
    name: str,
    title: str,
    *,
    description: str = "",
    rules: str = "",
    visibility: str = "members",
    created_by: int | None = None,
    audit_label: str = "",
) -> int:
    name = name.strip().lower()
    if not NAME_RE.match(name):
        raise BadRequest(
            fields={"name": "3 à 30 caractères : lettres minuscules sans accent, chiffres ou « _ »."}
        )
    title = title.strip()
    if not title or len(title) > 120:
        raise BadRequest(fields={"title": "Le titre est obligatoire (120 caractères au plus)."})
    if visibility not in VISIBILITIES:
        raise BadRequest(fields={"visibility": "Visibilité inconnue : members, public ou local."})
    async with conn.transaction():
        if await name_taken(conn, name):
            raise Conflict(fields={"name": "Ce nom est déjà pris par un membre ou une communauté."})
        community_id: int = await conn.fetchval(
            INSERT_COMMUNITY, name, title, description, rules, visibility, created_by
        )
        await audit.record(
            conn,
            "community.create",
            actor_id=created_by,
            actor_label=audit_label,
            target_type="community",
            target_id=community_id,
            details={"name": name, "visibility": visibility},
        )
    return community_id


# --- Visibility: the rule itself is node.access (one place for HTML and ActivityPub) ---
#
# public   anyone (anonymous visitors included)
# members  approved members of this node (remote approved instances: federation side)
# local    approved members of this node; never federated
#
# Pending, refused and suspended accounts read like anonymous visitors. Whatever
# may not be read answers exactly like a missing page (NotFound).


def is_reader(user: User | None) -> bool:
    """True for an approved member: such a person reads every community of the node."""
    return access.of_user(user).is_reader


def can_read(user: User | None, visibility: str) -> bool:
    return access.may_read(access.of_user(user), visibility)


def readable_sql(alias: str, param: str) -> str:
    """SQL condition "the viewer may read community ``alias``"; ``param`` is the
    placeholder bound to :func:`is_reader` of the viewer (e.g. ``"$2"``)."""
    return f"({alias}.visibility = 'public' OR {param}::boolean)"


# Instance policy (federation.policy; flags kept on actors by migration 0070): a remote
# author on a suspended domain is ``hidden`` — their threads and posts leave every page
# and search; on a silenced domain ``silenced`` — their threads stay out of what visitors
# see in lists and search, but show inside threads. Local members are never either.


def author_shown_sql(author: str) -> str:
    """SQL condition "the remote author ``author`` is not hidden"; ``author`` is an
    ``actors.id`` column, NULL for a local member. A per-row lookup, as
    :func:`author_listed_sql`: a NOT EXISTS may become an anti-join reading every actor
    (and every row it filters) before a LIMIT."""
    return (
        f"({author} IS NULL OR NOT coalesce((SELECT ha.hidden FROM actors ha WHERE ha.id = {author}), false))"
    )


def author_listed_sql(author: str, member: str) -> str:
    """:func:`listed_sql` for an author id column (``actors.id``, NULL for a local member),
    as a per-row lookup: a planner never turns it into a join over every actor, and a
    local author costs nothing."""
    return f"({author} IS NULL OR (SELECT {listed_sql('la', member)} FROM actors la WHERE la.id = {author}))"


def author_listed_publicly_sql(author: str) -> str:
    """:func:`author_listed_sql` for what anyone may read (a visitor's list, a public
    collection such as a group's outbox): silenced authors left out, and hidden ones with
    them (a suspended instance is silenced too)."""
    return author_listed_sql(author, "false")


def listed_sql(actor: str, member: str) -> str:
    """SQL condition for lists and search, on the author's ``actors`` row LEFT JOINed as
    ``actor`` (NULLs for a local member): members miss hidden authors, visitors silenced
    ones too. ``member`` is an SQL boolean: the viewer is an approved member."""
    return f"NOT coalesce(CASE WHEN {member} THEN {actor}.hidden ELSE {actor}.silenced END, false)"


def federated(visibility: str) -> bool:
    """Whether changes in a community of this visibility leave the node."""
    return visibility != "local"


@dataclass(frozen=True)
class Community:
    id: int
    name: str
    title: str
    description: str
    rules: str
    visibility: str
    # The remote Group's actors.id for a community of another server that we follow
    # (migration 0120); None for ours.
    actor_id: int | None = None

    @property
    def remote(self) -> bool:
        """A community of another server, followed by this node (never served as ours)."""
        return self.actor_id is not None


COMMUNITY_COLUMNS = "c.id, c.name, c.title, c.description, c.rules, c.visibility, c.actor_id"
SELECT_BY_NAME = f"SELECT {COMMUNITY_COLUMNS} FROM communities c WHERE lower(c.name) = lower($1)"
SELECT_BY_ID = f"SELECT {COMMUNITY_COLUMNS} FROM communities c WHERE c.id = $1"
# Federated: ours, public or members-only (a local community does not exist for other
# servers; a remote one is another server's Group, never served by us as ours).
SELECT_FEDERATED = f"""
SELECT {COMMUNITY_COLUMNS}, c.created_at FROM communities c
WHERE lower(c.name) = lower($1) AND c.visibility <> 'local' AND c.actor_id IS NULL
"""
LIST_READABLE = f"""
SELECT {COMMUNITY_COLUMNS},
       (SELECT count(*) FROM threads t LEFT JOIN actors a ON a.id = t.remote_author_id
        WHERE t.community_id = c.id AND t.deleted_at IS NULL
          AND {listed_sql("a", "$2::boolean")}) AS thread_count,
       EXISTS (SELECT 1 FROM community_follows f WHERE f.community_id = c.id AND f.user_id = $1) AS followed
FROM communities c
WHERE {readable_sql("c", "$2")}
  AND (c.actor_id IS NULL OR EXISTS (SELECT 1 FROM group_follows g
                                     WHERE g.community_id = c.id AND g.state IN ('pending', 'accepted')))
ORDER BY lower(c.title)
"""
SELECT_EXPERTS = """
SELECT u.id, u.username, u.display_name, u.profession, u.organisation
FROM community_experts e JOIN users u ON u.id = e.user_id
WHERE e.community_id = $1 AND u.status = 'approved'
ORDER BY lower(u.display_name)
"""
IS_EXPERT = """
SELECT EXISTS (SELECT 1 FROM community_experts WHERE community_id = $1 AND user_id = $2)
"""
IS_FOLLOWING = "SELECT EXISTS (SELECT 1 FROM community_follows WHERE user_id = $1 AND community_id = $2)"
INSERT_FOLLOW = """
INSERT INTO community_follows (user_id, community_id) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""
DELETE_FOLLOW = "DELETE FROM community_follows WHERE user_id = $1 AND community_id = $2"
INSERT_EXPERT = """
INSERT INTO community_experts (community_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""
DELETE_EXPERT = "DELETE FROM community_experts WHERE community_id = $1 AND user_id = $2"
SELECT_APPROVED_USER = "SELECT id FROM users WHERE lower(username) = lower($1) AND status = 'approved'"
UPDATE_COMMUNITY = "UPDATE communities SET title = $2, description = $3, rules = $4 WHERE id = $1"
LIST_ALL = f"SELECT {COMMUNITY_COLUMNS} FROM communities c ORDER BY lower(c.title)"
MAX_DESCRIPTION = 2000
MAX_RULES = 5000


SELECT_BY_ACTOR = f"SELECT {COMMUNITY_COLUMNS} FROM communities c WHERE c.actor_id = $1"
UPSERT_REMOTE = f"""
INSERT INTO communities AS c (name, title, description, visibility, actor_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (actor_id) DO UPDATE
SET name = EXCLUDED.name, title = EXCLUDED.title, description = EXCLUDED.description,
    visibility = EXCLUDED.visibility
RETURNING {COMMUNITY_COLUMNS}
"""
COUNT_FOLLOWERS = "SELECT count(*) FROM community_follows WHERE community_id = $1"
REMOTE_VISIBILITIES = ("public", "members")
MAX_REMOTE_TITLE = 120


def _community(row: asyncpg.Record) -> Community:
    return Community(
        row["id"],
        row["name"],
        row["title"],
        row["description"],
        row["rules"],
        row["visibility"],
        row["actor_id"],
    )


async def find(conn: Conn, name: str) -> Community | None:
    """The community named ``name`` whatever its visibility (admin and services)."""
    row = await conn.fetchrow(SELECT_BY_NAME, name)
    return _community(row) if row else None


async def find_federated(conn: Conn, name: str) -> asyncpg.Record | None:
    """Our community named ``name`` if it federates (public or members-only; never a
    remote community): id, name, title, description, rules, visibility, actor_id,
    created_at."""
    return await conn.fetchrow(SELECT_FEDERATED, name)


async def by_id(conn: Conn, community_id: int) -> Community | None:
    """The community ``community_id`` whatever its visibility (services)."""
    row = await conn.fetchrow(SELECT_BY_ID, community_id)
    return _community(row) if row else None


async def by_actor(conn: Conn, actor_id: int) -> Community | None:
    """The remote community whose Group is the actor ``actor_id``, if we have it."""
    row = await conn.fetchrow(SELECT_BY_ACTOR, actor_id)
    return _community(row) if row else None


async def upsert_remote(
    conn: Conn,
    *,
    actor_id: int,
    name: str,
    title: str,
    description: str,
    visibility: str,
) -> Community:
    """Insert or refresh the row of the remote community whose Group is ``actor_id``.

    ``name`` is ``preferredUsername@host`` (the caller lowercases the host); ``title``
    is cut to the local limit (a remote title may be longer) and falls back to the
    name; ``description`` is plain or sanitised text from federation."""
    if visibility not in REMOTE_VISIBILITIES:
        raise ValueError(f"a remote community is public or members-only, not {visibility!r}")
    if "@" not in name:
        raise ValueError(f"a remote community's name is name@host, not {name!r}")
    title = title.strip()[:MAX_REMOTE_TITLE] or name
    description = description.strip()[:MAX_DESCRIPTION]
    row = await conn.fetchrow(UPSERT_REMOTE, name, title, description, visibility, actor_id)
    assert row is not None
    return _community(row)


async def count_followers(conn: Conn, community_id: int) -> int:
    """How many of our members follow (are subscribed to) the community."""
    count: int = await conn.fetchval(COUNT_FOLLOWERS, community_id)
    return count


# --- Remote communities: where they come from and how our node follows them -------------
#
# group_follows is written by federation.remote (the node's one Follow of the Group);
# node reads it here to show the state on the pages.


@dataclass(frozen=True)
class RemoteOrigin:
    """Where a remote community lives and where our node's follow of it stands."""

    host: str
    url: str  # the original, on its server (the Group's page, else its actor id)
    state: str | None  # group_follows.state: pending, accepted, rejected, undone; None: never followed
    node_wide: bool  # an administrator follows it for the whole node

    @property
    def active(self) -> bool:
        return self.state in ("pending", "accepted")


@dataclass(frozen=True)
class RemoteCard:
    """What a member sees of a remote community found by its address, before following."""

    community: Community
    origin: RemoteOrigin
    software: str | None  # from the server's NodeInfo, when it answered
    remote_followers: int | None  # the Group's followers collection's totalItems, if given
    local_followers: int


# A remote community's address: name@host, with Lemmy's « ! » or Mastodon's « @ » in
# front (host may carry a port: loopback peers in tests), or its URL.
REMOTE_HANDLE = re.compile(r"^[!@]?([A-Za-z0-9_.~-]{1,100})@([A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?)$")


def looks_like_remote_address(text: str) -> bool:
    """Whether ``text`` (a search query) is a remote community's address rather than words."""
    text = text.strip()
    return bool(REMOTE_HANDLE.match(text)) or (
        text.startswith(("https://", "http://")) and " " not in text and len(text) <= 2000
    )


SELECT_ORIGIN = """
SELECT a.domain, a.uri, a.url, g.state, coalesce(g.node_wide, false) AS node_wide
FROM actors a LEFT JOIN group_follows g ON g.community_id = $2
WHERE a.id = $1
"""
LIST_REMOTE = f"""
SELECT {COMMUNITY_COLUMNS}, a.domain, a.uri, g.state, coalesce(g.node_wide, false) AS node_wide,
       g.requested_at, g.decided_at, fa.kind AS follower_kind, fa.username AS follower_name,
       (SELECT count(*) FROM community_follows f WHERE f.community_id = c.id) AS followers
FROM communities c
JOIN actors a ON a.id = c.actor_id
LEFT JOIN group_follows g ON g.community_id = c.id
LEFT JOIN actors fa ON fa.id = g.follower_id
ORDER BY lower(c.name)
"""


def _origin_url(uri: str, url: str | None) -> str:
    return url if url and url.startswith(("https://", "http://")) else uri


async def remote_origin(conn: Conn, community: Community) -> RemoteOrigin | None:
    """Host, original and follow state of a remote community; None for one of ours."""
    if community.actor_id is None:
        return None
    row = await conn.fetchrow(SELECT_ORIGIN, community.actor_id, community.id)
    if row is None:
        return None
    return RemoteOrigin(row["domain"], _origin_url(row["uri"], row["url"]), row["state"], row["node_wide"])


# remote_moderators is node.backfill's (filled from the group's moderators collection).
SELECT_REMOTE_MODERATORS = """
SELECT a.display_name, a.username, a.domain, a.uri, a.url
FROM remote_moderators m JOIN actors a ON a.id = m.actor_id
WHERE m.community_id = $1 AND NOT a.hidden
ORDER BY lower(coalesce(nullif(a.display_name, ''), a.username))
LIMIT 50
"""


@dataclass(frozen=True)
class RemotePerson:
    name: str
    handle: str  # user@host
    url: str  # their profile, on their server


async def remote_moderators(conn: Conn, community: Community) -> list[RemotePerson]:
    """The moderators of a remote community, as its server lists them (for its page)."""
    if community.actor_id is None:
        return []
    rows = await conn.fetch(SELECT_REMOTE_MODERATORS, community.id)
    return [
        RemotePerson(
            r["display_name"] or r["username"],
            f"{r['username']}@{r['domain']}",
            _origin_url(r["uri"], r["url"]),
        )
        for r in rows
    ]


# Remote communities the node follows for its members (not node-wide) that none follows any more.
SELECT_UNFOLLOWED_REMOTE = """
SELECT g.community_id FROM group_follows g
WHERE g.state IN ('pending', 'accepted') AND NOT g.node_wide
  AND NOT EXISTS (SELECT 1 FROM community_follows f WHERE f.community_id = g.community_id)
"""


async def unfollowed_remote(conn: Conn) -> list[Community]:
    """Remote communities whose last local subscriber left by another way than
    « Ne plus suivre » (a deleted account): the node's follow of them is to be undone."""
    ids = [r["community_id"] for r in await conn.fetch(SELECT_UNFOLLOWED_REMOTE)]
    found = [await by_id(conn, i) for i in ids]
    return [c for c in found if c is not None]


SELECT_A_FOLLOWER = """
SELECT u.id, u.username, u.display_name, u.role, u.status
FROM community_follows f JOIN users u ON u.id = f.user_id
WHERE f.community_id = $1 AND u.status = 'approved'
ORDER BY f.created_at, u.id
LIMIT 1
"""


async def first_follower(conn: Conn, community_id: int) -> User | None:
    """The approved member who has followed the community longest (the next one the node
    may follow a remote group in the name of, when its server wants a person)."""
    row = await conn.fetchrow(SELECT_A_FOLLOWER, community_id)
    return User(row["id"], row["username"], row["display_name"], row["role"], row["status"]) if row else None


async def list_remote(conn: Conn) -> list[asyncpg.Record]:
    """Every remote community with its host, follow state and local followers (admins)."""
    result: list[asyncpg.Record] = await conn.fetch(LIST_REMOTE)
    return result


async def get_readable(conn: Conn, name: str, user: User | None) -> Community:
    """The community named ``name`` if ``user`` may read it, else NotFound."""
    community = await find(conn, name)
    if community is None or not can_read(user, community.visibility):
        raise NotFound()
    return community


async def get_readable_local(conn: Conn, name: str, user: User | None) -> Community:
    """:func:`get_readable` for what only our own communities have (the documents
    library): a remote community answers like a missing page."""
    community = await get_readable(conn, name, user)
    if community.remote:
        raise NotFound()
    return community


async def list_readable(conn: Conn, user: User | None) -> list[asyncpg.Record]:
    """Communities the viewer may read, with thread count and whether they follow it."""
    result: list[asyncpg.Record] = await conn.fetch(LIST_READABLE, user.id if user else None, is_reader(user))
    return result


SELECT_TITLES = "SELECT id, title FROM communities WHERE id = ANY($1::bigint[])"


async def titles(conn: Conn, community_ids: list[int]) -> dict[int, str]:
    """The titles of these communities (for the admin pages), by id."""
    return {r["id"]: r["title"] for r in await conn.fetch(SELECT_TITLES, community_ids)}


async def list_all(conn: Conn) -> list[Community]:
    return [_community(r) for r in await conn.fetch(LIST_ALL)]


async def experts_of(conn: Conn, community_id: int) -> list[asyncpg.Record]:
    """The community's animators (approved experts), for its page."""
    result: list[asyncpg.Record] = await conn.fetch(SELECT_EXPERTS, community_id)
    return result


async def can_animate(conn: Conn, user: User | None, community_id: int) -> bool:
    """Experts of the community and node moderators pin, lock and mark expert answers."""
    if user is None or not user.is_approved:
        return False
    if user.is_moderator:
        return True
    is_expert: bool = await conn.fetchval(IS_EXPERT, community_id, user.id)
    return is_expert


async def is_following(conn: Conn, user: User, community_id: int) -> bool:
    following: bool = await conn.fetchval(IS_FOLLOWING, user.id, community_id)
    return following


async def follow(conn: Conn, user: User, community: Community) -> None:
    if not is_reader(user):
        raise NotFound()
    await conn.execute(INSERT_FOLLOW, user.id, community.id)


async def unfollow(conn: Conn, user: User, community: Community) -> None:
    await conn.execute(DELETE_FOLLOW, user.id, community.id)


def _check_texts(title: str, description: str, rules: str) -> tuple[str, str, str]:
    title = title.strip()
    if not title or len(title) > 120:
        raise BadRequest(fields={"title": "Le titre est obligatoire (120 caractères au plus)."})
    if len(description) > MAX_DESCRIPTION:
        raise BadRequest(
            fields={"description": f"Description trop longue ({MAX_DESCRIPTION} caractères au plus)."}
        )
    if len(rules) > MAX_RULES:
        raise BadRequest(fields={"rules": f"Règles trop longues ({MAX_RULES} caractères au plus)."})
    return title, description.strip(), rules.strip()


async def update_community(
    conn: asyncpg.Connection,
    community_id: int,
    *,
    title: str,
    description: str,
    rules: str,
    actor: User,
) -> None:
    """Change the texts of a community (admins); audited."""
    title, description, rules = _check_texts(title, description, rules)
    async with conn.transaction():
        status = await conn.execute(UPDATE_COMMUNITY, community_id, title, description, rules)
        if status == "UPDATE 0":
            raise NotFound()
        await audit.record(
            conn,
            "community.update",
            actor_id=actor.id,
            actor_label=actor.username,
            target_type="community",
            target_id=community_id,
            details={"title": title},
        )


async def set_expert(
    conn: asyncpg.Connection, community_id: int, username: str, *, expert: bool, actor: User
) -> None:
    """Make an approved member an animator of the community, or stop it; audited."""
    async with conn.transaction():
        user_id = await conn.fetchval(SELECT_APPROVED_USER, username.strip())
        if user_id is None:
            raise BadRequest(fields={"expert": "Aucun membre approuvé ne porte ce nom d'utilisateur."})
        await conn.execute(INSERT_EXPERT if expert else DELETE_EXPERT, community_id, user_id)
        await audit.record(
            conn,
            "community.expert_add" if expert else "community.expert_remove",
            actor_id=actor.id,
            actor_label=actor.username,
            target_type="community",
            target_id=community_id,
            details={"user_id": user_id},
        )
