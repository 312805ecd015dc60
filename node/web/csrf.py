"""The CSRF check: every browser form carries a token bound to the browser's session
(or anonymous) cookie, and every POST that reads a form checks it here.

``SessionMiddleware`` (``node/web/middleware.py``) puts the binding on the request;
``csrf_for`` gives the token templates put in each form; ``check_csrf`` refuses a
form whose token is missing or does not match (403, French message).
``tests/test_csrf.py`` walks every POST route of the app and checks each refuses a
form without token.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.datastructures import FormData
from starlette.requests import Request

from node.errors import Forbidden
from node.web.requests import settings_of

STALE_FORM = (
    "Ce formulaire n'est plus valable : votre session a changé depuis l'ouverture de la page "
    "(connexion dans un autre onglet, session terminée, page restée ouverte longtemps)."
)


def csrf_token(secret: str, binding: str) -> str:
    """The CSRF token for a browser, bound to its session or anonymous cookie."""
    return hmac.new(secret.encode(), b"csrf:" + binding.encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: str, binding: str, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(csrf_token(secret, binding), token or "")


def csrf_binding(request: Request) -> str:
    return getattr(request.state, "csrf_binding", "")


def csrf_for(request: Request) -> str:
    """The token the page's forms must send back."""
    return csrf_token(settings_of(request).secret_key.reveal(), csrf_binding(request))


def check_csrf(request: Request, data: FormData) -> None:
    """Raises 403 unless ``data`` carries this browser's CSRF token."""
    token = data.get("csrf_token")
    if not isinstance(token, str) or not csrf_valid(
        settings_of(request).secret_key.reveal(), csrf_binding(request), token
    ):
        raise Forbidden(STALE_FORM)
