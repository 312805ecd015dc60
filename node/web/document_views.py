"""The documents space (``node.documents``): libraries, upload, versions, downloads.

Routes::

    GET      /documents                          library of every community the viewer may read
                                                 (``?q=&type=&etiquette=&langue=``: full-text search and filters;
                                                 ``?avant=``/``?apres=`` pages when browsing, ``?page=`` when searching)
    GET      /c/{name}/documents                 one community's library (same filters)
    GET/POST /c/{name}/documents/nouveau         upload a document (members)
    GET      /documents/{id}                     the document: description, file size, versions, discussion link
    GET      /documents/{id}/v/{number:id}          a version's file (Range requests; attachment, sandboxed)
    GET      /documents/{id}/v/{number:id}/apercu   its thumbnail (images, PDF first page)
    POST     /documents/{id}/version             upload a new version (author, experts, moderators)
    POST     /documents/{id}/confirmer           publish a draft whose file still carries metadata
    POST     /documents/{id}/abandonner          drop such a draft
    POST     /documents/{id}/mise-en-avant       feature / unfeature (experts, moderators)
    GET/POST /documents/{id}/supprimer           delete (the author; moderators with a reason)

Files are served to who may read the community: an approved member here, or an
approved partner instance by a signed GET (``app.state.server_may_read``, wired by
``node.web.app`` to ``federation.access.may_read``); everyone
else gets the same 404 as for a missing file. Reporting a document is reporting its
discussion's opening post (``/p/{id}/signaler``).
"""

from __future__ import annotations

import asyncio
import os
import re
import unicodedata
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from node import communities, documents, threads, uploads
from node.errors import AppError, BadRequest, NotFound
from node.sessions import User
from node.storage import Storage, storage_for
from node.web import forms
from node.web.forum_views import FragmentCache
from node.web.requests import (
    current_user,
    int_param,
    path_id,
    pool_of,
    read_pool_of,
    require_member,
    settings_of,
)
from node.web.templating import current_zone, redirect, render, templates
from node.web.upload_forms import upload_form

AREA = "documents"
# Set by the composition root (node.web.app) to the federation's rule: may the server
# that signed this GET read content of this visibility? (node never imports federation)
ServerReader = Callable[[Request, str], Awaitable[bool]]
FILE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
}
CACHE_CONTROL = {"public": "private, max-age=3600", "members": "private, max-age=600"}
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})


def store_of(request: Request) -> Storage:
    return storage_for(settings_of(request), AREA)


def _viewer(request: Request) -> User | None:
    user = current_user(request)
    return user if user is not None and user.is_approved else None


def _context(**extra: Any) -> dict[str, Any]:
    return {
        "doc_types": documents.DOC_TYPES,
        "languages": documents.LANGUAGES,
        "human_size": documents.human_size,
        "kinds": {k.media_type: k.label for k in uploads.KINDS.values()},
        **extra,
    }


# ---------------------------------------------------------------- libraries


# Library lines rendered once per (item, its page, zone): an item carries every field
# its line shows, so a changed document is a new key. Per process, LRU.
lines_cache = FragmentCache(4000, ttl=300.0)
# A library page's whole content (heading, filters, lines, pager) under the library
# version: while it holds, a page is served without listing its documents again. The key
# holds everything the content depends on: where (node, or the community as found now),
# filters, position, whether the viewer is a member (who reads every community and may
# upload), their time zone. Per process, LRU.
LISTS_CACHE_SIZE = 500


def lists_cache(request: Request) -> FragmentCache:
    state = request.app.state
    cache: FragmentCache | None = getattr(state, "library_lists", None)
    if cache is None:
        cache = state.library_lists = FragmentCache(LISTS_CACHE_SIZE, ttl=300.0)
    return cache


def _lines(items: list[documents.LibraryItem], show_community: bool, base: str) -> list[Markup]:
    template = templates.get_template("documents/_item.html")
    zone = current_zone()
    lines = []
    for item in items:
        key = (item, show_community, base, zone)
        line = lines_cache.get(key)
        if line is None:
            line = Markup(template.render(d=item, show_community=show_community, base=base))
            lines_cache.put(key, line)
        lines.append(line)
    return lines


def _params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if isinstance(v, str)}


async def _library(
    request: Request, community: communities.Community | None, version: str | None = None
) -> Response:
    viewer = _viewer(request)
    pool = read_pool_of(request)
    params = _params(request)
    filters = documents.Filters.from_params(params, community.id if community else None)
    if filters.query is None:
        at, page = threads.ListPosition.from_query(params.get("avant"), params.get("apres")), 1
    else:
        at, page = threads.ListPosition(), int_param(params.get("page"))
    base = f"/c/{community.name}/documents" if community else "/documents"
    member = communities.is_reader(viewer)
    if version is None:
        version = await documents.library_version(pool)
    key = (base, community, filters, at, page, member, current_zone(), version)
    cache = lists_cache(request)
    shown: Markup | None = cache.get(key)
    if shown is None:
        listing = await documents.list_documents(pool, viewer, filters, at, page)
        if page > 1 and not listing.documents:
            raise NotFound()  # a search page past the last one
        lines = _lines(listing.documents, community is None, base)
        shown = Markup(
            templates.get_template("documents/_library.html").render(
                **_context(
                    listing=listing,
                    lines=lines,
                    filters=filters,
                    community=community,
                    base=base,
                    member=member,
                )
            )
        )
        cache.put(key, shown)
    return render(request, "documents/library.html", shown=shown, community=community)


async def library(request: Request) -> Response:
    return await _library(request, None)


async def community_library(request: Request) -> Response:
    # The community as found under the current library version (which its name, title,
    # visibility or deletion replace): one query for the page, the version's.
    pool = read_pool_of(request)
    name = request.path_params["name"]
    version = await documents.library_version(pool)
    cache = lists_cache(request)
    community: communities.Community | None = cache.get(("community", name, version))
    if community is None:
        community = await communities.find(pool, name)
        if community is None:
            raise NotFound()
        cache.put(("community", name, version), community)
    if not communities.can_read(_viewer(request), community.visibility):
        raise NotFound()  # a remote community's library: the documents its server sent (read-only here)
    return await _library(request, community, version)


# ---------------------------------------------------------------- upload


def _fields(received: uploads.ReceivedForm) -> dict[str, str]:
    return {k: v for k, v in received.fields.items() if isinstance(v, str)}


async def upload_page(request: Request) -> Response:
    user = require_member(request)
    community = await communities.get_readable_local(pool_of(request), request.path_params["name"], user)
    return _upload_form(request, community, {}, {})


def _upload_form(
    request: Request,
    community: communities.Community,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    limit = uploads.megabytes(settings_of(request).upload_max_bytes)
    return render(
        request, "documents/upload.html", status_code=status,
        **_context(community=community, values=values, errors=errors, limit=limit, accepted=uploads.ACCEPTED_LABEL),
    )  # fmt: skip


async def store_clean(request: Request, received: uploads.ReceivedForm) -> documents.NewFile:
    """The received file checked and cleaned (in a thread), then moved into storage with
    its thumbnail; BadRequest (French) when there is no acceptable file."""
    upload = received.file("file")
    if upload is None:
        raise BadRequest(fields={"file": "Choisissez un fichier."})
    settings = settings_of(request)
    clean = await uploads.clean_in_thread(upload.path, uploads.temp_dir(settings))
    store = store_of(request)
    try:
        thumb = await uploads.thumbnail_in_thread(clean.path, clean.kind.key)
        name = await store.put_file(clean.path, clean.kind.extension)
    finally:
        clean.discard()
    thumb_name = None
    if thumb is not None:
        thumb_name = await store.put(_once(thumb), "jpg")
    base = os.path.splitext(upload.client_name)[0] or "document"
    return documents.NewFile(
        name,
        clean.kind.media_type,
        clean.size,
        f"{base}.{clean.kind.extension}",
        clean.text,
        clean.carried,
        thumb_name,
    )


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _forget(request: Request, file: documents.NewFile) -> None:
    store = store_of(request)
    await store.delete(file.stored_name)
    if file.thumbnail_name:
        await store.delete(file.thumbnail_name)


async def upload(request: Request) -> Response:
    user = require_member(request)
    pool = pool_of(request)
    try:
        received = await upload_form(request)
    except AppError as exc:
        if exc.status not in (400, 413):
            raise
        community = await communities.get_readable_local(pool, request.path_params["name"], user)
        return _upload_form(request, community, {}, exc.fields or {"_": exc.message}, exc.status)
    try:
        community = await communities.get_readable_local(pool, request.path_params["name"], user)
        values = _fields(received)
        try:
            meta = documents.check_metadata(values)
            file = await store_clean(request, received)
        except BadRequest as exc:
            return _upload_form(request, community, values, exc.fields or {"_": exc.message}, 400)
    finally:
        received.discard()
    try:
        async with pool.acquire() as conn:
            document_id = await documents.create_document(conn, community, user, meta, file)
    except BaseException:
        await _forget(request, file)
        raise
    return redirect(f"/documents/{document_id}")


# ---------------------------------------------------------------- document page


async def document_page(request: Request) -> Response:
    viewer = _viewer(request)
    pool = pool_of(request)
    page = await documents.load_document(pool, path_id(request), viewer)
    if page.document["remote"] and viewer is not None and settings_of(request).remote_documents == "open":
        await documents.request_fetch(pool, page.document["id"])  # fetched on first open
    return render(
        request, "documents/document.html",
        **_context(
            page=page, doc=page.document, current=page.current, versions=page.versions,
            may_manage=documents.may_manage(viewer, page.ref), may_feature=documents.may_feature(viewer, page.ref),
            limit=uploads.megabytes(settings_of(request).upload_max_bytes), errors={},
        ),
    )  # fmt: skip


async def new_version(request: Request) -> Response:
    user = require_member(request)
    pool = pool_of(request)
    document_id = path_id(request)
    try:
        received = await upload_form(request)
    except AppError as exc:
        if exc.status not in (400, 413):
            raise
        return await _version_error(request, document_id, user, exc)
    try:
        await documents.load_document(pool, document_id, user)
        try:
            file = await store_clean(request, received)
        except BadRequest as exc:
            return await _version_error(request, document_id, user, exc)
        note = forms.field(received.fields, "note", max_length=500, required=False)
    finally:
        received.discard()
    try:
        async with pool.acquire() as conn:
            await documents.add_version(conn, document_id, user, file, note)
    except BaseException:
        await _forget(request, file)
        raise
    return redirect(f"/documents/{document_id}")


async def _version_error(request: Request, document_id: int, user: User, exc: AppError) -> Response:
    page = await documents.load_document(pool_of(request), document_id, user)
    return render(
        request, "documents/document.html", status_code=exc.status,
        **_context(
            page=page, doc=page.document, current=page.current, versions=page.versions,
            may_manage=documents.may_manage(user, page.ref), may_feature=documents.may_feature(user, page.ref),
            limit=uploads.megabytes(settings_of(request).upload_max_bytes), errors=exc.fields or {"_": exc.message},
        ),
    )  # fmt: skip


async def confirm(request: Request) -> Response:
    user = require_member(request)
    await forms.form(request)
    document_id = path_id(request)
    async with pool_of(request).acquire() as conn:
        await documents.confirm_draft(conn, document_id, user)
    return redirect(f"/documents/{document_id}")


async def abandon(request: Request) -> Response:
    user = require_member(request)
    await forms.form(request)
    pool = pool_of(request)
    async with pool.acquire() as conn:
        await documents.discard_draft(conn, path_id(request), user)
    await documents.empty_trash(pool, store_of(request))
    return redirect("/documents")


async def feature(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    document_id = path_id(request)
    async with pool_of(request).acquire() as conn:
        await documents.set_featured(conn, document_id, user, data.get("action") != "unfeature")
    return redirect(f"/documents/{document_id}")


async def delete_page(request: Request) -> Response:
    user = require_member(request)
    page = await documents.load_document(pool_of(request), path_id(request), user)
    return render(request, "documents/delete.html", **_context(doc=page.document, errors={}))


async def delete(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    pool = pool_of(request)
    document_id = path_id(request)
    reason = forms.field(data, "reason", max_length=500, required=False)
    try:
        async with pool.acquire() as conn:
            document = await documents.load_document(conn, document_id, user)
            await documents.delete_document(conn, document_id, user, reason)
    except BadRequest as exc:
        return render(
            request,
            "documents/delete.html",
            status_code=400,
            **_context(doc=document.document, errors=exc.fields),
        )
    await documents.empty_trash(pool, store_of(request))
    return redirect(f"/c/{document.document['community_name']}/documents")


# ---------------------------------------------------------------- files


async def _may_read(request: Request, ref: documents.FileRef) -> bool:
    """A member who may read the community, else a signed GET from an instance the
    federation rule lets read this visibility (approved partners for members-only)."""
    viewer = _viewer(request)
    if documents.may_read_file(viewer, ref):
        return True
    signed = "signature" in request.headers or "signature-input" in request.headers
    if ref.draft_of is not None or not signed:
        return False
    server_may_read: ServerReader | None = getattr(request.app.state, "server_may_read", None)
    return server_may_read is not None and await server_may_read(request, ref.visibility)


def download_name(title: str, media_type: str) -> str:
    """An ASCII-safe file name from the title and the extension the content decided."""
    kind = uploads.BY_MEDIA_TYPE.get(media_type)
    extension = kind.extension if kind else "bin"
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_title).strip("-").lower()[:80] or "document"
    return f"{slug}.{extension}"


async def _serve(
    request: Request, ref: documents.FileRef, name: str | None, media_type: str, inline: bool
) -> Response:
    if name is None or not await _may_read(request, ref):
        raise NotFound()
    store = store_of(request)
    path = store.local_path(name)
    headers = dict(FILE_HEADERS, **{"Cache-Control": CACHE_CONTROL.get(ref.visibility, "private, no-store")})
    if path is None:  # an object store (node.storage.S3Storage): stream what it gives back
        return await _stream_stored(
            store, name, headers, media_type, download_name(ref.title, media_type), inline
        )
    try:
        stat = await asyncio.to_thread(os.stat, path)
    except FileNotFoundError as exc:  # deleted meanwhile: as missing
        raise NotFound() from exc
    return FileResponse(
        path, headers=headers, media_type=media_type, filename=download_name(ref.title, media_type),
        stat_result=stat, content_disposition_type="inline" if inline else "attachment",
    )  # fmt: skip


async def _stream_stored(
    store: Storage, name: str, headers: dict[str, str], media_type: str, filename: str, inline: bool
) -> Response:
    try:
        fh = await store.open(name)
    except FileNotFoundError as exc:
        raise NotFound() from exc

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while block := await asyncio.to_thread(fh.read, 256 * 1024):
                yield block
        finally:
            fh.close()

    disposition = "inline" if inline else "attachment"
    # download_name is an ASCII slug: the same header FileResponse writes for local files
    quoted = urllib.parse.quote(filename, safe="")
    headers = dict(headers, **{"Content-Disposition": f'{disposition}; filename="{quoted}"'})
    return StreamingResponse(chunks(), headers=headers, media_type=media_type)


async def version_file(request: Request) -> Response:
    number = path_id(request, "number")
    ref = await documents.file_ref(pool_of(request), path_id(request), number)
    return await _serve(request, ref, ref.stored_name, ref.media_type, ref.media_type in INLINE_TYPES)


async def version_thumbnail(request: Request) -> Response:
    number = path_id(request, "number")
    ref = await documents.file_ref(pool_of(request), path_id(request), number)
    return await _serve(request, ref, ref.thumbnail_name, "image/jpeg", True)


routes: list[BaseRoute] = [
    Route("/documents", library, methods=["GET"], name="documents"),
    Route("/c/{name}/documents", community_library, methods=["GET"], name="community_documents"),
    Route("/c/{name}/documents/nouveau", upload_page, methods=["GET"], name="document_upload_page"),
    Route("/c/{name}/documents/nouveau", upload, methods=["POST"], name="document_upload"),
    Route("/documents/{id:id}", document_page, methods=["GET"], name="document"),
    Route("/documents/{id:id}/v/{number:id}", version_file, methods=["GET"], name="document_file"),
    Route(
        "/documents/{id:id}/v/{number:id}/apercu",
        version_thumbnail,
        methods=["GET"],
        name="document_thumbnail",
    ),
    Route("/documents/{id:id}/version", new_version, methods=["POST"], name="document_version"),
    Route("/documents/{id:id}/confirmer", confirm, methods=["POST"], name="document_confirm"),
    Route("/documents/{id:id}/abandonner", abandon, methods=["POST"], name="document_abandon"),
    Route("/documents/{id:id}/mise-en-avant", feature, methods=["POST"], name="document_feature"),
    Route("/documents/{id:id}/supprimer", delete_page, methods=["GET"], name="document_delete_page"),
    Route("/documents/{id:id}/supprimer", delete, methods=["POST"], name="document_delete"),
]
