"""HTTP endpoints of the federation (WebFinger, NodeInfo, actors, inboxes)."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
