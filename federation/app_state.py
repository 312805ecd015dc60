"""What federation keeps per web app, typed: the guarded fetcher of web requests, the
inbox's policy gate and writer, the slots of key fetches, and (``serve``) the workers
running in the process.

node's ``AppState`` holds it as ``federation`` without naming its type (node never
imports federation, docs/architecture.md §2); the composition root
(``node/web/app.py``) installs one; federation reads it with :func:`federation_of`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request

from node.web.requests import state_of

if TYPE_CHECKING:  # a web process imports aiohttp only when it first fetches
    from federation.fetcher import Fetcher
    from federation.inbox import InboxState
    from federation.worker import Worker


@dataclass
class FederationState:
    fetcher: Fetcher | None = None  # created on first need (federation.access.fetcher_of)
    inbox: InboxState | None = None  # created by the first inbox POST (federation.inbox)
    key_fetch_slots: asyncio.Semaphore | None = None  # federation.inbox.KEY_FETCH_SLOTS
    workers: list[Worker] = field(default_factory=list)  # serve: the workers of this process

    async def close(self) -> None:
        """When the app stops: the fetcher's connections are closed (the workers are
        stopped before, by ``federation.worker.stop``)."""
        if self.fetcher is not None:
            fetcher, self.fetcher = self.fetcher, None
            await fetcher.close()


def federation_of(app_or_request: Starlette | Request) -> FederationState:
    parts = state_of(app_or_request).federation
    assert isinstance(parts, FederationState), "node/web/app.py installs a FederationState"
    return parts
