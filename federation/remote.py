"""Our actors speaking to a remote group: the first two pieces of "remote communities".

Following remote communities, showing their threads and replying from the UI are not
built yet; until then these two functions are what the node needs to take part in a
partner community at all (and what the multi-node tests drive):

- :func:`follow_remote_group`: the instance actor follows a remote ``Group`` (docs/architecture.md §3:
  the node subscribes once for all its members); the group's ``Accept``/``Reject`` is
  recorded by ``handlers.accept`` in ``follow_answers``.
- :func:`reply_to_remote_post`: a member's ``Create{Note}`` answering a remote post,
  sent to the group's inbox; the group stores it and relays it to its followers.
- :func:`share_document` / :func:`withdraw`: a member publishes one of our documents in
  a partner's community (a ``Page`` with its ``Document`` attachment: the partner's
  library lists it and fetches the file from us with a signed GET), and deletes it there.

Both queue an activity for the delivery workers (``delivery.enqueue``: stored in
``activities``, hence served at its id, then signed by its actor's key and POSTed).
Content addressed to a remote group is never addressed to Public: we cannot know the
group's visibility, so the remote server decides whom it relays to.

Shared follows (issue 11; the model is ``communities.actor_id`` + ``group_follows``)::

    address ──resolve──> WebFinger (same host) ──> signed GET of the Group ──> communities row
    member « Suivre » ──> community_follows ──(no active group follow?)──> Follow by the instance
        actor ──(the group's inbox refuses it: 4xx)──> Follow by the member's Person instead
    group_follows: pending ──Accept──> accepted (Group read again, outbox backfill scheduled)
                   pending|accepted ──Reject──> rejected
    last local member leaves (and not node_wide) ──> Undo{Follow} ──> undone

An administrator's follow is ``node_wide``: members leaving never undo it; dropping it
(``drop``) undoes it whoever still follows.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import asyncpg

from federation import actors, delivery, objects, remote_html, urls
from federation.actors import ObjectFetcher
from federation.errors import FederationError, FetchError, ValidationError
from federation.policy import host_of
from node import backfill, communities, documents, markup
from node.communities import Community, RemoteCard
from node.sessions import User
from node.settings import Settings

log = logging.getLogger(__name__)


class NotAGroup(FederationError):
    """The URI given is not a remote ``Group`` actor."""

    status = 400
    default_message = "Cette adresse n'est pas celle d'une communauté distante."


async def _remote_group(conn: asyncpg.Connection, fetcher: ObjectFetcher, group_uri: str) -> actors.Actor:
    group = await actors.get_or_fetch(conn, fetcher, group_uri)
    if group.local or group.kind != "Group":
        raise NotAGroup(f"{group_uri} is not a remote group")
    return group


async def _queue(
    conn: asyncpg.Connection,
    settings: Settings,
    activity: dict[str, Any],
    group: actors.Actor,
    *,
    object_uri: str | None,
    audience: str,
) -> None:
    inboxes = delivery.pick_inboxes([(group.inbox, None)], settings.domain)
    inboxes = await delivery.deliverable(conn, settings.domain, inboxes)
    async with conn.transaction():
        await delivery.enqueue(conn, activity, inboxes, object_uri=object_uri, audience=audience)


async def follow_remote_group(
    conn: asyncpg.Connection, settings: Settings, fetcher: ObjectFetcher, group_uri: str
) -> str:
    """Our instance actor follows the remote group at ``group_uri``; returns the Follow's id."""
    group = await _remote_group(conn, fetcher, group_uri)
    instance = await actors.instance_actor(conn, settings)
    follow = objects.with_context(
        {
            "id": urls.new_activity(settings),
            "type": "Follow",
            "actor": instance.uri,
            "object": group.uri,
            "to": [group.uri],
        }
    )
    await _queue(conn, settings, follow, group, object_uri=None, audience="direct")
    return str(follow["id"])


async def reply_to_remote_post(
    conn: asyncpg.Connection,
    settings: Settings,
    fetcher: ObjectFetcher,
    *,
    user_id: int,
    group_uri: str,
    in_reply_to: str,
    body: str,
) -> str:
    """Member ``user_id`` answers the remote post ``in_reply_to`` of the remote group;
    returns the Note's id. The Note lives inside its Create (``/activities/{uuid}#note``)
    until remote threads are stored locally (not built yet)."""
    group = await _remote_group(conn, fetcher, group_uri)
    person = await actors.ensure_local_actor(conn, settings, "Person", user_id=user_id)
    create_id = urls.new_activity(settings)
    content = markup.render(body)
    note = {
        "id": f"{create_id}#note",
        "type": "Note",
        "attributedTo": person.uri,
        "inReplyTo": in_reply_to,
        "audience": group.uri,
        "to": [group.uri],
        "cc": [],
        "content": content,
        "contentMap": {"fr": content},
        "mediaType": "text/html",
        "published": objects.iso(datetime.now(UTC)),
        "source": {"content": body, "mediaType": "text/markdown"},
        "tag": [{"type": "Mention", "href": group.uri, "name": f"@{group.username}@{group.domain}"}],
    }
    create = objects.with_context(
        {
            "id": create_id,
            "type": "Create",
            "actor": person.uri,
            "object": note,
            "to": note["to"],
            "cc": [],
            "audience": group.uri,
        }
    )
    await _queue(conn, settings, create, group, object_uri=str(note["id"]), audience="members")
    return str(note["id"])


async def share_document(
    conn: asyncpg.Connection,
    settings: Settings,
    fetcher: ObjectFetcher,
    *,
    user_id: int,
    group_uri: str,
    document_id: int,
) -> str:
    """Member ``user_id`` publishes our document ``document_id`` in the remote group;
    returns the Page's id (``/activities/{uuid}#page``, as a reply's Note)."""
    group = await _remote_group(conn, fetcher, group_uri)
    shared = await documents.shareable(conn, document_id)
    person = await actors.ensure_local_actor(conn, settings, "Person", user_id=user_id)
    create_id = urls.new_activity(settings)
    body = shared.description or shared.title
    content = markup.render(body)
    page: dict[str, Any] = {
        "id": f"{create_id}#page",
        "type": "Page",
        "name": shared.title,
        "attributedTo": person.uri,
        "audience": group.uri,
        "to": [group.uri],
        "cc": [],
        "content": content,
        "contentMap": {"fr": content},
        "mediaType": "text/html",
        "published": objects.iso(datetime.now(UTC)),
        "source": {"content": body, "mediaType": "text/markdown"},
        "tag": [{"type": "Mention", "href": group.uri, "name": f"@{group.username}@{group.domain}"}],
    }
    objects.attach_document(settings, page, shared.file)
    create = objects.with_context(
        {"id": create_id, "type": "Create", "actor": person.uri, "object": page, "to": page["to"], "cc": [],
         "audience": group.uri}
    )  # fmt: skip
    await _queue(conn, settings, create, group, object_uri=str(page["id"]), audience="members")
    return str(page["id"])


async def withdraw(
    conn: asyncpg.Connection,
    settings: Settings,
    fetcher: ObjectFetcher,
    *,
    user_id: int,
    group_uri: str,
    object_id: str,
) -> str:
    """Member ``user_id`` deletes what they published in the remote group (``Delete``
    of ``object_id``, a Tombstone); returns the Delete's id."""
    group = await _remote_group(conn, fetcher, group_uri)
    person = await actors.ensure_local_actor(conn, settings, "Person", user_id=user_id)
    delete = objects.with_context(
        {"id": urls.new_activity(settings), "type": "Delete", "actor": person.uri,
         "object": {"id": object_id, "type": "Tombstone"}, "to": [group.uri], "cc": [], "audience": group.uri}
    )  # fmt: skip
    await _queue(conn, settings, delete, group, object_uri=None, audience="members")
    return str(delete["id"])


# --- finding a remote community by its address -------------------------------------


class Fetcher(ObjectFetcher, Protocol):
    """What resolving and following need of ``federation.fetcher.Fetcher``."""

    async def fetch_json(self, url: str) -> dict[str, Any]: ...

    async def post_activity(self, inbox_url: str, body: bytes, key_id: str, private_key: Any) -> int: ...


class RemoteNotFound(FederationError):
    """The address names no community we can follow (the French message says why)."""

    status = 400
    default_message = "Aucune communauté n'a été trouvée à cette adresse."


HANDLE = communities.REMOTE_HANDLE
MAX_ADDRESS = 2000
JRD_TYPES = ("application/activity+json", "application/ld+json")


def _not_found(reason: str, message: str | None = None) -> RemoteNotFound:
    return RemoteNotFound(reason, message=message)


async def _webfinger(settings: Settings, fetcher: Fetcher, name: str, host: str) -> str:
    """The actor id WebFinger gives for ``name@host``; it must be on ``host`` itself."""
    schemes = ("https", "http") if settings.dev_allow_private_peers else ("https",)
    last: FederationError | None = None
    for scheme in schemes:
        query = urlencode({"resource": f"acct:{name}@{host}"})
        try:
            jrd = await fetcher.fetch_json(f"{scheme}://{host}/.well-known/webfinger?{query}")
        except FetchError as exc:
            last = exc
            if exc.remote_status is not None:
                break  # the server answered (404…): another scheme will not know better
            continue
        links = jrd.get("links")
        hrefs = [
            link.get("href")
            for link in (links if isinstance(links, list) else [])
            if isinstance(link, dict) and link.get("rel") == "self"
            and any(t in str(link.get("type")) for t in JRD_TYPES)
        ]  # fmt: skip
        href = next((h for h in hrefs if isinstance(h, str)), None)
        if href is None:
            raise _not_found(f"no ActivityPub self link for {name}@{host}")
        if host_of(href) != host:
            raise _not_found(
                f"WebFinger of {name}@{host} points to {host_of(href)!r}",
                f"Le serveur {host} renvoie vers un autre serveur ({host_of(href) or 'adresse invalide'}) : "
                "adresse refusée. Essayez l'adresse de la communauté sur son propre serveur.",
            )
        return href
    if isinstance(last, FetchError) and last.remote_status == 404:
        raise _not_found(f"WebFinger: no {name}@{host}")
    raise _not_found(
        f"WebFinger of {name}@{host} failed: {last}",
        f"Le serveur {host} n'a pas pu être consulté (adresse inconnue, injoignable ou refusée).",
    )


def _target(settings: Settings, address: str) -> tuple[str | None, str, str | None]:
    """(name, host, url) of an address: a handle gives name and host, a URL its host."""
    address = address.strip()
    if not address or len(address) > MAX_ADDRESS:
        raise _not_found("empty or too long address", "Indiquez l'adresse d'une communauté : !nom@serveur.")
    if address.startswith(("https://", "http://")):
        host = host_of(address)
        if not host:
            raise _not_found(f"bad URL {address[:100]!r}", "Cette adresse web n'est pas valide.")
        return None, host, address
    match = HANDLE.match(address)
    if match is None:
        raise _not_found(
            f"not a handle {address[:100]!r}",
            "Adresse non reconnue : écrivez !nom@serveur, nom@serveur ou l'adresse web de la communauté.",
        )
    host = host_of(f"https://{match.group(2)}")
    if not host:
        raise _not_found(f"bad host in {address[:100]!r}", "Le nom de serveur n'est pas valide.")
    return match.group(1), host, None


async def resolve(conn: asyncpg.Connection, settings: Settings, fetcher: Fetcher, address: str) -> Community:
    """The remote community at ``address`` (``!name@host``, ``@name@host``, ``name@host``
    or its URL): WebFinger on its server, then a signed GET of the Group, both through the
    guarded fetcher; its ``communities`` row is created or refreshed. Anything else (not
    found, not a Group, WebFinger pointing elsewhere, unreadable answer) raises
    RemoteNotFound with a French message and stores nothing."""
    name, host, url = _target(settings, address)
    if host == settings.domain.lower():
        raise _not_found("own domain", "Cette adresse est celle d'une communauté de ce serveur-ci.")
    href = url if url is not None else await _webfinger(settings, fetcher, name or "", host)
    try:
        doc = await fetcher.fetch_object(href)
    except FetchError as exc:
        if exc.remote_status in (404, 410):
            raise _not_found(f"{href}: {exc}") from exc
        raise _not_found(
            f"{href}: {exc}", f"La communauté n'a pas pu être lue sur {host} (réponse absente ou illisible)."
        ) from exc
    if doc.get("type") != "Group":
        raise _not_found(
            f"{href} is a {str(doc.get('type'))[:40]}",
            "Cette adresse n'est pas celle d'une communauté (c'est un compte ou un autre objet).",
        )
    if host_of(href) != host:
        raise _not_found(f"{href} is not on {host}")
    try:
        group = await actors.store_remote(conn, doc, href)
    except ValidationError as exc:
        raise _not_found(f"{href}: {exc}", "La description de cette communauté est invalide.") from exc
    try:
        return await _store_community(conn, group)
    except asyncpg.UniqueViolationError as exc:  # another Group of that server had this name
        raise _not_found(
            f"name {group.username}@{group.domain} taken by another actor",
            "Une autre communauté de ce serveur porte déjà ce nom ici : demandez à l'administration.",
        ) from exc


def _visibility(group: actors.Actor) -> str:
    """A group that approves its followers is members-only; so is one served to us in its
    key-only form (no followers collection: its server does not let us read it yet)."""
    return "members" if group.manually_approves_followers or not group.followers else "public"


async def _store_community(conn: asyncpg.Connection, group: actors.Actor) -> Community:
    async with conn.transaction():  # a savepoint inside the caller's: a name conflict leaves it usable
        return await _upsert(conn, group)


async def _upsert(conn: asyncpg.Connection, group: actors.Actor) -> Community:
    return await communities.upsert_remote(
        conn,
        actor_id=group.id,
        name=f"{group.username}@{group.domain}",
        title=group.display_name or group.username,
        description=remote_html.to_text(group.summary_html),
        visibility=_visibility(group),
    )


async def refresh_community(conn: asyncpg.Connection, group: actors.Actor) -> Community | None:
    """Re-derive the community row of a remote Group we already have (an ``Update{Group}``
    relayed, the Group re-read): title, description and visibility as its document now
    says. None, and nothing created, for a Group that is not one of our remote communities."""
    if await communities.by_actor(conn, group.id) is None:
        return None
    try:
        return await _store_community(conn, group)
    except asyncpg.UniqueViolationError:  # its new name is another Group's here: keep the old one
        log.info("remote community of %s not renamed: name taken", group.uri)
        return await communities.by_actor(conn, group.id)


async def _software(settings: Settings, fetcher: Fetcher, host: str) -> str | None:
    """The server's software name from its NodeInfo (two small GETs; None if it fails)."""
    with contextlib.suppress(FederationError):
        scheme = "https" if not settings.dev_allow_private_peers else urlsplit(settings.base_url).scheme
        for attempt in dict.fromkeys(("https", scheme)):
            try:
                index = await fetcher.fetch_json(f"{attempt}://{host}/.well-known/nodeinfo")
            except FetchError:
                continue
            links = index.get("links")
            for link in links if isinstance(links, list) else []:
                href = link.get("href") if isinstance(link, dict) else None
                if isinstance(href, str) and host_of(href) == host and "nodeinfo" in str(link.get("rel")):
                    info = await fetcher.fetch_json(href)
                    software = info.get("software")
                    name = software.get("name") if isinstance(software, dict) else None
                    return name[:40] if isinstance(name, str) and name else None
            return None
    return None


async def _remote_followers(fetcher: Fetcher, group: actors.Actor) -> int | None:
    if not group.followers:
        return None
    with contextlib.suppress(FederationError):
        doc = await fetcher.fetch_object(group.followers)
        total = doc.get("totalItems")
        return total if isinstance(total, int) and 0 <= total < 10**9 else None
    return None


async def find_card(
    conn: asyncpg.Connection, settings: Settings, fetcher: Fetcher, address: str
) -> RemoteCard:
    """:func:`resolve`, then what the card shows: software, followers there and here."""
    community = await resolve(conn, settings, fetcher, address)
    origin = await communities.remote_origin(conn, community)
    assert origin is not None and community.actor_id is not None
    group = await _actor_by_id(conn, community.actor_id)
    return RemoteCard(
        community=community,
        origin=origin,
        software=await _software(settings, fetcher, origin.host),
        remote_followers=await _remote_followers(fetcher, group),
        local_followers=await communities.count_followers(conn, community.id),
    )


# --- the node's one follow of a remote group -----------------------------------------

SELECT_ACTOR = f"SELECT {actors.ACTOR_COLUMNS} FROM actors WHERE id = $1"
SELECT_GROUP_FOLLOW = "SELECT * FROM group_follows WHERE community_id = $1"
# Whoever inserts (or revives an undone / refused row) sends the Follow; a pending or
# accepted follow is left alone (and may become node-wide).
CLAIM_GROUP_FOLLOW = """
INSERT INTO group_follows AS g (community_id, follower_id, follow_activity_id, requested_by, node_wide)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (community_id) DO UPDATE
SET follower_id = EXCLUDED.follower_id, follow_activity_id = EXCLUDED.follow_activity_id,
    state = 'pending', requested_by = EXCLUDED.requested_by, requested_at = now(), decided_at = NULL,
    node_wide = EXCLUDED.node_wide
WHERE g.state IN ('rejected', 'undone')
RETURNING follow_activity_id
"""
SET_NODE_WIDE = "UPDATE group_follows SET node_wide = $2 WHERE community_id = $1"
SWITCH_FOLLOWER = """
UPDATE group_follows SET follower_id = $2, follow_activity_id = $3 WHERE community_id = $1 AND follow_activity_id = $4
"""
MARK_REFUSED = """
UPDATE group_follows SET state = 'rejected', decided_at = now() WHERE community_id = $1 AND follow_activity_id = $2
"""
MARK_UNDONE = """
UPDATE group_follows SET state = 'undone', decided_at = now(), node_wide = false
WHERE community_id = $1 AND state IN ('pending', 'accepted')
RETURNING follower_id, follow_activity_id
"""
# The group answers our Follow: matched by the Follow's id, else by its follower.
ANSWER_FOLLOW = """
UPDATE group_follows g SET state = $3, decided_at = now()
FROM actors a
WHERE g.community_id = $1 AND a.id = g.follower_id
  AND (g.follow_activity_id = $2 OR ($2 IS NULL AND a.uri = $4))
  AND (g.state = 'pending' OR ($3 = 'rejected' AND g.state = 'accepted'))
RETURNING g.community_id
"""
SELECT_STATE = "SELECT state FROM group_follows WHERE community_id = $1"
FOLLOWED_AS = """
SELECT g.community_id, g.node_wide FROM group_follows g JOIN actors a ON a.id = g.follower_id
WHERE a.user_id = $1 AND g.state IN ('pending', 'accepted')
"""
# The node's live follow of the community is in the name of this member's Person.
FOLLOWS_AS = """
SELECT EXISTS (SELECT 1 FROM group_follows g JOIN actors a ON a.id = g.follower_id
               WHERE g.community_id = $1 AND a.user_id = $2 AND g.state IN ('pending', 'accepted'))
"""
# 4xx but these say "later", not "never".
RETRY_STATUSES = frozenset({408, 425, 429})


async def _actor_by_id(conn: asyncpg.Connection, actor_id: int) -> actors.Actor:
    row = await conn.fetchrow(SELECT_ACTOR, actor_id)
    assert row is not None, "group_follows and communities reference actors (foreign keys)"
    return actors.Actor.from_row(row)


def _follow(settings: Settings, follower: actors.Actor, group: actors.Actor) -> dict[str, Any]:
    return objects.with_context(
        {"id": urls.new_activity(settings), "type": "Follow", "actor": follower.uri, "object": group.uri,
         "to": [group.uri]}
    )  # fmt: skip


async def _post_now(
    conn: asyncpg.Connection, settings: Settings, fetcher: Fetcher, activity: dict[str, Any], follower: actors.Actor,
    group: actors.Actor,
) -> int | None:  # fmt: skip
    """Store ``activity`` (served at its id) and POST it to the group's inbox now, signed
    by ``follower``; the inbox's HTTP status, or None when it could not be reached (the
    activity is then queued for the delivery workers, who retry)."""
    inboxes = await _inboxes(conn, settings, group)
    assert follower.public_key_id is not None
    status: int | None = None
    try:
        status = await fetcher.post_activity(
            inboxes[0], json.dumps(activity).encode(), follower.public_key_id, actors.private_key(settings, follower)
        )  # fmt: skip
    except FetchError as exc:
        log.info("follow of %s: not delivered now (%s), queued", group.uri, exc)
    sent = status is not None and 200 <= status < 300
    async with conn.transaction():
        await delivery.enqueue(
            conn, activity, [] if sent or _refused(status) else inboxes, object_uri=None, audience="direct"
        )
    return status


async def _inboxes(conn: asyncpg.Connection, settings: Settings, group: actors.Actor) -> list[str]:
    """The group's inbox, if the instance policy lets us deliver there."""
    inboxes = delivery.pick_inboxes([(group.inbox, None)], settings.domain)
    inboxes = await delivery.deliverable(conn, settings.domain, inboxes)
    if not inboxes:
        raise _not_found(
            f"{group.domain} refused by the instance policy",
            "Ce serveur n'est pas autorisé par la politique de fédération du nœud.",
        )
    return inboxes


def _refused(status: int | None) -> bool:
    return status is not None and 400 <= status < 500 and status not in RETRY_STATUSES


async def ensure_follow(
    conn: asyncpg.Connection,
    settings: Settings,
    fetcher: Fetcher,
    community: Community,
    *,
    requested_by: User | None,
    node_wide: bool = False,
) -> str:
    """The node follows the remote ``community`` once: nothing to do when a follow is
    pending or accepted (``node_wide`` then only sets the flag); otherwise a Follow by
    the instance actor, or — if the group's inbox refuses it — by ``requested_by``'s
    Person (recorded as the follower). Returns the state (pending, accepted, rejected)."""
    if community.actor_id is None:
        raise _not_found(f"{community.name} is ours")
    group = await _actor_by_id(conn, community.actor_id)
    await _inboxes(conn, settings, group)
    instance = await actors.instance_actor(conn, settings)
    follow = _follow(settings, instance, group)
    claimed = await conn.fetchval(
        CLAIM_GROUP_FOLLOW, community.id, instance.id, follow["id"], requested_by.id if requested_by else None, node_wide
    )  # fmt: skip
    if claimed is None:
        if node_wide:
            await conn.execute(SET_NODE_WIDE, community.id, True)
        state: str = await conn.fetchval(
            "SELECT state FROM group_follows WHERE community_id = $1", community.id
        )
        return state
    status = await _post_now(conn, settings, fetcher, follow, instance, group)
    if not _refused(status):
        return "pending"
    # The group's server will not take a follow from an Application (Lemmy wants a Person):
    # the member asking follows for the node, and is recorded as its follower.
    if requested_by is None:
        await conn.execute(MARK_REFUSED, community.id, follow["id"])
        log.info(
            "follow of %s by the instance actor refused (%s), no member to follow instead", group.uri, status
        )
        return "rejected"
    person = await actors.ensure_local_actor(conn, settings, "Person", user_id=requested_by.id)
    by_person = _follow(settings, person, group)
    await conn.execute(SWITCH_FOLLOWER, community.id, person.id, by_person["id"], follow["id"])
    status = await _post_now(conn, settings, fetcher, by_person, person, group)
    if _refused(status):
        await conn.execute(MARK_REFUSED, community.id, by_person["id"])
        return "rejected"
    return "pending"


async def undo_follow(conn: asyncpg.Connection, settings: Settings, community: Community) -> bool:
    """Send ``Undo{Follow}`` for the node's follow of ``community`` (queued, retried) and
    mark it undone; False when there was no pending or accepted follow."""
    if community.actor_id is None:
        return False
    async with conn.transaction():
        row = await conn.fetchrow(MARK_UNDONE, community.id)
        if row is None:
            return False
        follower = await _actor_by_id(conn, row["follower_id"])
        group = await _actor_by_id(conn, community.actor_id)
        undo = objects.with_context(
            {"id": urls.new_activity(settings), "type": "Undo", "actor": follower.uri,
             "object": {"id": row["follow_activity_id"], "type": "Follow", "actor": follower.uri,
                        "object": group.uri},
             "to": [group.uri]}
        )  # fmt: skip
        inboxes = delivery.pick_inboxes([(group.inbox, None)], settings.domain)
        inboxes = await delivery.deliverable(conn, settings.domain, inboxes)
        await delivery.enqueue(conn, undo, inboxes, object_uri=None, audience="direct")
    return True


async def subscribe(
    conn: asyncpg.Connection, settings: Settings, fetcher: Fetcher, community: Community, user: User
) -> str:
    """Member ``user`` follows the remote ``community``: their own subscription, and the
    node's follow of the group if there is none yet. Returns the group follow's state."""
    await communities.follow(conn, user, community)
    return await ensure_follow(conn, settings, fetcher, community, requested_by=user)


async def unsubscribe(
    conn: asyncpg.Connection,
    settings: Settings,
    community: Community,
    user: User,
    fetcher: Fetcher | None = None,
) -> bool:
    """Member ``user`` stops following; when nobody here follows it any more (and no
    administrator follows it for the node), ``Undo{Follow}``. True when undone. When the
    node followed in her name (the group's server wanted a person), that follow is undone
    and made again in the name of the member who has followed longest (with ``fetcher``):
    her name leaves the group's followers with her."""
    await communities.unfollow(conn, user, community)
    origin = await communities.remote_origin(conn, community)
    if origin is None or not origin.active:
        return False
    remaining = await communities.count_followers(conn, community.id)
    if remaining == 0 and not origin.node_wide:
        return await undo_follow(conn, settings, community)
    if fetcher is not None and await conn.fetchval(FOLLOWS_AS, community.id, user.id):
        await undo_follow(conn, settings, community)
        successor = await communities.first_follower(conn, community.id)
        await ensure_follow(
            conn, settings, fetcher, community, requested_by=successor, node_wide=origin.node_wide
        )
    return False


async def follow_again_without(conn: asyncpg.Connection, settings: Settings, user_id: int) -> int:
    """Member ``user_id`` is gone (deleted account): every live follow the node holds in
    her Person's name is undone and queued again in the name of the member who has
    followed longest (its server wanted a person: no instance actor attempt). How many."""
    moved = 0
    for row in await conn.fetch(FOLLOWED_AS, user_id):
        community = await communities.by_id(conn, row["community_id"])
        if community is None or community.actor_id is None:
            continue
        await undo_follow(conn, settings, community)
        successor = await communities.first_follower(conn, community.id)
        if successor is None:
            continue
        group = await _actor_by_id(conn, community.actor_id)
        person = await actors.ensure_local_actor(conn, settings, "Person", user_id=successor.id)
        follow = _follow(settings, person, group)
        async with conn.transaction():
            claimed = await conn.fetchval(
                CLAIM_GROUP_FOLLOW, community.id, person.id, follow["id"], successor.id, row["node_wide"]
            )
            if claimed is not None:
                inboxes = delivery.pick_inboxes([(group.inbox, None)], settings.domain)
                inboxes = await delivery.deliverable(conn, settings.domain, inboxes)
                await delivery.enqueue(conn, follow, inboxes, object_uri=None, audience="direct")
                moved += 1
    return moved


async def undo_unused(conn: asyncpg.Connection, settings: Settings) -> int:
    """Undo the node's follow of every remote community nobody here follows any more
    (and no administrator follows for the node); how many were undone."""
    return sum([await undo_follow(conn, settings, c) for c in await communities.unfollowed_remote(conn)])


async def drop(conn: asyncpg.Connection, settings: Settings, community: Community) -> bool:
    """An administrator drops the remote community for the whole node: ``Undo{Follow}``
    whoever still follows it; members' subscriptions stay (they see it is no longer
    followed). True when a follow was undone."""
    return await undo_follow(conn, settings, community)


async def record_answer(
    conn: asyncpg.Connection,
    group_id: int,
    follow_id: str | None,
    follower_uri: str | None,
    answer: str,
    *,
    fetcher: ObjectFetcher | None = None,
) -> str | None:
    """The group (actor ``group_id``) accepted or rejected our Follow: ``group_follows``
    moves on. Returns the new state when it changed. Once accepted, the Group is read
    again with ``fetcher`` (its server may now show us what it hid: a members-only
    group's full document) and its outbox's recent threads are scheduled (backfill)."""
    community = await communities.by_actor(conn, group_id)
    if community is None:
        return None
    state = "accepted" if answer == "accept" else "rejected"
    row = await conn.fetchrow(ANSWER_FOLLOW, community.id, follow_id, state, follower_uri)
    if row is None:
        return None
    if state == "accepted":
        if fetcher is not None:
            await _refresh_group(conn, fetcher, group_id)
        await backfill.schedule_outbox(conn, community.id)
    return state


async def _refresh_group(conn: asyncpg.Connection, fetcher: ObjectFetcher, group_id: int) -> None:
    """Refetch the Group (signed) and store its community's title, description and
    visibility anew; on failure keep what we have (the next refresh will tell)."""
    group = await _actor_by_id(conn, group_id)
    try:
        group = await actors.refresh(conn, fetcher, group.uri)
    except FederationError as exc:
        log.info("group %s not refreshed after Accept: %s", group.uri, exc)
        return
    await refresh_community(conn, group)
