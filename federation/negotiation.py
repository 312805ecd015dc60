"""Content negotiation: one URL, the HTML page or the ActivityStreams document.

``APRoute`` matches only requests whose ``Accept`` asks for ActivityStreams JSON, so
federation routes can sit *before* the forum's HTML routes on the same paths
(``/u/{username}``, ``/c/{name}``, ``/t/{id}``, ``/p/{id}``): a browser falls through
to the page, a server gets the JSON-LD.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from federation.objects import with_context

AP_MEDIA_TYPE = "application/activity+json"
LD_MEDIA_TYPE = "application/ld+json"
AS_PROFILE = "https://www.w3.org/ns/activitystreams"
AP_CONTENT_TYPE = f"{AP_MEDIA_TYPE}; charset=utf-8"


def _params(parts: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in parts:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return params


def wants_activitypub(accept: str) -> bool:
    """True when ``Accept`` lists ``application/activity+json`` or ``application/ld+json``
    (without profile or with the ActivityStreams one), with a non-zero quality."""
    for media_range in accept.split(","):
        media_type, *rest = media_range.split(";")
        media_type = media_type.strip().lower()
        params = _params(rest)
        if params.get("q", "1").strip() in {"0", "0.0", "0.00", "0.000"}:
            continue
        if media_type == AP_MEDIA_TYPE:
            return True
        if media_type == LD_MEDIA_TYPE and params.get("profile", AS_PROFILE).split()[0] == AS_PROFILE:
            return True
    return False


def _accept(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"accept":
            return str(value.decode("latin-1"))
    return ""


class APRoute(Route):
    """A route that exists only for ActivityPub requests (see module docstring)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or not wants_activitypub(_accept(scope)):
            return Match.NONE, {}
        return super().matches(scope)


class ActivityResponse(Response):
    """An ActivityStreams document with our ``@context``; varies on ``Accept`` since the
    same URL also serves HTML."""

    media_type = AP_CONTENT_TYPE

    def __init__(
        self,
        content: dict[str, Any],
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        *,
        context: bool = True,
    ) -> None:
        headers = {"vary": "Accept", **(headers or {})}
        super().__init__(with_context(content) if context else content, status_code, headers)

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
