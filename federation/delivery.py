"""Outgoing delivery: jobs, claims, retries, instance health and the ledger (docs/architecture.md §4).

One job delivers one activity to one inbox (after shared-inbox de-duplication), at
least once. Its life is a declared state machine — the only place where states,
retry delays and time-outs are written down::

                      claim (SKIP LOCKED, lease)
        ┌─────────┐ ──────────────────────────────▶ ┌───────────┐   2xx     ┌──────┐
        │ pending │                                 │ in_flight │ ────────▶ │ done │
        └─────────┘ ◀────────────────────────────── └───────────┘           └──────┘
          │   ▲   ▲   retry: 5xx, 401, 408, 429,      │     │   final: other 4xx,  ┌────────┐
          │   │   │   timeout, connection error,      │     └──────────────────▶   │ failed │
          │   │   │   after RETRY_DELAYS[attempt-1]   │         410, 3xx           └────────┘
          │   │   └───────────────────────────────────┤
          │   └── lease expired (the worker died) ────┤   retry but attempts   ┌──────┐
          │       or release (claimed, never sent)    └──────────────────────▶ │ dead │
          └── expire: still pending after JOB_MAX_AGE (instance unreachable) ─▶ └──────┘

A ``done`` job is deleted at once: the ledger keeps what was delivered, and a queue
that only holds live and given-up jobs stays small and cheap to claim from.

Instance health (table ``instances``): every transport failure or 5xx adds one to
``failure_count`` and starts ``failing_since``; ``UNREACHABLE_AFTER_FAILURES``
consecutive failures spanning at least ``UNREACHABLE_AFTER`` mark the instance
unreachable. Its jobs then stay pending (not claimed) except one probe every
``PROBE_EVERY``; they expire to ``dead`` after ``JOB_MAX_AGE``. The instance is
revived by its first successful delivery or by :func:`mark_alive` (the inbox worker
calls it for the senders of the activities it processes: each was verified, signed by
its instance, when it arrived).

A successful delivery of an activity about an object (``activities.object_uri``)
writes the ledger ``deliveries_ledger`` (``last_success_at`` of an instance is kept
to the minute, so a healthy instance's row is not rewritten at every delivery): a later ``Delete`` goes to the followers
and to every inbox of :func:`ledger_inboxes`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import asyncpg

from federation import policy
from node.db import Conn
from node.queues import QueueSpec

log = logging.getLogger(__name__)

# ── the state machine ─────────────────────────────────────────────────────────

STATES = ("pending", "in_flight", "done", "failed", "dead")
FINAL_STATES = frozenset({"done", "failed", "dead"})

# (state, event) -> next state. Nothing else may change a job's state.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("pending", "claim"): "in_flight",
    ("pending", "expire"): "dead",
    ("in_flight", "success"): "done",
    ("in_flight", "final"): "failed",
    ("in_flight", "retry"): "pending",
    ("in_flight", "give_up"): "dead",
    ("in_flight", "lease_expired"): "pending",
    ("in_flight", "release"): "pending",  # claimed but never sent (the worker stopped)
}

# Wait before attempt n+1 after attempt n failed: 8 attempts over about 45 hours.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(hours=24),
)
# An in-flight job whose worker died is reclaimed after its lease.
LEASE = timedelta(minutes=2)
DELIVERY = QueueSpec(
    name="delivery",
    table="delivery_jobs",
    channel="vbg_delivery",  # the delivery worker also listens on vbg_outbox (new events)
    lease=LEASE,
    retry_delays=RETRY_DELAYS,
    poll_interval=2.0,  # seconds between claims when nothing wakes the worker (retries fall due)
)
MAX_ATTEMPTS = DELIVERY.max_attempts
MAX_RETRY_AFTER = timedelta(hours=24)  # a 429's Retry-After is honoured up to this
REQUEST_TIMEOUT = timedelta(seconds=10)
JOB_MAX_AGE = timedelta(days=3)
UNREACHABLE_AFTER_FAILURES = 10
UNREACHABLE_AFTER = timedelta(days=2)
PROBE_EVERY = timedelta(hours=6)
KEEP_FAILED = timedelta(days=30)

RETRY_STATUSES = frozenset({401, 408, 429})


@dataclass(frozen=True)
class AttemptOutcome:
    """What an attempt's answer means: the event of the state machine, and whether
    it says the instance itself is failing (transport error or 5xx)."""

    event: str  # "success" | "final" | "retry"
    instance_failure: bool = False


SUCCESS = AttemptOutcome("success")
FINAL = AttemptOutcome("final")
RETRY = AttemptOutcome("retry")
INSTANCE_FAILURE = AttemptOutcome("retry", instance_failure=True)


def classify(status: int | None) -> AttemptOutcome:
    """The outcome of an attempt from its HTTP status (``None``: no answer)."""
    if status is None or status >= 500:
        return INSTANCE_FAILURE
    if 200 <= status < 300:
        return SUCCESS
    if status in RETRY_STATUSES:
        return RETRY
    return FINAL  # 3xx (redirects are not followed on POST), 410, other 4xx


@dataclass(frozen=True)
class DeliveryStep:
    state: str
    delay: timedelta | None = None  # when state is pending: wait before the next attempt


def next_step(outcome: AttemptOutcome, attempts: int, retry_after: timedelta | None = None) -> DeliveryStep:
    """The state after attempt number ``attempts`` (1-based) ended with ``outcome``."""
    event = outcome.event
    if event == "retry" and attempts >= MAX_ATTEMPTS:
        event = "give_up"
    state = TRANSITIONS[("in_flight", event)]
    if state != "pending":
        return DeliveryStep(state)
    delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return DeliveryStep(state, delay)


# ── fan-out ───────────────────────────────────────────────────────────────────


@functools.lru_cache(maxsize=16384)
def domain_of(url: str) -> str | None:
    """The instance a URL belongs to, in the normalised form of ``instances.domain``
    and of the instance policy; None for a URL that is not http(s). Cached: a fan-out
    asks it for every inbox of every activity."""
    try:
        return policy.domain_of_url(url)
    except policy.InvalidDomain:
        return None


def pick_inboxes(recipients: Iterable[tuple[str | None, str | None]], own_domain: str) -> list[str]:
    """One inbox per recipient (its shared inbox when it has one), de-duplicated,
    in first-seen order, never one of ours."""
    own = policy.normalise_domain(own_domain)
    seen: dict[str, None] = {}
    for inbox, shared_inbox in recipients:
        url = shared_inbox or inbox
        if url and domain_of(url) not in (None, own):
            seen.setdefault(url, None)
    return list(seen)


async def deliverable(
    conn: Conn, own_domain: str, inboxes: Sequence[str], *, refusal: bool = False
) -> list[str]:
    """The inboxes the instance policy lets us deliver to (suspended domains never;
    in allowlist mode, listed domains only). ``refusal``: the activity is the
    ``Reject`` of a Follow, which also goes to a domain the allowlist leaves out (it
    must learn why nothing comes), never to a suspended one."""
    current = await policy.current_policy(conn)
    decisions = decisions_under(current)
    return [
        url
        for url in inboxes
        if outbound(current, domain_of(url), own_domain, decisions)
        or (refusal and may_refuse(current, domain_of(url), own_domain))
    ]


def may_refuse(current: policy.Policy, domain: str | None, own_domain: str) -> bool:
    """May a ``Reject`` go to ``domain``, which the policy keeps out? Only when it is
    out for not being on the allowlist: a suspended domain gets nothing at all."""
    return domain is not None and policy.decide(current, domain, own_domain).reason == "not_allowlisted"


def is_refusal(activity: dict[str, Any]) -> bool:
    """The ``Reject`` of a Follow: what may reach a domain the allowlist leaves out."""
    obj = activity.get("object")
    return activity.get("type") == "Reject" and isinstance(obj, dict) and obj.get("type") == "Follow"


MAX_CACHED_DECISIONS = 100_000
_decided: tuple[policy.Policy | None, dict[str, bool]] = (None, {})


def decisions_under(current: policy.Policy) -> dict[str, bool]:
    """The outbound decisions already taken under ``current`` (the cached policy
    object of one version): a fan-out to a thousand instances decides once each."""
    global _decided
    if _decided[0] is not current or len(_decided[1]) > MAX_CACHED_DECISIONS:
        _decided = (current, {})
    return _decided[1]


def outbound(current: policy.Policy, domain: str | None, own_domain: str, decisions: dict[str, bool]) -> bool:
    """May we deliver to ``domain`` under ``current``; ``decisions`` caches the
    answers of one policy version (deciding normalises names, which is not free)."""
    if domain is None:
        return False
    if domain not in decisions:
        decisions[domain] = policy.decide(current, domain, own_domain).allowed_outbound
    return decisions[domain]


INSERT_ACTIVITY = """
INSERT INTO activities (uri, actor_uri, object_uri, audience, json)
VALUES ($1, $2, $3, $4, $5)
RETURNING id
"""
INSERT_INSTANCES = """
INSERT INTO instances (domain) SELECT DISTINCT unnest($1::text[]) ON CONFLICT DO NOTHING
"""
INSERT_JOBS = """
INSERT INTO delivery_jobs (activity_id, inbox, domain)
SELECT $1, t.inbox, t.domain FROM unnest($2::text[], $3::text[]) AS t(inbox, domain)
"""


async def enqueue(
    conn: asyncpg.Connection,
    activity: dict[str, Any],
    inboxes: Sequence[str],
    *,
    object_uri: str | None = None,
    audience: str = "members",
) -> int:
    """Store ``activity`` (signed later by the key of its ``actor``) and create one
    pending job per inbox (``inboxes`` must be distinct: :func:`pick_inboxes`);
    return the number of jobs. Call it inside the
    transaction that consumes the cause (outbox event), so both commit together.
    Inserting jobs wakes the workers (NOTIFY ``vbg_delivery``)."""
    activity_id: int = await conn.fetchval(
        INSERT_ACTIVITY, activity["id"], activity["actor"], object_uri, audience, activity
    )
    if not inboxes:
        return 0
    domains = [domain_of(url) or "" for url in inboxes]
    await conn.execute(INSERT_INSTANCES, domains)
    await conn.execute(INSERT_JOBS, activity_id, list(inboxes), domains)
    return len(inboxes)


# ── claims and completions (workers) ──────────────────────────────────────────


class Job(NamedTuple):
    """A claimed job (a tuple: one is made per delivery, and a frozen dataclass's
    ``__init__`` costs several times a tuple's)."""

    id: int
    activity_id: int
    inbox: str
    domain: str
    attempts: int  # including the one just claimed: (id, attempts) names the claim


# Oldest due jobs first, at most ``per_host`` in flight per domain across all
# workers, unreachable domains skipped except one probe every PROBE_EVERY. The
# window function cannot sit beside FOR UPDATE, hence the CTEs; a row taken by
# another worker meanwhile is skipped (SKIP LOCKED) or re-checked (state). The
# ARRAY(...) sub-selects make the planner look rows up by primary key rather than
# hash-join the whole table. The domains to skip (full, unreachable) are two arrays
# computed once, usually empty: as NOT EXISTS per candidate row, the planner ran a
# nested loop over the ``busy`` CTE for each of them (measured: 18 of 26 ms of a
# claim of 128 among 2,000 due jobs).
#
# Among the oldest due jobs ($3 candidates), those of one activity due at the same
# time (a fan-out) go to the instances of the worker's share first ($7 of $6
# workers, by a hash of the domain; see :class:`Affinity`): the two POSTs of a new
# thread to one instance then leave from one worker, over one kept-alive
# connection, round after round. Only a preference: an older activity's jobs still
# go first, whoever's share they are in.
#
# The rows picked are locked by primary key only, their state read from the version
# locked (a row another worker claimed meanwhile is locked, found in_flight, and left
# alone; the lock ends with the statement). With ``state = 'pending'`` in that WHERE,
# the planner may read them through a partial index of pending jobs instead, walking
# the whole index once per id (its second column, or none): with the queue's
# statistics stale (a fan-out fills it in a moment), bench/delivery.py saw 30-40 ms
# per claim of 128 among 2,000 due jobs instead of 3-5 ms.
CLAIM = (
    """
WITH busy AS (
    -- count(attempts), not count(*): a plain index scan marks the entries of deleted
    -- jobs dead as it passes (an index-only scan would visit them again every claim)
    SELECT domain, count(attempts) AS n FROM delivery_jobs WHERE state = 'in_flight' GROUP BY domain
), due AS (
    SELECT j.id, j.domain, j.next_attempt_at, j.activity_id
    FROM delivery_jobs j
    WHERE j.state = 'pending' AND j.next_attempt_at <= now()
      AND j.domain <> ALL (ARRAY(SELECT b.domain FROM busy b WHERE b.n >= $2))
      AND j.domain <> ALL (ARRAY(
          SELECT i.domain FROM instances i
          WHERE i.unreachable_since IS NOT NULL AND i.last_failure_at > now() - $5::interval
      ))
    ORDER BY j.next_attempt_at, j.id
    LIMIT $3
), ranked AS (
    SELECT d.id, d.next_attempt_at, d.activity_id,
           -- a constant false for a lone worker (custom plans fold it)
           CASE WHEN $6 > 1 THEN abs(hashtext(d.domain)) % $6 <> $7 ELSE false END AS elsewhere,
           row_number() OVER (PARTITION BY d.domain ORDER BY d.next_attempt_at, d.id)
             + coalesce(b.n, 0) AS slot
    FROM due d LEFT JOIN busy b ON b.domain = d.domain
), picked AS (
    -- the latest version of each row, locked: its state is read here, not tested in
    -- WHERE (see above)
    SELECT j.id, j.state
    FROM delivery_jobs j
    WHERE j.id = ANY (ARRAY(
        SELECT r.id FROM ranked r WHERE r.slot <= $2
        ORDER BY r.next_attempt_at, r.activity_id, r.elsewhere, r.id
        LIMIT $1
    ))
    FOR UPDATE SKIP LOCKED
)
UPDATE delivery_jobs j
SET state = 'in_flight', attempts = j.attempts + 1, lease_until = now() + $4::interval, updated_at = now()
WHERE j.id = ANY (ARRAY(SELECT id FROM picked WHERE state = 'pending'))
RETURNING j.id, j.activity_id, j.inbox, j.domain, j.attempts,
          -- the instance policy's version as of this claim (one sub-select, not one per row)
          coalesce(("""
    + policy.SELECT_VERSION
    + """), '') AS policy_version
"""
)


@dataclass(frozen=True)
class Share:
    """Which share of the instances a worker prefers: ``index`` of ``count``."""

    index: int = 0
    count: int = 1


ALL = Share()
AFFINITY_LOCKS = 0x76626764  # advisory lock class ('vbgd') of the delivery workers' slots
MAX_SLOTS = 64
TAKE_SLOT = "SELECT pg_try_advisory_lock($1::int, $2::int)"
LIVE_SLOTS = """
SELECT l.objid::int AS slot FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.classid = $1::int::oid AND l.objsubid = 2 AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY 1
"""


class Affinity:
    """A worker's share of the instances, so that each instance's deliveries tend to
    leave from the same worker (its kept-alive connection, its TLS session).

    Each worker holds a session advisory lock on a slot (0 … MAX_SLOTS-1) on the
    connection it keeps; the live slots, read again at most every ``refresh``
    seconds, say how many workers share the queue and which one this is. A worker
    that dies loses its slot with its session; the others' shares then change."""

    def __init__(self, refresh: float = 1.0) -> None:
        self.refresh = refresh
        self.slot: int | None = None
        self.share = ALL
        self._read_at = float("-inf")

    async def join(self, conn: asyncpg.Connection) -> None:
        """Take a free slot on ``conn`` (none free: no preference)."""
        self.slot, self.share, self._read_at = None, ALL, float("-inf")
        for slot in range(MAX_SLOTS):
            if await conn.fetchval(TAKE_SLOT, AFFINITY_LOCKS, slot):
                self.slot = slot
                return

    async def current(self, conn: asyncpg.Connection, now: float) -> Share:
        if self.slot is not None and now - self._read_at >= self.refresh:
            slots = [r["slot"] for r in await conn.fetch(LIVE_SLOTS, AFFINITY_LOCKS)]
            self._read_at = now
            if self.slot in slots:
                self.share = Share(slots.index(self.slot), len(slots))
        return self.share


# These statements take arrays whose sizes drive the plan. asyncpg prepares
# statements and PostgreSQL switches to a generic plan after five runs, one that
# scans the whole queue (measured: 25× slower completions); plan each run instead.
CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"
SESSION_CUSTOM_PLANS = "SET plan_cache_mode = force_custom_plan"


@contextlib.asynccontextmanager
async def _planned_transaction(conn: Conn) -> AsyncIterator[asyncpg.Connection]:
    async with contextlib.AsyncExitStack() as stack:
        if isinstance(conn, asyncpg.Pool):
            conn = await stack.enter_async_context(conn.acquire())
        await stack.enter_async_context(conn.transaction())
        await conn.execute(CUSTOM_PLANS)
        yield conn


async def plan_each_statement(conn: asyncpg.Connection) -> None:
    """Custom plans for the whole session of ``conn``, a connection a worker keeps for
    its claims and completions: with ``session_planned=True`` a claim, or a completion
    of deliveries, is then one statement and one round trip, with no transaction
    around it (BEGIN, SET LOCAL and COMMIT are three more round trips, and each costs
    the sender and PostgreSQL about as much CPU as the statement). A pool resets the
    setting when the connection goes back (``RESET ALL``)."""
    await conn.execute(SESSION_CUSTOM_PLANS)


class Claimed(NamedTuple):
    """A claim's jobs and the instance policy's version read by the same statement
    ('' when nothing was claimed, or no version was ever written)."""

    jobs: list[Job]
    policy_version: str


async def claim(
    conn: Conn,
    limit: int,
    *,
    per_host: int = 4,
    lease: timedelta = LEASE,
    share: Share = ALL,
    session_planned: bool = False,
) -> list[Job]:
    """Move up to ``limit`` due jobs to ``in_flight`` for this worker (one statement,
    so any number of workers can claim concurrently), oldest first."""
    claimed = await claim_batch(
        conn, limit, per_host=per_host, lease=lease, share=share, session_planned=session_planned
    )
    return claimed.jobs


async def claim_batch(
    conn: Conn,
    limit: int,
    *,
    per_host: int = 4,
    lease: timedelta = LEASE,
    share: Share = ALL,
    session_planned: bool = False,
) -> Claimed:
    """:func:`claim`, with the policy version the claim statement read (the worker
    decides the claimed jobs under it: ``policy.current_policy(conn, version)``,
    one round trip less per claim than reading it apart)."""
    if limit <= 0:
        return Claimed([], "")
    args = (limit, per_host, max(limit * 4, 64), lease, PROBE_EVERY, share.count, share.index)
    if session_planned:
        rows = await conn.fetch(CLAIM, *args)
    else:
        async with _planned_transaction(conn) as tx:
            rows = await tx.fetch(CLAIM, *args)
    jobs = [Job._make(r[:5]) for r in rows]  # RETURNING gives Job's fields in its order
    jobs.sort(key=lambda job: job.id)  # RETURNING follows the table, not the claim's order
    return Claimed(jobs, rows[0]["policy_version"] if rows else "")


class Result(NamedTuple):
    """How one claimed attempt ended (a tuple, as :class:`Job`)."""

    job: Job
    status: int | None  # HTTP status, None when there was no answer
    error: str = ""  # short, safe description (never the activity)
    retry_after: timedelta | None = None
    refused: bool = False  # never sent: instance policy or address guard said no (final)

    @property
    def outcome(self) -> AttemptOutcome:
        return FINAL if self.refused else classify(self.status)


FINISH_JOBS = """
UPDATE delivery_jobs j
SET state = r.state,
    next_attempt_at = CASE WHEN r.state = 'pending' THEN now() + make_interval(secs => r.delay)
                           ELSE j.next_attempt_at END,
    last_status = r.status, last_error = r.error, lease_until = NULL, updated_at = now()
FROM unnest($1::bigint[], $2::int[], $3::text[], $4::int[], $5::text[], $6::float8[])
     AS r(id, attempts, state, status, error, delay)
WHERE j.id = r.id AND j.attempts = r.attempts AND j.state = 'in_flight'
RETURNING j.id
"""
# Delivered: the job row goes, the ledger remembers, the instance is healthy (one
# statement; a healthy instance's row is rewritten at most once a minute).
FINISH_DELIVERED = """
WITH gone AS (
    DELETE FROM delivery_jobs j
    USING unnest($1::bigint[], $2::int[]) AS r(id, attempts)
    WHERE j.id = r.id AND j.attempts = r.attempts AND j.state = 'in_flight'
    RETURNING j.id, j.activity_id, j.inbox, j.domain
), ledger AS (
    INSERT INTO deliveries_ledger (object_uri, inbox, domain)
    SELECT a.object_uri, gone.inbox, gone.domain
    FROM gone JOIN activities a ON a.id = gone.activity_id
    WHERE a.object_uri IS NOT NULL
    ON CONFLICT (object_uri, inbox) DO NOTHING
), alive AS (
    UPDATE instances i
    SET failure_count = 0, failing_since = NULL, unreachable_since = NULL, last_success_at = now()
    FROM (SELECT DISTINCT domain FROM gone) AS g
    WHERE i.domain = g.domain
      AND (i.failure_count > 0 OR i.unreachable_since IS NOT NULL
           OR i.last_success_at IS NULL OR i.last_success_at < now() - interval '1 minute')
)
SELECT id, domain FROM gone
"""
INSTANCES_FAILED = """
UPDATE instances i
SET failure_count = i.failure_count + f.n,
    last_failure_at = now(),
    failing_since = coalesce(i.failing_since, now()),
    unreachable_since = CASE
        WHEN i.unreachable_since IS NULL
             AND i.failure_count + f.n >= $3
             AND coalesce(i.failing_since, now()) <= now() - $4::interval
        THEN now() ELSE i.unreachable_since END
FROM unnest($1::text[], $2::int[]) AS f(domain, n)
WHERE i.domain = f.domain
"""


async def complete(
    conn: asyncpg.Connection, results: Sequence[Result], *, session_planned: bool = False
) -> None:
    """Record a batch of finished attempts atomically: each job's next state
    (:func:`next_step`), the ledger for the delivered ones, instance health.
    A result whose claim was lost (lease expired and reclaimed) changes nothing.
    Deliveries only, on a connection of :func:`plan_each_statement`: one statement."""
    if not results:
        return
    outcomes = [r.outcome for r in results]
    delivered = [r for r, o in zip(results, outcomes, strict=True) if o.event == "success"]
    if session_planned and len(delivered) == len(results):
        await _finish_delivered(conn, delivered)
        return
    others = [(r, o) for r, o in zip(results, outcomes, strict=True) if o.event != "success"]
    async with _planned_transaction(conn):
        alive = await _finish_delivered(conn, delivered) if delivered else set()
        if others:
            applied = await _finish_others(conn, others)
            await _record_failures(conn, [(r, o) for r, o in others if r.job.id in applied], alive)


async def _finish_delivered(conn: asyncpg.Connection, results: Sequence[Result]) -> set[str]:
    """The delivered jobs recorded; the domains of those whose claim still held."""
    rows = await conn.fetch(FINISH_DELIVERED, [r.job.id for r in results], [r.job.attempts for r in results])
    return {row["domain"] for row in rows}


async def _finish_others(
    conn: asyncpg.Connection, results: Sequence[tuple[Result, AttemptOutcome]]
) -> set[int]:
    steps = [next_step(o, r.job.attempts, r.retry_after) for r, o in results]
    rows = await conn.fetch(
        FINISH_JOBS,
        [r.job.id for r, _o in results],
        [r.job.attempts for r, _o in results],
        [s.state for s in steps],
        [r.status for r, _o in results],
        [r.error[:500] for r, _o in results],
        [s.delay.total_seconds() if s.delay else 0.0 for s in steps],
    )
    return {row["id"] for row in rows}


async def _record_failures(
    conn: asyncpg.Connection, results: Sequence[tuple[Result, AttemptOutcome]], alive: set[str]
) -> None:
    """Count the instance failures (transport errors, 5xx) of instances that did not
    also answer a delivery of this batch."""
    failures = Counter(r.job.domain for r, o in results if o.instance_failure and r.job.domain not in alive)
    if failures:
        domains = sorted(failures)
        await conn.execute(
            INSTANCES_FAILED,
            domains,
            [failures[d] for d in domains],
            UNREACHABLE_AFTER_FAILURES,
            UNREACHABLE_AFTER,
        )


RELEASE_JOBS = """
UPDATE delivery_jobs j
SET state = 'pending', attempts = j.attempts - 1, lease_until = NULL, updated_at = now()
FROM unnest($1::bigint[], $2::int[]) AS r(id, attempts)
WHERE j.id = r.id AND j.attempts = r.attempts AND j.state = 'in_flight'
"""


async def release(conn: Conn, jobs: Sequence[Job]) -> int:
    """Give back claimed jobs that were never attempted (a stopping worker's queue):
    pending again, due as before, the claim not counted as an attempt."""
    if not jobs:
        return 0
    async with _planned_transaction(conn) as tx:
        return _count(await tx.execute(RELEASE_JOBS, [j.id for j in jobs], [j.attempts for j in jobs]))


# ── maintenance ───────────────────────────────────────────────────────────────

RECLAIM_EXPIRED = """
UPDATE delivery_jobs
SET state = CASE WHEN attempts >= $1 THEN 'dead' ELSE 'pending' END,
    next_attempt_at = now(), lease_until = NULL, updated_at = now(),
    last_error = 'bail expiré : le worker a été interrompu'
WHERE state = 'in_flight' AND lease_until < now()
"""
EXPIRE_STALE = """
UPDATE delivery_jobs
SET state = 'dead', updated_at = now(), last_error = 'expirée : instance injoignable'
WHERE state = 'pending' AND created_at < now() - $1::interval
"""
PURGE_GIVEN_UP = """
DELETE FROM delivery_jobs WHERE state IN ('failed', 'dead') AND updated_at < now() - $1::interval
"""


def _count(status: str) -> int:
    """Rows touched, from asyncpg's command tag (``UPDATE 3``)."""
    return int(status.rsplit(" ", 1)[-1])


async def reclaim_expired(conn: Conn) -> int:
    """Give back the jobs of workers that died mid-flight (lease expired)."""
    return _count(await conn.execute(RECLAIM_EXPIRED, MAX_ATTEMPTS))


async def maintain(conn: Conn) -> None:
    """Periodic chores: reclaim leases, expire jobs stuck behind an unreachable
    instance, forget jobs given up long ago."""
    reclaimed = await reclaim_expired(conn)
    expired = _count(await conn.execute(EXPIRE_STALE, JOB_MAX_AGE))
    await conn.execute(PURGE_GIVEN_UP, KEEP_FAILED)
    if reclaimed or expired:
        log.info("delivery: %d jobs reclaimed, %d expired", reclaimed, expired)


MARK_ALIVE = """
WITH revived AS (
    UPDATE instances
    SET failure_count = 0, failing_since = NULL, unreachable_since = NULL
    WHERE domain = ANY ($1::text[]) AND (failure_count > 0 OR unreachable_since IS NOT NULL)
    RETURNING domain, unreachable_since IS NOT NULL AS was_unreachable
)
UPDATE delivery_jobs j SET next_attempt_at = now(), updated_at = now()
FROM revived
WHERE j.domain = revived.domain AND j.state = 'pending' AND j.next_attempt_at > now()
"""


async def mark_alive(conn: Conn, domain: str) -> None:
    """The instance ``domain`` showed it is up (a signed request from it verified):
    clear its failures and make its waiting jobs due now. Cheap when it is healthy."""
    await mark_alive_many(conn, [domain])


async def mark_alive_many(conn: Conn, domains: Iterable[str]) -> None:
    """:func:`mark_alive` for several instances in one statement (the inbox worker calls
    it once per batch with the domains of the verified senders)."""
    wanted = sorted({d.lower() for d in domains})
    if wanted and _count(await conn.execute(MARK_ALIVE, wanted)):
        await conn.execute("SELECT pg_notify('vbg_delivery', '')")


# ── reading: the ledger and the admin figures ─────────────────────────────────

LEDGER_INBOXES = "SELECT inbox FROM deliveries_ledger WHERE object_uri = $1 ORDER BY delivered_at"
LEDGER_DOMAINS = "SELECT DISTINCT domain FROM deliveries_ledger WHERE object_uri = $1 ORDER BY domain"


async def ledger_inboxes(conn: Conn, object_uri: str) -> list[str]:
    """Every inbox that received an activity about ``object_uri``."""
    return [r["inbox"] for r in await conn.fetch(LEDGER_INBOXES, object_uri)]


async def ledger_domains(conn: Conn, object_uri: str) -> list[str]:
    """Where a post went: the instances that received it."""
    return [r["domain"] for r in await conn.fetch(LEDGER_DOMAINS, object_uri)]


QUEUE_COUNTS = "SELECT state, count(*) AS n FROM delivery_jobs GROUP BY state"
OLDEST_PENDING = "SELECT min(created_at) FROM delivery_jobs WHERE state = 'pending'"
NEXT_DUE = "SELECT min(next_attempt_at) FROM delivery_jobs WHERE state = 'pending'"
INSTANCE_HEALTH = """
SELECT i.domain, i.failure_count, i.last_success_at, i.last_failure_at, i.failing_since,
       i.unreachable_since,
       (SELECT count(*) FROM delivery_jobs j WHERE j.domain = i.domain AND j.state = 'pending') AS pending
FROM instances i
WHERE i.last_success_at IS NOT NULL OR i.last_failure_at IS NOT NULL
ORDER BY i.unreachable_since IS NULL, i.failure_count DESC, i.domain
LIMIT $1
"""
# Type and addresses only: an activity's content may be members-only.
RECENT_FAILURES = """
SELECT j.id, j.domain, j.inbox, j.state, j.attempts, j.last_status, j.last_error, j.updated_at,
       j.next_attempt_at, a.json->>'type' AS activity_type
FROM delivery_jobs j JOIN activities a ON a.id = j.activity_id
WHERE j.last_error <> '' OR j.state IN ('failed', 'dead')
ORDER BY j.updated_at DESC
LIMIT $1
"""


@dataclass(frozen=True)
class QueueFigures:
    counts: dict[str, int]
    oldest_pending: datetime | None
    next_due: datetime | None


async def queue_figures(conn: Conn) -> QueueFigures:
    counts = {state: 0 for state in STATES if state != "done"}  # done jobs are deleted
    counts.update({r["state"]: r["n"] for r in await conn.fetch(QUEUE_COUNTS)})
    return QueueFigures(counts, await conn.fetchval(OLDEST_PENDING), await conn.fetchval(NEXT_DUE))


async def instance_health(conn: Conn, limit: int = 200) -> list[asyncpg.Record]:
    return list(await conn.fetch(INSTANCE_HEALTH, limit))


async def recent_failures(conn: Conn, limit: int = 50) -> list[asyncpg.Record]:
    return list(await conn.fetch(RECENT_FAILURES, limit))
