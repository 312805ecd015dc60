"""A router that tries only the routes a path's first segment can match.

Starlette's router matches a request against each route in turn, and the node has about
160 of them: measured on the development VM, matching ``/t/12`` cost ~90 µs (67 routes
tried, a regular expression each) and ``/messages/3`` ~180 µs (138), a tenth of what a
thread page or a conversation page costs the web process in all. Most routes begin with a
fixed segment (``/t/…``, ``/messages/…``, ``/c/…``): :class:`SegmentRouter` groups the
routes by that segment and hands a request to a plain router holding only the routes of
its path's segment plus those that may match any path (a segment that is a parameter,
a route without a path such as ``UnreadableURL``), in the order of the full list. What
each route matches is decided by the route itself, as before; only routes that cannot
match are no longer asked. ``tests/test_routing.py`` checks that every route is found as
the full list finds it.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Mount, Router
from starlette.types import Receive, Scope, Send


def route_segment(route: BaseRoute) -> str | None:
    """The fixed first segment every path ``route`` matches begins with; None when it
    may match a path of any first segment."""
    path = getattr(route, "path", None)
    if not isinstance(path, str) or not path.startswith("/"):
        return None  # no path (UnreadableURL, a Host) or a Mount at the root ("")
    segment = path[1:].split("/", 1)[0]
    if "{" in segment:
        return None
    if segment == "" and isinstance(route, Mount):
        return None
    return segment


def path_segment(scope: Scope) -> str:
    """The first segment of the request's path within the application."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path[1:].split("/", 1)[0]


class SegmentRouter(Router):
    """:class:`Router` whose HTTP and WebSocket requests are matched only against the
    routes of their path's first segment (see the module docstring). The full list
    stays the router's ``routes``: URL building, the life span and added routes work as
    on any router; the groups are rebuilt when the list changes."""

    _groups: dict[str, Router]
    _anywhere: Router
    _grouped: tuple[BaseRoute, ...] | None = None

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await super().app(scope, receive, send)
            return
        scope.setdefault("router", self)  # URLs are built from the full list
        await self.group_for(scope).app(scope, receive, send)

    def group_for(self, scope: Scope) -> Router:
        """The router holding the routes that may match the request's path."""
        if self._grouped is None or len(self._grouped) != len(self.routes):
            self._group(tuple(self.routes))
        return self._groups.get(path_segment(scope), self._anywhere)

    def _group(self, routes: tuple[BaseRoute, ...]) -> None:
        segments = [route_segment(r) for r in routes]
        named = {s for s in segments if s is not None}
        self._groups = {name: self._part(routes, segments, name) for name in named}
        self._anywhere = self._part(routes, segments, None)
        self._grouped = routes

    def _part(self, routes: Sequence[BaseRoute], segments: Sequence[str | None], name: str | None) -> Router:
        chosen = [r for r, s in zip(routes, segments, strict=True) if s is None or s == name]
        return Router(chosen, redirect_slashes=self.redirect_slashes, default=self.default)
