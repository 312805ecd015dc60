"""Workers: the delivery, inbox, media, documents, backfill and mail workers, run together.

``DeliveryWorker`` (``federation.delivery_worker``: outbox events become delivery jobs, jobs
become signed POSTs; its life cycle is drawn there), :class:`InboxWorker` (the
inbox's handlers), :class:`MediaWorker` (``federation.media``: remote images fetched,
cleaned and stored), :class:`DocumentsWorker` (``federation.documents_worker``: files
of remote documents), :class:`BackfillWorker` (``federation.backfill``: what followed
remote communities already hold) and :class:`MailWorker` (``federation.mailer``: queued
e-mails sent through SMTP). Every one runs the same loop (``federation.wakeup.Drain``)
over its queue's ``QueueSpec``; all but the delivery worker are a :class:`QueueWorker`
each. ``vbg-node worker`` runs :func:`run_forever`; ``vbg-node serve``
runs them in the web process through :func:`start_in_app` / :func:`stop` (app life
span).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

import asyncpg
from starlette.applications import Starlette

from federation import access, backfill, documents_worker, fetcher, inbox_worker, mailer, media, wakeup
from federation.app_state import federation_of
from federation.delivery_worker import DeliveryWorker
from node import db, mail
from node.queues import QueueSpec
from node.settings import Settings
from node.web.requests import state_of

log = logging.getLogger(__name__)


# ── running the workers ───────────────────────────────────────────────────────


class Worker(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    @property
    def running(self) -> bool: ...


class QueueWorker:
    """Runs one queue's loop (``wakeup.Batches`` over :meth:`process`) as a task, until
    stopped; a queue that fetches gets a guarded fetcher signing as the instance actor."""

    queue: ClassVar[QueueSpec]
    fetches: ClassVar[bool] = True

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.pool = pool
        self.name = self.queue.name
        self.loop = wakeup.Batches(self.queue, self.process)
        self.asleep = self.loop.asleep  # set while the loop waits for work
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fetcher: fetcher.Fetcher | None = None

    async def process(self) -> int:
        """Handle what is due; how many rows (or files) were handled."""
        raise NotImplementedError

    def make_fetcher(self) -> fetcher.Fetcher:
        """The guarded fetcher of this queue: signing as the instance actor."""
        return access.make_fetcher(self.pool, self.settings)

    @property
    def fetcher(self) -> fetcher.Fetcher:
        assert self._fetcher is not None, "a worker's fetcher exists while it runs"
        return self._fetcher

    async def start(self) -> None:
        if self.fetches:
            self._fetcher = self.make_fetcher()
        self._task = asyncio.create_task(self.loop.run(self.pool, self._stop), name=f"vbg-{self.name}-worker")

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
    """The inbox's handlers (``federation.inbox_worker``)."""

    queue = inbox_worker.INBOX

    async def process(self) -> int:
        return await inbox_worker.process_due(self.pool, self.settings, self.fetcher)


class MediaWorker(QueueWorker):
    """Remote images fetched, cleaned and stored (``federation.media``)."""

    queue = media.MEDIA

    async def process(self) -> int:
        return await media.process_due(self.pool, self.settings, self.fetcher)


class DocumentsWorker(QueueWorker):
    """Files of remote documents fetched, cleaned and stored (``federation.documents_worker``)."""

    queue = documents_worker.DOCUMENTS

    async def process(self) -> int:
        return await documents_worker.process_due(self.pool, self.settings, self.fetcher)


class MailWorker(QueueWorker):
    """Queued e-mails sent through SMTP (``federation.mailer``)."""

    queue = mail.MAIL
    fetches = False

    async def process(self) -> int:
        return await mailer.process_due(self.pool, self.settings)


class BackfillWorker(QueueWorker):
    """Threads, replies, pinned threads and moderators of followed remote communities
    fetched in the background (``federation.backfill``), with the backfill's own
    per-document size and deadline (``backfill.Caps``)."""

    queue = backfill.BACKFILL
    caps = backfill.Caps()

    def make_fetcher(self) -> fetcher.Fetcher:
        return backfill.own_fetcher(super().make_fetcher(), self.caps)

    async def process(self) -> int:
        return await backfill.process_due(
            backfill.BackfillContext(self.pool, self.settings, self.fetcher, self.caps)
        )


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
    state = state_of(app)
    federation_of(app).workers = await start_all(state.settings, state.pool)


async def stop(app: Starlette) -> None:
    """Stop what :func:`start_in_app` started."""
    parts = federation_of(app)
    workers, parts.workers = parts.workers, []
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
