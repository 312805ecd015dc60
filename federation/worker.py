"""Workers: the delivery, inbox, media, documents, backfill and mail workers, run together.

``DeliveryWorker`` (``federation.delivery_worker``: outbox events become delivery jobs, jobs
become signed POSTs; its life cycle is drawn there), :class:`InboxWorker` (the
inbox's handlers), :class:`MediaWorker` (``federation.media``: remote images fetched,
cleaned and stored), :class:`BackfillWorker` (``federation.backfill``: what followed remote
communities already hold) and :class:`MailWorker` (``federation.mailer``: queued e-mails
sent through SMTP). ``vbg-node worker`` runs :func:`run_forever`; ``vbg-node serve``
runs them in the web process through :func:`start_in_app` / :func:`stop` (app life
span).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import asyncpg
from starlette.applications import Starlette

from federation import access, backfill, documents_worker, fetcher, inbox_worker, media
from federation.delivery_worker import DeliveryWorker, WorkerConfig  # noqa: F401  (WorkerConfig: re-exported)
from federation.mailer import MailWorker
from node import db
from node.settings import Settings

log = logging.getLogger(__name__)


# ── running the workers ───────────────────────────────────────────────────────


class Worker(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    @property
    def running(self) -> bool: ...


class QueueLoop(Protocol):
    """A queue's loop: runs until ``stop`` is set, keeps ``asleep`` set while it waits
    for work (``wakeup.drain_on_notify``)."""

    def __call__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        fetcher: fetcher.Fetcher,
        stop: asyncio.Event,
        asleep: asyncio.Event | None = None,
        /,
    ) -> Coroutine[Any, Any, None]: ...


class QueueWorker:
    """Runs one queue's loop (``loop(pool, settings, fetcher, stop)``) with a guarded
    fetcher signing as the instance actor, until stopped."""

    name = "queue"

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.pool = pool
        self._stop = asyncio.Event()
        self.asleep = asyncio.Event()  # set while the loop waits for work (wakeup.drain_on_notify)
        self._task: asyncio.Task[None] | None = None
        self._fetcher: fetcher.Fetcher | None = None

    def loop(self) -> QueueLoop:
        raise NotImplementedError

    async def start(self) -> None:
        self._fetcher = access.make_fetcher(self.pool, self.settings)
        run = self.loop()
        self._task = asyncio.create_task(
            run(self.pool, self.settings, self._fetcher, self._stop, self.asleep),
            name=f"vbg-{self.name}-worker",
        )

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            try:
                await task
            except Exception:
                log.exception("%s worker ended with an error", self.name)
        if self._fetcher is not None:
            await self._fetcher.close()
            self._fetcher = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()


class InboxWorker(QueueWorker):
    """The inbox's handlers (``federation.inbox_worker.run``)."""

    name = "inbox"

    def loop(self) -> QueueLoop:
        return inbox_worker.run


class MediaWorker(QueueWorker):
    """Remote images fetched, cleaned and stored (``federation.media.run``)."""

    name = "media"

    def loop(self) -> QueueLoop:
        return media.run


class DocumentsWorker(QueueWorker):
    """Files of remote documents fetched, cleaned and stored (``federation.documents_worker.run``)."""

    name = "documents"

    def loop(self) -> QueueLoop:
        return documents_worker.run


class BackfillWorker(QueueWorker):
    """Threads, replies, pinned threads and moderators of followed remote communities
    fetched in the background (``federation.backfill.run``)."""

    name = "backfill"

    def loop(self) -> QueueLoop:
        return backfill.run


WorkerFactory = Callable[[Settings, asyncpg.Pool], Worker]
# Each runs in ``vbg-node worker`` and inside ``serve``.
FACTORIES: list[WorkerFactory] = [
    DeliveryWorker,
    InboxWorker,
    MediaWorker,
    DocumentsWorker,
    BackfillWorker,
    MailWorker,
]


async def start_all(settings: Settings, pool: asyncpg.Pool) -> list[Worker]:
    workers: list[Worker] = []
    for factory in FACTORIES:
        worker = factory(settings, pool)
        await worker.start()
        workers.append(worker)
    return workers


async def stop_all(workers: Sequence[Worker]) -> None:
    for worker in reversed(workers):
        await worker.stop()


async def start_in_app(app: Starlette) -> None:
    """Run the workers inside the web process (``serve``), on the app's pool."""
    app.state.federation_workers = await start_all(app.state.settings, app.state.pool)


async def stop(app: Starlette) -> None:
    """Stop what :func:`start_in_app` started."""
    workers = getattr(app.state, "federation_workers", None) or []
    app.state.federation_workers = []
    await stop_all(workers)


async def run_forever(settings: Settings, dsn: str) -> None:
    """``vbg-node worker``: run the workers until SIGTERM or SIGINT."""
    # Each queue loop holds one connection for LISTEN (six workers): two more for their work.
    pool = await db.create_pool(dsn, min_size=2, max_size=len(FACTORIES) + 2)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn, settings)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        workers = await start_all(settings, pool)
        log.info("federation workers started (%d)", len(workers))
        try:
            while not stopping.is_set() and all(w.running for w in workers):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=1.0)
        finally:
            await stop_all(workers)
    finally:
        await pool.close()
