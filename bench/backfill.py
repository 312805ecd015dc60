"""Backfill benchmark (issue 11): a remote community of 1,000 threads backfilled from its
group's outbox — wall time and CPU per thread.

Prints figures; asserts nothing. The remote server is a small aiohttp server in a
process of its own on loopback (its CPU is not ours): a Lemmy-shaped group whose outbox
pages hold 50 ``Announce{Create{Page}}`` each, newest first, by 20 authors. Our side is
the real code of ``federation.backfill``: signed GETs through the guarded fetcher, every
post validated, sanitised and stored, authors fetched once; the job's caps are raised
to the community's size (the default is the 50 newest threads on first follow). CPU =
this process + the PostgreSQL backends of its pool (when that server runs on this
machine). Works in a scratch database on DATABASE_URL's server, else an embedded one.

    .venv/bin/python bench/backfill.py [--threads 1000]
    .venv/bin/python bench/backfill.py --serve PORT THREADS    (the remote server alone)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import figures  # noqa: E402
import psutil  # noqa: E402
from aiohttp import web  # noqa: E402
from procs import cpu_of  # noqa: E402
from scratch import scratch_database  # noqa: E402

from federation import access, actors, backfill, policy, signatures  # noqa: E402
from node import communities, db  # noqa: E402
from node.settings import load  # noqa: E402

AS_TYPE = "application/activity+json"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PAGE_SIZE = 50
AUTHORS = 20
SECRET = "bench-secret-" + "x" * 40
START = datetime(2025, 1, 1, tzinfo=UTC)  # thread n was published n hours later
TEXT = (
    "<p>Bonjour à toutes et tous, nous accueillons une personne orientée par le <strong>115</strong> ; "
    "quelles démarches pour une mise à l'abri rapide ?</p><p>Merci de vos retours d'expérience.</p>"
)


# ---------------------------------------------------------------- the remote server


def remote_app(base: str, threads: int) -> web.Application:
    group = f"{base}/c/bench"
    pem = signatures.generate_key_pair()[1]  # one public key shown by every actor (never used to sign)

    def key(uri: str) -> dict[str, str]:
        return {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": pem}

    def person(n: int) -> dict[str, Any]:
        uri = f"{base}/u/auteur{n}"
        return {"id": uri, "type": "Person", "preferredUsername": f"auteur{n}", "name": f"Auteur {n}",
                "inbox": f"{uri}/inbox", "outbox": f"{uri}/outbox", "publicKey": key(uri)}  # fmt: skip

    def item(n: int) -> dict[str, Any]:
        post = f"{base}/post/{n}"
        author = f"{base}/u/auteur{n % AUTHORS}"
        page = {"id": post, "type": "Page", "attributedTo": author, "name": f"Sujet n°{n} : mise à l'abri",
                "content": TEXT, "mediaType": "text/html", "to": [group, PUBLIC], "audience": group,
                "published": (START + timedelta(hours=n)).isoformat()}  # fmt: skip
        create = {"id": f"{base}/activities/create/{n}", "type": "Create", "actor": author, "object": page,
                  "to": page["to"]}  # fmt: skip
        return {"id": f"{base}/activities/announce/{n}", "type": "Announce", "actor": group, "object": create,
                "to": [PUBLIC]}  # fmt: skip

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        doc: dict[str, Any] | None = None
        if path == "/c/bench":
            doc = {"id": group, "type": "Group", "preferredUsername": "bench", "name": "Banc d'essai",
                   "inbox": f"{group}/inbox", "outbox": f"{group}/outbox", "publicKey": key(group)}  # fmt: skip
        elif path == "/c/bench/outbox" and "page" not in request.query:
            doc = {"id": f"{group}/outbox", "type": "OrderedCollection", "totalItems": threads,
                   "first": f"{group}/outbox?page=1"}  # fmt: skip
        elif path == "/c/bench/outbox":
            number = int(request.query["page"])
            newest = threads - 1 - (number - 1) * PAGE_SIZE
            doc = {"id": f"{group}/outbox?page={number}", "type": "OrderedCollectionPage",
                   "partOf": f"{group}/outbox",
                   "orderedItems": [item(n) for n in range(newest, max(newest - PAGE_SIZE, -1), -1)]}  # fmt: skip
            if newest - PAGE_SIZE >= 0:
                doc["next"] = f"{group}/outbox?page={number + 1}"
        elif path.startswith("/u/auteur"):
            doc = person(int(path.removeprefix("/u/auteur")))
        if doc is None:
            return web.Response(status=404)
        return web.json_response(doc, content_type=AS_TYPE)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def serve(port: int, threads: int) -> None:
    web.run_app(remote_app(f"http://127.0.0.1:{port}", threads), host="127.0.0.1", port=port, print=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def remote_server(threads: int) -> Any:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(threads)])
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


# ---------------------------------------------------------------- our side


async def measure(dsn: str, base: str, threads: int) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, threads stored, documents fetched) of one outbox job."""
    data = Path(tempfile.mkdtemp(prefix="vbg-bench-backfill-data-"))
    settings = load({"VBG_BASE_URL": "http://bench.invalid", "VBG_DATA_DIR": str(data), "VBG_SECRET_KEY": SECRET,
                     "DATABASE_URL": dsn, "VBG_DEV_ALLOW_PRIVATE_PEERS": "1"})  # fmt: skip
    pool = await db.create_pool(dsn, min_size=4, max_size=4)
    caps = backfill.Caps(threads=threads, pages=threads // PAGE_SIZE + 2, items=threads * 2,
                         documents=threads + AUTHORS + 50, wall_time=3600.0)  # fmt: skip
    fetcher = backfill.own_fetcher(access.make_fetcher(pool, settings), caps)
    try:
        async with pool.acquire() as conn:
            await policy.set_federation_mode(conn, "open")
            me = await actors.instance_actor(conn, settings)
            group = await actors.get_or_fetch(conn, fetcher, f"{base}/c/bench")
            community = await communities.upsert_remote(
                conn, actor_id=group.id, name=f"bench@{group.domain}", title="Banc d'essai", description="",
                visibility="public",
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO group_follows (community_id, follower_id, follow_activity_id, state)"
                " VALUES ($1, $2, 'http://bench.invalid/follow/1', 'accepted')",
                community.id,
                me.id,
            )
            pids = [r["pid"] for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]  # fmt: skip
        backends = [psutil.Process(p) for p in pids if psutil.pid_exists(p)]  # a remote server: ours only
        ctx = backfill.BackfillContext(pool, settings, fetcher, caps)
        async with pool.acquire() as conn:
            await backfill.schedule_outbox(conn, community.id)
        cpu0, wall0 = time.process_time() + cpu_of(backends), time.perf_counter()
        while await backfill.process_due(ctx):
            pass
        wall, cpu = time.perf_counter() - wall0, time.process_time() + cpu_of(backends) - cpu0
        stored = await pool.fetchval("SELECT count(*) FROM threads WHERE community_id = $1", community.id)
        fetched = await pool.fetchval("SELECT note FROM backfill_jobs ORDER BY id DESC LIMIT 1")
        if fetched:
            print(f"job note: {fetched}")
        return wall, cpu, int(stored), caps.documents
    finally:
        await fetcher.close()
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--serve", nargs=2, type=int, metavar=("PORT", "THREADS"))
    args = parser.parse_args()
    if figures.smoke():
        args.threads = 60
    with remote_server(args.threads) as base:
        async with scratch_database("bf") as dsn:
            wall, cpu, stored, _ = await measure(dsn, base, args.threads)
    if stored != args.threads:
        print(f"only {stored} of {args.threads} threads stored")
        sys.exit(1)
    print(f"{os.cpu_count()} cores; {stored} threads backfilled from one outbox ({PAGE_SIZE} per page, "
          f"{AUTHORS} authors); CPU = this process + its PostgreSQL backends")  # fmt: skip
    print(f"wall time {wall:.2f} s: {wall / stored * 1000:.2f} ms per thread")
    print(f"CPU {cpu:.2f} s: {cpu / stored * 1000:.2f} ms per thread")
    figures.record("backfill: wall time per thread (1,000-thread community)", wall / stored * 1000, "ms",
                   better="lower")  # fmt: skip
    figures.record("backfill: CPU per thread (node + PostgreSQL)", cpu / stored * 1000, "ms", better="lower")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        asyncio.run(main())
