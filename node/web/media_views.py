"""Remote media files (``node.media``), served to who may read their post.

Routes::

    GET  /media/{name}    a stored image; missing and not allowed answer the same 404

Headers (docs/architecture.md §5): the stored type, ``nosniff``, ``Content-Security-Policy:
default-src 'none'``, ``inline`` with a neutral file name, and a private cache only
(never a shared one: members-only media stay with the member's browser, and briefly,
as a workstation may be shared).
"""

from __future__ import annotations

import asyncio
import os

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from node import media
from node.errors import NotFound
from node.web.requests import current_user, pool_of, settings_of

CACHE_CONTROL = {
    "public": "private, max-age=86400",
    "members": "private, max-age=600",
}


async def media_file(request: Request) -> Response:
    user = current_user(request)
    viewer = user if user is not None and user.is_approved else None
    name = str(request.path_params["name"])
    stored = await media.load_stored(pool_of(request), settings_of(request), name, viewer)
    try:
        stat = await asyncio.to_thread(os.stat, stored.path)
    except FileNotFoundError as exc:  # removed meanwhile (post deleted): as missing
        raise NotFound() from exc
    headers = {
        "Content-Security-Policy": "default-src 'none'",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": CACHE_CONTROL.get(stored.visibility, "private, no-store"),
    }
    return FileResponse(
        stored.path,
        headers=headers,
        media_type=stored.media_type,
        filename=f"image.{stored.extension}",
        stat_result=stat,
        content_disposition_type="inline",
    )


routes: list[BaseRoute] = [Route("/media/{name}", media_file, methods=["GET"], name="media")]
