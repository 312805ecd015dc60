"""Reading a submitted browser form: size and encoding checked, CSRF token checked
(``node/web/csrf.py``), text fields validated with French field errors."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request

from node.errors import BadRequest, PayloadTooLarge
from node.web.csrf import check_csrf

MAX_FORM_BYTES = 2 * 1024 * 1024

# The label of each form field, as the error summary names it (« Pays : Ce champ est
# obligatoire. ») and the page that keeps a refused form shows it (kept_forms).
FIELD_LABELS = {
    "username": "Nom d'utilisateur",
    "display_name": "Nom affiché",
    "email": "Adresse e-mail",
    "password": "Mot de passe",
    "password_confirm": "Confirmation du mot de passe",
    "current_password": "Mot de passe actuel",
    "email_password": "Mot de passe actuel",
    "posts": "Vos messages",
    "confirm": "Confirmation",
    "new_password": "Nouveau mot de passe",
    "new_password_confirm": "Confirmation du nouveau mot de passe",
    "profession": "Profession",
    "profession_detail": "Précision sur la profession",
    "organisation": "Organisation",
    "country": "Pays",
    "motivation": "Motivation",
    "charter": "Charte",
    "bio": "Présentation",
    "title": "Titre",
    "body": "Votre texte",
    "source": "Texte",
    "reason": "Raison",
    "description": "Description",
    "rules": "Règles",
    "name": "Nom",
    "login": "Adresse e-mail ou nom d'utilisateur",
    "timezone": "Fuseau horaire",
    "note": "Note",
    "domain": "Domaine",
    "file": "Fichier",
    "subject": "Sujet",
    "public_comment": "Commentaire public",
    "private_comment": "Commentaire privé",
    "totp_code": "Code à usage unique",
}


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def form(request: Request) -> FormData:
    """The submitted form, after checking its size, its encoding and its CSRF token.

    Every view handling a POSTed form calls this (``tests/test_csrf.py`` walks
    every POST route of the app and checks each refuses a form without token).
    The only exemption is an endpoint that receives signed ActivityPub requests
    (an inbox): mark its endpoint function with ``endpoint.csrf_exempt = True``
    so the test skips it; such an endpoint must never read a browser form.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise PayloadTooLarge("Le formulaire envoyé est trop volumineux.")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge("Le formulaire envoyé est trop volumineux.")
    if "urlencoded" in request.headers.get("content-type", "") and not _is_utf8(body):
        # starlette would decode raw bytes as latin-1 and hand over mojibake.
        raise BadRequest("Le formulaire envoyé est illisible (encodage invalide).")
    try:
        data = await request.form()
    except (UnicodeDecodeError, ValueError, AssertionError) as exc:
        raise BadRequest("Le formulaire envoyé est illisible.") from exc
    # Kept so that a refusal shows the form again as typed (node/web/kept_forms.py).
    request.state.form_data = data
    check_csrf(request, data)
    return data


def field(data: FormData, name: str, *, max_length: int, required: bool = True, strip: bool = True) -> str:
    """A text field of ``data``; raises a French field error when invalid."""
    value = data.get(name)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadRequest(fields={name: "Valeur invalide."})
    if "\x00" in value or "\ufffd" in value:
        raise BadRequest(fields={name: "Ce champ contient des caractères invalides."})
    if strip:
        value = value.strip()
    if required and not value:
        raise BadRequest(fields={name: "Ce champ est obligatoire."})
    if len(value) > max_length:
        raise BadRequest(fields={name: f"Ce champ est trop long ({max_length} caractères au plus)."})
    return value
