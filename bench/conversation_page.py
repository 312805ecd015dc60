"""Conversation page benchmark: a private conversation's page must meet the bars of its
nearest neighbour, the thread page (bench/thread_page.py: ≤ 20 KB gzip, ≥ 800 pages per
CPU-second of the web processes + PostgreSQL, p50 ≤ 50 ms and p99 ≤ 150 ms at 64
clients, ≤ 80 MB per web process).

The same measure as bench/thread_page.py (its code, run on another page): a conversation
of 200 messages between three members, sealed at rest with the node's own key file as
`vbg-node serve` reads it, each message as long as a thread's reply (1 to 3 paragraphs,
some with a list); one of its members, logged in, reads its page — the latest 50
messages, opened and rendered on every request, with « Messages précédents » to the
older ones. Her first visit marks the conversation read; the measured ones write nothing.

    .venv/bin/python bench/conversation_page.py [same options as bench/thread_page.py]
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import thread_page  # noqa: E402

from node import db, encryption, messages, sessions  # noqa: E402
from node.accounts import create_user  # noqa: E402
from node.sessions import User  # noqa: E402
from node.settings import load  # noqa: E402

MESSAGES = 200


async def fill(dsn: str, data_dir: Path) -> tuple[str, str]:
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
        rng = random.Random(7)
        settings = load(
            {"DATABASE_URL": dsn, "VBG_DATA_DIR": str(data_dir), "VBG_BASE_URL": "http://bench.invalid"}
        )
        keyring = encryption.keyring_of(settings)  # the key file the server will read
        names = ["amina", "bruno", "chantal"]
        ids = [
            await create_user(conn, name, "mot-de-passe-bench", display_name=f"Dr {name.capitalize()}")
            for name in names
        ]
        members = [
            User(i, name, f"Dr {name.capitalize()}", "member", "approved")
            for i, name in zip(ids, names, strict=True)
        ]
        recipients = await messages.local_recipients(conn, members[0], names[1:])
        written = await messages.start(
            conn, keyring, settings.base_url, members[0], recipients,
            "Orientation d'une survivante vers la maison d'écoute", thread_page.body(rng),
        )  # fmt: skip
        for _ in range(MESSAGES - 1):
            await messages.reply(
                conn, keyring, rng.choice(members), written.conversation_id, thread_page.body(rng)
            )
        token = await sessions.create(conn, ids[1], "bench", "127.0.0.1")
        return f"/messages/{written.conversation_id}", token
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(thread_page.main(fill, "conversation page"))
