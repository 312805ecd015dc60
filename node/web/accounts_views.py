"""Views of this area (filled in by the area's owner)."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
