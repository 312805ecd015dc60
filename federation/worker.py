"""Federation workers: outbox events become delivery jobs, jobs become signed POSTs.

Life cycle of a :class:`DeliveryWorker` (any number of them, in any number of
processes, may share one PostgreSQL)::

    start ──> LISTEN vbg_outbox, vbg_delivery
      loop ┬─ pump   outbox events → activities + jobs        (outbox.process_pending)
           ├─ flush  finished attempts → next states, ledger, instance health
           │         (delivery.complete, batched)
           ├─ claim  up to max_in_flight − running jobs       (delivery.claim, SKIP LOCKED,
           │         ≤ per_host in flight per instance)        one task per job
           ├─ every MAINTAIN_EVERY: reclaim leases, expire, purge (delivery.maintain)
           └─ sleep until a NOTIFY, a finished attempt or POLL_INTERVAL
    stop ──> no more claims; running attempts get ``grace`` seconds, then are cancelled
             (their jobs stay in_flight and are reclaimed after the lease); flush; UNLISTEN

``vbg-node worker`` runs :func:`run_forever`; ``vbg-node serve`` runs one worker in
the web process through :func:`start_in_app` / :func:`stop` (app life span).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
import asyncpg
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from starlette.applications import Starlette

from federation import delivery, fetcher, keys, outbox, policy
from federation.delivery import Job, Result
from federation.errors import FetchError
from federation.signatures import sign_request
from node import db
from node.settings import Settings

log = logging.getLogger(__name__)

POLL_INTERVAL = 2.0  # seconds between claims when nothing wakes us (retries fall due)
MAINTAIN_EVERY = 30.0
ERROR_BACKOFF = 5.0  # after a database error
CHANNELS = ("vbg_outbox", "vbg_delivery")
POST_HEADERS = {"Content-Type": "application/activity+json", "Accept": fetcher.AS_ACCEPT}
MAX_ANSWER_READ = 16 * 1024  # what we read of an inbox's answer (so the connection is reused)


@dataclass(frozen=True)
class WorkerConfig:
    max_in_flight: int = 64  # global concurrency limit of this worker
    per_host: int = 4  # in flight per instance, across every worker
    outbox_batch: int = 50
    request_timeout: float = delivery.REQUEST_TIMEOUT.total_seconds()
    poll_interval: float = POLL_INTERVAL
    grace: float = 5.0  # how long stop() lets running attempts finish


@dataclass(frozen=True)
class Signing:
    key_id: str
    key: RSAPrivateKey


@dataclass(frozen=True)
class Prepared:
    """What the attempts of a claimed batch need: bodies and keys, loaded once."""

    bodies: dict[int, bytes]  # activity id -> JSON body
    signers: dict[int, Signing]  # activity id -> its actor's key
    refused_domains: frozenset[str]  # the instance policy says no (changed since fan-out)


# ── one attempt: the HTTP boundary ────────────────────────────────────────────


class Sender:
    """Signs and POSTs one activity to one inbox; every answer (or its absence)
    becomes a :class:`delivery.Result` — no aiohttp exception leaves this class."""

    def __init__(self, settings: Settings, config: WorkerConfig) -> None:
        self.address_policy = fetcher.AddressPolicy.for_settings(settings)
        limits = fetcher.Limits(
            deadline=config.request_timeout,
            connect_timeout=min(5.0, config.request_timeout),
            limit=config.max_in_flight,
            limit_per_host=config.per_host,
        )
        self.session = fetcher.guarded_session(self.address_policy, limits)

    async def close(self) -> None:
        await self.session.close()

    async def attempt(self, job: Job, body: bytes, signing: Signing) -> Result:
        try:
            target = fetcher.check_url(job.inbox, self.address_policy)
        except FetchError:
            return Result(job, None, "adresse refusée (schéma ou adresse privée)", refused=True)
        headers = sign_request("POST", str(target), body, signing.key_id, signing.key, POST_HEADERS)
        try:
            async with self.session.post(target, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.content.read(MAX_ANSWER_READ)
                return Result(job, resp.status, _status_error(resp.status), _retry_after(resp.headers))
        except TimeoutError:
            return Result(job, None, "délai dépassé")
        except aiohttp.ClientError as exc:
            return Result(job, None, f"connexion impossible : {type(exc).__name__}")


def _status_error(status: int) -> str:
    return "" if 200 <= status < 300 else f"HTTP {status}"


def _retry_after(headers: Any) -> timedelta | None:
    """A 429's or 503's ``Retry-After`` (seconds or an HTTP date)."""
    value = (headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(timedelta(0), moment - datetime.now(UTC))


# ── loading what a batch needs ────────────────────────────────────────────────

SELECT_ACTIVITIES = "SELECT id, actor_uri, json::text AS body FROM activities WHERE id = ANY($1::bigint[])"
SELECT_KEYS = """
SELECT uri, public_key_id, private_key_enc FROM actors
WHERE uri = ANY($1::text[]) AND local AND private_key_enc IS NOT NULL
"""
ACTIVITY_CACHE = 4096


class BatchLoader:
    """Bodies (cached: one activity fans out to many inboxes) and signing keys
    (decrypted keys are cached by ``federation.keys``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._activities: OrderedDict[int, tuple[str, bytes]] = OrderedDict()
        self._policy: policy.Policy | None = None
        self._decisions: dict[str, bool] = {}  # for self._policy only

    async def prepare(self, conn: asyncpg.Connection, jobs: Sequence[Job]) -> Prepared:
        wanted = {job.activity_id for job in jobs}
        missing = [i for i in wanted if i not in self._activities]
        if missing:
            for row in await conn.fetch(SELECT_ACTIVITIES, missing):
                self._remember(row["id"], row["actor_uri"], row["body"].encode())
        by_actor = {self._activities[i][0] for i in wanted if i in self._activities}
        signings = await self._signings(conn, sorted(by_actor))
        bodies, signers = {}, {}
        for i in wanted:
            if i in self._activities and self._activities[i][0] in signings:
                bodies[i] = self._activities[i][1]
                signers[i] = signings[self._activities[i][0]]
        current = await policy.current_policy(conn)
        if current is not self._policy:  # a new policy version: decide afresh
            self._policy, self._decisions = current, {}
        own = self.settings.domain
        refused = frozenset(
            job.domain for job in jobs if not delivery.outbound(current, job.domain, own, self._decisions)
        )
        return Prepared(bodies, signers, refused)

    def _remember(self, activity_id: int, actor_uri: str, body: bytes) -> None:
        self._activities[activity_id] = (actor_uri, body)
        while len(self._activities) > ACTIVITY_CACHE:
            self._activities.popitem(last=False)

    async def _signings(self, conn: asyncpg.Connection, actor_uris: list[str]) -> dict[str, Signing]:
        out = {}
        for row in await conn.fetch(SELECT_KEYS, actor_uris):
            key = keys.decrypt_private_key(self.settings, row["uri"], row["private_key_enc"])
            out[row["uri"]] = Signing(row["public_key_id"], key)
        return out


# ── the worker ────────────────────────────────────────────────────────────────


class DeliveryWorker:
    """Pumps the outbox and delivers jobs until stopped (see the module docstring)."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, config: WorkerConfig | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.config = config or WorkerConfig()
        self.loader = BatchLoader(settings)
        self._sender: Sender | None = None
        self._listener: asyncpg.Connection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: list[Result] = []
        self._wake = asyncio.Event()
        self._outbox_due = True
        self._claim_due = True
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        self._last_maintenance = 0.0

    # -- life cycle

    async def start(self) -> None:
        """Listen for notifications and run the loop in a background task."""
        await self.open()
        self._runner = asyncio.create_task(self.run(), name="vbg-delivery-worker")

    async def open(self) -> None:
        """What the loop needs: the HTTP session and the LISTEN connection."""
        self._sender = Sender(self.settings, self.config)
        self._listener = await self.pool.acquire()
        for channel in CHANNELS:
            await self._listener.add_listener(channel, self._notified)

    async def stop(self) -> None:
        """Stop claiming, let running attempts finish (up to ``grace``), record them."""
        self._stopping = True
        self._wake.set()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        else:
            await self._shutdown()

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def run(self) -> None:
        try:
            while not self._stopping:
                try:
                    did = await self.step()
                except (asyncpg.PostgresError, OSError) as exc:
                    log.warning("delivery worker: database error, retrying in %.0f s: %s", ERROR_BACKOFF, exc)
                    await self._sleep(ERROR_BACKOFF)
                    continue
                except Exception:
                    # The loop is the edge: a bug must not silently end deliveries.
                    log.exception("delivery worker: unexpected error, retrying in %.0f s", ERROR_BACKOFF)
                    await self._sleep(ERROR_BACKOFF)
                    continue
                if not did:
                    await self._sleep(self.config.poll_interval)
        finally:
            await self._shutdown()

    async def run_until_idle(self, within: float = 30.0) -> None:
        """Work until nothing is due and nothing is running (tests, benchmarks);
        jobs waiting for a later retry do not count."""
        deadline = time.monotonic() + within
        while True:
            self._outbox_due = self._claim_due = True
            did = await self.step()
            if not did and not self._tasks and not self._results:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("delivery worker still busy")
            if not did:
                await self._sleep(0.05)

    async def close(self) -> None:
        """Release what :meth:`open` took (for a worker driven by :meth:`run_until_idle`)."""
        await self._shutdown()

    # -- one turn of the loop

    async def step(self) -> bool:
        """Pump, flush, claim once; whether anything happened."""
        self._wake.clear()
        did = await self._pump()
        did = await self._flush() or did
        did = await self._claim() or did
        await self._maintain()
        return did

    async def _pump(self) -> bool:
        if not self._outbox_due or self._stopping:
            return False
        self._outbox_due = False
        count = await outbox.process_pending(self.pool, self.settings, self.config.outbox_batch)
        if count:
            self._claim_due = True
            self._outbox_due = count >= self.config.outbox_batch
        return count > 0

    async def _flush(self) -> bool:
        if not self._results:
            return False
        results, self._results = self._results, []
        try:
            async with self.pool.acquire() as conn:
                await delivery.complete(conn, results)
        except BaseException:
            self._results[:0] = results  # recorded at the next flush
            raise
        self._claim_due = True  # slots, per-host ones included, are free again
        return True

    async def _claim(self) -> bool:
        capacity = self.config.max_in_flight - len(self._tasks) - len(self._results)
        if not self._claim_due or capacity <= 0 or self._stopping:
            return False
        self._claim_due = False
        async with self.pool.acquire() as conn:
            jobs = await delivery.claim(conn, capacity, per_host=self.config.per_host)
            if not jobs:
                return False
            prepared = await self.loader.prepare(conn, jobs)
        for job in jobs:
            self._spawn(job, prepared)
        self._claim_due = len(jobs) >= capacity
        return True

    def _spawn(self, job: Job, prepared: Prepared) -> None:
        task = asyncio.create_task(self._attempt(job, prepared))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, job: Job, prepared: Prepared) -> None:
        assert self._sender is not None
        if job.domain in prepared.refused_domains:
            result = Result(job, None, "refusé par la politique de l'instance", refused=True)
        elif job.activity_id not in prepared.bodies:
            result = Result(job, None, "activité ou clé de l'acteur introuvable", refused=True)
        else:
            body, signing = prepared.bodies[job.activity_id], prepared.signers[job.activity_id]
            result = await self._sender.attempt(job, body, signing)
        self._results.append(result)
        self._wake.set()

    async def _maintain(self) -> None:
        now = time.monotonic()
        if now - self._last_maintenance < MAINTAIN_EVERY:
            return
        self._last_maintenance = now
        async with self.pool.acquire() as conn:
            await delivery.maintain(conn)
            await outbox.purge_processed(conn)

    # -- waiting and notifications

    def _notified(self, _conn: Any, _pid: int, channel: str, _payload: str) -> None:
        if channel == "vbg_outbox":
            self._outbox_due = True
        else:
            self._claim_due = True
        self._wake.set()

    def wake(self) -> None:
        """Look for work now (outbox and due jobs)."""
        self._outbox_due = self._claim_due = True
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            self._outbox_due = self._claim_due = True  # the poll: retries that fell due

    async def _shutdown(self) -> None:
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=self.config.grace)
            for task in pending:
                task.cancel()  # its job stays in_flight until the lease expires
            if pending:
                await asyncio.wait(pending)
        try:
            await self._flush()
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("delivery worker: could not record the last results: %s", exc)
        await self._release()

    async def _release(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                for channel in CHANNELS:
                    await listener.remove_listener(channel, self._notified)
            await self.pool.release(listener)
        if self._sender is not None:
            sender, self._sender = self._sender, None
            await sender.close()


# ── running the workers ───────────────────────────────────────────────────────


class Worker(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    @property
    def running(self) -> bool: ...


class InboxWorker:
    """Runs the inbox's handlers (``federation.processing.run``) with a guarded
    fetcher signing as the instance actor, until stopped."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.pool = pool
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fetcher: fetcher.Fetcher | None = None

    async def start(self) -> None:
        from federation import access, processing

        self._fetcher = access.make_fetcher(self.pool, self.settings)
        self._task = asyncio.create_task(
            processing.run(self.pool, self.settings, self._fetcher, self._stop), name="vbg-inbox-worker"
        )

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            try:
                await task
            except Exception:
                log.exception("inbox worker ended with an error")
        if self._fetcher is not None:
            await self._fetcher.close()
            self._fetcher = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()


WorkerFactory = Callable[[Settings, asyncpg.Pool], Worker]
# Each runs in ``vbg-node worker`` and inside ``serve``.
FACTORIES: list[WorkerFactory] = [DeliveryWorker, InboxWorker]


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
    pool = await db.create_pool(dsn, min_size=2, max_size=6)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn)
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
