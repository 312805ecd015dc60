"""Forms that carry files (``multipart/form-data``): streamed by ``node.uploads``, CSRF
checked like every other form (``node.web.forms.form``).

A view handling such a form::

    received = await upload_form(request)          # 403 without a valid CSRF token
    try:
        title = field(received.fields, "title", max_length=200)
        upload = received.file("file")             # None when no file was chosen
        clean = await uploads.clean_in_thread(upload.path, uploads.temp_dir(settings))
        ...                                        # storage_for(settings, "…").put_file(clean.path, …)
    finally:
        received.discard()                         # temporary files never outlive the request
"""

from __future__ import annotations

from starlette.requests import Request

from node import uploads
from node.errors import BadRequest
from node.web.csrf import check_csrf
from node.web.forms import form
from node.web.requests import settings_of


async def upload_form(request: Request) -> uploads.ReceivedForm:
    """The submitted multipart form with its files in temporary files (the caller
    discards them); PayloadTooLarge with a French message for a file over
    ``VBG_UPLOAD_MAX_MB``, Forbidden without a valid CSRF token (files deleted)."""
    settings = settings_of(request)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        await form(request)  # CSRF first: a forged post gets 403 whatever its body
        raise BadRequest("Le formulaire envoyé est illisible (fichier attendu).")
    cap = settings.upload_max_bytes
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > uploads.DRAIN_FACTOR * cap:
        raise uploads.too_large(cap)
    received = await uploads.receive(
        request.stream(), content_type, directory=uploads.temp_dir(settings), max_file_bytes=cap
    )
    # Kept so that a refusal shows the form's text again (node/web/kept_forms.py); files are not.
    request.state.form_data = received.fields
    try:
        check_csrf(request, received.fields)
    except BaseException:
        received.discard()
        raise
    return received
