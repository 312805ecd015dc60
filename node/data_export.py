"""« Télécharger mes données »: a ZIP of what the node holds about a member (GDPR art. 15
and 20), built in memory for the member herself:

    profil.json          her account and profile
    messages-forum.json  her posts still published (thread, community, dates, text, HTML)
    conversations.json   the private conversations she is part of, opened for her
    index.html           the same, readable in a browser (no script, no outside resource)
"""

from __future__ import annotations

import html
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from node import keyset, messages
from node.encryption import Keyring
from node.sessions import User

SELECT_PROFILE = """
SELECT username, display_name, email, role, status, profession, profession_detail, organisation,
       country, bio, motivation, timezone, created_at
FROM users WHERE id = $1
"""
SELECT_POSTS = """
SELECT p.id, p.thread_id, t.title AS thread_title, c.name AS community, p.is_opening, p.source,
       p.content_html, p.created_at, p.updated_at
FROM posts p JOIN threads t ON t.id = p.thread_id JOIN communities c ON c.id = t.community_id
WHERE p.author_id = $1 AND p.deleted_at IS NULL
ORDER BY p.created_at, p.id
"""
MAX_CONVERSATION_PAGES = 1000


def _plain(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


@dataclass(frozen=True)
class Export:
    profile: dict[str, Any]
    posts: list[dict[str, Any]]
    conversations: list[dict[str, Any]]


async def collect(
    conn: asyncpg.Connection | asyncpg.Pool, keyring: Keyring, member: User, base_url: str
) -> Export:
    profile = {k: _plain(v) for k, v in dict(await conn.fetchrow(SELECT_PROFILE, member.id)).items()}
    posts = [
        {**{k: _plain(v) for k, v in dict(r).items()}, "url": f"{base_url}/p/{r['id']}"}
        for r in await conn.fetch(SELECT_POSTS, member.id)
    ]
    return Export(profile, posts, await _conversations(conn, keyring, member))


async def _conversations(
    conn: asyncpg.Connection | asyncpg.Pool, keyring: Keyring, member: User
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    at = keyset.At()
    seen: set[int] = set()  # a conversation moved to the top by a new message comes once
    for _ in range(MAX_CONVERSATION_PAGES):
        listing = await messages.listing(conn, keyring, member, at)
        for summary in listing.conversations:
            if summary.id in seen:
                continue
            seen.add(summary.id)
            shown = await messages.conversation(conn, keyring, member, summary.id)
            found.append(
                {
                    "subject": shown.subject,
                    "participants": [p["handle"] or p["name"] for p in shown.participants],
                    "messages": [
                        {
                            "author": m.author_name,
                            "mine": m.mine,
                            "html": m.html,
                            "created_at": _plain(m.created_at),
                        }
                        for m in shown.messages
                    ],
                }
            )
        if listing.next is None:
            break
        at = keyset.At(listing.next)
    return found


def _html(export: Export, node_name: str) -> str:
    e = html.escape
    parts = [
        '<!doctype html><html lang="fr"><head><meta charset="utf-8">',
        f"<title>{e(node_name)} : mes données</title></head><body>",
        f"<h1>Mes données sur {e(node_name)}</h1><h2>Profil</h2><dl>",
        *[f"<dt>{e(k)}</dt><dd>{e(str(v or ''))}</dd>" for k, v in export.profile.items()],
        f"</dl><h2>Messages publiés ({len(export.posts)})</h2>",
    ]
    for post in export.posts:
        parts.append(
            f"<article><h3>{e(post['thread_title'])} <small>({e(post['community'])}, {e(post['created_at'])})</small>"
            f'</h3>{post["content_html"]}<p><a href="{e(post["url"])}">{e(post["url"])}</a></p></article>'
        )
    parts.append(f"<h2>Conversations privées ({len(export.conversations)})</h2>")
    for conversation in export.conversations:
        parts.append(f"<section><h3>{e(conversation['subject'])}</h3>")
        parts.append(f"<p>{e(', '.join(conversation['participants']))}</p>")
        for message in conversation["messages"]:
            parts.append(
                f"<article><p><strong>{e(message['author'])}</strong>, {e(message['created_at'])}</p>{message['html']}</article>"
            )
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def to_zip(export: Export, node_name: str) -> bytes:
    """The ZIP a member downloads: JSON for machines, index.html for people."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:

        def dump(value: object) -> str:
            return json.dumps(value, ensure_ascii=False, indent=2)

        archive.writestr("profil.json", dump(export.profile))
        archive.writestr("messages-forum.json", dump(export.posts))
        archive.writestr("conversations.json", dump(export.conversations))
        archive.writestr("index.html", _html(export, node_name))
    return buffer.getvalue()
