"""Private messages benchmark (issue 15): messages sent and read per CPU-second, with
encryption at rest on and off. Target: encryption costs less than 10 %.

Prints figures; asserts nothing. Works in a scratch database on DATABASE_URL's server
(else an embedded PostgreSQL); CPU = this process + the PostgreSQL backend serving it
(when that server runs on this machine). The node's own
service functions run (``node.messages``: checks, Markdown rendering, SQL, unread
counters, sealing); "off" runs the very same code with the AES-GCM seal and open
(and the key wrap) replaced by identity functions, so the difference is the cost of
encryption alone.

The cost is a few per cent of a read, less than a shared machine's drift over a
minute: each round therefore sets up an "on" and an "off" conversation, then
alternates short slices of work between them (on, off, off, on …), so both modes
see the same load; a round's cost compares their CPU summed over its slices, and the
figure is the median over rounds.

- sent: one member answers in conversations with another (``messages.reply``: one
  transaction, a sealed source and HTML per message);
- read: a member opens a conversation of 20 messages (``messages.conversation``:
  the subject and 20 bodies opened) — 20 messages read per opening.

And a long conversation's pages (encryption on, as a node runs): a conversation of
``--long`` messages read through the real app in this process (ASGI, no network), as
its member's browser does: its page (the latest 50 messages), then « Messages
précédents » followed back to its first message, then that oldest page again and
again. One request at a time: latency per page (p50 / p99) and pages per CPU-second
(this process — the httpx client's share included — + the PostgreSQL backend serving
it), the latest page beside the oldest one (keyset pages: the oldest should cost what
the latest does; with the default 2,000 messages both show 50).

    .venv/bin/python bench/messages.py [--messages 2000] [--reads 1500] [--rounds 4] [--slices 10]
                                       [--long 2000] [--page-reads 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import figures  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402
from procs import cpu_of, pct  # noqa: E402
from scratch import scratch_database  # noqa: E402

from node import db, encryption, messages, sessions  # noqa: E402
from node.accounts import create_user  # noqa: E402
from node.sessions import User  # noqa: E402
from node.settings import load  # noqa: E402
from node.web.app import create_app  # noqa: E402

BODY = (
    "Bonjour, la personne que nous suivons souhaite **porter plainte** ; pouvez-vous la recevoir jeudi ?\n\n"
    "- certificat médical fait le 3\n- hébergement d'urgence trouvé\n\nMerci, à bientôt."
)
BASE = "http://bench.invalid"


@contextlib.contextmanager
def encryption_off() -> Iterator[None]:
    """The same code with sealing and opening as identity functions."""
    saved = (
        encryption.Cipher.seal,
        encryption.Cipher.open,
        encryption.Keyring.wrap,
        encryption.Keyring.unwrap,
    )

    def wrap(self: encryption.Keyring, key: bytes, conversation_id: int) -> encryption.Wrapped:
        return encryption.Wrapped(self.current_id, key)

    def unwrap(self: encryption.Keyring, wrapped: encryption.Wrapped, conversation_id: int) -> bytes:
        return wrapped.wrapped

    encryption.Cipher.seal = lambda self, plaintext, aad: plaintext  # type: ignore[method-assign]
    encryption.Cipher.open = lambda self, sealed, aad: sealed  # type: ignore[method-assign]
    encryption.Keyring.wrap = wrap  # type: ignore[method-assign]
    encryption.Keyring.unwrap = unwrap  # type: ignore[method-assign]
    try:
        yield
    finally:
        encryption.Cipher.seal, encryption.Cipher.open, encryption.Keyring.wrap, encryption.Keyring.unwrap = (
            saved  # type: ignore[method-assign]
        )


async def members(pool: object, tag: str) -> tuple[User, User]:
    async with pool.acquire() as conn:  # type: ignore[attr-defined]
        a = await create_user(conn, f"amina{tag}", "mot-de-passe-solide-123")
        b = await create_user(conn, f"bruno{tag}", "mot-de-passe-solide-123")
    return User(a, f"amina{tag}", "Amina", "member", "approved"), User(
        b, f"bruno{tag}", "Bruno", "member", "approved"
    )


async def conversation(pool: object, keyring: encryption.Keyring, pair: tuple[User, User], size: int) -> int:
    """A conversation between the pair with ``size`` messages; its id."""
    amina, bruno = pair
    async with pool.acquire() as conn:  # type: ignore[attr-defined]
        found = await messages.local_recipients(conn, amina, [bruno.username])
        written = await messages.start(conn, keyring, BASE, amina, found, "Sujet du banc", BODY)
        for i in range(size - 1):
            await messages.reply(conn, keyring, bruno if i % 2 == 0 else amina, written.conversation_id, BODY)
    return written.conversation_id


async def send(
    pool: object, keyring: encryption.Keyring, count: int, pair: tuple[User, User], conversation_id: int
) -> None:
    amina, bruno = pair
    async with pool.acquire() as conn:  # type: ignore[attr-defined]
        for i in range(count):
            author = bruno if i % 2 == 0 else amina
            await messages.reply(conn, keyring, author, conversation_id, BODY)


async def read(
    pool: object, keyring: encryption.Keyring, count: int, pair: tuple[User, User], conversation_id: int
) -> None:
    async with pool.acquire() as conn:  # type: ignore[attr-defined]
        for _ in range(count):
            shown = await messages.conversation(conn, keyring, pair[1], conversation_id)
            assert len(shown.messages) == 20


class OneConnection:
    """One connection used for everything (its backend is the one whose CPU is counted)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        yield self.conn


PG_ROOT: list[int] = []


def cpu_now() -> float:
    """CPU seconds so far of this process and of the PostgreSQL backend serving it
    (the pool holds one connection; the cluster's background processes, whose
    autovacuum workers come and go, would only add noise)."""
    return time.process_time() + (cpu_of([psutil.Process(PG_ROOT[0])]) if PG_ROOT else 0.0)


def mode(name: str) -> contextlib.AbstractContextManager[None]:
    return encryption_off() if name == "off" else contextlib.nullcontext()


async def round_of(
    pool: object, keyring: encryption.Keyring, what: str, count: int, slices: int, tag: str
) -> dict[str, float]:
    """One round of ``what`` ("sent" or "read"): ``count`` messages in each mode, in
    ``slices`` alternating slices; per mode, messages per CPU-second."""
    work = send if what == "sent" else read
    setup: dict[str, tuple[tuple[User, User], int]] = {}
    for name in ("on", "off"):
        with mode(name):
            pair = await members(pool, f"{tag}{name}")  # (argon2 hashing: outside the measure)
            setup[name] = (pair, await conversation(pool, keyring, pair, 1 if what == "sent" else 20))
            await work(pool, keyring, 5, *setup[name])  # warm: statements prepared, caches filled
    cpu = {"on": 0.0, "off": 0.0}
    per_slice = max(count // slices, 1)
    for i in range(slices):
        for name in ("on", "off") if i % 2 == 0 else ("off", "on"):
            with mode(name):
                start = cpu_now()
                await work(pool, keyring, per_slice, *setup[name])
                cpu[name] += cpu_now() - start
    done = per_slice * slices * (1 if what == "sent" else 20)
    return {name: done / max(spent, 1e-6) for name, spent in cpu.items()}


# --- a long conversation's pages, through the app ---------------------------------

OLDER = re.compile(r'<a href="([^"]+)" rel="prev">')  # « Messages précédents »
MESSAGE = '<article class="post message'


@dataclass
class Pages:
    """What one walk through a long conversation measured."""

    latest: list[float]  # ms per request of its page (the latest messages)
    oldest: list[float]  # ms per request of its oldest page
    latest_cpu: float  # CPU seconds per request of the latest page
    oldest_cpu: float
    back: list[float]  # ms per page followed back from the latest to the oldest


async def _timed(client: httpx.AsyncClient, path: str, count: int, backend: int) -> tuple[list[float], float]:
    """``count`` requests of ``path``: ms each, and CPU seconds per request."""
    for _ in range(5):  # warm: statements prepared, caches filled
        (await client.get(path)).raise_for_status()
    times = []
    cpu = cpu_of_backend(backend)
    for _ in range(count):
        started = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times, (cpu_of_backend(backend) - cpu) / count


def cpu_of_backend(backend: int) -> float:
    """CPU seconds so far of this process and of PostgreSQL's ``backend`` (0: not on this machine)."""
    return time.process_time() + (cpu_of([psutil.Process(backend)]) if backend else 0.0)


async def long_conversation(dsn: str, size: int, requests: int) -> Pages:
    """A conversation of ``size`` messages between two members, read by one of them
    through the app (one database connection: its backend's CPU is counted)."""
    settings = load({"VBG_BASE_URL": BASE, "VBG_DATA_DIR": tempfile.mkdtemp(prefix="vbg-bench-pm-"),
                     "DATABASE_URL": dsn})  # fmt: skip
    keyring = encryption.keyring_of(settings)  # the node's own key file, as the app reads it
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            pair = await members(OneConnection(conn), "long")
            conversation_id = await conversation(OneConnection(conn), keyring, pair, size)
            token = await sessions.create(conn, pair[1].id, "bench", "127.0.0.1")
        backend = backend if psutil.pid_exists(backend) else 0  # a remote server: app CPU only
        app = create_app(settings, pool=pool)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            client.cookies.set(sessions.COOKIE, token)
            top = f"/messages/{conversation_id}"
            latest, latest_cpu = await _timed(client, top, requests, backend)
            back: list[float] = []
            shown: list[int] = []
            path: str | None = top
            oldest = top
            while path is not None:
                started = time.perf_counter()
                response = await client.get(path)
                back.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                shown.append(response.text.count(MESSAGE))
                oldest, path = path, _link(response.text)
            # every message once, the latest page full (a page that showed nothing would measure nothing)
            assert sum(shown) == size and shown[0] == min(size, messages.MESSAGES_PAGE_SIZE), shown
            oldest_times, oldest_cpu = await _timed(client, oldest, requests, backend)
    finally:
        await pool.close()
    print(f"  {len(shown)} pages; the oldest, {len(shown) - 1} pages back, shows {shown[-1]} message(s)")
    return Pages(latest, oldest_times, latest_cpu, oldest_cpu, back[1:])


def _link(html: str) -> str | None:
    found = OLDER.search(html)
    return found[1].replace("&amp;", "&") if found else None


def report_pages(size: int, pages: Pages) -> None:
    name = f"long conversation ({size:,} messages)"
    print(f"\n{name}: one request at a time, through the app (ASGI, no network)")
    for label, times, cpu in (("latest page", pages.latest, pages.latest_cpu),
                              ("oldest page", pages.oldest, pages.oldest_cpu)):  # fmt: skip
        p50, p99 = statistics.median(times), pct(times, 0.99)
        rate = 1 / max(cpu, 1e-9)
        print(f"  {label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {rate:,.0f} pages per CPU-second")
        figures.record(f"{name}, {label}, p99", p99, "ms", better="lower")
        figures.record(f"{name}, {label}, pages per CPU-second", rate, "/CPU-s")
    if pages.back:
        print(
            f"  « Messages précédents » followed back {len(pages.back)} times: median {statistics.median(pages.back):.1f} ms,"
            f" slowest {max(pages.back):.1f} ms"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--long", type=int, default=2000, help="messages of the long conversation")
    parser.add_argument("--page-reads", type=int, default=200, help="requests of its latest and oldest pages")
    args = parser.parse_args()
    if figures.smoke():
        args.messages, args.reads, args.rounds, args.slices = 100, 20, 1, 2
        args.long, args.page_reads = 120, 5
    async with scratch_database("pm") as dsn:
        pool = OneConnection(await db.connect(dsn))
        backend = await pool.conn.fetchval("SELECT pg_backend_pid()")
        PG_ROOT[:] = [backend] if psutil.pid_exists(backend) else []  # a remote server: app CPU only
        keyring = encryption.Keyring([encryption.new_key()])
        rates: dict[str, list[dict[str, float]]] = {"sent": [], "read": []}
        for round_ in range(args.rounds):
            rates["sent"].append(
                await round_of(pool, keyring, "sent", args.messages, args.slices, f"s{round_}")
            )
            rates["read"].append(await round_of(pool, keyring, "read", args.reads, args.slices, f"r{round_}"))
        await pool.conn.close()
        pages = await long_conversation(dsn, args.long, args.page_reads)
    print(
        f"{os.cpu_count()} cores; CPU = this process + its PostgreSQL backend; {args.rounds} rounds of"
        f" {args.slices} alternating slices, medians"
    )
    for what in ("sent", "read"):
        on = statistics.median(r["on"] for r in rates[what])
        off = statistics.median(r["off"] for r in rates[what])
        cost = statistics.median((r["off"] - r["on"]) / r["off"] * 100 for r in rates[what])
        print(
            f"messages {what} per CPU-second: encryption on {on:.0f}, off {off:.0f} → cost {cost:.1f} % (target < 10 %)"
        )
        figures.record(f"private messages {what} per CPU-second (encrypted)", on, "/CPU-s")
        figures.record(f"private messages {what}: cost of encryption", cost, "%", target=10, better="lower")
    report_pages(args.long, pages)


if __name__ == "__main__":
    asyncio.run(main())
