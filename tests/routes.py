"""The app's POST routes with plausible path parameters, for tests that walk every form
(CSRF, kept forms)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.convertors import FloatConvertor, IntegerConvertor, PathConvertor, UUIDConvertor
from starlette.routing import BaseRoute, Mount, Route

from node.web.requests import IdConvertor

# Plausible values for path parameters: names and ids that exist in the database
# the test builds, so that views reach their form handling.
NAMED_VALUES = {"username": "admin", "name": "medical", "domain": "example.org"}


_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


def post_routes(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    """(full path template, route) of every route accepting POST, recursively."""
    for route in routes:
        if isinstance(route, Mount):
            yield from post_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route) and (route.methods is None or "POST" in route.methods):
            yield prefix + route.path, route


def plausible(route: Route, name: str) -> str:
    convertor: Any = route.param_convertors.get(name)
    if isinstance(convertor, IntegerConvertor | IdConvertor):
        return "1"
    if isinstance(convertor, FloatConvertor):
        return "1.0"
    if isinstance(convertor, UUIDConvertor):
        return "00000000-0000-4000-8000-000000000001"
    if isinstance(convertor, PathConvertor):
        return "medical/1"
    if name == "id" or name.endswith("_id"):
        return "1"
    return NAMED_VALUES.get(name, "medical")


def concrete(path: str, route: Route) -> str:
    return _PARAM.sub(lambda m: plausible(route, m.group(1)), path)


def checked_routes(app: Starlette) -> list[str]:
    return [
        concrete(path, route)
        for path, route in post_routes(app.routes)
        if not getattr(route.endpoint, "csrf_exempt", False)
    ]
