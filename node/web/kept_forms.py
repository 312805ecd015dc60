"""A refused form comes back with what was typed: nothing typed is lost.

``forms.form`` keeps the parsed form on the request (``request.state.form_data``)
before checking its CSRF token. When the view then fails with an ``AppError`` —
a stale token (logged in again in another tab, session ended), a thread locked
meanwhile, a rate limit, a validation error the view did not show itself —
``node.web.app`` renders ``form_again.html``: the error as a plain French sentence,
every text field as typed in an editable field, and a button sending it again to
the same address with this browser's current token. Passwords and files are never
kept. A logged-out person is told to log in in another tab and come back: the page
stays, with the text.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import FormData
from starlette.requests import Request

from node.web.forms import FIELD_LABELS, MAX_FORM_BYTES

# Fields shown with a label; other short fields (choices, ids, ``action``) go back
# as hidden inputs.
LABELS = {**FIELD_LABELS, "body": "Votre texte", "source": "Votre texte"}
LONG = {"body", "source", "reason", "motivation", "bio", "description", "rules", "note", "private_comment"}
NEVER_KEPT = {"csrf_token", "totp", "code", "recovery_code"}
# Forms anyone may send: no need to be logged in to send them again.
ANONYMOUS_PATHS = ("/connexion", "/inscription", "/deconnexion", "/reinitialiser/", "/mot-de-passe-oublie")
MAX_KEPT = 100_000  # characters of one field shown again


@dataclass(frozen=True)
class KeptField:
    name: str
    value: str
    label: str = ""
    long: bool = False

    @property
    def hidden(self) -> bool:
        return not self.label


def secret(name: str) -> bool:
    return name in NEVER_KEPT or "password" in name


def kept_fields(data: FormData) -> tuple[list[KeptField], bool]:
    """The fields to show again, and whether something (a password, a file) was not kept."""
    kept: list[KeptField] = []
    dropped = False
    for name, value in data.multi_items():
        if not isinstance(value, str) or secret(name):
            dropped = dropped or name != "csrf_token"
            continue
        value = value[:MAX_KEPT]
        long = name in LONG or "\n" in value or len(value) > 80
        label = LABELS.get(name, "Texte" if long else "")
        kept.append(KeptField(name, value, label, long))
    return kept, dropped


async def submitted(request: Request) -> FormData | None:
    """The browser form the failing request sent: the one the view read, else (a view
    that refused before reading it, e.g. for a logged-out person) read here, within
    the size limit. Only ever shown back to the browser that sent it."""
    data = getattr(request.state, "form_data", None) if "state" in request.scope else None
    if isinstance(data, FormData):
        return data
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_FORM_BYTES:
        return None
    try:
        return await request.form()
    except Exception:  # noqa: BLE001 - an unreadable body only means nothing to show back
        return None


def needs_login(request: Request, user: object) -> bool:
    """A logged-out person sending a members' form: she must log in before sending again."""
    return user is None and not request.url.path.startswith(ANONYMOUS_PATHS)
