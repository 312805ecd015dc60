"""The delivery worker: outbox events become jobs, claimed jobs become signed POSTs.

Life cycle of a :class:`DeliveryWorker` (any number of them, in any number of
processes, may share one PostgreSQL)::

    start ──> session set-up, LISTEN vbg_outbox, vbg_delivery (the loop every queue runs: wakeup.Drain)
      loop ┬─ pump   outbox events → activities + jobs        (outbox.process_pending)
           ├─ flush  finished attempts → next states, ledger, instance health
           │         (delivery.complete; once max_in_flight/2 are done, after
           │         FLUSH_DELAY, or when nothing is being sent)
           ├─ claim  jobs into the send queue while the worker holds fewer than
           │         max_in_flight + prefetch (delivery.claim, SKIP LOCKED, ≤ per_host
           │         in flight per instance across every worker; once half is free;
           │         the instances of this worker's share first, delivery.Affinity)
           ├─ every MAINTAIN_EVERY: reclaim leases, expire, purge (delivery.maintain)
           └─ sleep until a NOTIFY, a flush to do or the poll interval; a database
              error: ERROR_BACKOFF, and a lost connection is replaced (wakeup.Drain)
      senders: up to max_in_flight tasks, each takes the next queued job, signs it and
               POSTs it over a kept-alive connection (federation.connections: every
               address checked by the fetcher's policy), records the result, and ends
               when the queue is empty
    stop ──> no more claims; queued jobs are given back (delivery.release); running
             attempts get ``grace`` seconds, then are cancelled (their jobs stay
             in_flight and are reclaimed after the lease); flush; UNLISTEN
             (DeliveryWorker.closing, then wakeup.Drain.finish)

A job "held" by a worker is claimed and not yet recorded: queued, being sent, or
finished and waiting for the flush. It counts as in flight for the per-host limit
the whole time, so prefetching never lets more than ``per_host`` jobs of one instance
out at once.

Why it is built this way (bench/delivery.py): the RSA signature is the one cost a
delivery cannot avoid (~0.4 ms here); everything else is paid per batch where it
can be. Body and Digest are computed once per activity, the ``Signature`` frame once
per key, the target once per inbox URL, the Date once per second; a claim, and a
batch of deliveries recorded, is one statement on the worker's own connection;
senders are long-lived tasks (not one task per job) and one watchdog keeps every
deadline (not one timer per POST). The request is one string written at once and
the answer read by aiohttp's parser in ``federation.connections``: aiohttp's request machinery
cost ~0.13 ms per delivery on a kept-alive connection (uvloop), and more to dial.

``vbg-node worker`` runs :func:`federation.worker.run_forever`; ``vbg-node serve``
runs one worker in the web process (app life span).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

import asyncpg

from federation import (
    connections,
    delivery,
    fetcher,
    keys,
    outbox,
    policy,
    private_messages,
    signatures,
    synchronization,
    wakeup,
)
from federation.delivery import Job, Result
from federation.errors import FetchError, FetchRefused
from node import metrics
from node.settings import Settings

log = logging.getLogger(__name__)

POLL_INTERVAL = delivery.DELIVERY.poll_interval  # between claims when nothing wakes us (retries fall due)
MAINTAIN_EVERY = 30.0
FLUSH_DELAY = 0.02  # longest a finished attempt waits to be recorded with others


@dataclass(frozen=True)
class WorkerConfig:
    max_in_flight: int = 64  # global concurrency limit of this worker (POSTs open at once)
    per_host: int = 4  # in flight per instance, across every worker
    prefetch: int = 64  # jobs claimed ahead of the senders (one claim feeds many POSTs)
    outbox_batch: int = 50
    request_timeout: float = delivery.REQUEST_TIMEOUT.total_seconds()
    poll_interval: float = POLL_INTERVAL
    grace: float = 5.0  # how long stop() lets running attempts finish

    @property
    def held(self) -> int:
        """The most jobs one worker holds at once (claimed, not yet recorded)."""
        return self.max_in_flight + self.prefetch

    @property
    def flush_batch(self) -> int:
        return max(1, self.max_in_flight // 2)


@dataclass(frozen=True)
class Payload:
    """One activity ready to go to any number of inboxes: its body and Digest are
    computed once, only the signature differs per inbox (host, date)."""

    body: bytes
    digest: str
    signer: signatures.PostSigner
    ending: str  # the request's last header lines (Digest, Content-Length) and blank line

    @classmethod
    def of(cls, body: bytes, signer: signatures.PostSigner) -> Payload:
        digest = signatures.digest_header(body)
        return cls(body, digest, signer, f"Digest: {digest}\r\nContent-Length: {len(body)}\r\n\r\n")


@dataclass(frozen=True)
class Prepared:
    """What the attempts of a claimed batch need, loaded once."""

    payloads: dict[int, Payload]  # activity id -> body, digest, its actor's key
    refused_domains: frozenset[str]  # the instance policy says no (changed since fan-out)
    answers: frozenset[int] = frozenset()  # jobs sending a Reject there all the same
    sync: dict[int, str] = field(default_factory=dict)  # job id -> Collection-Synchronization (FEP-8fcf)

    def refusal(self, job: Job) -> str:
        """Why ``job`` must not be sent ('' when it may)."""
        if job.domain in self.refused_domains and job.id not in self.answers:
            return "refusé par la politique de l'instance"
        if job.activity_id not in self.payloads:
            return "activité ou clé de l'acteur introuvable"
        return ""


# ── one attempt: the HTTP boundary ────────────────────────────────────────────

MAX_CACHED_TARGETS = 50_000
CONTENT_TYPE = "application/activity+json"
DEADLINE_TICK = 0.25  # how often the deadline watchdog looks: a POST may overrun by this


@dataclass(frozen=True)
class Target:
    """An inbox URL, checked and split once (deliveries to it reuse this)."""

    origin: connections.Origin  # where the connection goes
    host_header: str  # also the signed ``host``
    path: str  # also the signed ``(request-target)`` path, query included
    head: str  # the request line and the headers every delivery to it sends alike


def target_of(url: str, policy: fetcher.AddressPolicy) -> Target:
    """The target of ``url``; FetchError when its scheme or literal address is refused."""
    parsed = fetcher.check_url(url, policy)
    host_header, path = signatures.host_and_target_of(parsed)
    if not _printable(host_header) or not _printable(path):
        raise FetchRefused("malformed URL")
    assert parsed.raw_host is not None and parsed.port is not None  # check_url: absolute http(s)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {fetcher.USER_AGENT}\r\n"
        f"Content-Type: {CONTENT_TYPE}\r\nAccept: {fetcher.AS_ACCEPT}\r\n"
    )
    return Target(connections.Origin(parsed.scheme, parsed.raw_host, parsed.port), host_header, path, head)


def _printable(value: str) -> bool:
    """Nothing that could end a header line or the request line early."""
    return value.isascii() and value.isprintable() and " " not in value


class Sender:
    """Signs and POSTs one activity to one inbox over a kept-alive connection
    (``federation.connections``: every address checked by the guarded fetcher's
    policy before it is dialled); every answer, or its absence, becomes a
    :class:`delivery.Result` — no transport exception leaves this class.

    The signed string is exactly what goes on the wire (the design's headers
    ``(request-target) host date digest``), built from values computed once: the
    inbox's target and request head (per URL), the Date (per second), the Digest
    (per activity).

    Deadline: each attempt has ``request_timeout`` from its start (connecting,
    sending and reading the answer). One watchdog task per sender enforces them all,
    every DEADLINE_TICK, by cancelling the attempt's task: a timer per POST (aiohttp's
    total timeout, or ``asyncio.timeout``) cost ~6 % of a worker's CPU per delivery
    (bench/delivery.py). Must be created inside a running event loop."""

    def __init__(self, settings: Settings, config: WorkerConfig) -> None:
        self.address_policy = fetcher.AddressPolicy.for_settings(settings)
        self.timeout = config.request_timeout
        self.pool = connections.Pool(self.address_policy, per_host=config.per_host)
        self._targets: dict[str, Target | None] = {}
        self._printable: set[str] = set()  # synchronization headers found printable
        self._date_at = -1
        self._date = ""
        self._deadlines: dict[asyncio.Task[Any], float] = {}  # attempts running, by task
        self._expired: set[asyncio.Task[Any]] = set()  # cancelled by the watchdog
        self._watchdog = asyncio.get_running_loop().create_task(self._watch_deadlines())

    async def close(self) -> None:
        self._watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watchdog
        await self.pool.close()

    async def _watch_deadlines(self) -> None:
        while True:
            await asyncio.sleep(DEADLINE_TICK)
            now = time.monotonic()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()
            self.pool.sweep()

    async def attempt(
        self, job: Job, payload: Payload, sync: str | None = None, task: asyncio.Task[Any] | None = None
    ) -> Result:
        """One signed POST; ``sync``: the group's ``Collection-Synchronization`` for
        this server (FEP-8fcf), sent and signed with the other headers; ``task``: the
        task running it (default: the current one)."""
        target = self._target(job.inbox)
        if target is None:
            return Result(job, None, "adresse refusée (schéma ou adresse privée)", refused=True)
        if sync is not None and sync not in self._printable:
            if not sync.isprintable():
                return Result(job, None, "en-tête de synchronisation invalide", refused=True)
            if len(self._printable) >= MAX_CACHED_TARGETS:
                self._printable.clear()
            self._printable.add(sync)
        date = self._now()
        signature = payload.signer.signature(target.host_header, target.path, date, payload.digest, sync)
        extra = f"{synchronization.HEADER}: {sync}\r\n" if sync is not None else ""
        request = f"{target.head}Date: {date}\r\nSignature: {signature}\r\n{extra}{payload.ending}"
        task = task or asyncio.current_task()
        assert task is not None
        self._deadlines[task] = time.monotonic() + self.timeout
        try:
            answer = await self.pool.post(target.origin, request.encode("latin-1") + payload.body)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise  # the worker is stopping
            return Result(job, None, "délai dépassé")
        except connections.PostFailed as exc:
            return Result(job, None, f"connexion impossible : {exc.reason}")
        finally:
            del self._deadlines[task]
            if task in self._expired:  # the watchdog's cancellation is consumed here
                self._expired.discard(task)
                task.uncancel()
        return Result(job, answer.status, _status_error(answer.status), _retry_after(answer.retry_after))

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
    if not value:
        return None
    value = value.strip()
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
SYNC_TTL = 30.0  # a follow or unfollow shows in the synchronization digests within this


class BatchLoader:
    """Payloads (cached: one activity fans out to many inboxes) and signing keys
    (decrypted once, re-read after ``SIGNING_TTL``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._payloads: OrderedDict[int, tuple[str, bytes]] = OrderedDict()  # id -> (actor, body)
        self._synced: dict[int, str] = {}  # id -> the group whose followers it synchronises
        self._sync_values: dict[tuple[str, str], str | None] = {}  # (group, inbox) -> header value
        self._sync_read_at = float("-inf")
        self._signers: dict[str, tuple[float, signatures.PostSigner]] = {}
        self._ready: dict[int, Payload] = {}

    async def prepare(
        self, conn: asyncpg.Connection, jobs: Sequence[Job], policy_version: str | None = None
    ) -> Prepared:
        """What ``jobs`` need; ``policy_version``: the instance policy's version read by
        their claim (None: read it now)."""
        wanted = {job.activity_id for job in jobs}
        missing = [i for i in wanted if i not in self._payloads]
        if missing:
            for row in await conn.fetch(SELECT_ACTIVITIES, missing):
                body = private_messages.open_body(self.settings, row["body"])
                self._remember(row["id"], row["actor_uri"], body)
        signers = await self._signers_of(conn, {self._payloads[i][0] for i in wanted if i in self._payloads})
        payloads = {}
        for i in wanted:
            if i in self._payloads and self._payloads[i][0] in signers:
                payloads[i] = self._payload(i, signers[self._payloads[i][0]])
        current = await policy.current_policy(conn, policy_version)
        decisions = delivery.decisions_under(current)  # shared with the fan-out's
        own = self.settings.domain
        out = {job.domain for job in jobs if not delivery.outbound(current, job.domain, own, decisions)}
        # The Reject of a Follow still reaches a domain the allowlist leaves out (never a
        # suspended one): it is how that server learns why nothing comes.
        answers = frozenset(
            job.id
            for job in jobs
            if job.domain in out
            and job.activity_id in self._payloads
            and delivery.may_refuse(current, job.domain, own)
            and delivery.is_refusal(json.loads(self._payloads[job.activity_id][1]))
        )
        synced = [
            (job.id, job.inbox, self._synced[job.activity_id])
            for job in jobs
            if job.activity_id in self._synced and job.activity_id in payloads
        ]
        return Prepared(payloads, frozenset(out), answers, await self._sync_headers(conn, synced))

    async def _sync_headers(
        self, conn: asyncpg.Connection, synced: list[tuple[int, str, str]]
    ) -> dict[int, str]:
        """Each job's Collection-Synchronization value; a (group, server) digest is read at
        most once per SYNC_TTL (a fan-out sends several activities to each server)."""
        now = time.monotonic()
        if now - self._sync_read_at > SYNC_TTL:
            self._sync_values.clear()
            self._sync_read_at = now
        missing = [
            (job, inbox, group) for job, inbox, group in synced if (group, inbox) not in self._sync_values
        ]
        if missing:
            fresh = await synchronization.headers_for(conn, missing)
            for job, inbox, group in missing:
                self._sync_values[(group, inbox)] = fresh.get(job)
        values = {job: self._sync_values[(group, inbox)] for job, inbox, group in synced}
        return {job: value for job, value in values.items() if value is not None}

    def _remember(self, activity_id: int, actor_uri: str, body: bytes) -> None:
        self._payloads[activity_id] = (actor_uri, body)
        if synchronization.is_group_uri(actor_uri, self.settings):
            group = synchronization.synchronised_group(json.loads(body), self.settings)
            if group is not None:
                self._synced[activity_id] = group
        while len(self._payloads) > ACTIVITY_CACHE:
            gone, _ = self._payloads.popitem(last=False)
            self._ready.pop(gone, None)
            self._synced.pop(gone, None)

    def _payload(self, activity_id: int, signer: signatures.PostSigner) -> Payload:
        ready = self._ready.get(activity_id)
        if ready is None or ready.signer is not signer:
            ready = self._ready[activity_id] = Payload.of(self._payloads[activity_id][1], signer)
        return ready

    async def _signers_of(
        self, conn: asyncpg.Connection, actor_uris: set[str]
    ) -> dict[str, signatures.PostSigner]:
        now = time.monotonic()
        out = {uri: self._signers[uri][1] for uri in actor_uris if self._signers.get(uri, (0.0,))[0] > now}
        stale = sorted(actor_uris - out.keys())
        if stale:
            for row in await conn.fetch(SELECT_KEYS, stale):
                key = keys.decrypt_private_key(self.settings, row["uri"], row["private_key_enc"])
                try:
                    signer = signatures.PostSigner(row["public_key_id"], key)
                except ValueError:
                    log.error("actor %s: unusable key id, its deliveries are refused", row["uri"])
                    continue
                self._signers[row["uri"]] = (now + SIGNING_TTL, signer)
                out[row["uri"]] = signer
        return out


# ── the worker ────────────────────────────────────────────────────────────────

# the job, what to send, why not ('' : send it), its Collection-Synchronization header
Queued = tuple[Job, Payload | None, str, str | None]


class DeliveryWorker(wakeup.Drain):
    """Pumps the outbox and delivers jobs until stopped (see the module docstring): the
    queue loop every worker runs (``wakeup.Drain``) on the delivery queue, also
    listening for new outbox events; its listening connection makes its claims and
    completions too."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, config: WorkerConfig | None = None) -> None:
        self.config = config or WorkerConfig()
        super().__init__(delivery.DELIVERY, also=(outbox.CHANNEL,), poll_interval=self.config.poll_interval)
        self.settings = settings
        self.pool = pool
        self.loader = BatchLoader(settings)
        self._sender: Sender | None = None
        self.affinity = delivery.Affinity()  # the instances this worker prefers
        self._queue: deque[Queued] = deque()
        self._sending = 0  # jobs taken from the queue whose result is not in yet
        self._senders: set[asyncio.Task[None]] = set()
        self._work = asyncio.Event()  # set: jobs were queued (idle senders take them)
        self._results: list[Result] = []
        self._results_since = 0.0  # when the oldest unrecorded result arrived
        self._flush_batch = self.config.flush_batch
        self._outbox_due = True
        self._claim_due = True
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._last_maintenance = 0.0

    # -- life cycle

    async def start(self) -> None:
        """Listen for notifications and run the loop in a background task."""
        await self.open()
        self._runner = asyncio.create_task(self.run(self.pool, self._stop), name="vbg-delivery-worker")

    async def open(self) -> None:
        """What the loop needs: the connections, the metrics (made now, not at the
        first delivery) and the listening connection."""
        metrics.get()
        self._sender = Sender(self.settings, self.config)
        await self.listen(self.pool)

    async def connected(self, conn: asyncpg.Connection) -> None:
        """Custom plans for the session (each claim or completion is one statement, see
        delivery), this worker's share of the instances; and a look at everything, since
        notifications may have been missed while nobody listened."""
        await delivery.plan_each_statement(conn)
        await self.affinity.join(conn)
        self._outbox_due = self._claim_due = True

    async def stop(self) -> None:
        """Stop claiming, let running attempts finish (up to ``grace``), record them."""
        self._stop.set()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        else:
            await self.close()

    async def close(self) -> None:
        """Release what :meth:`open` took (for a worker driven by :meth:`run_until_idle`)."""
        await self.finish()

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    @property
    def _stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def held(self) -> int:
        """Jobs claimed by this worker and not yet recorded."""
        return len(self._queue) + self._sending + len(self._results)

    async def run_until_idle(self, within: float = 30.0) -> None:
        """Work until nothing is due and nothing is held (tests, benchmarks);
        jobs waiting for a later retry do not count."""
        deadline = time.monotonic() + within
        while True:
            self._outbox_due = self._claim_due = True
            self._wake.clear()
            did = await self.turn()
            if not did and not self.held:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("delivery worker still busy")
            if not did:
                await self._wait(self._stop, 0.05)

    # -- one turn of the loop

    async def step(self) -> wakeup.Wait:
        """One turn; then at once if it did something, else as soon as the results
        waiting for a flush are due, else idle (until a NOTIFY or the poll)."""
        if await self.turn():
            return wakeup.AT_ONCE
        return FLUSH_DELAY if self._results else wakeup.IDLE

    async def turn(self) -> bool:
        """Pump, flush, claim once; whether anything happened."""
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
        waiting = self._sending and not self._stopping and len(self._results) < self._flush_batch
        if waiting and time.monotonic() - self._results_since < FLUSH_DELAY:
            return False  # more will finish soon: record them together
        results, self._results = self._results, []
        assert self.conn is not None
        try:
            await delivery.complete(self.conn, results, session_planned=True)
        except BaseException:
            self._results[:0] = results  # recorded at the next flush
            raise
        metrics.count_deliveries(Counter("refused" if r.refused else r.outcome.event for r in results))
        self._claim_due = True  # slots, per-host ones included, are free again
        return True

    async def _claim(self) -> bool:
        capacity = self.config.held - self.held
        if not self._claim_due or capacity <= 0 or self._stopping:
            return False
        if capacity < self.config.held // 2 and self.held:
            return False  # claim when half of what a worker may hold is free
        self._claim_due = False
        assert self.conn is not None
        share = await self.affinity.current(self.conn, time.monotonic())
        jobs, policy_version = await delivery.claim_batch(
            self.conn, capacity, per_host=self.config.per_host, share=share, session_planned=True
        )
        if not jobs:
            return False
        prepared = await self.loader.prepare(self.conn, jobs, policy_version)
        self._queue.extend(
            (job, prepared.payloads.get(job.activity_id), prepared.refusal(job), prepared.sync.get(job.id))
            for job in jobs
        )
        self._start_senders()
        self._claim_due = len(jobs) >= capacity
        return True

    def _start_senders(self) -> None:
        """Wake the idle senders; start new ones while the queued jobs outnumber them
        (at most max_in_flight in all)."""
        self._work.set()
        idle = len(self._senders) - self._sending
        wanted = min(len(self._queue) - idle, self.config.max_in_flight - len(self._senders))
        for _ in range(wanted):
            task = asyncio.create_task(self._send_queued())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    async def _send_queued(self) -> None:
        """One sender: queued jobs one after another; idle while none is left, until
        the worker stops. Long-lived: with a task per claimed batch (senders that ended
        with the queue), a delivery cost a task's start and end."""
        task = asyncio.current_task()
        sender, queue, work = self._sender, self._queue, self._work
        assert sender is not None
        while not self._stopping:
            if not queue:
                work.clear()
                await work.wait()
                continue
            job, payload, refusal, sync = queue.popleft()
            self._sending += 1
            try:
                if refusal or payload is None:
                    result = Result(job, None, refusal, refused=True)
                else:
                    result = await sender.attempt(job, payload, sync, task)
            except Exception:
                # A bug must not leave the job in flight until its lease ends: retry it.
                log.exception("delivery %s: unexpected error", job.id)
                result = Result(job, None, "erreur interne de l'envoi")
            finally:
                self._sending -= 1
            self._record(result)

    def _record(self, result: Result) -> None:
        """Keep a result for the next flush; wake the loop when one is due (the first
        result starts the FLUSH_DELAY clock, a full batch or the last one flushes now)."""
        if not self._results:
            self._results_since = time.monotonic()
            self.poke()
        self._results.append(result)
        if len(self._results) >= self._flush_batch or not (self._sending or self._queue):
            self.poke()

    async def _maintain(self) -> None:
        now = time.monotonic()
        if now - self._last_maintenance < MAINTAIN_EVERY:
            return
        self._last_maintenance = now
        async with self.pool.acquire() as conn:
            await delivery.maintain(conn)
            await outbox.purge_processed(conn)

    # -- notifications and the end

    def notified(self, channel: str | None) -> None:
        if channel == outbox.CHANNEL:
            self._outbox_due = True
        elif channel == delivery.DELIVERY.channel:
            self._claim_due = True
        else:  # the poll: retries that fell due, events a NOTIFY did not announce
            self._outbox_due = self._claim_due = True

    def wake(self) -> None:
        """Look for work now (outbox and due jobs)."""
        self._outbox_due = self._claim_due = True
        self.poke()

    async def closing(self) -> None:
        """No more claims; queued jobs go back; running attempts get ``grace`` seconds
        (the rest are cancelled: their jobs stay in flight until the lease ends); the
        results are recorded on the still-open connection; the HTTP session closes."""
        self._stop.set()  # senders take no new job
        self._work.set()  # the idle ones end now
        await self._give_back()
        if self._senders:
            _done, pending = await asyncio.wait(set(self._senders), timeout=self.config.grace)
            for task in pending:
                task.cancel()  # its job stays in_flight until the lease expires
            if pending:
                await asyncio.wait(pending)
        try:
            await self._flush()
        except wakeup.DB_ERRORS as exc:
            log.warning("delivery worker: could not record the last results: %s", exc)
        if self._sender is not None:
            sender, self._sender = self._sender, None
            await sender.close()

    async def _give_back(self) -> None:
        """Queued jobs that were never sent go back to the queue, due now."""
        if not self._queue:
            return
        jobs = [queued[0] for queued in self._queue]
        self._queue.clear()
        try:
            await delivery.release(self.pool, jobs)
        except wakeup.DB_ERRORS as exc:
            log.warning("delivery worker: %d queued jobs wait for their lease: %s", len(jobs), exc)
