"""Private conversations (``node.messages``) as pages.

Routes (anyone but a current participant — another member, a moderator, a visitor —
gets the same missing page as for a conversation that does not exist)::

    GET      /messages                               the member's conversations (``?avant=ID|apres=ID``, keyset)
    GET/POST /messages/nouveau                       start a conversation (``?a=username`` fills in)
    GET/POST /messages/preferences                   who may write to me; my blocks
    POST     /messages/bloques/{id}/retirer          lift a block
    GET      /messages/{id}                          a conversation: its latest messages (marks it read), older
                                                     ones by keyset (``?avant=ID|apres=ID``, a message of it)
    POST     /messages/{id}/repondre                 answer
    POST     /messages/{id}/lu                       mark read
    GET/POST /messages/{id}/quitter                  leave (confirmation)
    POST     /messages/{id}/bloquer                  block a participant (``participant``)
    GET      /messages/{id}/pieces/{aid}             an attachment (download, sandboxed, participants only)
    GET/POST /messages/{id}/m/{mid}/signaler         report one message to the moderators
    GET      /moderation/messages                    reported messages (moderators): who, when, never what
                                                     (``?etat=``, ``?avant=ID|apres=ID``, keyset)
    GET      /moderation/messages/{id}               one reported message (each opening is audited)
    POST     /moderation/messages/{id}/decision      resolve or dismiss

Page titles say « Messages privés », never a subject or a body.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import replace

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from node import encryption, keyset, markup, messages, uploads
from node.encryption import Keyring
from node.errors import BadRequest, Conflict, NotFound
from node.storage import Storage, storage_for
from node.web import forms
from node.web.forum_views import FragmentCache
from node.web.requests import (
    keyset_position,
    numbered_page,
    path_id,
    pool_of,
    require_member,
    require_moderator,
    settings_of,
    state_of,
)
from node.web.templating import current_zone, redirect, render, render_spliced, templates
from node.web.upload_forms import upload_form

ACCEPT_LABELS = {
    "all": "Tout membre de ce nœud ou d'un nœud partenaire",
    "local": "Les membres de ce nœud seulement",
    "experts": "Les expert·e·s et l'équipe de modération seulement",
}


def _keyring(request: Request) -> Keyring:
    return encryption.keyring_of(settings_of(request))


def _text(data: FormData, name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def _errors(exc: BadRequest) -> dict[str, str]:
    return exc.fields or {"_": exc.message}


# ---------------------------------------------------------------- list and new


async def inbox_page(request: Request) -> Response:
    user = require_member(request)
    if numbered_page(request):
        return RedirectResponse("/messages", status_code=302)
    listing = await messages.listing(pool_of(request), _keyring(request), user, keyset_position(request))
    return render(request, "messages/list.html", listing=listing)


def _new_form(request: Request, status: int = 200, **values: str | dict[str, str]) -> Response:
    errors = values.pop("errors", {})
    preview = values.pop("preview", "")
    return render(
        request,
        "messages/new.html",
        status,
        values=values,
        errors=errors,
        preview=preview,
        subject_max=messages.MAX_SUBJECT,
        body_max=messages.MAX_BODY,
        accepted=uploads.ACCEPTED_LABEL,
    )


async def new_page(request: Request) -> Response:
    require_member(request)
    return _new_form(request, recipients=request.query_params.get("a", "")[:200])


class Submitted:
    """A message form, urlencoded or multipart (with at most one file, cleaned by
    ``node.uploads`` as documents are); :meth:`discard` removes every temporary file."""

    def __init__(self, data: FormData, received: uploads.ReceivedForm | None) -> None:
        self.data, self.received = data, received
        self.clean: uploads.CleanFile | None = None

    @classmethod
    async def read(cls, request: Request) -> Submitted:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            received = await upload_form(request)
            return cls(received.fields, received)
        return cls(await forms.form(request), None)

    async def attachment(self, request: Request) -> messages.NewAttachment | None:
        """The cleaned file, if one was chosen (BadRequest: refused, or carrying what
        cannot be removed and not confirmed)."""
        upload = self.received.file("file") if self.received is not None else None
        if upload is None or upload.size == 0:
            return None
        directory = uploads.temp_dir(settings_of(request))
        self.clean = await asyncio.to_thread(uploads.clean, upload.path, directory)
        if self.clean.carried and self.data.get("confirm") != "1":
            carried = " ; ".join(self.clean.carried)
            raise BadRequest(
                fields={"file": f"Ce fichier contient encore : {carried}. Cochez « Envoyer quand même »."}
            )
        name = uploads.display_name(upload.client_name) or f"piece-jointe.{self.clean.kind.extension}"
        return messages.NewAttachment(self.clean.path, self.clean.kind.key, self.clean.size, name)

    def discard(self) -> None:
        if self.clean is not None:
            self.clean.discard()
        if self.received is not None:
            self.received.discard()


def _files(request: Request) -> Storage:
    return storage_for(settings_of(request), messages.FILES_AREA)


async def start(request: Request) -> Response:
    user = require_member(request)
    submitted = await Submitted.read(request)
    data = submitted.data
    names, subject, body = _text(data, "recipients"), _text(data, "subject"), _text(data, "body")
    if data.get("apercu"):
        submitted.discard()
        kept = {"recipients": names[:500], "subject": subject[: messages.MAX_SUBJECT], "body": body}
        return _new_form(request, 200, preview=markup.render(body[: messages.MAX_BODY]), **kept)
    try:
        attachment = await submitted.attachment(request)
        async with pool_of(request).acquire() as conn:
            wanted = names.replace(";", ",").split(",")
            for handle in await messages.unknown_remote(conn, wanted):
                await state_of(request).learn_remote_member(request, handle)
            recipients = await messages.recipients(conn, user, wanted)
            written = await messages.start(
                conn, _keyring(request), settings_of(request).base_url, user, recipients, subject, body,
                attachment, _files(request),
            )  # fmt: skip
    except BadRequest as exc:
        kept = {"recipients": names[:500], "subject": subject[: messages.MAX_SUBJECT], "body": body}
        return _new_form(request, 400, errors=_errors(exc), **kept)
    finally:
        submitted.discard()
    return redirect(f"/messages/{written.conversation_id}#m{written.message_id}")


# ---------------------------------------------------------------- one conversation


# Rendered messages (the article of one message), shared by every request of this
# process: rendering 50 messages through jinja2 was most of a conversation page's cost.
# The key holds every value the article shows — the message as its reader gets it
# (opened body, author, date, mine, unread), its attachments, the conversation and the
# reader's time zone — so a hit is exactly what rendering would give: the cache only
# saves the rendering of what this request has already read and opened (participation
# checked, bodies authenticated and decrypted on every request). What it holds in memory
# is no more than the running server reads anyway (node.encryption: encryption at rest).
ARTICLES_CACHE_SIZE = 1000
articles = FragmentCache(ARTICLES_CACHE_SIZE)
_article_template = templates.get_template("messages/_message.html")


def _articles(shown: messages.Conversation) -> bytes:
    """The page's messages, rendered and encoded (render_spliced puts them in the page)."""
    zone = current_zone()  # dates are shown in the reader's time zone
    parts = []
    for m in shown.messages:
        files = tuple(shown.attachments.get(m.id, ()))
        key = (shown.id, m, files, zone)
        part: bytes | None = articles.get(key)
        if part is None:
            html = _article_template.render(m=m, attachments=files, conversation_id=shown.id)
            part = html.encode()
            articles.put(key, part)
        parts.append(part)
    return b"\n".join(parts)


def _conversation(
    request: Request, shown: messages.Conversation, status: int = 200, **values: object
) -> Response:
    """The conversation's page (its messages spliced in, rendered once per process)."""
    defaults: dict[str, object] = {"errors": {}, "body": "", "reported": False}
    return render_spliced(
        request,
        "messages/conversation.html",
        "articles",
        _articles(shown),
        status_code=status,
        conversation=shown,
        party_key=messages.party_key,
        body_max=messages.MAX_BODY,
        accepted=uploads.ACCEPTED_LABEL,
        **{**defaults, **values},
    )


async def conversation_page(request: Request) -> Response:
    user = require_member(request)
    conversation_id = path_id(request)
    at = keyset_position(request)
    async with pool_of(request).acquire() as conn:  # one connection for the page's queries
        shown = await messages.conversation(conn, _keyring(request), user, conversation_id, at)
        # Read up to its last message once the latest page is seen (an older page marks nothing).
        if shown.newer is None and (shown.unread or any(m.unread for m in shown.messages)):
            await messages.mark_read(conn, user, conversation_id)
            # This page's header already counts what the member is reading now as read.
            own = await messages.unread_total(conn, user.id)
            request.state.user = replace(user, unread_messages=own)
    return _conversation(request, shown, reported=request.query_params.get("signale") == "1")


async def reply(request: Request) -> Response:
    user = require_member(request)
    submitted = await Submitted.read(request)
    conversation_id = path_id(request)
    body = _text(submitted.data, "body")
    pool = pool_of(request)
    if submitted.data.get("apercu"):
        submitted.discard()
        shown = await messages.conversation(pool, _keyring(request), user, conversation_id, keyset.At())
        return _conversation(request, shown, body=body, preview=markup.render(body[: messages.MAX_BODY]))
    try:
        attachment = await submitted.attachment(request)
        async with pool.acquire() as conn:
            written = await messages.reply(
                conn, _keyring(request), user, conversation_id, body, attachment, _files(request)
            )
    except BadRequest as exc:
        shown = await messages.conversation(pool, _keyring(request), user, conversation_id, keyset.At())
        return _conversation(request, shown, 400, errors=_errors(exc), body=body)
    finally:
        submitted.discard()
    return redirect(f"/messages/{conversation_id}#m{written.message_id}")


FILE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}


def _download_name(name: str, kind: str) -> str:
    extension = uploads.KINDS[kind].extension if kind in uploads.KINDS else "bin"
    ascii_name = unicodedata.normalize("NFKD", name.rsplit(".", 1)[0]).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-").lower()[:80] or "piece-jointe"
    return f"{slug}.{extension}"


async def attachment_download(request: Request) -> Response:
    """An attachment, for the conversation's participants only: always a download
    (never shown inline), sandboxed, not cached."""
    user = require_member(request)
    async with pool_of(request).acquire() as conn:
        opened = await messages.attachment_file(
            conn, _keyring(request), _files(request), user, path_id(request), path_id(request, "aid")
        )
    kind = uploads.KINDS.get(opened.kind)
    name = _download_name(opened.name, opened.kind)
    headers = dict(FILE_HEADERS, **{"Content-Disposition": f'attachment; filename="{name}"'})
    return Response(
        opened.data, media_type=kind.media_type if kind else "application/octet-stream", headers=headers
    )


async def mark_read(request: Request) -> Response:
    user = require_member(request)
    await forms.form(request)
    await messages.mark_read(pool_of(request), user, path_id(request))
    return redirect("/messages")


async def leave_page(request: Request) -> Response:
    user = require_member(request)
    conversation_id = path_id(request)
    await messages.require_participant(pool_of(request), user, conversation_id)
    return render(request, "messages/leave.html", conversation_id=conversation_id)


async def leave(request: Request) -> Response:
    user = require_member(request)
    await forms.form(request)
    await messages.leave(pool_of(request), user, path_id(request))
    return redirect("/messages?quitte=1")


async def block(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    conversation_id = path_id(request)
    pool = pool_of(request)
    party = await messages.participant_party(pool, user, conversation_id, _text(data, "participant"))
    await messages.block(pool, user, party)
    return redirect(f"/messages/{conversation_id}?bloque=1")


# ---------------------------------------------------------------- reports


def _report_form(
    request: Request, conversation_id: int, message: messages.Message, status: int = 200, **extra: object
) -> Response:
    context = {"reason": "", "errors": {}, **extra}
    return render(
        request,
        "messages/report.html",
        status,
        conversation_id=conversation_id,
        message=message,
        reason_max=messages.MAX_REASON,
        **context,
    )


async def _reported_message(request: Request) -> tuple[int, messages.Message]:
    user = require_member(request)
    conversation_id, message_id = path_id(request), path_id(request, "mid")
    message = await messages.one_message(
        pool_of(request), _keyring(request), user, conversation_id, message_id
    )
    if message.mine:
        raise NotFound()
    return conversation_id, message


async def report_page(request: Request) -> Response:
    conversation_id, message = await _reported_message(request)
    return _report_form(request, conversation_id, message)


async def report(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    conversation_id, message = await _reported_message(request)
    reason = _text(data, "reason")
    try:
        async with pool_of(request).acquire() as conn:
            await messages.report(conn, _keyring(request), user, conversation_id, message.id, reason)
    except BadRequest as exc:
        return _report_form(request, conversation_id, message, 400, reason=reason[:1000], errors=_errors(exc))
    except Conflict as exc:
        return _report_form(
            request, conversation_id, message, 409, reason=reason[:1000], errors={"_": exc.message}
        )
    return redirect(f"/messages/{conversation_id}?signale=1")


# ---------------------------------------------------------------- preferences and blocks


async def preferences_page(
    request: Request, status: int = 200, errors: dict[str, str] | None = None
) -> Response:
    user = require_member(request)
    pool = pool_of(request)
    return render(
        request,
        "messages/preferences.html",
        status,
        accept_from=await messages.preference_of(pool, user.id),
        labels=ACCEPT_LABELS,
        blocks=await messages.blocks_of(pool, user),
        errors=errors or {},
        saved=request.query_params.get("ok") == "1",
    )


async def save_preferences(request: Request) -> Response:
    user = require_member(request)
    data = await forms.form(request)
    try:
        await messages.set_preference(pool_of(request), user, _text(data, "accept_from"))
    except BadRequest as exc:
        return await preferences_page(request, 400, _errors(exc))
    return redirect("/messages/preferences?ok=1")


async def unblock(request: Request) -> Response:
    user = require_member(request)
    await forms.form(request)
    async with pool_of(request).acquire() as conn:
        await messages.unblock(conn, user, path_id(request))
    return redirect("/messages/preferences?ok=1")


# ---------------------------------------------------------------- moderators


async def reports_page(request: Request) -> Response:
    moderator = require_moderator(request)
    state = request.query_params.get("etat", "open")
    if numbered_page(request):
        handled = state in messages.REPORT_STATES and state != "open"
        return RedirectResponse("/moderation/messages" + (f"?etat={state}" if handled else ""), 302)
    listing = await messages.reports(pool_of(request), moderator, state, keyset_position(request))
    return render(request, "moderation/message_reports.html", listing=listing, state=state)


async def report_view(request: Request) -> Response:
    moderator = require_moderator(request)
    async with pool_of(request).acquire() as conn:
        opened = await messages.open_report(conn, _keyring(request), moderator, path_id(request))
    return render(request, "moderation/message_report.html", report=opened)


async def decide(request: Request) -> Response:
    moderator = require_moderator(request)
    data = await forms.form(request)
    async with pool_of(request).acquire() as conn:
        await messages.decide_report(conn, moderator, path_id(request), _text(data, "decision"))
    return redirect("/moderation/messages")


routes: list[BaseRoute] = [
    Route("/messages", inbox_page, methods=["GET"], name="messages"),
    Route("/messages/nouveau", new_page, methods=["GET"], name="message_new_page"),
    Route("/messages/nouveau", start, methods=["POST"], name="message_new"),
    Route("/messages/preferences", preferences_page, methods=["GET"], name="message_preferences_page"),
    Route("/messages/preferences", save_preferences, methods=["POST"], name="message_preferences"),
    Route("/messages/bloques/{id:id}/retirer", unblock, methods=["POST"], name="message_unblock"),
    Route("/messages/{id:id}", conversation_page, methods=["GET"], name="conversation"),
    Route("/messages/{id:id}/repondre", reply, methods=["POST"], name="conversation_reply"),
    Route("/messages/{id:id}/lu", mark_read, methods=["POST"], name="conversation_read"),
    Route("/messages/{id:id}/quitter", leave_page, methods=["GET"], name="conversation_leave_page"),
    Route("/messages/{id:id}/quitter", leave, methods=["POST"], name="conversation_leave"),
    Route("/messages/{id:id}/bloquer", block, methods=["POST"], name="conversation_block"),
    Route(
        "/messages/{id:id}/pieces/{aid:id}", attachment_download, methods=["GET"], name="message_attachment"
    ),
    Route("/messages/{id:id}/m/{mid:id}/signaler", report_page, methods=["GET"], name="message_report_page"),
    Route("/messages/{id:id}/m/{mid:id}/signaler", report, methods=["POST"], name="message_report"),
    Route("/moderation/messages", reports_page, methods=["GET"], name="message_reports"),
    Route("/moderation/messages/{id:id}", report_view, methods=["GET"], name="message_report_view"),
    Route("/moderation/messages/{id:id}/decision", decide, methods=["POST"], name="message_report_decide"),
]
