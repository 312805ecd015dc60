"""Private messages over ActivityPub (``node.messages`` stores them; see docs/private-messages.md).

Out: a ``message.created`` outbox event becomes ``Create{Note}`` from the author's
``Person``, addressed only to the conversation's other people (``to``, with a
``Mention`` of each; never Public, never a followers collection), delivered to each
remote participant's **personal** inbox (never a shared inbox), on the servers the
messages policy allows. The activity is stored sealed (``activities.json`` holds
only its id, type, actor and the ciphertext, audience ``direct``: never served at
its id) and opened by the delivery worker just before signing.

In: a ``Create{Note}`` addressed only to people, at least one of them ours, is a
private message. The inbox seals it before it is queued (``inbox_items`` holds only
ciphertext) and the worker hands it to ``node.messages.receive_remote``.

Served: ``GET /messages/m/{uuid}`` (a local message) and ``GET /messages/c/{uuid}``
(a conversation's ``context``) answer only a signed GET from the server of one of the
conversation's remote participants; anyone else gets 404, like a missing object.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from typing import Any
from urllib.parse import urlencode

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from federation import access, actors, objects, remote_html, urls
from federation.errors import FederationError
from federation.handlers.base import PUBLIC_ALIASES, Context, Outcome, done, ignored, local_path, ref, refs
from federation.negotiation import ActivityResponse, wants_activitypub
from federation.outbox import BuildContext, Outgoing
from node import accounts, encryption, events, messages
from node.errors import NotFound
from node.settings import Settings
from node.web.requests import pool_of, settings_of

SEALED = "vbg:sealed"


# -- what is a private message ---------------------------------------------------------


def addressees(activity: dict[str, Any]) -> list[str]:
    obj = activity.get("object")
    inner = obj if isinstance(obj, dict) else {}
    found: list[str] = []
    for holder in (activity, inner):
        for key in ("to", "cc", "bto", "bcc", "audience"):
            value = holder.get(key)
            if value is not None:  # most are absent: no list built for them
                found.extend(refs(value))
    return list(dict.fromkeys(found))


def local_people(settings: Settings, uris: list[str]) -> list[str]:
    """The usernames of our members among ``uris`` (``/u/{name}``)."""
    names = []
    for uri in uris:
        path = local_path(settings, uri) or ""
        if path.startswith("/u/") and "/" not in path[3:] and path[3:]:
            names.append(path[3:])
    return names


def is_direct(settings: Settings, activity: dict[str, Any]) -> bool:
    """A ``Create{Note}`` addressed to people only, one of them ours: no Public, no
    followers collection, none of our groups."""
    obj = activity.get("object")
    if activity.get("type") != "Create" or not isinstance(obj, dict) or obj.get("type") != "Note":
        return False
    uris = addressees(activity)
    # The usual public post is told apart without parsing any URI.
    if any(uri in PUBLIC_ALIASES or uri.rstrip("/").endswith("/followers") for uri in uris):
        return False
    if any((local_path(settings, uri) or "").startswith("/c/") for uri in uris):
        return False
    return bool(local_people(settings, uris))


# -- sealed while queued ----------------------------------------------------------------


def _keyring(settings: Settings) -> encryption.Keyring:
    return encryption.keyring_of(settings)


def seal_document(settings: Settings, activity: dict[str, Any]) -> dict[str, Any]:
    """What a queue stores of a private activity: its id, type and actor, and the ciphertext."""
    activity_id = str(activity.get("id", ""))
    data = json.dumps(activity, ensure_ascii=False).encode("utf-8")
    return {
        "id": activity_id,
        "type": activity.get("type"),
        "actor": ref(activity.get("actor")),
        SEALED: _keyring(settings).seal_transit(data, activity_id),
    }


def open_document(settings: Settings, document: dict[str, Any]) -> dict[str, Any]:
    """The activity a :func:`seal_document` envelope holds (anything else as it is)."""
    sealed = document.get(SEALED)
    if not isinstance(sealed, str):
        return document
    opened: dict[str, Any] = json.loads(_keyring(settings).open_transit(sealed, str(document.get("id", ""))))
    return opened


def open_body(settings: Settings, body: str) -> bytes:
    """An ``activities.json`` text as it must be POSTed (opened when sealed)."""
    if SEALED not in body:
        return body.encode("utf-8")
    document = json.loads(body)
    if not isinstance(document, dict) or SEALED not in document:
        return body.encode("utf-8")
    return json.dumps(open_document(settings, document), ensure_ascii=False).encode("utf-8")


# -- out --------------------------------------------------------------------------------


def note_of(settings: Settings, message: messages.OutgoingMessage) -> dict[str, Any]:
    """The ``Note`` of one local message (Mastodon's direct shape, and Lemmy's since 0.20)."""
    to = [
        p.uri if p.uri is not None else urls.person(settings, p.username or "")
        for p in message.others
        if p.uri is not None or p.username
    ]
    note: dict[str, Any] = {
        "id": messages.message_uri(settings.base_url, message.uuid),
        "type": "Note",
        "attributedTo": urls.person(settings, message.author_username),
        "to": to,
        "cc": [],
        "name": message.subject,
        "content": message.html,
        "mediaType": "text/html",
        "source": {"content": message.source, "mediaType": "text/markdown"},
        "context": message.context,
        "conversation": message.context,
        "published": message.created_at.isoformat().replace("+00:00", "Z"),
        "tag": [{"type": "Mention", "href": uri} for uri in to],
    }
    if message.previous:
        note["inReplyTo"] = message.previous
    return note


async def message_created(ctx: BuildContext, payload: dict[str, Any]) -> list[Outgoing]:
    """``Create{Note}`` to each remote participant's personal inbox, sealed at rest."""
    keyring = _keyring(ctx.settings)
    message = await messages.outgoing(
        ctx.conn, keyring, ctx.settings.base_url, events.MessageCreated.from_json(payload).message_id
    )
    if message is None:
        return []
    policy = await messages.remote_policy(ctx.conn)
    inboxes = [
        p.inbox for p in message.others if p.uri and p.inbox and messages.remote_allowed(policy, p.partner)
    ]
    if not inboxes:
        return []
    note = note_of(ctx.settings, message)
    activity = objects.with_context(
        {
            "id": urls.new_activity(ctx.settings),
            "type": "Create",
            "actor": note["attributedTo"],
            "to": note["to"],
            "cc": [],
            "object": note,
        }
    )
    await actors.ensure_local_actor(ctx.conn, ctx.settings, "Person", user_id=await _author_id(ctx, message))
    sealed = seal_document(ctx.settings, activity)
    return [Outgoing(sealed, list(dict.fromkeys(inboxes)), None, "direct")]


async def _author_id(ctx: BuildContext, message: messages.OutgoingMessage) -> int:
    author = await accounts.user_id_by_name(ctx.conn, message.author_username)
    assert author is not None, "a message's author is one of our accounts"
    return author


# -- in ---------------------------------------------------------------------------------


SELECT_KNOWN = "SELECT id FROM actors WHERE uri = ANY ($1::text[]) AND NOT local AND deleted_at IS NULL"


async def receive(ctx: Context) -> Outcome:
    """A private message for our members (``is_direct``): stored by ``node.messages``."""
    obj: dict[str, Any] = ctx.activity["object"]
    if ctx.sender.uri not in refs(obj.get("attributedTo")):
        return ignored("private message attributed to another actor")
    uris = addressees(ctx.activity)
    names = [n.lower() for n in local_people(ctx.settings, uris)]
    user_ids = await accounts.user_ids_by_names(ctx.conn, names)
    others = [u for u in uris if u != ctx.sender.uri and local_path(ctx.settings, u) is None]
    other_ids = [r["id"] for r in await ctx.conn.fetch(SELECT_KNOWN, others)] if others else []
    html = str(obj.get("content") or "")
    source = obj.get("source")
    text = source.get("content") if isinstance(source, dict) else None
    message = messages.IncomingMessage(
        author_actor_id=ctx.sender.id,
        author_partner=await access.instance_approved(ctx.conn, ctx.sender.domain),
        ap_id=str(obj.get("id")),
        context=ref(obj.get("context")) or ref(obj.get("conversation")),
        in_reply_to=ref(obj.get("inReplyTo")),
        subject=obj.get("name") if isinstance(obj.get("name"), str) else None,
        html=html,
        source=text if isinstance(text, str) else remote_html.to_text(html),
        local_user_ids=user_ids,
        other_actor_ids=other_ids,
    )
    stored = await messages.receive_remote(ctx.conn, _keyring(ctx.settings), ctx.settings.base_url, message)
    if stored is None:
        return ignored("private message dropped (policy, preference, block or unknown conversation)")
    return done(f"message {stored}")


# -- finding a remote member ------------------------------------------------------------

HANDLE = re.compile(r"^([a-z0-9_.-]{1,100})@([a-z0-9.-]{1,253}(?::[0-9]{1,5})?)$")


async def learn_remote_member(request: Request, handle: str) -> None:
    """Make « nom@domaine » known: WebFinger on its server, then its actor, both through
    the guarded fetcher (instance policy, address checks). Anything that fails leaves it
    unknown; the form then says the member was not found."""
    match = HANDLE.match(handle.strip().lstrip("@").lower())
    if match is None:
        return
    name, domain = match.groups()
    settings = settings_of(request)
    fetcher = access.fetcher_of(request)
    schemes = ("https", "http") if settings.dev_allow_private_peers else ("https",)
    for scheme in schemes:
        url = f"{scheme}://{domain}/.well-known/webfinger?{urlencode({'resource': f'acct:{name}@{domain}'})}"
        try:
            jrd = await fetcher.fetch_json(url)
        except FederationError:
            continue
        href = next(
            (
                link.get("href")
                for link in jrd.get("links", [])
                if isinstance(link, dict)
                and link.get("rel") == "self"
                and "activity+json" in str(link.get("type"))
            ),
            None,
        )
        if isinstance(href, str):
            async with pool_of(request).acquire() as conn:
                with contextlib.suppress(FederationError, actors.ActorInvalid):
                    await actors.get_or_fetch(conn, fetcher, href)
        return


# -- served to participants' servers only -----------------------------------------------


async def _requester_domain(request: Request, conn: asyncpg.Connection, settings: Settings) -> str:
    if not wants_activitypub(request.headers.get("accept", "")):
        raise NotFound()
    signer = await access.verified_signer(request, conn, settings)
    if signer is None:
        raise NotFound()
    return signer.domain


def _uuid(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(str(request.path_params["uuid"]))
    except ValueError:
        raise NotFound() from None


async def message_object(request: Request) -> Response:
    settings = settings_of(request)
    message_uuid = _uuid(request)
    async with pool_of(request).acquire() as conn:
        domain = await _requester_domain(request, conn, settings)
        message = await messages.served_to_server(
            conn, _keyring(settings), settings.base_url, message_uuid, domain
        )
    if message is None:
        raise NotFound()
    return ActivityResponse(note_of(settings, message))


async def conversation_context(request: Request) -> Response:
    settings = settings_of(request)
    context = f"{settings.base_url}/messages/c/{_uuid(request)}"
    async with pool_of(request).acquire() as conn:
        domain = await _requester_domain(request, conn, settings)
        items = await messages.context_for_server(conn, settings.base_url, context, domain)
    if items is None:
        raise NotFound()
    return ActivityResponse(
        {"id": context, "type": "OrderedCollection", "totalItems": len(items), "orderedItems": items}
    )


routes: list[BaseRoute] = [
    Route("/messages/m/{uuid}", message_object, methods=["GET"], name="ap_message"),
    Route("/messages/c/{uuid}", conversation_context, methods=["GET"], name="ap_conversation"),
]
