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
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from federation import actors, delivery, objects, urls
from federation.actors import ObjectFetcher
from federation.errors import FederationError
from node import documents, markup
from node.settings import Settings


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
