"""Flood benchmark (issue 11): 10,000 Announces in a minute from one followed remote group,
while another server sends one activity a second. Is a worker stuck? Is the other sender
delayed?

Prints figures; asserts nothing. Our node runs in this process (uvicorn on loopback, as
``tests/inboxnode.py`` does) with one inbox worker loop (``federation.inbox_worker.run``)
beside it, on a scratch database of DATABASE_URL's server (else an embedded PostgreSQL).
The group is a fake Lemmy instance (``tests/fakefedi.py``) our node follows; its requests
are signed before the timed phase. Each Announce embeds a ``Create{Page}`` by an author
of the group's own server (vouched: nothing fetched), so each one becomes a thread of the
remote community: the heaviest case per request. The other sender, a Mastodon user,
posts a ``Create{Note}`` to one of our public communities every second.

Figures: POST latency (p50, p99) of both senders; per sender, the lag between an
activity's storing and its processing (``processed_at - received_at``); the worker's
throughput; items still pending at the end. Sender, web server and worker share this
process and the machine's cores, so the throughput is a floor.

    .venv/bin/python bench/remote_flood.py [--announces 10000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import figures  # noqa: E402
from scratch import scratch_database  # noqa: E402

from federation import actors, inbox_worker, wakeup  # noqa: E402
from node import communities, db  # noqa: E402
from tests.fakefedi import FakeActor, FakeInstance, signed_headers  # noqa: E402
from tests.inboxnode import running_node  # noqa: E402

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AS = "application/activity+json"


def announce(lemmy: FakeInstance, group: FakeActor, author: FakeActor, n: int) -> dict[str, Any]:
    page_id = lemmy.url(f"/post/{n}")
    page = {"type": "Page", "id": page_id, "attributedTo": author.id, "to": [group.id, PUBLIC],
            "name": f"Fil numéro {n}", "content": f"<p>Message {n} du flot.</p>", "mediaType": "text/html",
            "audience": group.id, "published": "2025-01-05T10:00:00Z"}  # fmt: skip
    create = {"id": lemmy.url(f"/activities/create/{uuid.uuid4()}"), "type": "Create", "actor": author.id,
              "to": [group.id, PUBLIC], "audience": group.id, "object": page}  # fmt: skip
    return {"id": lemmy.url(f"/activities/announce/{uuid.uuid4()}"), "type": "Announce", "actor": group.id,
            "to": [PUBLIC], "cc": [group.id + "/followers"], "object": create}  # fmt: skip


def note(masto: FakeInstance, alice: FakeActor, community: str, n: int) -> dict[str, Any]:
    note_id = masto.url(f"/users/alice/statuses/{n}")
    obj = {"id": note_id, "type": "Note", "attributedTo": alice.id, "content": f"<p>Question {n}</p>",
           "to": [PUBLIC], "cc": [community], "tag": [{"type": "Mention", "href": community}],
           "published": "2025-01-05T10:00:00Z"}  # fmt: skip
    return {"id": note_id + "/activity", "type": "Create", "actor": alice.id, "to": [PUBLIC], "cc": [community],
            "object": obj}  # fmt: skip


def signed(inbox: str, doc: dict[str, Any], actor: FakeActor) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(doc).encode()
    return body, signed_headers("POST", inbox, body, actor.key, extra={"Content-Type": AS})


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(announces: int, seconds: float) -> None:
    async with scratch_database("flood") as dsn:
        pool = await db.create_pool(dsn, min_size=2, max_size=10)
        data = Path(tempfile.mkdtemp(prefix="vbg-bench-flood-data-"))
        async with (
            running_node(pool, data) as node,
            FakeInstance("127.0.0.121", software="lemmy") as lemmy,
            FakeInstance("127.0.0.122") as masto,
        ):
            group = lemmy.add_actor("flot", type="Group")
            author = lemmy.add_actor("bob")
            alice = masto.add_actor("alice")
            async with pool.acquire() as conn:
                actor = await actors.get_or_fetch(conn, node.fetcher, group.id)
                await actors.get_or_fetch(conn, node.fetcher, author.id)
                await actors.get_or_fetch(conn, node.fetcher, alice.id)
                remote = await communities.upsert_remote(
                    conn, actor_id=actor.id, name="flot@127.0.0.121", title="Flot", description="",
                    visibility="public",
                )  # fmt: skip
                instance = await actors.instance_actor(conn, node.settings)
                await conn.execute(
                    "INSERT INTO group_follows (community_id, follower_id, follow_activity_id, state)"
                    " VALUES ($1, $2, $3, 'accepted')",
                    remote.id, instance.id, node.url("/activities/follow-flot"),
                )  # fmt: skip
                await communities.create_community(conn, "accueil", "Accueil", visibility="public")
            inbox = node.url("/inbox")
            flood = [signed(inbox, announce(lemmy, group, author, n), group) for n in range(announces)]
            others = [signed(inbox, note(masto, alice, node.group("accueil"), n), alice)
                      for n in range(int(seconds) + 1)]  # fmt: skip

            stop = asyncio.Event()
            # The inbox worker's own loop (the shared queue loop over its QueueSpec), with the
            # bench node's fetcher (its settings let it reach the loopback fakes).
            loop = wakeup.Batches(
                inbox_worker.INBOX, lambda: inbox_worker.process_due(pool, node.settings, node.fetcher)
            )
            worker = asyncio.create_task(loop.run(pool, stop))
            latencies: dict[str, list[float]] = {"group": [], "other": []}
            statuses: dict[int, int] = {}
            limit = asyncio.Semaphore(16)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as http:

                async def post(kind: str, body: bytes, headers: dict[str, str]) -> None:
                    async with limit:
                        started = time.perf_counter()
                        async with http.post(inbox, data=body, headers=headers) as response:
                            await response.read()
                        latencies[kind].append(time.perf_counter() - started)
                        statuses[response.status] = statuses.get(response.status, 0) + 1

                start = time.monotonic()
                tasks: list[asyncio.Task[None]] = []

                async def other_sender() -> None:
                    for n, (body, headers) in enumerate(others):
                        await asyncio.sleep(max(0.0, start + n - time.monotonic()))
                        await post("other", body, headers)

                tasks.append(asyncio.create_task(other_sender()))
                for n, (body, headers) in enumerate(flood):
                    await asyncio.sleep(max(0.0, start + n * seconds / announces - time.monotonic()))
                    tasks.append(asyncio.create_task(post("group", body, headers)))
                await asyncio.gather(*tasks)
                sent = time.monotonic() - start
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                left = await pool.fetchval(
                    "SELECT count(*) FROM inbox_items WHERE status IN ('pending', 'processing')"
                )
                if left == 0:
                    break
                await asyncio.sleep(0.5)
            drained = time.monotonic() - start
            stop.set()
            await worker
            rows = await pool.fetch(
                "SELECT actor_uri, status, extract(epoch FROM processed_at - received_at) AS lag,"
                " extract(epoch FROM processed_at) AS at FROM inbox_items"
            )
            threads = await pool.fetchval("SELECT count(*) FROM threads WHERE community_id = $1", remote.id)
        await pool.close()

    print(f"{announces} Announces from one group over {sent:.1f} s, one Create a second from another server")
    print(f"HTTP answers: {statuses}; all processed after {drained:.1f} s; threads stored: {threads}")
    for kind, uri in (("group", group.id), ("other", alice.id)):
        mine = [r for r in rows if r["actor_uri"] == uri]
        lags = [float(r["lag"]) for r in mine if r["lag"] is not None]
        states: dict[str, int] = {}
        for r in mine:
            states[r["status"]] = states.get(r["status"], 0) + 1
        post = latencies[kind]
        print(
            f"  {kind:5}: {len(mine)} items {states}; POST p50 {pct(post, 0.5) * 1000:.0f} ms"
            f" p99 {pct(post, 0.99) * 1000:.0f} ms; stored→processed p50 {pct(lags, 0.5):.2f} s"
            f" p99 {pct(lags, 0.99):.2f} s max {max(lags, default=float('nan')):.2f} s"
        )
    other_lags = [float(r["lag"]) for r in rows if r["actor_uri"] == alice.id and r["lag"] is not None]
    figures.record("flood: other sender's wait behind one group's flood, p99", pct(other_lags, 0.99), "s",
                   better="lower")  # fmt: skip
    figures.record("flood: all processed after", drained, "s", better="lower")
    done_at = sorted(float(r["at"]) for r in rows if r["at"] is not None)
    if len(done_at) > 1:
        span = done_at[-1] - done_at[0]
        print(f"  worker: {len(done_at)} items in {span:.1f} s = {len(done_at) / span:.0f} items/s"
              f" (mean lag {statistics.fmean([float(r['lag']) for r in rows if r['lag'] is not None]):.2f} s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--announces", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    if figures.smoke():  # keep the program working in CI: a small flood
        args.announces, args.seconds = 200, 2.0
    asyncio.run(run(args.announces, args.seconds))


if __name__ == "__main__":
    main()
