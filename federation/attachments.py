"""Attachments of remote posts: read from the object, listed in ``remote_media``
(migration 0075) next to the post, in the handler's transaction.

What other servers send (``attachment`` is a dict or a list)::

    Mastodon   {"type": "Document", "mediaType": "image/jpeg", "url": "https://…/original/x.jpg",
                "name": "alt text", "blurhash": "…", "width": 1200, "height": 800}
    Lemmy      {"type": "Link", "href": "https://example.com/article"}   (a link post)
               {"type": "Image", "url": "https://…/pictrs/image/x.png", "mediaType": "image/png"}
    Mbin       {"type": "Link", "href": "https://…/rapport.pdf"}
    WordPress  {"type": "Image", "url": "https://…", "mediaType": "image/png", "name": "…"}
    a Page's   "image": {"type": "Image", "url": "https://…"}  (used only when there is no attachment)

``url`` may be a string, a Link object (``href``, ``mediaType``) or a list of those.
At most :data:`MAX_ATTACHMENTS` are kept (Mastodon's limit), http(s) URLs only. An
attachment declared as a JPEG, PNG, WebP or GIF (or an ``Image`` without a media type)
is an ``image``, fetched later by the media worker, which trusts only the bytes;
anything else is a ``link``, shown as an outbound link and never fetched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from node import documents, threads, uploads

MAX_ATTACHMENTS = 4
URL_MAX = 2048
NAME_MAX = 1500
MEDIA_TYPE_MAX = 100
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})


@dataclass(frozen=True)
class Attachment:
    url: str
    kind: str  # "image" | "link"
    media_type: str
    name: str
    sensitive: bool

    @property
    def status(self) -> str:
        """The row's first state: images wait for the worker, links are final."""
        return "pending" if self.kind == "image" else "link"


def _http_url(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > URL_MAX or not value.lower().startswith(("https://", "http://")):
        return None
    if any(c.isspace() or ord(c) < 0x20 for c in value):
        return None
    result: str | None = value
    return result


def _media_type(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return value.split(";", 1)[0].strip().lower()[:MEDIA_TYPE_MAX]


def _url_and_type(entry: dict[str, Any]) -> tuple[str | None, str]:
    """The entry's URL and declared media type: ``url`` (string, Link object or a list
    of those: the first image, else the first usable one), or a Link's own ``href``."""
    declared = _media_type(entry.get("mediaType"))
    candidates = entry.get("url")
    if candidates is None and entry.get("type") == "Link":
        candidates = entry.get("href")
    found: list[tuple[str, str]] = []
    for item in candidates if isinstance(candidates, list) else [candidates]:
        if isinstance(item, dict):
            url = _http_url(item.get("href"))
            kind = _media_type(item.get("mediaType")) or declared
        else:
            url, kind = _http_url(item), declared
        if url is not None:
            found.append((url, kind))
    if not found:
        return None, declared
    return next((f for f in found if f[1] in IMAGE_TYPES), found[0])


def _attachment(entry: Any, sensitive: bool) -> Attachment | None:
    if isinstance(entry, str):
        entry = {"type": "Link", "href": entry}
    if not isinstance(entry, dict):
        return None
    url, media_type = _url_and_type(entry)
    if url is None:
        return None
    image = media_type in IMAGE_TYPES or (not media_type and entry.get("type") == "Image")
    name = entry.get("name")
    name = name if isinstance(name, str) else ""
    return Attachment(
        url, "image" if image else "link", media_type, " ".join(name.split())[:NAME_MAX], sensitive
    )


def _entries(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def from_ap(obj: dict[str, Any]) -> tuple[Attachment, ...]:
    """The attachments of a remote Note, Page or Article (empty for most posts)."""
    entries = _entries(obj.get("attachment"))
    if not entries:
        entries = _entries(obj.get("image"))
        if not entries:
            return ()
        entries = [e if isinstance(e, dict) else {"type": "Image", "url": e} for e in entries]
    sensitive = obj.get("sensitive") is True
    found: list[Attachment] = []
    seen: set[str] = set()
    for entry in entries[: MAX_ATTACHMENTS * 4]:  # a few malformed entries may be skipped
        attachment = _attachment(entry, sensitive)
        if attachment is None or attachment.url in seen:
            continue
        seen.add(attachment.url)
        found.append(attachment)
        if len(found) == MAX_ATTACHMENTS:
            break
    return tuple(found)


# ---------------------------------------------------------------- documents

# What makes a remote post a document of the library: a file attachment declared as one
# of the kinds uploads accept (images aside: those are the post's pictures), or, as Mbin
# and Lemmy send files (a Link without a media type), a URL whose path ends like one.
DOCUMENT_TYPES = frozenset(k.media_type for k in uploads.KINDS.values()) - IMAGE_TYPES
DOCUMENT_SUFFIXES = (".pdf", ".odt", ".ods", ".odp", ".docx", ".xlsx", ".pptx", ".csv", ".txt")
UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})


def _is_document(url: str, media_type: str) -> bool:
    if media_type in DOCUMENT_TYPES:
        return True
    return media_type in UNTYPED and urlsplit(url).path.lower().endswith(DOCUMENT_SUFFIXES)


def _size(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62 else 0


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str))[:20] if isinstance(value, list) else ()


def _text(value: Any, limit: int) -> str:
    return " ".join(value.split())[:limit] if isinstance(value, str) else ""


def document_of(obj: dict[str, Any]) -> documents.RemoteDocument | None:
    """The remote Page's (or Note's) first file attachment as a library document, with
    the fields a vbg node sends under ``vbgDocument``; None for other posts."""
    if obj.get("inReplyTo") or not isinstance(obj.get("id"), str):
        return None
    for entry in _entries(obj.get("attachment"))[: MAX_ATTACHMENTS * 4]:
        if not isinstance(entry, dict):
            continue
        url, media_type = _url_and_type(entry)
        if url is None or not _is_document(url, media_type):
            continue
        file = documents.RemoteFile(url, media_type, _text(entry.get("name"), 200), _size(entry.get("size")))
        extra: dict[str, Any] = obj["vbgDocument"] if isinstance(obj.get("vbgDocument"), dict) else {}
        hashtags = [
            t["name"] for t in _entries(obj.get("tag")) if isinstance(t, dict) and t.get("type") == "Hashtag"
        ]
        return documents.RemoteDocument(
            page_id=obj["id"],
            file=file,
            doc_type=_text(extra.get("docType"), 20) or "autre",
            tags=_strings(extra.get("tags")) or _strings(hashtags),
            language=_text(extra.get("language"), 3) or "fr",
            origin=_text(extra.get("origin"), 200),
            licence=_text(extra.get("licence"), 100),
        )
    return None


# ---------------------------------------------------------------- storing the rows

_COLUMNS = "post_id, position, remote_url, kind, media_type, name, sensitive, status"
_UNNEST = """unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::text[])
    AS m (position, remote_url, kind, media_type, name, sensitive, status)"""
INSERT_FOR_POST = f"""
INSERT INTO remote_media ({_COLUMNS})
SELECT $1, m.* FROM {_UNNEST}
ON CONFLICT (post_id, position) DO NOTHING
"""
# New threads stored by one statement (content.store_new_threads): their posts by id.
INSERT_FOR_POSTS = """
INSERT INTO remote_media (post_id, position, remote_url, kind, media_type, name, sensitive, status)
SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[],
                     $8::text[])
ON CONFLICT (post_id, position) DO NOTHING
"""
# An edit: rows whose attachment left (or moved) go (their files with them: migration
# 0075's trash), the others stay as they are (no second fetch); alt texts may change.
DELETE_REPLACED = """
DELETE FROM remote_media r
WHERE r.post_id = $1
  AND (r.position, r.remote_url, r.kind) NOT IN (
      SELECT * FROM unnest($2::int[], $3::text[], $4::text[]))
"""
UPSERT_FOR_POST = f"""
INSERT INTO remote_media ({_COLUMNS})
SELECT $1, m.* FROM {_UNNEST}
ON CONFLICT (post_id, position) DO UPDATE SET name = EXCLUDED.name, sensitive = EXCLUDED.sensitive,
    updated_at = now()
WHERE (remote_media.name, remote_media.sensitive) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.sensitive)
"""


def _columns(media: Sequence[Attachment]) -> list[list[Any]]:
    return [
        list(range(len(media))),
        [m.url for m in media],
        [m.kind for m in media],
        [m.media_type for m in media],
        [m.name for m in media],
        [m.sensitive for m in media],
        [m.status for m in media],
    ]


async def store_for_post(conn: asyncpg.Connection, post_id: int, media: Sequence[Attachment]) -> None:
    """List the attachments of a post just stored (nothing to do for most posts)."""
    if media:
        await conn.execute(INSERT_FOR_POST, post_id, *_columns(media))


async def store_for_objects(conn: asyncpg.Connection, media: Mapping[str, Sequence[Attachment]]) -> None:
    """List the attachments of posts just stored, by their object ids (one statement)."""
    post_ids = await threads.post_ids_by_ap_ids(conn, list(media))
    rows = [
        (post_ids[ap_id], i, m)
        for ap_id, found in media.items()
        if ap_id in post_ids
        for i, m in enumerate(found)
    ]
    if not rows:
        return
    await conn.execute(
        INSERT_FOR_POSTS,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2].url for r in rows],
        [r[2].kind for r in rows],
        [r[2].media_type for r in rows],
        [r[2].name for r in rows],
        [r[2].sensitive for r in rows],
        [r[2].status for r in rows],
    )


async def replace_for_post(conn: asyncpg.Connection, post_id: int, media: Sequence[Attachment]) -> None:
    """An edited post's attachments: the new list replaces the old one."""
    columns = _columns(media)
    await conn.execute(DELETE_REPLACED, post_id, columns[0], columns[1], columns[2])
    if media:
        await conn.execute(UPSERT_FOR_POST, post_id, *columns)
