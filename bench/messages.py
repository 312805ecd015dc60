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

    .venv/bin/python bench/messages.py [--messages 2000] [--reads 1500] [--rounds 4] [--slices 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import figures  # noqa: E402
import psutil  # noqa: E402
from procs import cpu_of  # noqa: E402
from scratch import scratch_database  # noqa: E402

from node import db, encryption, messages  # noqa: E402
from node.accounts import create_user  # noqa: E402
from node.sessions import User  # noqa: E402

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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--slices", type=int, default=10)
    args = parser.parse_args()
    if figures.smoke():
        args.messages, args.reads, args.rounds, args.slices = 100, 20, 1, 2
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


if __name__ == "__main__":
    asyncio.run(main())
