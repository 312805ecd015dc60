"""Remote posts stored as our threads and replies: sanitised HTML, text for search
(``posts.source``: the Markdown source when given, else the text; the search vector
is kept by a trigger, migration 0020).

Remote HTML is cleaned with an allowlist close to Mastodon's sanitiser (docs/architecture.md §3):
formatting, links (http/https only, ``rel="nofollow noopener noreferrer"``) and the
``h-card``/``mention``/``hashtag`` spans; no images, no styles, no scripts. Attachments
(images, links) are listed next to the post (``federation.attachments``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from federation import attachments
from federation.handlers.base import Context
from federation.remote_html import sanitize, to_text
from node import documents, threads

TITLE_MAX = 200
BODY_MAX = 100_000
_LEADING_MENTIONS = re.compile(r"^(?:[@!][\w.\-]+(?:@[\w.\-:]+)?[\s,:]*)+")


def _content(obj: dict[str, Any]) -> str:
    content = obj.get("content")
    if not isinstance(content, str):
        content_map = obj.get("contentMap")
        if isinstance(content_map, dict):
            content = content_map.get("fr") or next(
                (v for v in content_map.values() if isinstance(v, str)), ""
            )
    return content if isinstance(content, str) else ""


def _markdown_source(obj: dict[str, Any]) -> str | None:
    source = obj.get("source")
    if (
        isinstance(source, dict)
        and isinstance(source.get("content"), str)
        and source.get("mediaType", "text/markdown") in {"text/markdown", "text/plain"}
    ):
        return str(source["content"])[:BODY_MAX]
    return None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = _LEADING_MENTIONS.sub("", line.strip()).strip()
        if line:
            return line
    return ""


def _truncate(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1].rstrip() + "…"


@dataclass(frozen=True)
class RemotePost:
    ap_id: str
    title: str
    source: str
    content_html: str
    text: str
    media: tuple[attachments.Attachment, ...] = ()  # listed in remote_media with the post
    # a file attachment that makes the thread a document of its community's library
    document: documents.RemoteDocument | None = None


def from_ap(obj: dict[str, Any]) -> RemotePost:
    """Our stored form of a remote Page, Article or Note."""
    content = _content(obj)
    content_html = sanitize(content)
    text = to_text(content_html)
    name = obj.get("name") if isinstance(obj.get("name"), str) else ""
    if obj.get("type") == "Note":
        title = _first_line(text) or str(name or obj.get("summary") or "")
    else:
        title = str(name) or _first_line(text)
    source = _markdown_source(obj)
    return RemotePost(
        ap_id=str(obj["id"]),
        title=_truncate(title) or "Sans titre",
        source=source if source is not None else text,
        content_html=content_html,
        text=text,
        media=attachments.from_ap(obj),
        document=attachments.document_of(obj),
    )


def _remote_thread(
    item_id: int, community_id: int, author_id: int, post: RemotePost, announce_page: bool
) -> threads.RemoteThread:
    return threads.RemoteThread(
        item_id,
        community_id,
        author_id,
        post.ap_id,
        post.title,
        post.source,
        post.content_html,
        announce_page,
    )


async def store_new_thread(
    ctx: Context, community_id: int, post: RemotePost, *, announce_page: bool
) -> int | None:
    """A new thread opened by the sender, relayed by the group (FEP-1b12: the activity
    as received; ``announce_page``: also its Page, for Mastodon), in one round trip;
    None when the object was deleted already or is stored already."""
    relay = {"community_id": community_id, "activity": ctx.activity}
    new = _remote_thread(0, community_id, ctx.sender.id, post, announce_page)
    thread_id = await threads.store_remote_thread(ctx.conn, new, relay)
    if thread_id is not None and post.media:
        await attachments.store_for_objects(ctx.conn, {post.ap_id: post.media})
    if thread_id is not None and post.document is not None:
        await documents.record_remote(ctx.conn, post.document, ctx.settings.remote_documents)
    return thread_id


@dataclass(frozen=True)
class NewThread:
    """A new thread to store for a stored inbox activity (``item_id``: its
    ``inbox_items`` row, whose document the group relays)."""

    item_id: int
    community_id: int
    author_id: int
    post: RemotePost
    announce_page: bool


async def store_new_threads(
    conn: asyncpg.Connection, new: list[NewThread], remote_documents: str = "fetch"
) -> dict[int, int | None]:
    """Store ``new`` in one round trip: item id → its thread id (None: deleted or stored already)."""
    stored = await threads.store_remote_threads(
        conn, [_remote_thread(n.item_id, n.community_id, n.author_id, n.post, n.announce_page) for n in new]
    )
    media = {n.post.ap_id: n.post.media for n in new if n.post.media and stored.get(n.item_id) is not None}
    if media:  # the rare post with attachments: the statement above stays as it was
        await attachments.store_for_objects(conn, media)
    for n in new:
        if n.post.document is not None and stored.get(n.item_id) is not None:
            await documents.record_remote(conn, n.post.document, remote_documents)
    return stored


async def store_reply(
    ctx: Context, thread_id: int, parent_id: int, post: RemotePost, mentioned: list[str] | None = None
) -> int:
    """A reply by the sender in ``thread_id`` (``mentioned``: our members its Mention
    tags name, notified); returns the post id."""
    post_id = await threads.store_remote_reply(
        ctx.conn,
        thread_id,
        parent_id,
        ctx.sender.id,
        post.ap_id,
        post.source,
        post.content_html,
        mentioned or (),
    )
    await attachments.store_for_post(ctx.conn, post_id, post.media)
    return post_id
