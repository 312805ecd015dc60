"""Remote thread page benchmark (issue 11): the page of a thread of a followed remote
community must meet the bars of a local thread's page (bench/thread_page.py: ≤ 20 KB gzip,
≥ 800 pages per CPU-second, p50 ≤ 50 ms and p99 ≤ 150 ms at 64 clients, ≤ 80 MB per web
process).

The same measure as bench/thread_page.py (its code, run on another thread): a remote
community (a Group of another server, followed and accepted), a thread of 50 replies by 8
remote authors stored as the backfill stores them (sanitised HTML, remote actors), read
by a logged-in member of ours — whose visits also ask for the thread's backfill (at most one
job per 6 hours: after the first, one indexed check per page).

    .venv/bin/python bench/remote_thread_page.py [same options as bench/thread_page.py]
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import thread_page  # noqa: E402

from federation import remote_html, signatures  # noqa: E402
from federation.actors import instance_actor, store_remote  # noqa: E402
from node import communities, db, markup, sessions, threads  # noqa: E402
from node.accounts import create_user  # noqa: E402
from node.settings import load  # noqa: E402

HOST = "https://forum.partenaire.example"


def actor(name: str, kind: str, pem: str) -> dict[str, object]:
    uri = f"{HOST}/{'c' if kind == 'Group' else 'u'}/{name}"
    return {"id": uri, "type": kind, "preferredUsername": name, "name": name.capitalize(), "inbox": f"{uri}/inbox",
            "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": pem}}  # fmt: skip


async def fill(dsn: str, data_dir: Path) -> tuple[str, str]:
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
        rng = random.Random(7)
        pem = signatures.generate_key_pair()[1]
        member = await create_user(conn, "membre1", "mot-de-passe-bench", display_name="Dr Membre 1")
        group = await store_remote(conn, actor("medecine", "Group", pem), f"{HOST}/c/medecine")
        authors = [
            (await store_remote(conn, actor(f"auteur{n}", "Person", pem), f"{HOST}/u/auteur{n}")).id
            for n in range(8)
        ]
        community = await communities.upsert_remote(
            conn, actor_id=group.id, name="medecine@forum.partenaire.example", title="Médecine",
            description="", visibility="members",
        )  # fmt: skip
        settings = load({"DATABASE_URL": dsn, "VBG_DATA_DIR": str(data_dir)})
        me = await instance_actor(conn, settings)
        await conn.execute(
            "INSERT INTO group_follows (community_id, follower_id, follow_activity_id, state)"
            " VALUES ($1, $2, $3, 'accepted')",
            community.id,
            me.id,
            f"{me.uri}#follows/1",
        )

        def post(n: int, title: str = "") -> threads.BackfilledPost:
            html = remote_html.sanitize(markup.render(thread_page.body(rng)))
            return threads.BackfilledPost(f"{HOST}/post/{n}", rng.choice(authors), title, html, html, None)

        stored = await threads.store_backfilled_threads(
            conn, community.id, [post(0, "Prophylaxie post-exposition au-delà de 72 heures")]
        )
        thread_id = stored[f"{HOST}/post/0"]
        opening = await conn.fetchval("SELECT id FROM posts WHERE thread_id = $1 AND is_opening", thread_id)
        for n in range(1, 51):
            await threads.store_backfilled_reply(conn, thread_id, opening, post(n))
        await threads.recount(conn, [thread_id])
        token = await sessions.create(conn, member, "bench", "127.0.0.1")
        return f"/t/{thread_id}", token
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(thread_page.main(fill, "remote thread page"))
