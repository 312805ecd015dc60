"""Remote media as the forum shows and serves them (rows of ``remote_media``,
migration 0075; fetched and cleaned by ``federation.media``).

Files live under ``<data_dir>/media/`` with random names (:func:`new_name`); a file is
served only to a viewer who may read its post (:func:`load_stored`), and answers
exactly like a missing one otherwise.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from node import threads
from node.db import Conn
from node.errors import NotFound
from node.sessions import User
from node.settings import Settings

NAME = re.compile(r"^[A-Za-z0-9_-]{32}\.(?:jpg|png|webp)$")


def media_dir(settings: Settings) -> Path:
    return settings.data_dir / "media"


def new_name(extension: str) -> str:
    """A fresh random file name (32 URL-safe characters and the extension)."""
    return f"{secrets.token_urlsafe(24)}.{extension}"


@dataclass(frozen=True)
class ShownMedia:
    """What a post's fragment shows of one attachment (hashable: part of its cache key)."""

    kind: str
    status: str
    stored_name: str | None
    name: str
    width: int | None
    height: int | None
    sensitive: bool
    remote_url: str


SELECT_FOR_POSTS = """
SELECT post_id, kind, status, stored_name, name, width, height, sensitive, remote_url
FROM remote_media WHERE post_id = ANY($1::bigint[])
ORDER BY post_id, position
"""


async def for_posts(conn: Conn, post_ids: list[int]) -> dict[int, tuple[ShownMedia, ...]]:
    """The attachments of these posts, by post id (one query)."""
    found: dict[int, list[ShownMedia]] = {}
    if not post_ids:
        return {}
    for r in await conn.fetch(SELECT_FOR_POSTS, post_ids):
        shown = ShownMedia(
            r["kind"], r["status"], r["stored_name"], r["name"], r["width"], r["height"], r["sensitive"],
            r["remote_url"],
        )  # fmt: skip
        found.setdefault(r["post_id"], []).append(shown)
    return {post_id: tuple(media) for post_id, media in found.items()}


@dataclass(frozen=True)
class StoredFile:
    path: Path
    media_type: str
    extension: str
    visibility: str  # the community's: decides how long a browser may keep it


SELECT_STORED = "SELECT post_id, stored_type FROM remote_media WHERE stored_name = $1 AND status = 'stored'"


async def load_stored(conn: Conn, settings: Settings, name: str, viewer: User | None) -> StoredFile:
    """The stored file ``name`` if ``viewer`` may read its post (the forum's rules:
    community visibility, hidden authors, deleted threads and posts); else NotFound."""
    if not NAME.match(name):
        raise NotFound()
    row = await conn.fetchrow(SELECT_STORED, name)
    if row is None:
        raise NotFound()
    post = await threads.load_post(conn, row["post_id"], viewer)
    if post["deleted_at"] is not None:
        raise NotFound()
    path = media_dir(settings) / name
    return StoredFile(path, row["stored_type"], name.rsplit(".", 1)[1], post["visibility"])
