"""Notifications benchmark (issue 13): fan-out of one reply, and the header's count.

Prints figures; asserts nothing.

- A reply in a thread followed by 1,000 members: its notifications are written by one
  statement (``node.notifications.notify_reply``). Measured per reply: the PostgreSQL
  backend's CPU for that statement (user + system of the backend process, read before
  and after with psutil: the server must run on this machine), the client's CPU and
  the wall time. Target: under 50 ms of CPU. Each round is a new reply, rolled back
  afterwards, so every round writes the same 1,000 rows.
- The unread count in the header costs no query on a page view: the count is read
  with the session (``node.sessions.SELECT_SESSION``) and the session is cached by the
  web process until a notification changes it (NOTIFY ``vbg_sessions``). Measured:
  the statements a page view runs (asyncpg query logger on every pool connection) for
  a member with unread notifications and for one without, with the session cache on.

Uses ``DATABASE_URL`` when set (a server URL on this machine; else an embedded server): a scratch database is created
and dropped).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/notifications.py [--followers 1000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import figures  # noqa: E402

from node import db, notifications, sessions, threads  # noqa: E402
from node.communities import create_community, find  # noqa: E402
from node.settings import load  # noqa: E402

TARGET_CPU_MS = 50.0
INSERT_MEMBERS = """
INSERT INTO users (username, display_name, email, password_hash, status)
SELECT 'membre' || i, 'Membre ' || i, 'membre' || i || '@example.org', 'x', 'approved'
FROM generate_series(1, $1) AS i
"""
FOLLOW_ALL = """
INSERT INTO thread_follows (user_id, thread_id)
SELECT id, $1 FROM users WHERE username LIKE 'membre%'
"""


def _with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def backend_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def fan_out(dsn: str, followers: int, rounds: int) -> None:
    conn = await db.connect(dsn)
    try:
        await conn.execute(INSERT_MEMBERS, followers)
        author = await _member(conn, "autrice")
        replier = await _member(conn, "repondante")
        await create_community(conn, "medical", "Prise en charge médicale")
        community = await find(conn, "medical")
        assert community is not None
        created = await threads.create_thread(conn, community, author, "Un fil très suivi", "Bonjour")
        await conn.execute(FOLLOW_ALL, created.thread_id)
        await conn.execute("ANALYZE")  # as autovacuum would have done on a live node
        pid = conn.get_server_pid()
        server, client, wall, written = [], [], [], 0
        for _ in range(rounds):
            tx = conn.transaction()
            await tx.start()
            post_id = await conn.fetchval(
                "INSERT INTO posts (thread_id, author_id, parent_id, source, content_html)"
                " VALUES ($1, $2, $3, 'Une réponse', '<p>Une réponse</p>') RETURNING id",
                created.thread_id,
                replier.id,
                created.post_id,
            )
            cpu0, proc0, wall0 = backend_cpu(pid), time.process_time(), time.perf_counter()
            written = await notifications.notify_reply(conn, post_id)
            wall.append(time.perf_counter() - wall0)
            client.append(time.process_time() - proc0)
            server.append(backend_cpu(pid) - cpu0)
            await tx.rollback()
    finally:
        await conn.close()
    ms = 1000.0
    print(f"one reply, {followers} followers: {written} notifications written by one statement")
    print(
        f"  PostgreSQL backend CPU  median {statistics.median(server) * ms:6.1f} ms  max {max(server) * ms:6.1f} ms"
    )
    print(f"  client CPU              median {statistics.median(client) * ms:6.1f} ms")
    print(
        f"  wall time               median {statistics.median(wall) * ms:6.1f} ms  (target CPU < {TARGET_CPU_MS:.0f} ms)"
    )
    total = statistics.median(server) + statistics.median(client)
    figures.record(
        f"notifications: one reply to {followers} followers, CPU (server + client)",
        total * ms,
        "ms",
        target=TARGET_CPU_MS,
        better="lower",
    )
    figures.record(
        f"notifications: one reply to {followers} followers, wall", statistics.median(wall) * ms, "ms"
    )


async def _member(conn: asyncpg.Connection, username: str) -> sessions.User:
    from node.accounts import create_user

    user_id = await create_user(conn, username, "un-mot-de-passe-solide", email=f"{username}@example.org")
    return sessions.User(user_id, username, username, "member", "approved")


class Counter:
    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, record: Any) -> None:
        self.queries.append(" ".join(record.query.split())[:80])


async def header_queries(dsn: str) -> None:
    from node.web.app import create_app

    counter = Counter()

    async def init(conn: asyncpg.Connection) -> None:
        await db._init_connection(conn)
        conn.add_query_logger(counter)

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, init=init)
    data = Path(tempfile.mkdtemp(prefix="vbg-bench-"))
    settings = load({"VBG_BASE_URL": "http://bench", "VBG_DATA_DIR": str(data), "DATABASE_URL": dsn})
    app = create_app(settings, pool=pool)
    app.state.session_cache = sessions.SessionCache()
    await app.state.session_cache.start(dsn)
    try:
        async with pool.acquire() as conn:
            busy = await _member(conn, "occupee")
            calm = await _member(conn, "tranquille")
            for i in range(5):
                await conn.execute(
                    "INSERT INTO notifications (user_id, kind, reason) VALUES ($1, 'moderation', $2)",
                    busy.id,
                    str(i),
                )
        counts = {}
        for user in (busy, calm):
            token = await sessions.create(pool, user.id, "bench", "127.0.0.1")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                client.cookies.set(sessions.COOKIE, token)
                first = await client.get("/communautes")
                assert first.status_code == 200
                counter.queries.clear()
                page = await client.get("/communautes")
                counts[user.username] = list(counter.queries)
                shown = 'id="unread-notifications">5<' in page.text
            print(
                f"  {user.username}: header count shown: {shown}; statements on a page view: {len(counts[user.username])}"
            )
        extra = len(counts["occupee"]) - len(counts["tranquille"])
        print(
            f"header count: {extra} extra statement(s) per page view for a member with unread notifications"
        )
        figures.record(
            "notifications: extra statements per page view for the header count",
            extra,
            "",
            target=0,
            better="lower",
        )
    finally:
        await app.state.session_cache.stop()
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--followers", type=int, default=100 if figures.smoke() else 1000)
    parser.add_argument("--rounds", type=int, default=3 if figures.smoke() else 20)
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL")
    embedded = None
    if not server:  # no server named: an embedded one, as the other benchmarks and ./dev run do
        embedded = db.EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="vbg-bench-pg-")))
        server = embedded.start("postgres")
    try:
        await measure(server, args.followers, args.rounds)
    finally:
        if embedded is not None:
            embedded.stop()


async def measure(server: str, followers: int, rounds: int) -> None:
    name = f"vbg_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_database(server, name)
    try:
        conn = await db.connect(dsn)
        await db.migrate(conn)
        await conn.close()
        print(
            f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (shared machine: figures vary)"
        )
        await fan_out(dsn, followers, rounds)
        await header_queries(dsn)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
