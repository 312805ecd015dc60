"""The worker side of the inbox: runs the handlers on stored activities.

Each stored activity (``inbox_items``) is a small state machine (style rule 2)::

    pending ──claim──> processing ──handler: done────> done
       ^                  │      ──handler: ignored─> ignored
       │                  ├─ RetryLater / error, attempts left ──> pending (after RETRY_DELAYS[n])
       │                  ├─ RetryLater, no attempts left ───────> ignored
       │                  └─ error, no attempts left ────────────> failed
       └──── lease (LEASE) expired: the worker died mid-way ──────┘

A handler's effects and the item's new state are committed in one transaction, so an
activity takes effect once. Workers claim with ``FOR UPDATE SKIP LOCKED`` (any number
of worker processes can share the table) and are woken by ``NOTIFY vbg_inbox`` from
the inbox endpoint.

Fair between senders: a sender holding more than half of a full batch gets half of it,
the other senders' oldest due items the other half (``_fair``), so a flood from one
server (10,000 Announces a minute from one group) does not delay the others.

Batches: a worker first tries a whole claimed batch in one transaction (row locks
instead of leases, one statement for the advisory locks, the senders and the new
states; one COMMIT). The usual Create, a new thread in one of our groups, is decided
without writing, and the new threads next to each other in the batch are stored by one
statement (``content.store_new_threads``), written before the next other activity is
handled, so each item still sees all those before it. If one item fails or asks to
wait, the batch is rolled back and replayed around it: the items before it and after
it again as batches, that item alone through the lease path drawn above, with its
retries (a failed statement of new threads names its first one). Activities touching
the same object are serialised with transaction-level advisory locks on the ids
involved, so a Delete and its Create (or an Undo and its Like) processed at the same
time by two workers cannot both miss each other. A failure is recorded on the item; it never reaches the sender, who got 202.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from federation import actors, delivery, private_messages, synchronization
from federation.handlers import content, create, dispatch
from federation.handlers.base import Context, Outcome, RetryLater, VerifiedActor, done, ref
from node.db import Conn
from node.queues import QueueSpec
from node.settings import Settings

if TYPE_CHECKING:  # the web process imports this module but never fetches (aiohttp loaded lazily)
    from federation.fetcher import Fetcher

log = logging.getLogger(__name__)

INBOX = QueueSpec(
    name="inbox",
    table="inbox_items",
    channel="vbg_inbox",
    lease=timedelta(minutes=5),
    retry_delays=(
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=10),
        timedelta(hours=1),
        timedelta(hours=6),
    ),
    poll_interval=5.0,  # a safety net when a NOTIFY was missed
    batch=50,
)
CHANNEL, LEASE, RETRY_DELAYS, POLL_INTERVAL = (
    INBOX.channel,
    INBOX.lease,
    INBOX.retry_delays,
    INBOX.poll_interval,
)
# After a batch that was not full, let more activities arrive before the next claim:
# a steady stream is then processed in batches of many (one COMMIT and a few statements
# each) instead of one transaction per NOTIFY. A lone activity is not delayed.
BATCH_WINDOW = 0.05  # seconds
BATCH = 50  # items claimed at once by the worker
KEEP_FINISHED = timedelta(days=30)  # activity ids remembered for de-duplication
ERROR_MAX = 2000

FINISH = """
UPDATE inbox_items SET status = $2, outcome = $3, error = '', locked_until = NULL, processed_at = now()
WHERE id = $1
"""
RETRY = """
UPDATE inbox_items SET status = 'pending', error = $2, locked_until = NULL,
    next_attempt_at = now() + $3::interval
WHERE id = $1
"""
GIVE_UP = """
UPDATE inbox_items SET status = $2, error = $3, locked_until = NULL, processed_at = now()
WHERE id = $1
"""
LOCK_KEY = "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))"
# The batch path: rows locked by the transaction instead of leased. Due items in the
# order of the index (an index scan skips the entries of finished items, which stay in
# the partial index until VACUUM; a bitmap scan would visit them all at every claim).
CLAIM_BATCH = """
WITH due AS (
    SELECT id, activity_id, actor_uri, recipient, document, attempts, sync_header FROM inbox_items
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), expired AS (
    SELECT id, activity_id, actor_uri, recipient, document, attempts, sync_header FROM inbox_items
    WHERE status = 'processing' AND locked_until < now()
    ORDER BY locked_until
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
SELECT * FROM due UNION ALL SELECT * FROM expired ORDER BY id
"""
# Fairness between senders: when one sender fills more than half of a full batch (a
# flood, or a backlog of its own), the other senders' oldest due items — however far
# behind it — take the other half; its surplus stays pending, untouched, for the next
# batches. The usual batch costs nothing more.
CLAIM_OTHERS = """
SELECT id, activity_id, actor_uri, recipient, document, attempts FROM inbox_items
WHERE status = 'pending' AND next_attempt_at <= now() AND actor_uri <> ALL ($1::text[])
ORDER BY next_attempt_at, id
LIMIT $2
FOR UPDATE SKIP LOCKED
"""
CLAIM_BATCH_IDS = """
SELECT id, activity_id, actor_uri, recipient, document, attempts, sync_header FROM inbox_items
WHERE id = ANY($1::bigint[])
  AND ((status = 'pending' AND next_attempt_at <= now()) OR (status = 'processing' AND locked_until < now()))
ORDER BY id
FOR UPDATE SKIP LOCKED
"""
CLAIM_ONE = """
UPDATE inbox_items SET status = 'processing', attempts = attempts + 1, locked_until = now() + $2::interval
WHERE id = $1
  AND ((status = 'pending' AND next_attempt_at <= now()) OR (status = 'processing' AND locked_until < now()))
RETURNING id, activity_id, actor_uri, recipient, document, attempts, sync_header
"""
LOCK_KEYS = "SELECT pg_advisory_xact_lock(hashtextextended(k, 7)) FROM unnest($1::text[]) AS k"
SELECT_SENDERS = f"SELECT {actors.ACTOR_COLUMNS} FROM actors WHERE uri = ANY($1::text[])"
FINISH_BATCH = """
UPDATE inbox_items i
SET status = f.state, outcome = f.note, error = '', attempts = i.attempts + 1, locked_until = NULL,
    processed_at = now()
FROM unnest($1::bigint[], $2::text[], $3::text[]) AS f (id, state, note)
WHERE i.id = f.id
"""
PRUNE = """
DELETE FROM inbox_items WHERE status IN ('done', 'ignored', 'failed') AND processed_at < now() - $1::interval
"""


@dataclass(frozen=True)
class Item:
    id: int
    activity_id: str
    actor_uri: str
    recipient: str
    document: dict[str, Any]
    attempts: int
    sync_header: str | None = None  # FEP-8fcf, honoured after the batch (federation.synchronization)


async def process_pending(pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher, limit: int = 50) -> int:
    """Claim and process up to ``limit`` due items on one connection, in the order they
    fell due (arrival order, for new items); return how many."""
    async with pool.acquire() as conn:
        claimed: list[Item] = []
        count = await _process_batch(conn, settings, fetcher, limit, claimed=claimed)
        await _synchronise(conn, settings, fetcher, claimed)
        return count


async def _synchronise(
    conn: asyncpg.Connection, settings: Settings, fetcher: Fetcher, items: list[Item]
) -> None:
    """The followers-synchronization headers of a processed batch, once per sender
    (the last one), outside the batch's transaction: a collection fetched on a
    mismatch never holds the batch's locks. A failure is logged, never raised."""
    latest = {i.actor_uri: i.sync_header for i in items if i.sync_header}
    for sender, header in latest.items():
        try:
            outcome = await synchronization.honour(conn, settings, fetcher, sender, header)
        except Exception:
            log.exception("followers synchronization with %s failed", sender)
            continue
        log.debug("followers synchronization with %s: %s", sender, outcome)


class _ItemFailed(Exception):
    def __init__(self, index: int) -> None:
        self.index = index


async def _process_batch(
    conn: asyncpg.Connection,
    settings: Settings,
    fetcher: Fetcher,
    limit: int,
    ids: list[int] | None = None,
    *,
    claimed: list[Item] | None = None,
) -> int:
    """The due items (or those of ``ids`` still due) in one transaction; replayed
    around an item that fails (see the module's docstring). ``claimed`` collects the
    items first claimed."""
    items: list[Item] = []
    try:
        async with conn.transaction():
            if ids is None:
                rows = await _fair(conn, await conn.fetch(CLAIM_BATCH, limit), limit)
            else:
                rows = await conn.fetch(CLAIM_BATCH_IDS, ids)
            items = [Item(**dict(r)) for r in rows]
            if not items:
                return 0
            if claimed is not None:
                claimed.extend(items)
            await conn.execute(LOCK_KEYS, sorted(set().union(*(_lock_keys(i.document) for i in items))))
            senders = await _senders(conn, items)
            # Each sender's signature was verified on arrival: its instance is up (docs/architecture.md §4).
            await delivery.mark_alive_many(conn, [s.domain for s in senders.values()])
            outcomes = await _run_all(conn, settings, fetcher, items, senders)
            await conn.execute(
                FINISH_BATCH,
                [i.id for i in items],
                [o.state for o in outcomes],
                [o.note[:ERROR_MAX] for o in outcomes],
            )
        return len(items)
    except _ItemFailed as failed:
        return await _replay_around(conn, settings, fetcher, items, failed.index)
    except asyncpg.DeadlockDetectedError:  # two workers' batches: each item alone
        return await _process_each(conn, settings, fetcher, [i.id for i in items])


async def _fair(conn: asyncpg.Connection, rows: list[asyncpg.Record], limit: int) -> list[asyncpg.Record]:
    """``rows`` (a claimed batch), or, when one sender holds more than half of a full
    batch, its first items beside the oldest due items of the other senders (see
    CLAIM_OTHERS). The rows left out stay locked until COMMIT, unchanged: still pending."""
    if len(rows) < limit or limit < 2:
        return rows
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["actor_uri"]] = counts.get(row["actor_uri"], 0) + 1
    heavy = [uri for uri, n in counts.items() if n > limit // 2]
    if not heavy:
        return rows
    others = list(await conn.fetch(CLAIM_OTHERS, heavy, limit // 2))
    seen = {int(r["id"]) for r in others}
    others += [r for r in rows if r["actor_uri"] not in heavy and int(r["id"]) not in seen]  # expired leases
    kept = [r for r in rows if r["actor_uri"] in heavy][: max(limit - len(others), 0)]
    return sorted([*kept, *others], key=lambda r: int(r["id"]))


async def _run_all(
    conn: asyncpg.Connection,
    settings: Settings,
    fetcher: Fetcher,
    items: list[Item],
    senders: dict[str, actors.Actor],
) -> list[Outcome]:
    """Each item's outcome, in order (_ItemFailed names the item that failed). The usual
    Create, a new thread, is stored with the new threads next to it in one statement,
    written before any other handler runs, so each item still sees all before it."""
    cache: dict[Any, Any] = {}
    outcomes: dict[int, Outcome] = {}
    waiting: list[tuple[int, Context, content.NewThread]] = []
    waiting_ids: set[str] = set()  # their objects: a second Create of one of them flushes them first

    async def flush() -> None:
        if not waiting:
            return
        group = waiting[:]
        waiting.clear()
        waiting_ids.clear()
        try:
            stored = await content.store_new_threads(
                conn, [new for _, _, new in group], settings.remote_documents
            )
        except Exception as exc:
            raise _ItemFailed(group[0][0]) from exc
        for index, ctx, new in group:
            thread_id = stored.get(new.item_id)
            try:
                outcomes[index] = (
                    done(f"thread {thread_id}") if thread_id is not None else await create.store_late(ctx)
                )
            except Exception as exc:
                raise _ItemFailed(index) from exc

    for index, item in enumerate(items):
        try:
            ctx = await _context(conn, settings, fetcher, item, senders.get(item.actor_uri), cache)
            new = await create.new_thread(ctx, item.id) if item.document.get("type") == "Create" else None
            if new is None or new.post.ap_id in waiting_ids:
                await flush()
            if new is None:
                outcomes[index] = await dispatch(ctx)
            else:
                waiting.append((index, ctx, new))
                waiting_ids.add(new.post.ap_id)
        except _ItemFailed:
            raise
        except Exception as exc:
            raise _ItemFailed(index) from exc
    await flush()
    return [outcomes[i] for i in range(len(items))]


async def _replay_around(
    conn: asyncpg.Connection, settings: Settings, fetcher: Fetcher, items: list[Item], index: int
) -> int:
    before, after = [i.id for i in items[:index]], [i.id for i in items[index + 1 :]]
    count = await _process_batch(conn, settings, fetcher, 0, before) if before else 0
    count += await _process_each(conn, settings, fetcher, [items[index].id])
    if after:
        count += await _process_batch(conn, settings, fetcher, 0, after)
    return count


async def _process_each(
    conn: asyncpg.Connection, settings: Settings, fetcher: Fetcher, ids: list[int]
) -> int:
    """Items leased and processed one by one, each in its own transaction."""
    count = 0
    for item_id in ids:
        row = await conn.fetchrow(CLAIM_ONE, item_id, LEASE)
        if row is not None:
            await process_item(conn, settings, fetcher, Item(**dict(row)))
            count += 1
    return count


async def _senders(conn: asyncpg.Connection, items: list[Item]) -> dict[str, actors.Actor]:
    rows = await conn.fetch(SELECT_SENDERS, sorted({i.actor_uri for i in items}))
    return {r["uri"]: actors.Actor.from_row(r) for r in rows}


async def process_item(conn: asyncpg.Connection, settings: Settings, fetcher: Fetcher, item: Item) -> None:
    """Run the item's handler; its effects and the item's new state commit together."""
    try:
        async with conn.transaction():
            outcome = await _run_handler(conn, settings, fetcher, item)
            await conn.execute(FINISH, item.id, outcome.state, outcome.note[:ERROR_MAX])
    except RetryLater as exc:
        await _retry_or_give_up(conn, item, f"waiting: {exc}", final_state="ignored")
    except Exception as exc:  # the worker's boundary: any failure is recorded, never raised
        log.warning("inbox item %s (%s) failed: %r", item.id, item.activity_id, exc)
        await _retry_or_give_up(conn, item, repr(exc), final_state="failed")


async def _run_handler(conn: asyncpg.Connection, settings: Settings, fetcher: Fetcher, item: Item) -> Outcome:
    """The item's handler, alone in its transaction: its advisory locks first."""
    for key in sorted(_lock_keys(item.document)):
        await conn.execute(LOCK_KEY, key)
    actor = await actors.get_cached(conn, item.actor_uri)
    return await dispatch(await _context(conn, settings, fetcher, item, actor, {}))


async def _context(
    conn: asyncpg.Connection,
    settings: Settings,
    fetcher: Fetcher,
    item: Item,
    actor: actors.Actor | None,
    cache: dict[Any, Any],
) -> Context:
    """The handlers' context for ``item`` sent by ``actor`` (the batch path read the
    senders at once; ``cache`` is shared by the items of one transaction)."""
    if actor is None:  # verified at the inbox, so normally cached; it may have been purged
        actor = await actors.get_or_fetch(conn, fetcher, item.actor_uri)
    return Context(
        conn=conn,
        settings=settings,
        fetcher=fetcher,
        sender=VerifiedActor(actor.id, actor.uri, actor.domain),
        activity=private_messages.open_document(settings, item.document),
        recipient=item.recipient,
        cache=cache,
    )


def _lock_keys(activity: dict[str, Any]) -> set[str]:
    """The ids an activity's effect depends on: its object, and for an Undo the undone
    activity and that activity's object (a Like and its Undo share the Like's id)."""
    keys: set[str] = set()
    obj = activity.get("object")
    for value in (obj, obj.get("object") if isinstance(obj, dict) else None):
        key = ref(value)
        if key:
            keys.add(key)
    return keys


async def _retry_or_give_up(conn: asyncpg.Connection, item: Item, error: str, *, final_state: str) -> None:
    if item.attempts <= len(RETRY_DELAYS):
        await conn.execute(RETRY, item.id, error[:ERROR_MAX], RETRY_DELAYS[item.attempts - 1])
    else:
        await conn.execute(GIVE_UP, item.id, final_state, error[:ERROR_MAX])


async def prune(conn: Conn, keep: timedelta = KEEP_FINISHED) -> int:
    """Forget finished items older than ``keep``; returns how many."""
    status = await conn.execute(PRUNE, keep)
    return int(status.split()[-1])


async def process_due(pool: asyncpg.Pool, settings: Settings, fetcher: Fetcher) -> int:
    """One turn of the inbox worker (``federation.worker.InboxWorker``): a batch of due
    items; after a batch that was not full, ``BATCH_WINDOW`` before the next claim (not
    cut short by the NOTIFY of each new item: a stream is processed in batches)."""
    count = await process_pending(pool, settings, fetcher, BATCH)
    if 0 < count < BATCH:
        await asyncio.sleep(BATCH_WINDOW)
    return count
