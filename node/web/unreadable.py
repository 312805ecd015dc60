"""The first route of the app: a URL that cannot be read as text is refused before any
view sees it.

A NUL byte or bytes that are not UTF-8 (``%00``, ``%ff``) in the path or the query
string would reach views as text PostgreSQL refuses (NUL) or as mojibake: the database
error would be a 500. This route matches such requests first and answers, through the
app's error handlers like any other refusal, 404 for the path (exactly what a missing
page answers) and 400 for the query string.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from node.errors import BadRequest, NotFound


def readable(raw: bytes) -> bool:
    """Percent-decoded ``raw`` is UTF-8 text without NUL (``+`` is a space: unchanged)."""
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\x00" not in text


def _raw_path(scope: Scope) -> bytes:
    raw: bytes | None = scope.get("raw_path")
    return raw if raw is not None else str(scope.get("path", "")).encode("utf-8", "surrogateescape")


class UnreadableURL(BaseRoute):
    """Matches (any method) a request whose path or query string is not readable text."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        path_ok = readable(_raw_path(scope)) and "\x00" not in scope.get("path", "")
        if path_ok and readable(scope.get("query_string", b"")):
            return Match.NONE, {}
        return Match.FULL, {"unreadable_path": not path_ok}

    def url_path_for(self, name: str, /, **path_params: object) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("unreadable_path"):
            raise NotFound()
        raise BadRequest("Paramètre illisible : caractères invalides dans l'adresse.")
