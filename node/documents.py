"""The documents space: each community's library (migration 0095; this module owns its tables).

A document is the opening post of a thread of its own — its discussion — so it is
read, replied to, reported and federated like a thread (a ``Page`` with a ``Document``
attachment, ``federation.objects``). Its files are versions: the highest number is the
current one, the others stay downloadable. Files live in ``node.storage`` (area
``documents``) under random names; this module records names, never paths.

    upload (node.web.document_views) ── uploads.clean ── storage.put_file ──> create_document
         nothing carried ─────────> published: the thread is created (outbox event, same transaction)
         carried metadata ────────> draft: seen by its uploader only ── confirm_draft ──> published
                                                                     └─ discard_draft (files to the trash)
    add_version ── the author, the community's experts, moderators ── post.updated event
    set_featured ── experts of the community, moderators (audited)
    delete_document ── the author, or a moderator with a reason (audited): the opening post
         deleted (federated Delete), every file name to ``document_trash``; the caller empties
         the trash after the commit (:func:`empty_trash`)

Who may read: exactly who may read the community (the one rule, ``node.access``) — anything
else, drafts of others, deleted documents and hidden remote authors all answer NotFound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import quote, urlencode

import asyncpg

from node import access, audit, events, keyset, threads, uploads
from node.communities import Community, author_shown_sql, is_reader, readable_sql
from node.db import Conn
from node.errors import BadRequest, Forbidden, NotFound
from node.sessions import User
from node.storage import Storage

DOC_TYPES = {
    "protocole": "Protocole",
    "fiche": "Fiche pratique",
    "formation": "Formation",
    "rapport": "Rapport",
    "modele": "Modèle de formulaire",
    "autre": "Autre",
}
LANGUAGES = {
    "fr": "Français",
    "en": "Anglais",
    "es": "Espagnol",
    "pt": "Portugais",
    "ar": "Arabe",
    "sw": "Swahili",
}
MAX_TITLE = 200
MAX_DESCRIPTION = 20_000
MAX_TAGS = 10
MAX_TAG = 40
PAGE_SIZE = 30
MAX_QUERY = 200
TAG_RE = re.compile(r"^[\w\- ]{1,40}$")


@dataclass(frozen=True)
class Metadata:
    """What a member says about a document (the upload and edit forms)."""

    title: str
    description: str = ""
    doc_type: str = "autre"
    tags: tuple[str, ...] = ()
    language: str = "fr"
    origin: str = ""
    licence: str = ""
    issued_on: date | None = None


def parse_tags(raw: str) -> tuple[str, ...]:
    """« santé, Accueil ; urgence » → ('santé', 'accueil', 'urgence'): lower case, unique, in order."""
    tags: list[str] = []
    for part in re.split(r"[,;]", raw):
        tag = " ".join(part.split()).lower().lstrip("#")
        if not tag:
            continue
        if not TAG_RE.match(tag):
            raise BadRequest(
                fields={"tags": f"Étiquette invalide : « {tag[:MAX_TAG]} » (lettres, chiffres, tirets)."}
            )
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise BadRequest(fields={"tags": f"{MAX_TAGS} étiquettes au plus."})
    return tuple(tags)


def _text(value: str, name: str, limit: int, *, required: bool = False) -> str:
    value = value.strip()
    if "\x00" in value:
        raise BadRequest(fields={name: "Ce champ contient des caractères invalides."})
    if required and not value:
        raise BadRequest(fields={name: "Ce champ est obligatoire."})
    if len(value) > limit:
        raise BadRequest(fields={name: f"Ce champ est trop long ({limit} caractères au plus)."})
    return value


def check_metadata(fields: dict[str, str]) -> Metadata:
    """The form's fields checked, with French field errors."""
    doc_type = fields.get("doc_type", "autre")
    if doc_type not in DOC_TYPES:
        raise BadRequest(fields={"doc_type": "Type de document inconnu."})
    language = fields.get("language", "fr")
    if language not in LANGUAGES:
        raise BadRequest(fields={"language": "Langue inconnue."})
    issued_on = None
    if fields.get("issued_on", "").strip():
        try:
            issued_on = date.fromisoformat(fields["issued_on"].strip())
        except ValueError as exc:
            raise BadRequest(fields={"issued_on": "Date invalide (AAAA-MM-JJ)."}) from exc
    return Metadata(
        title=" ".join(_text(fields.get("title", ""), "title", MAX_TITLE, required=True).split()),
        description=_text(fields.get("description", ""), "description", MAX_DESCRIPTION),
        doc_type=doc_type,
        tags=parse_tags(fields.get("tags", "")),
        language=language,
        origin=_text(fields.get("origin", ""), "origin", 200),
        licence=_text(fields.get("licence", ""), "licence", 100),
        issued_on=issued_on,
    )


@dataclass(frozen=True)
class NewFile:
    """A cleaned file already in storage, as the service records it."""

    stored_name: str
    media_type: str
    size: int
    file_name: str
    text: str = ""
    carried: tuple[str, ...] = ()
    thumbnail_name: str | None = None


# --- Writing ---------------------------------------------------------------------

INSERT_DOCUMENT = """
INSERT INTO documents (community_id, author_id, title, description, doc_type, tags, language, origin,
                       licence, issued_on, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING id
"""
INSERT_VERSION = """
INSERT INTO document_versions (document_id, number, stored_name, thumbnail_name, media_type, size, file_name,
                               extracted_text, carried, note, uploaded_by)
VALUES ($1, coalesce((SELECT max(number) FROM document_versions WHERE document_id = $1), 0) + 1,
        $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING number
"""
REFRESH_SEARCH = """
UPDATE documents d SET updated_at = now(), search_vector =
       setweight(to_tsvector('french', vbg_fold(d.title || ' ' || array_to_string(d.tags, ' '))), 'A')
    || setweight(to_tsvector('french', vbg_fold(d.description)), 'B')
    || setweight(to_tsvector('french', vbg_fold(coalesce(
           (SELECT left(v.extracted_text, 200000) FROM document_versions v
            WHERE v.document_id = d.id ORDER BY v.number DESC LIMIT 1), ''))), 'C')
WHERE d.id = $1
"""
PUBLISH = "UPDATE documents SET thread_id = $2, status = 'published' WHERE id = $1"
SELECT_REF = f"""
SELECT d.id, d.thread_id, d.community_id, d.author_id, d.remote, d.status, d.title, d.description,
       d.featured_at, c.name AS community_name, c.visibility, t.remote_author_id,
       (SELECT id FROM posts WHERE thread_id = d.thread_id AND is_opening) AS opening_id,
       EXISTS (SELECT 1 FROM community_experts e WHERE e.community_id = d.community_id AND e.user_id = $2)
           AS viewer_is_expert
FROM documents d
JOIN communities c ON c.id = d.community_id
LEFT JOIN threads t ON t.id = d.thread_id
WHERE d.id = $1 AND d.deleted_at IS NULL AND (d.thread_id IS NULL OR t.deleted_at IS NULL)
  AND {author_shown_sql("t.remote_author_id")}
"""
SET_FEATURED = (
    "UPDATE documents SET featured_at = CASE WHEN $2 THEN now() END, featured_by = $3 WHERE id = $1"
)
MARK_DELETED = "UPDATE documents SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL"
TRASH_FILES = """
INSERT INTO document_trash (stored_name)
SELECT n FROM document_versions v, unnest(ARRAY[v.stored_name, v.thumbnail_name]) n
WHERE v.document_id = $1 AND n IS NOT NULL
ON CONFLICT DO NOTHING
"""
CLEAR_FILES = """
UPDATE document_versions SET stored_name = NULL, thumbnail_name = NULL,
       status = CASE WHEN status = 'stored' THEN 'failed' ELSE status END
WHERE document_id = $1
"""
CLAIM_TRASH = "SELECT stored_name FROM document_trash ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED"
DELETE_TRASH = "DELETE FROM document_trash WHERE stored_name = ANY($1::text[])"


def _discussion_body(meta: Metadata) -> str:
    return meta.description or f"Document : {meta.title}"


async def _insert_version(
    conn: asyncpg.Connection, document_id: int, file: NewFile, by: User, note: str
) -> int:
    number: int = await conn.fetchval(
        INSERT_VERSION, document_id, file.stored_name, file.thumbnail_name, file.media_type, file.size,
        file.file_name, file.text, list(file.carried), note, by.id,
    )  # fmt: skip
    await conn.execute(REFRESH_SEARCH, document_id)
    return number


async def _start_discussion(
    conn: asyncpg.Connection, community: Community, author: User, meta: Metadata
) -> int:
    created = await threads.create_thread(conn, community, author, meta.title, _discussion_body(meta))
    return created.thread_id


async def create_document(
    conn: asyncpg.Connection, community: Community, author: User, meta: Metadata, file: NewFile
) -> int:
    """Record an uploaded document: published with its discussion thread at once, or a
    draft waiting for the uploader's confirmation when ``file.carried`` is not empty."""
    if (
        community.remote
        or not is_reader(author)
        or not access.may_read(access.of_user(author), community.visibility)
    ):
        raise NotFound()  # a remote community's documents are published on its own server
    status = "draft" if file.carried else "published"
    async with conn.transaction():
        document_id: int = await conn.fetchval(
            INSERT_DOCUMENT, community.id, author.id, meta.title, meta.description, meta.doc_type,
            list(meta.tags), meta.language, meta.origin, meta.licence, meta.issued_on, status,
        )  # fmt: skip
        await _insert_version(conn, document_id, file, author, "")
        if status == "published":
            await conn.execute(PUBLISH, document_id, await _start_discussion(conn, community, author, meta))
    return document_id


async def _ref(conn: Conn, document_id: int, viewer: User | None, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(
        SELECT_REF + (" FOR UPDATE OF d" if lock else ""), document_id, viewer.id if viewer else None
    )
    if row is None or not access.may_read(access.of_user(viewer), row["visibility"]):
        raise NotFound()
    if row["status"] == "draft" and (viewer is None or row["author_id"] != viewer.id):
        raise NotFound()
    return row


async def confirm_draft(conn: asyncpg.Connection, document_id: int, author: User) -> None:
    """The uploader saw what the file still carries and publishes it anyway."""
    async with conn.transaction():
        ref = await _ref(conn, document_id, author, lock=True)
        if ref["status"] != "draft":
            return
        community = Community(ref["community_id"], ref["community_name"], "", "", "", ref["visibility"])
        meta = Metadata(title=ref["title"], description=ref["description"])
        await conn.execute(PUBLISH, document_id, await _start_discussion(conn, community, author, meta))


async def discard_draft(conn: asyncpg.Connection, document_id: int, author: User) -> None:
    async with conn.transaction():
        ref = await _ref(conn, document_id, author, lock=True)
        if ref["status"] != "draft":
            raise NotFound()
        await conn.execute(TRASH_FILES, document_id)
        await conn.execute("DELETE FROM documents WHERE id = $1", document_id)


DRAFT_LIFETIME = timedelta(days=7)
# A draft nobody confirmed within DRAFT_LIFETIME goes, its files with it (trigger of 0096).
PURGE_STALE_DRAFTS = "DELETE FROM documents WHERE status = 'draft' AND created_at < now() - $1::interval"


async def purge_stale_drafts(conn: Conn) -> None:
    """Drafts left unconfirmed for a week are dropped (the documents worker asks)."""
    await conn.execute(PURGE_STALE_DRAFTS, DRAFT_LIFETIME)


def may_manage(viewer: User | None, ref: asyncpg.Record) -> bool:
    """New versions and featuring: the author, the community's experts, moderators."""
    if viewer is None or not viewer.is_approved:
        return False
    return (
        viewer.is_moderator
        or bool(ref["viewer_is_expert"])
        or (ref["author_id"] == viewer.id and not ref["remote"])
    )


def may_feature(viewer: User | None, ref: asyncpg.Record) -> bool:
    return (
        viewer is not None and viewer.is_approved and (viewer.is_moderator or bool(ref["viewer_is_expert"]))
    )


async def _emit_updated(conn: asyncpg.Connection, ref: asyncpg.Record, actor: User) -> None:
    if ref["visibility"] == "local" or ref["opening_id"] is None:
        return
    event = events.PostEvent(ref["opening_id"], ref["thread_id"], ref["community_id"], actor.id)
    await events.emit(conn, "post.updated", event)


async def add_version(
    conn: asyncpg.Connection, document_id: int, actor: User, file: NewFile, note: str = ""
) -> int:
    """A new current file; the earlier ones stay downloadable. Returns its number."""
    note = " ".join(note.split())
    if len(note) > 500:
        raise BadRequest(fields={"note": "La note est trop longue (500 caractères au plus)."})
    async with conn.transaction():
        ref = await _ref(conn, document_id, actor, lock=True)
        if ref["remote"] or ref["status"] != "published" or not may_manage(actor, ref):
            raise Forbidden(
                "Seuls l'auteur·e, les expert·e·s de la communauté et les modérateur·rice·s peuvent déposer une nouvelle version."
            )
        number = await _insert_version(conn, document_id, file, actor, note)
        await _emit_updated(conn, ref, actor)
    return number


async def set_featured(conn: asyncpg.Connection, document_id: int, actor: User, featured: bool) -> None:
    async with conn.transaction():
        ref = await _ref(conn, document_id, actor, lock=True)
        if ref["status"] != "published" or not may_feature(actor, ref):
            raise Forbidden(
                "Seul·e·s les expert·e·s de la communauté et les modérateur·rice·s peuvent mettre un document en avant."
            )
        await conn.execute(SET_FEATURED, document_id, featured, actor.id)
        await audit.record(
            conn, "document.feature" if featured else "document.unfeature", actor_id=actor.id,
            actor_label=actor.username, target_type="document", target_id=document_id,
        )  # fmt: skip


async def delete_document(conn: asyncpg.Connection, document_id: int, actor: User, reason: str = "") -> None:
    """Remove a document: its author, or a moderator with a reason (audited). Its
    discussion's opening post is deleted (a federated Delete) and its files go to the
    trash; call :func:`empty_trash` after the commit."""
    async with conn.transaction():
        ref = await _ref(conn, document_id, actor, lock=True)
        own = ref["author_id"] == actor.id and not ref["remote"]
        if not own and not actor.is_moderator:
            raise Forbidden("Vous ne pouvez supprimer que vos propres documents.")
        if ref["opening_id"] is not None:
            await threads.delete_post(conn, ref["opening_id"], actor, reason)
        elif not own and not reason.strip():
            raise BadRequest(fields={"reason": "Indiquez la raison de la suppression."})
        await conn.execute(MARK_DELETED, document_id)
        await conn.execute(TRASH_FILES, document_id)
        await conn.execute(CLEAR_FILES, document_id)
        if not own:
            await audit.record(
                conn, "document.delete", actor_id=actor.id, actor_label=actor.username,
                target_type="document", target_id=document_id, reason=" ".join(reason.split()),
            )  # fmt: skip


async def empty_trash(pool: asyncpg.Pool, store: Storage, limit: int = 200) -> int:
    """Delete from storage the files of removed documents, then their names."""
    removed = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            names = [r["stored_name"] for r in await conn.fetch(CLAIM_TRASH, limit)]
            for name in names:
                await store.delete(name)
            if names:
                await conn.execute(DELETE_TRASH, names)
        removed += len(names)
        if len(names) < limit:
            return removed


# --- Reading ---------------------------------------------------------------------

# A library page in one statement, two steps: the page's ids first, in an order an index
# gives (documents_community_keyset or documents_keyset, migration 0145) so PostgreSQL
# stops after the page; then the rows and their current version for those only.
# Browsing goes by keyset — "the documents after the last one shown", (featured,
# updated_at, id) all descending — never OFFSET: a page deep in a library of thousands
# costs what the first does. A search is ordered by rank, so it goes by page number.
# Only the filters asked for are in the statement (no « $n IS NULL OR … »: a generic
# plan would not use the indexes). Deleted discussions need no join: a trigger
# (migration 0096) deletes their document. A remote document's author (hidden for
# members, silenced too for visitors) is a per-row lookup by primary keys: as an EXISTS,
# the planner may hash every thread of the node to answer it.
LIST = f"""
WITH page AS MATERIALIZED (
    SELECT d.id{{rank}} FROM documents d JOIN communities c ON c.id = d.community_id
    WHERE d.deleted_at IS NULL AND d.status = 'published' AND {readable_sql("c", "$1")}
      AND (NOT d.remote OR (
          SELECT NOT CASE WHEN $1::boolean THEN a.hidden ELSE a.silenced END
          FROM threads t JOIN actors a ON a.id = t.remote_author_id WHERE t.id = d.thread_id) IS NOT FALSE)
      {{filters}}
    ORDER BY {{page_order}}
    LIMIT $2{{offset}}
)
SELECT d.id, d.title, d.doc_type, d.tags, d.language, d.origin, d.updated_at, d.featured_at IS NOT NULL AS featured,
       c.name AS community_name, c.title AS community_title,
       v.number AS version, v.media_type, v.size, v.status AS file_status
FROM page
JOIN documents d ON d.id = page.id
JOIN communities c ON c.id = d.community_id
JOIN LATERAL (SELECT v.number, v.media_type, v.size, v.status
              FROM document_versions v WHERE v.document_id = d.id ORDER BY v.number DESC LIMIT 1) v ON true
ORDER BY {{order}}
"""
# $3, $4, $5: the cursor (featured, updated_at, id); "older" lists the documents after it.
KEYSET = {
    "older": ("AND ((d.featured_at IS NOT NULL), d.updated_at, d.id) < ($3::boolean, $4::timestamptz, $5::bigint)",
              "(d.featured_at IS NOT NULL) DESC, d.updated_at DESC, d.id DESC"),
    "newer": ("AND ((d.featured_at IS NOT NULL), d.updated_at, d.id) > ($3::boolean, $4::timestamptz, $5::bigint)",
              "(d.featured_at IS NOT NULL), d.updated_at, d.id"),
}  # fmt: skip
SEARCH_RANK = ", ts_rank(d.search_vector, websearch_to_tsquery('french', vbg_fold({q}))) AS rank"
SEARCH_ORDER = "page.rank DESC, d.updated_at DESC, d.id DESC"
FILTERS = {
    "community_id": "AND d.community_id = {p}::bigint",
    "doc_type": "AND d.doc_type = {p}::text",
    "tag": "AND d.tags @> ARRAY[{p}::text]",
    "language": "AND d.language = {p}::text",
    "query": "AND d.search_vector @@ websearch_to_tsquery('french', vbg_fold({p}::text))",
}
# What a library page shows changes with the documents version (migration 0145) and the
# instance policy's (remote authors hidden or silenced, migration 0050).
SELECT_VERSION = """
SELECT string_agg(value #>> '{}', ':' ORDER BY key) FROM node_settings
WHERE key IN ('documents_version', 'policy_version')
"""


async def library_version(conn: Conn) -> str:
    """A token that changes whenever any library page would show something else: a
    rendered page kept under it is right for as long as it is current."""
    version: str | None = await conn.fetchval(SELECT_VERSION)
    return version or ""


@dataclass(frozen=True)
class Filters:
    community_id: int | None = None
    doc_type: str | None = None
    tag: str | None = None
    language: str | None = None
    query: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, str], community_id: int | None = None) -> Filters:
        """Query-string filters; unknown values are ignored (a link never errors)."""
        doc_type = params.get("type") if params.get("type") in DOC_TYPES else None
        language = params.get("langue") if params.get("langue") in LANGUAGES else None
        tag = " ".join((params.get("etiquette") or "").split()).lower()[:MAX_TAG] or None
        query = " ".join((params.get("q") or "").split())[:MAX_QUERY] or None
        return cls(community_id, doc_type, tag, language, query)

    def query_string(self, **change: str | None) -> str:
        values = {"q": self.query, "type": self.doc_type, "etiquette": self.tag, "langue": self.language}
        values.update(change)
        return urlencode({k: v for k, v in values.items() if v})


@dataclass(frozen=True, slots=True)
class LibraryItem:
    """One line of a library page, its labels ready (templates read attributes, not records)."""

    id: int
    title: str
    type_label: str
    tags: tuple[tuple[str, str], ...]  # (tag, its value quoted for a link's query string)
    language_label: str
    origin: str
    updated_at: datetime
    featured: bool
    community_name: str
    community_title: str
    version: int
    kind_label: str
    size_label: str
    stored: bool

    @property
    def cursor(self) -> threads.ListCursor:
        return threads.ListCursor(self.featured, self.updated_at, self.id)


def _item(r: asyncpg.Record) -> LibraryItem:
    kind = uploads.BY_MEDIA_TYPE.get(r["media_type"])
    return LibraryItem(
        r["id"], r["title"], DOC_TYPES.get(r["doc_type"], r["doc_type"]), tuple((t, quote(t)) for t in r["tags"]),
        LANGUAGES.get(r["language"], r["language"]), r["origin"], r["updated_at"], r["featured"],
        r["community_name"], r["community_title"], r["version"], kind.label if kind else r["media_type"],
        human_size(r["size"]) if r["size"] else "", r["file_status"] == "stored",
    )  # fmt: skip


@dataclass(frozen=True)
class Listing:
    """One library page. Browsing: the ``avant``/``apres`` tokens of the pages around it
    (None: no such page); searching: its page number and whether another follows."""

    documents: list[LibraryItem]
    newer: str | None = None
    older: str | None = None
    page: int = 1
    has_next: bool = False


async def list_documents(
    conn: Conn, viewer: User | None, filters: Filters, at: threads.ListPosition | None = None, page: int = 1
) -> Listing:
    """Published documents the viewer may read: featured first then latest, a page after
    (or before) ``at``; best match first when searching, by ``page`` number."""
    if filters.query is not None:
        query, args = _list_sql(filters, None)
        rows = await conn.fetch(query, is_reader(viewer), PAGE_SIZE + 1, (page - 1) * PAGE_SIZE, *args)
        return Listing([_item(r) for r in rows[:PAGE_SIZE]], page=page, has_next=len(rows) > PAGE_SIZE)
    at = at or threads.ListPosition()
    query, args = _list_sql(filters, "newer" if at.newer else "older")
    c = at.cursor
    rows = list(await conn.fetch(query, is_reader(viewer), PAGE_SIZE + 1, c.pinned, c.at, c.id, *args))
    rows, has_newer, has_older = keyset.window(rows, PAGE_SIZE, backwards=at.newer, at_top=at.at_top)
    items = [_item(r) for r in rows]
    return Listing(
        items,
        newer=items[0].cursor.token() if has_newer else None,
        older=items[-1].cursor.token() if has_older else None,
    )


def _list_sql(filters: Filters, direction: str | None) -> tuple[str, list[object]]:
    """LIST with the filters that are set, their values after the fixed parameters
    ($1 reader, $2 limit, then $3 offset when searching or $3–$5 the cursor)."""
    fixed = 3 if direction is None else 5
    parts: list[str] = []
    args: list[object] = []
    query_param = ""
    for name, fragment in FILTERS.items():
        value = getattr(filters, name)
        if value is None:
            continue
        args.append(value)
        placeholder = f"${len(args) + fixed}"
        parts.append(fragment.format(p=placeholder))
        if name == "query":
            query_param = placeholder
    if direction is None:
        rank = SEARCH_RANK.format(q=f"{query_param}::text")
        order = SEARCH_ORDER
        offset = " OFFSET $3"
    else:
        keyset, order = KEYSET[direction]
        rank, offset = "", ""
        parts.append(keyset)
    page_order = order.replace("page.rank", "rank")
    return LIST.format(
        rank=rank, filters="\n      ".join(parts), page_order=page_order, order=order, offset=offset
    ), args


SELECT_DOCUMENT = """
SELECT d.*, c.name AS community_name, c.title AS community_title, c.visibility,
       u.username AS author_username, u.display_name AS author_display_name,
       coalesce(nullif(ra.display_name, ''), ra.username) AS remote_author_name, ra.domain AS remote_domain
FROM documents d
JOIN communities c ON c.id = d.community_id
LEFT JOIN users u ON u.id = d.author_id
LEFT JOIN threads t ON t.id = d.thread_id
LEFT JOIN actors ra ON ra.id = t.remote_author_id
WHERE d.id = $1
"""
SELECT_VERSIONS = """
SELECT v.number, v.status, v.stored_name, v.thumbnail_name, v.media_type, v.size, v.file_name, v.carried,
       v.note, v.created_at, v.remote_url, u.display_name AS uploader
FROM document_versions v LEFT JOIN users u ON u.id = v.uploaded_by
WHERE v.document_id = $1 ORDER BY v.number DESC
"""


@dataclass(frozen=True)
class DocumentPage:
    ref: asyncpg.Record
    document: asyncpg.Record
    versions: list[asyncpg.Record]

    @property
    def current(self) -> asyncpg.Record:
        return self.versions[0]


async def load_document(conn: Conn, document_id: int, viewer: User | None) -> DocumentPage:
    ref = await _ref(conn, document_id, viewer)
    document = await conn.fetchrow(SELECT_DOCUMENT, document_id)
    versions = await conn.fetch(SELECT_VERSIONS, document_id)
    if document is None or not versions:
        raise NotFound()
    return DocumentPage(ref, document, list(versions))


SELECT_FILE = f"""
SELECT v.stored_name, v.thumbnail_name, v.media_type, v.size, v.status, v.remote_url, d.title,
       d.status AS document_status, d.author_id, c.visibility
FROM document_versions v
JOIN documents d ON d.id = v.document_id
JOIN communities c ON c.id = d.community_id
LEFT JOIN threads t ON t.id = d.thread_id
WHERE v.document_id = $1 AND v.number = $2 AND d.deleted_at IS NULL
  AND (d.thread_id IS NULL OR t.deleted_at IS NULL) AND {author_shown_sql("t.remote_author_id")}
"""


@dataclass(frozen=True)
class FileRef:
    """One version's file as the download route needs it (access not yet decided)."""

    stored_name: str | None
    thumbnail_name: str | None
    media_type: str
    size: int
    status: str
    remote_url: str | None
    title: str
    visibility: str
    draft_of: int | None  # the uploader's id while a draft: nobody else may read it


async def file_ref(conn: Conn, document_id: int, number: int) -> FileRef:
    """The file of version ``number``; NotFound for a missing or deleted one. The caller
    decides access with :func:`may_read_file` or, for a server, the federation rule."""
    row = await conn.fetchrow(SELECT_FILE, document_id, number)
    if row is None:
        raise NotFound()
    draft_of = row["author_id"] if row["document_status"] == "draft" else None
    return FileRef(
        row["stored_name"], row["thumbnail_name"], row["media_type"], row["size"], row["status"],
        row["remote_url"], row["title"], row["visibility"], draft_of,
    )  # fmt: skip


def may_read_file(viewer: User | None, ref: FileRef) -> bool:
    """The one access rule (node.access) for a browser; a draft only for its uploader."""
    if ref.draft_of is not None:
        return viewer is not None and viewer.is_approved and viewer.id == ref.draft_of
    return access.may_read(access.of_user(viewer), ref.visibility)


# The same columns as a thread page's head reads (threads.SELECT_HEAD_DOCUMENT).
SELECT_FOR_THREAD = f"""
SELECT doc.* FROM (SELECT $1::bigint AS id) t CROSS JOIN LATERAL ({threads.SELECT_HEAD_DOCUMENT}) doc
"""


@dataclass(frozen=True)
class ThreadDocument:
    """The document a thread discusses, as its Page (``federation.objects``) carries it."""

    id: int
    doc_type: str
    version: int
    media_type: str
    size: int
    file_name: str
    stored: bool
    remote: bool
    tags: tuple[str, ...]
    language: str
    licence: str
    origin: str

    @property
    def file_path(self) -> str:
        return f"/documents/{self.id}/v/{self.version}"


async def for_thread(conn: Conn, thread_id: int) -> ThreadDocument | None:
    """The published document whose discussion is ``thread_id``, if any."""
    row = await conn.fetchrow(SELECT_FOR_THREAD, thread_id)
    return of_thread_head(row) if row is not None else None


def of_thread_head(head: asyncpg.Record) -> ThreadDocument | None:
    """The document read with a thread page's head (``threads.SELECT_HEAD_DOCUMENT``):
    what :func:`for_thread` answers, without a query of its own."""
    if head["document_id"] is None:
        return None
    return ThreadDocument(
        head["document_id"], head["document_type"], head["document_version"], head["document_media_type"],
        head["document_size"], head["document_file_name"], head["document_stored"], head["document_remote"],
        tuple(head["document_tags"]), head["document_language"], head["document_licence"], head["document_origin"],
    )  # fmt: skip


def human_size(size: int) -> str:
    """« 850 octets », « 12 Ko », « 3,4 Mo » (French units, 1 Ko = 1024 octets)."""
    if size < 1024:
        return f"{size} octets"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} Ko"
    return f"{size / (1024 * 1024):.1f} Mo".replace(".", ",")


# --- Documents from other servers (called by federation: inbox handlers, documents worker) ---
#
# A remote Page with a file attachment (ours, Lemmy, PieFed, Mbin, NodeBB …) that became a
# thread of one of our communities is also a document of its library. Its file's version
# row is a small state machine (the worker's side is federation/documents_worker.py):
#
#     link ── VBG_REMOTE_DOCUMENTS=link: a link to the origin, never fetched
#       └──── =open: request_fetch() on the first opening of its page ──> pending
#     pending ── claim (attempts + 1, leased) ── fetched, typed, cleaned, stored ──> stored
#                                             ── refused by policy, type or size ─> refused
#                                             ── 4xx / no retry left ─────────────> failed
#                                             └─ network error, 5xx: pending again later


@dataclass(frozen=True)
class RemoteFile:
    url: str
    media_type: str  # as declared (never trusted: the bytes decide)
    name: str
    size: int  # as declared, 0 when unknown


@dataclass(frozen=True)
class RemoteDocument:
    """A document as another server describes it (``vbgDocument`` when a vbg node sent it)."""

    page_id: str
    file: RemoteFile
    doc_type: str = "autre"
    tags: tuple[str, ...] = ()
    language: str = "fr"
    origin: str = ""
    licence: str = ""


def _safe_tags(tags: tuple[str, ...]) -> list[str]:
    kept: list[str] = []
    for raw in tags:
        tag = " ".join(str(raw).split()).lower().lstrip("#")[:MAX_TAG]
        if tag and TAG_RE.match(tag) and tag not in kept:
            kept.append(tag)
    return kept[:MAX_TAGS]


INSERT_REMOTE = """
WITH doc AS (
    INSERT INTO documents (thread_id, community_id, remote, title, description, doc_type, tags, language,
                           origin, licence)
    SELECT t.id, t.community_id, true, left(t.title, 200), left(p.source, 20000), $2, $3, $4, $5, $6
    FROM threads t JOIN posts p ON p.thread_id = t.id AND p.is_opening
    WHERE t.ap_id = $1 AND t.deleted_at IS NULL
    ON CONFLICT (thread_id) DO NOTHING
    RETURNING id
)
INSERT INTO document_versions (document_id, number, status, media_type, size, file_name, remote_url)
SELECT id, 1, $7, $8, $9, $10, $11 FROM doc
RETURNING document_id
"""
NOTIFY = "SELECT pg_notify('vbg_documents', '')"


async def record_remote(conn: asyncpg.Connection, document: RemoteDocument, mode: str) -> int | None:
    """List a remote thread's file in its community's library (in the handler's
    transaction); ``mode`` is VBG_REMOTE_DOCUMENTS. Returns the document id, None when
    the thread is unknown or already has its document."""
    doc_type = document.doc_type if document.doc_type in DOC_TYPES else "autre"
    language = document.language if re.fullmatch(r"[a-z]{2,3}", document.language) else "fr"
    status = "pending" if mode == "fetch" else "link"
    file = document.file
    document_id: int | None = await conn.fetchval(
        INSERT_REMOTE, document.page_id, doc_type, _safe_tags(document.tags), language,
        document.origin[:200], document.licence[:100], status, file.media_type[:100], max(file.size, 0),
        file.name[:200], file.url,
    )  # fmt: skip
    if document_id is not None:
        await conn.execute(REFRESH_SEARCH, document_id)
        if status == "pending":
            await conn.execute(NOTIFY)
    return document_id


INSERT_REMOTE_VERSION = """
WITH doc AS (
    SELECT d.id, (SELECT v.remote_url FROM document_versions v WHERE v.document_id = d.id
                  ORDER BY v.number DESC LIMIT 1) AS current_url
    FROM documents d JOIN threads t ON t.id = d.thread_id
    WHERE t.ap_id = $1 AND d.remote AND d.deleted_at IS NULL
    FOR UPDATE OF d
)
INSERT INTO document_versions (document_id, number, status, media_type, size, file_name, remote_url)
SELECT id, (SELECT max(number) + 1 FROM document_versions WHERE document_id = doc.id), $2, $3, $4, $5, $6
FROM doc WHERE current_url IS DISTINCT FROM $6
RETURNING document_id
"""


async def record_remote_update(conn: asyncpg.Connection, document: RemoteDocument, mode: str) -> None:
    """An Update of a remote document's Page: a file at a new URL is its new version
    (the old one stays); a thread that had no document yet gets one."""
    if await record_remote(conn, document, mode) is not None:
        return
    status = "pending" if mode == "fetch" else "link"
    file = document.file
    document_id = await conn.fetchval(
        INSERT_REMOTE_VERSION, document.page_id, status, file.media_type[:100], max(file.size, 0),
        file.name[:200], file.url,
    )  # fmt: skip
    if document_id is not None:
        await conn.execute(REFRESH_SEARCH, document_id)
        if status == "pending":
            await conn.execute(NOTIFY)


REQUEST_FETCH = """
UPDATE document_versions SET status = 'pending', next_attempt_at = now()
WHERE document_id = $1 AND status = 'link' AND attempts = 0 AND remote_url IS NOT NULL
RETURNING id
"""


async def request_fetch(conn: Conn, document_id: int) -> None:
    """VBG_REMOTE_DOCUMENTS=open: a member opened the page, fetch its files now."""
    if await conn.fetch(REQUEST_FETCH, document_id):
        await conn.execute(NOTIFY)


CLAIM_REMOTE = """
WITH due AS (
    SELECT v.id, a.domain AS author_domain FROM document_versions v
    JOIN documents d ON d.id = v.document_id
    JOIN threads t ON t.id = d.thread_id
    LEFT JOIN actors a ON a.id = t.remote_author_id
    WHERE v.status = 'pending' AND v.next_attempt_at <= now() AND d.deleted_at IS NULL
    ORDER BY v.next_attempt_at, v.id
    LIMIT $1
    FOR UPDATE OF v SKIP LOCKED
)
UPDATE document_versions v SET attempts = v.attempts + 1, next_attempt_at = now() + $2::interval
FROM due WHERE v.id = due.id
RETURNING v.id, v.remote_url, v.attempts, due.author_domain
"""
FINISH_REMOTE = """
UPDATE document_versions SET status = $3, error = $4
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
RETRY_REMOTE = """
UPDATE document_versions SET next_attempt_at = now() + $3::interval, error = $4
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
STORE_REMOTE = """
UPDATE document_versions SET status = 'stored', error = '', stored_name = $3, thumbnail_name = $4,
       media_type = $5, size = $6, extracted_text = $7, carried = $8
WHERE id = $1 AND attempts = $2 AND status = 'pending'
RETURNING document_id
"""


@dataclass(frozen=True)
class RemoteClaim:
    version_id: int
    url: str
    attempts: int
    author_domain: str | None


async def claim_remote(pool: asyncpg.Pool, limit: int, lease: timedelta) -> list[RemoteClaim]:
    rows = await pool.fetch(CLAIM_REMOTE, limit, lease)
    return [RemoteClaim(r["id"], r["remote_url"], r["attempts"], r["author_domain"]) for r in rows]


async def finish_remote(
    pool: asyncpg.Pool, claim: RemoteClaim, status: str, error: str, retry_in: timedelta | None = None
) -> None:
    if retry_in is not None:
        await pool.execute(RETRY_REMOTE, claim.version_id, claim.attempts, retry_in, error[:500])
    else:
        await pool.execute(FINISH_REMOTE, claim.version_id, claim.attempts, status, error[:500])


async def store_remote(pool: asyncpg.Pool, claim: RemoteClaim, file: NewFile) -> bool:
    """The fetched and cleaned file recorded; False when the version is gone or was
    claimed again meanwhile (the caller then deletes the stored files)."""
    async with pool.acquire() as conn, conn.transaction():
        document_id = await conn.fetchval(
            STORE_REMOTE, claim.version_id, claim.attempts, file.stored_name, file.thumbnail_name,
            file.media_type, file.size, file.text, list(file.carried),
        )  # fmt: skip
        if document_id is None:
            return False
        await conn.execute(REFRESH_SEARCH, document_id)
    return True


SELECT_SHAREABLE = """
SELECT d.id, d.title, d.description, d.thread_id FROM documents d
JOIN communities c ON c.id = d.community_id
WHERE d.id = $1 AND d.deleted_at IS NULL AND d.status = 'published' AND NOT d.remote
  AND c.visibility <> 'local'
"""


@dataclass(frozen=True)
class Shareable:
    """One of our documents as a member shares it with a partner's community."""

    title: str
    description: str
    file: ThreadDocument


async def shareable(conn: Conn, document_id: int) -> Shareable:
    """A published document of ours in a federated community; NotFound otherwise."""
    row = await conn.fetchrow(SELECT_SHAREABLE, document_id)
    file = await for_thread(conn, row["thread_id"]) if row is not None else None
    if row is None or file is None:
        raise NotFound()
    return Shareable(row["title"], row["description"], file)
