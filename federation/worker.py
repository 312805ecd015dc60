"""Federation workers: outbox events become delivery jobs, jobs become signed POSTs.

Life cycle of a :class:`DeliveryWorker` (any number of them, in any number of
processes, may share one PostgreSQL)::

    start ──> LISTEN vbg_outbox, vbg_delivery
      loop ┬─ pump   outbox events → activities + jobs        (outbox.process_pending)
           ├─ flush  finished attempts → next states, ledger, instance health
           │         (delivery.complete; once max_in_flight/4 are done, or after FLUSH_DELAY)
           ├─ claim  up to max_in_flight − running jobs       (delivery.claim, SKIP LOCKED,
           │         ≤ per_host in flight per instance;        one task per job: sign, POST
           │         once max_in_flight/4 slots are free)      over aiohttp (guarded session)
           ├─ every MAINTAIN_EVERY: reclaim leases, expire, purge (delivery.maintain)
           └─ sleep until a NOTIFY, a finished attempt or POLL_INTERVAL
    stop ──> no more claims; running attempts get ``grace`` seconds, then are cancelled
             (their jobs stay in_flight and are reclaimed after the lease); flush; UNLISTEN

``vbg-node worker`` runs :func:`run_forever`; ``vbg-node serve`` runs one worker in
the web process through :func:`start_in_app` / :func:`stop` (app life span).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import signal
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
import asyncpg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from starlette.applications import Starlette
from yarl import URL

from federation import delivery, fetcher, keys, outbox, policy, signatures
from federation.delivery import Job, Result
from federation.errors import FetchError
from node import db
from node.settings import Settings

log = logging.getLogger(__name__)

POLL_INTERVAL = 2.0  # seconds between claims when nothing wakes us (retries fall due)
MAINTAIN_EVERY = 30.0
ERROR_BACKOFF = 5.0  # after a database error
CHANNELS = ("vbg_outbox", "vbg_delivery")
FLUSH_DELAY = 0.02  # longest a finished attempt waits to be recorded with others


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
    """An actor's key, and the ``Signature`` header around the signature itself."""

    key_id: str
    key: RSAPrivateKey
    header_prefix: str  # up to ``signature="``
    header_suffix: str  # from the closing quote

    @classmethod
    def of(cls, key_id: str, key: RSAPrivateKey) -> Signing:
        template = signatures.signature_header(key_id, "rsa-sha256", signatures.POST_HEADERS, b"")
        before, after = template.split('signature=""', 1)
        return cls(key_id, key, before + 'signature="', '"' + after)


@dataclass(frozen=True)
class Payload:
    """One activity ready to go to any number of inboxes: its body and Digest are
    computed once, only the signature differs per inbox (host, date)."""

    body: bytes
    digest: str
    signing: Signing

    @classmethod
    def of(cls, body: bytes, signing: Signing) -> Payload:
        return cls(body, signatures.digest_header(body), signing)


@dataclass(frozen=True)
class Prepared:
    """What the attempts of a claimed batch need, loaded once."""

    payloads: dict[int, Payload]  # activity id -> body, digest, its actor's key
    refused_domains: frozenset[str]  # the instance policy says no (changed since fan-out)


# ── one attempt: the HTTP boundary ────────────────────────────────────────────

MAX_CACHED_TARGETS = 50_000
ANSWER_READ = 16 * 1024  # what we read of an inbox's answer


@dataclass(frozen=True)
class Target:
    """An inbox URL, checked and split once (deliveries to it reuse this)."""

    url: URL  # what aiohttp requests (encoded as given)
    host_header: str  # also the signed ``host``
    path: str  # also the signed ``(request-target)`` path, query included


def target_of(url: str, policy: fetcher.AddressPolicy) -> Target:
    """The target of ``url``; FetchError when its scheme or literal address is refused."""
    parsed = fetcher.check_url(url, policy)
    host_header, path = signatures.host_and_target(url)
    return Target(parsed, host_header, path)


class Sender:
    """Signs and POSTs one activity to one inbox over aiohttp (the guarded session:
    every resolved address is checked at connect time); every answer, or its absence,
    becomes a :class:`delivery.Result` — no transport exception leaves this class.

    The signed string is exactly what goes on the wire (the design's headers
    ``(request-target) host date digest``), built from values computed once: the
    inbox's target (per URL), the Date (per second), the Digest (per activity)."""

    def __init__(self, settings: Settings, config: WorkerConfig) -> None:
        self.address_policy = fetcher.AddressPolicy.for_settings(settings)
        self.timeout = config.request_timeout
        limits = fetcher.Limits(
            deadline=self.timeout,
            connect_timeout=min(5.0, self.timeout),
            limit=config.max_in_flight,
            limit_per_host=config.per_host,
        )
        self.session = fetcher.guarded_session(self.address_policy, limits)
        self._targets: dict[str, Target | None] = {}
        self._date_at = -1
        self._date = ""

    async def close(self) -> None:
        await self.session.close()

    async def attempt(self, job: Job, payload: Payload) -> Result:
        target = self._target(job.inbox)
        if target is None:
            return Result(job, None, "adresse refusée (schéma ou adresse privée)", refused=True)
        headers = self._headers(target, payload)
        try:
            async with (
                asyncio.timeout(self.timeout),
                self.session.post(
                    target.url, data=payload.body, headers=headers, allow_redirects=False
                ) as answer,
            ):
                await answer.content.read(ANSWER_READ)  # keep-alive needs the answer read; no more
                status, retry_after = answer.status, answer.headers.get("Retry-After")
        except TimeoutError:
            return Result(job, None, "délai dépassé")
        except (aiohttp.ClientError, OSError, FetchError) as exc:
            return Result(job, None, f"connexion impossible : {type(exc).__name__}")
        return Result(job, status, _status_error(status), _retry_after(retry_after))

    def _headers(self, target: Target, payload: Payload) -> dict[str, str]:
        date = self._now()
        signed = (
            f"(request-target): post {target.path}\nhost: {target.host_header}\n"
            f"date: {date}\ndigest: {payload.digest}"
        ).encode()
        signing = payload.signing
        signature = signing.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        return {
            "Host": target.host_header,
            "Content-Type": "application/activity+json",
            "Accept": fetcher.AS_ACCEPT,
            "Date": date,
            "Digest": payload.digest,
            "Signature": f"{signing.header_prefix}{base64.b64encode(signature).decode()}{signing.header_suffix}",
        }

    def _target(self, inbox: str) -> Target | None:
        """The checked target of an inbox URL (None: refused), cached."""
        if inbox not in self._targets:
            if len(self._targets) >= MAX_CACHED_TARGETS:
                self._targets.clear()
            try:
                self._targets[inbox] = target_of(inbox, self.address_policy)
            except (FetchError, ValueError):
                self._targets[inbox] = None
        return self._targets[inbox]

    def _now(self) -> str:
        """The Date header (RFC 7231), formatted once per second."""
        second = int(time.time())
        if second != self._date_at:
            self._date_at, self._date = second, formatdate(second, usegmt=True)
        return self._date


def _status_error(status: int) -> str:
    return "" if 200 <= status < 300 else f"HTTP {status}"


def _retry_after(value: str | None) -> timedelta | None:
    """A 429's or 503's ``Retry-After`` (seconds or an HTTP date)."""
    value = (value or "").strip()
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
SIGNING_TTL = 60.0  # a local actor's new key is used within a minute


class BatchLoader:
    """Payloads (cached: one activity fans out to many inboxes) and signing keys
    (decrypted once, re-read after ``SIGNING_TTL``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._payloads: OrderedDict[int, tuple[str, bytes]] = OrderedDict()  # id -> (actor, body)
        self._signings: dict[str, tuple[float, Signing]] = {}
        self._ready: dict[int, Payload] = {}
        self._policy: policy.Policy | None = None
        self._decisions: dict[str, bool] = {}  # for self._policy only

    async def prepare(self, conn: asyncpg.Connection, jobs: Sequence[Job]) -> Prepared:
        wanted = {job.activity_id for job in jobs}
        missing = [i for i in wanted if i not in self._payloads]
        if missing:
            for row in await conn.fetch(SELECT_ACTIVITIES, missing):
                self._remember(row["id"], row["actor_uri"], row["body"].encode())
        signings = await self._signings_of(
            conn, {self._payloads[i][0] for i in wanted if i in self._payloads}
        )
        payloads = {}
        for i in wanted:
            if i in self._payloads and self._payloads[i][0] in signings:
                payloads[i] = self._payload(i, signings[self._payloads[i][0]])
        current = await policy.current_policy(conn)
        if current is not self._policy:  # a new policy version: decide afresh
            self._policy, self._decisions = current, {}
        own = self.settings.domain
        refused = frozenset(
            job.domain for job in jobs if not delivery.outbound(current, job.domain, own, self._decisions)
        )
        return Prepared(payloads, refused)

    def _remember(self, activity_id: int, actor_uri: str, body: bytes) -> None:
        self._payloads[activity_id] = (actor_uri, body)
        while len(self._payloads) > ACTIVITY_CACHE:
            gone, _ = self._payloads.popitem(last=False)
            self._ready.pop(gone, None)

    def _payload(self, activity_id: int, signing: Signing) -> Payload:
        ready = self._ready.get(activity_id)
        if ready is None or ready.signing is not signing:
            ready = self._ready[activity_id] = Payload.of(self._payloads[activity_id][1], signing)
        return ready

    async def _signings_of(self, conn: asyncpg.Connection, actor_uris: set[str]) -> dict[str, Signing]:
        now = time.monotonic()
        out = {uri: self._signings[uri][1] for uri in actor_uris if self._signings.get(uri, (0.0,))[0] > now}
        stale = sorted(actor_uris - out.keys())
        if stale:
            for row in await conn.fetch(SELECT_KEYS, stale):
                key = keys.decrypt_private_key(self.settings, row["uri"], row["private_key_enc"])
                signing = Signing.of(row["public_key_id"], key)
                self._signings[row["uri"]] = (now + SIGNING_TTL, signing)
                out[row["uri"]] = signing
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
        self._results_since = 0.0  # when the oldest unrecorded result arrived
        # Claims and completions are batched: each is a few round trips to PostgreSQL
        # however many jobs it carries.
        self._batch = max(1, self.config.max_in_flight // 4)
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
                    if self._results:
                        await self._sleep(FLUSH_DELAY, poll=False)
                    else:
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
        waiting = self._tasks and not self._stopping and len(self._results) < self._batch
        if waiting and time.monotonic() - self._results_since < FLUSH_DELAY:
            return False  # more will finish soon: record them together
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
        if capacity < self._batch and self._tasks:
            return False  # claim when a batch's worth of slots is free
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
        elif job.activity_id not in prepared.payloads:
            result = Result(job, None, "activité ou clé de l'acteur introuvable", refused=True)
        else:
            try:
                result = await self._sender.attempt(job, prepared.payloads[job.activity_id])
            except Exception:
                # A bug must not leave the job in flight until its lease ends: retry it.
                log.exception("delivery %s: unexpected error", job.id)
                result = Result(job, None, "erreur interne de l'envoi")
        if not self._results:
            self._results_since = time.monotonic()
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

    async def _sleep(self, seconds: float, *, poll: bool = True) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            if poll:
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
