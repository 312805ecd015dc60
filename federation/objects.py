"""Our content and actors as ActivityStreams JSON (``to_ap`` functions).

Members are ``Person``, communities ``Group`` (FEP-1b12), the node an ``Application``;
a thread is a ``Page`` (its opening post, title in ``name``), a reply a ``Note`` with
``inReplyTo``. Both carry ``audience`` (the group), ``context`` (the thread's
collection, FEP-7888/f228), a ``Mention`` of the group, ``contentMap.fr`` and the
Markdown ``source``. Addressing follows the community's visibility and never mixes:
public content is addressed to Public, members-only content to the group and its
followers only. A deleted post is a ``Tombstone``.

The loaders here read the forum's tables; who may see what is decided by the
caller (``federation.access``).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import asyncpg
import nh3

from federation import urls
from node import documents, published
from node.errors import NotFound
from node.settings import Settings

if TYPE_CHECKING:
    from federation.actors import Actor

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
# Extension terms used by Mastodon, Lemmy and PeerTube; shipped inline, never fetched.
EXTENSIONS_CONTEXT: dict[str, Any] = {
    "toot": "http://joinmastodon.org/ns#",
    "lemmy": "https://join-lemmy.org/ns#",
    "pt": "https://joinpeertube.org/ns#",
    "as": "https://www.w3.org/ns/activitystreams#",
    "sensitive": "as:sensitive",
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "discoverable": "toot:discoverable",
    "featured": {"@id": "toot:featured", "@type": "@id"},
    "stickied": "lemmy:stickied",
    "postingRestrictedToMods": "lemmy:postingRestrictedToMods",
    "moderators": {"@id": "lemmy:moderators", "@type": "@id"},
    "commentsEnabled": "pt:commentsEnabled",
}
CONTEXT: list[Any] = [AS_CONTEXT, SECURITY_CONTEXT, EXTENSIONS_CONTEXT]

# Mastodon's sanitiser set (app/lib/sanitize_config.rb): what every peer renders.
ALLOWED_TAGS = {
    "p", "br", "span", "a", "del", "s", "pre", "blockquote", "code", "b", "strong", "u", "i", "em",
    "ul", "ol", "li", "sub", "sup", "h1", "h2", "h3", "h4", "h5", "h6",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "class"}, "span": {"class"}, "ol": {"start", "reversed"}, "li": {"value"}}
URL_SCHEMES = {"http", "https", "mailto"}


def clean_html(value: str) -> str:
    """Our own HTML as it goes out, limited to Mastodon's sanitiser set; links get
    ``rel="nofollow noopener noreferrer"``. (HTML from other servers goes through
    ``federation.remote_html``.)"""
    return nh3.clean(
        value,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener noreferrer",
    )


def text_to_html(text: str) -> str:
    """Plain text (a bio, a community description) as escaped HTML paragraphs."""
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join("<p>" + html.escape(p).replace("\n", "<br>") + "</p>" for p in paragraphs)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def with_context(doc: dict[str, Any]) -> dict[str, Any]:
    return {"@context": CONTEXT, **doc}


def handle(name: str, settings: Settings) -> str:
    return f"@{name}@{settings.domain}"


def public_key(actor: Actor) -> dict[str, str]:
    assert actor.public_key_id and actor.public_key_pem
    return {"id": actor.public_key_id, "owner": actor.uri, "publicKeyPem": actor.public_key_pem}


# --- actors ---------------------------------------------------------------------


def key_only_actor(actor: Actor, kind: str, username: str) -> dict[str, Any]:
    """What a stranger gets of a Person or Group (``node.access.Decision.KEY_ONLY``): what
    verifying its signatures and delivering to it need, no name, summary, icon or count
    (Mastodon's authorized-fetch shape)."""
    return {
        "id": actor.uri,
        "type": kind,
        "preferredUsername": username,
        "inbox": actor.inbox,
        "outbox": actor.outbox,
        "endpoints": {"sharedInbox": actor.shared_inbox},
        "publicKey": public_key(actor),
    }


def person_to_ap(settings: Settings, actor: Actor, user: asyncpg.Record) -> dict[str, Any]:
    """A member. Only identity shown on their profile: no profession, e-mail or organisation."""
    return {
        "id": actor.uri,
        "type": "Person",
        "preferredUsername": user["username"],
        "name": user["display_name"],
        "summary": text_to_html(user["bio"]),
        "url": actor.uri,
        "inbox": actor.inbox,
        "outbox": actor.outbox,
        "followers": actor.followers,
        "endpoints": {"sharedInbox": actor.shared_inbox},
        "publicKey": public_key(actor),
        "published": iso(user["created_at"]),
        "manuallyApprovesFollowers": False,
        "discoverable": False,
    }


def group_to_ap(settings: Settings, actor: Actor, community: asyncpg.Record) -> dict[str, Any]:
    """A community (FEP-1b12). Members-only groups are public actors that approve followers."""
    members_only = community["visibility"] == "members"
    return {
        "id": actor.uri,
        "type": "Group",
        "preferredUsername": community["name"],
        "name": community["title"],
        "summary": text_to_html(community["description"]),
        "source": {"content": community["description"], "mediaType": "text/markdown"},
        "url": actor.uri,
        "inbox": actor.inbox,
        "outbox": actor.outbox,
        "followers": actor.followers,
        "featured": actor.featured,
        "attributedTo": actor.moderators,
        "moderators": actor.moderators,
        "endpoints": {"sharedInbox": actor.shared_inbox},
        "publicKey": public_key(actor),
        "published": iso(community["created_at"]),
        "manuallyApprovesFollowers": members_only,
        "postingRestrictedToMods": False,
        "discoverable": not members_only,
        "sensitive": False,
    }


def application_to_ap(settings: Settings, actor: Actor) -> dict[str, Any]:
    """The instance actor: signs fetches and server-level activities; never follows anyone."""
    return {
        "id": actor.uri,
        "type": "Application",
        "preferredUsername": actor.username,
        "name": settings.node_name,
        "summary": text_to_html(f"Acteur du serveur {settings.domain}."),
        "url": settings.url("/a-propos"),
        "inbox": actor.inbox,
        "outbox": actor.outbox,
        "endpoints": {"sharedInbox": actor.shared_inbox},
        "publicKey": public_key(actor),
        "manuallyApprovesFollowers": True,
        "discoverable": False,
    }


# --- posts ----------------------------------------------------------------------


@dataclass(frozen=True)
class PostView:
    """One post with what its ActivityStreams form needs (thread, community, authors)."""

    row: asyncpg.Record
    # the document this thread discusses (opening posts of the documents space only)
    document: documents.ThreadDocument | None = None
    # the people of other servers its text names as « @nom@serveur », when we know them: (id, @handle)
    mentions: tuple[tuple[str, str], ...] = ()

    @property
    def community_id(self) -> int:
        value: int = self.row["community_id"]
        return value

    @property
    def community_name(self) -> str:
        value: str = self.row["community_name"]
        return value

    @property
    def visibility(self) -> str:
        value: str = self.row["visibility"]
        return value

    @property
    def is_opening(self) -> bool:
        return bool(self.row["is_opening"])

    @property
    def deleted(self) -> bool:
        """The post, or its whole thread, was deleted."""
        return self.row["deleted_at"] is not None or self.row["thread_deleted_at"] is not None

    @property
    def remote(self) -> bool:
        """Authored elsewhere: its id and its canonical form are the author's server's."""
        return bool(self.row["remote_post"] or (self.is_opening and self.row["remote_thread"]))

    @property
    def group_uri(self) -> str | None:
        """The Group of another server whose community this post is in (None: one of ours)."""
        value: str | None = self.row["group_uri"]
        return value

    @property
    def origin(self) -> str | None:
        """The host of that remote group: who alone reads its members-only content
        (``node.access.may_read``)."""
        value: str | None = self.row["group_domain"]
        return value


def ap_id_of(
    settings: Settings,
    *,
    post_id: int,
    thread_id: int,
    is_opening: bool,
    ap_id: str | None = None,
    thread_ap_id: str | None = None,
) -> str:
    """The ActivityPub id of a post: the thread's URL for an opening post, /p/{id} for a reply,
    or the id it came with when it was authored elsewhere."""
    if ap_id:
        return ap_id
    if is_opening:
        return thread_ap_id or urls.thread(settings, thread_id)
    return urls.post(settings, post_id)


def post_id(settings: Settings, row: asyncpg.Record) -> str:
    """The id of the post in ``row`` (a ``node.published.POST_COLUMNS`` row)."""
    return ap_id_of(
        settings,
        post_id=row["id"],
        thread_id=row["thread_id"],
        is_opening=row["is_opening"],
        ap_id=row["ap_id"],
        thread_ap_id=row["thread_ap_id"],
    )


def _parent_id(settings: Settings, row: asyncpg.Record) -> str:
    if row["parent_post_id"] is None:
        return ap_id_of(
            settings, post_id=0, thread_id=row["thread_id"], is_opening=True, thread_ap_id=row["thread_ap_id"]
        )
    return ap_id_of(
        settings,
        post_id=row["parent_post_id"],
        thread_id=row["thread_id"],
        is_opening=row["parent_is_opening"],
        ap_id=row["parent_ap_id"],
        thread_ap_id=row["thread_ap_id"],
    )


def _author_uri(settings: Settings, row: asyncpg.Record) -> str:
    if row["author_username"]:
        return urls.person(settings, row["author_username"])
    if row["remote_author_uri"]:
        return str(row["remote_author_uri"])
    # The author's account is gone: the community speaks for the post.
    return urls.group(settings, row["community_name"])


def _parent_author(settings: Settings, row: asyncpg.Record) -> tuple[str, str] | None:
    """(actor id, @handle) of the author of the post replied to, if any."""
    if row["parent_username"]:
        name = row["parent_username"]
        return urls.person(settings, name), handle(name, settings)
    if row["parent_remote_uri"]:
        return row["parent_remote_uri"], f"@{row['parent_remote_username']}@{row['parent_remote_domain']}"
    return None


def group_of(settings: Settings, view: PostView) -> tuple[str, str]:
    """(id, @handle) of the post's group: ours, or the remote one of a followed community."""
    if view.group_uri is not None:
        return view.group_uri, f"@{view.row['group_username']}@{view.row['group_domain']}"
    return urls.group(settings, view.community_name), handle(view.community_name, settings)


def addressing(settings: Settings, view: PostView) -> tuple[list[str], list[str]]:
    """``(to, cc)``: public content to Public, members-only content to the group and its
    followers only. In a remote community, to its group (which relays to its followers),
    Public in ``cc`` when the community is public (Lemmy requires Public in to or cc)."""
    if view.group_uri is not None:
        return [view.group_uri], [PUBLIC] if view.visibility == "public" else []
    group = urls.group(settings, view.community_name)
    followers = f"{group}/followers"
    if view.visibility == "public":
        return [PUBLIC], [group, followers]
    return [group, followers], []


def tombstone(settings: Settings, view: PostView) -> dict[str, Any]:
    deleted = view.row["deleted_at"] or view.row["thread_deleted_at"]
    return {
        "id": post_id(settings, view.row),
        "type": "Tombstone",
        "formerType": "Page" if view.is_opening else "Note",
        "deleted": iso(deleted),
    }


def post_to_ap(settings: Settings, view: PostView) -> dict[str, Any]:
    """A thread's opening post as a ``Page``, a reply as a ``Note``, a deleted one as a ``Tombstone``."""
    if view.deleted:
        return tombstone(settings, view)
    row = view.row
    group, group_handle = group_of(settings, view)
    to, cc = addressing(settings, view)
    content = clean_html(row["content_html"])
    tags: list[dict[str, str]] = [{"type": "Mention", "href": group, "name": group_handle}]
    doc: dict[str, Any] = {
        "id": post_id(settings, row),
        "type": "Page" if view.is_opening else "Note",
        "attributedTo": _author_uri(settings, row),
        "audience": group,
        "to": to,
        "cc": cc,
        "content": content,
        "contentMap": {"fr": content},
        "mediaType": "text/html",
        "source": {"content": row["source"], "mediaType": "text/markdown"},
        "url": post_id(settings, row),
        "published": iso(row["created_at"]),
        "sensitive": False,
        "tag": tags,
    }
    if view.group_uri is None or row["thread_ap_id"] is None:
        # Our thread's context; a thread written elsewhere has its context there.
        doc["context"] = urls.thread_context(settings, row["thread_id"])
    if not view.remote:
        # Direct answers, paged and oldest first (federation.collections.replies):
        # Mastodon backfills a post's replies from here.
        replies = urls.replies(doc["id"])
        doc["replies"] = {"id": replies, "type": "OrderedCollection", "first": f"{replies}?page=1"}
    if view.document is not None:
        attach_document(settings, doc, view.document)
    if view.is_opening:
        doc["name"] = row["title"]
        doc["commentsEnabled"] = not row["locked"]
        doc["stickied"] = bool(row["pinned"])
    else:
        doc["inReplyTo"] = _parent_id(settings, row)
        parent_author = _parent_author(settings, row)
        if parent_author is not None and parent_author[0] != doc["attributedTo"]:
            doc["cc"] = [*doc["cc"], parent_author[0]]
            tags.append({"type": "Mention", "href": parent_author[0], "name": parent_author[1]})
    for uri, name in view.mentions:
        if uri not in doc["cc"] and uri != doc["attributedTo"]:
            doc["cc"] = [*doc["cc"], uri]
            tags.append({"type": "Mention", "href": uri, "name": name})
    if row["updated_at"] is not None:
        doc["updated"] = iso(row["updated_at"])
    return doc


def attach_document(settings: Settings, doc: dict[str, Any], document: documents.ThreadDocument) -> None:
    """A document's discussion Page carries its current file as a ``Document`` attachment
    (url, mediaType, name, size: the size lets low-bandwidth nodes decide before fetching)
    and its library fields under ``vbgDocument`` (plain JSON, ignored by other servers);
    its tags are also ``Hashtag`` tags, as Mastodon and Lemmy show them."""
    doc["attachment"] = [
        {
            "type": "Document",
            "url": settings.url(document.file_path),
            "mediaType": document.media_type,
            "name": document.file_name,
            "size": document.size,
        }
    ]
    doc["vbgDocument"] = {
        "docType": document.doc_type,
        "language": document.language,
        "licence": document.licence,
        "origin": document.origin,
        "tags": list(document.tags),
        "version": document.version,
    }
    doc["tag"] = [
        *doc["tag"],
        *({"type": "Hashtag", "name": f"#{t}", "href": settings.url(f"/documents?{urlencode({'etiquette': t})}")}
          for t in document.tags),
    ]  # fmt: skip


# « @nom@serveur » in a post's Markdown (not inside a word, an address or a link path).
REMOTE_MENTION = re.compile(
    r"(?<![\w@/.])@([A-Za-z0-9_.-]{1,64})@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d{1,5})?)"
)
MAX_MENTIONS = 20
SELECT_MENTIONED = """
SELECT uri, username, domain FROM actors
WHERE NOT local AND deleted_at IS NULL
  AND (lower(username), lower(domain)) IN (SELECT * FROM unnest($1::text[], $2::text[]))
ORDER BY id
"""


def mentioned_handles(source: str) -> list[tuple[str, str]]:
    """(name, host) of each « @nom@serveur » of a post's text, lower-cased, in order, at most
    ``MAX_MENTIONS``."""
    found = dict.fromkeys((m[1].lower(), m[2].lower()) for m in REMOTE_MENTION.finditer(source))
    return list(found)[:MAX_MENTIONS]


async def remote_mentions(conn: asyncpg.Connection, row: asyncpg.Record) -> tuple[tuple[str, str], ...]:
    """The people of other servers a post of ours names, among those we know (no fetch
    here: a post is built in the outbox's transaction and on every GET)."""
    if row["remote_post"] or "@" not in row["source"]:
        return ()
    handles = mentioned_handles(row["source"])
    if not handles:
        return ()
    rows = await conn.fetch(SELECT_MENTIONED, [n for n, _ in handles], [h for _, h in handles])
    return tuple((r["uri"], f"@{r['username']}@{r['domain']}") for r in rows)


async def _view(conn: asyncpg.Connection, row: asyncpg.Record | None) -> PostView:
    if row is None:
        raise NotFound()
    document = await documents.for_thread(conn, row["thread_id"]) if row["is_opening"] else None
    mentions = await remote_mentions(conn, row)
    return PostView(row, document if document is not None and not document.remote else None, mentions)


async def load_post(conn: asyncpg.Connection, post_id_: int) -> PostView:
    return await _view(conn, await published.post_row(conn, post_id_))


async def load_thread(conn: asyncpg.Connection, thread_id: int) -> PostView:
    """A thread as its opening post."""
    return await _view(conn, await published.opening_row(conn, thread_id))


async def pinned_threads(conn: asyncpg.Connection, community_id: int) -> list[PostView]:
    return [PostView(r) for r in await published.pinned_rows(conn, community_id)]
