"""Our node served for real on loopback, for inbox tests: fake instances POST to it over
HTTP and it fetches their actors and keys over HTTP (``VBG_DEV_ALLOW_PRIVATE_PEERS``).

    async with running_node(pool, tmp_path) as node:
        resp = await fake.send(node.url("/inbox"), activity, actor=alice)
        await node.process()                      # the worker, run once
        assert await node.count("threads") == 1

Also small factories for activities in the shapes other servers send.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import uvicorn
from starlette.applications import Starlette

from federation import access, inbox_worker, policy
from federation.app_state import federation_of
from federation.fetcher import Fetcher
from node import communities, threads
from node.sessions import User
from node.settings import Settings, load
from node.web.app import create_app
from tests.conftest import TEST_SECRET
from tests.fakefedi import FakeActor, FakeInstance
from tests.helpers import eventually, make_community, make_user

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"


@dataclass
class InboxNode:
    settings: Settings
    pool: asyncpg.Pool
    app: Starlette
    fetcher: Fetcher

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def url(self, path: str) -> str:
        return self.settings.base_url + path

    def group(self, name: str) -> str:
        return self.url(f"/c/{name}")

    async def process(self) -> int:
        """Run the inbox worker until nothing is due."""
        total = 0
        while done := await inbox_worker.process_pending(self.pool, self.settings, self.fetcher, 100):
            total += done
        return total

    async def count(self, table: str, where: str = "true", *args: Any) -> int:
        n: int = await self.pool.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
        return n

    async def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT kind, payload FROM outbox_events WHERE $1::text IS NULL OR kind = $1 ORDER BY id", kind
        )
        return [{"kind": r["kind"], **r["payload"]} for r in rows]

    async def items(self) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.pool.fetch("SELECT * FROM inbox_items ORDER BY id")
        return rows


class PromptServer(uvicorn.Server):
    """uvicorn's server, stopped as soon as asked: its main loop otherwise notices
    ``should_exit`` at its next 0.1 s tick and its shutdown sleeps 0.1 s more (0.15 s
    for every test that serves the node on a socket)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self.should_exit = True
        self._stopping.set()

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):  # the Date header, once a second
            counter += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # an idle keep-alive connection closes now, a busy one after its answer

        async def closed() -> bool:
            return not (self.server_state.connections or self.server_state.tasks)

        await eventually(closed, "the inbox node's connections close", within=10, every=0.005)
        for server in self.servers:
            await server.wait_closed()


@contextlib.asynccontextmanager
async def running_node(pool: asyncpg.Pool, tmp_path: Path, *, mode: str = "open") -> AsyncIterator[InboxNode]:
    """The app on a real loopback socket with its own settings (base URL = that socket)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = load(
        {
            "VBG_BASE_URL": f"http://127.0.0.1:{port}",
            "VBG_DATA_DIR": str(tmp_path / "data"),
            "VBG_SECRET_KEY": TEST_SECRET,
            "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
            "VBG_WORKERS_IN_SERVE": "0",
        }
    )
    async with pool.acquire() as conn:
        await policy.set_federation_mode(conn, mode)
    app = create_app(settings, pool=pool)
    fetcher = access.make_fetcher(pool, settings)
    federation_of(app).fetcher = fetcher
    server = PromptServer(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:

        async def started() -> bool:
            if task.done():
                task.result()  # it failed to start: say why
            return server.started

        await eventually(started, "the inbox node's server starts", within=10)
        yield InboxNode(settings, pool, app, fetcher)
    finally:
        server.stop()
        await task
        await fetcher.close()
        sock.close()


# -- activities as other servers shape them ---------------------------------------------


def node_fixture(*public_communities: str) -> Any:
    """The ``node`` fixture of a test module: an :class:`InboxNode` on the test's database,
    with these public communities. ``fixture_node = node_fixture("medical")``"""

    @pytest.fixture(name="node")
    async def fixture(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[InboxNode]:
        async with running_node(pool, tmp_path) as n:
            for name in public_communities:
                await make_community(pool, name, visibility="public")
            yield n

    return fixture


def fake_fixture(name: str, host: str, software: str = "mastodon") -> Any:
    """A fixture ``name``: a :class:`FakeInstance` on ``host`` (one loopback address per
    module, so that no two modules' fakes share one)."""

    @pytest.fixture(name=name)
    async def fixture() -> AsyncIterator[FakeInstance]:
        async with FakeInstance(host, software=software) as fake:
            yield fake

    return fixture


def activity_id(fake: FakeInstance, kind: str) -> str:
    return fake.url(f"/activities/{kind.lower()}/{uuid.uuid4()}")


def follow(fake: FakeInstance, actor: FakeActor, target: str) -> dict[str, Any]:
    """Lemmy's and Mastodon's Follow: actor and object as URIs."""
    return {"@context": AS_CONTEXT, "id": activity_id(fake, "Follow"), "type": "Follow",
            "actor": actor.id, "object": target}  # fmt: skip


def undo(fake: FakeInstance, actor: FakeActor, inner: dict[str, Any]) -> dict[str, Any]:
    return {"@context": AS_CONTEXT, "id": activity_id(fake, "Undo"), "type": "Undo",
            "actor": actor.id, "object": inner}  # fmt: skip


def mastodon_note(
    fake: FakeInstance, actor: FakeActor, group: str, text: str, *, in_reply_to: str | None = None
) -> dict[str, Any]:
    """Create{Note} as Mastodon sends a toot mentioning a group (Public, group in cc and tag)."""
    note_id = fake.url(f"/users/{actor.username}/statuses/{uuid.uuid4().int >> 64}")
    lines = text.split("\n")
    mention = f'<span class="h-card"><a href="{group}" class="u-url mention">@<span>g</span></a></span>'
    content = f"<p>{mention} {lines[0]}</p>" + "".join(f"<p>{line}</p>" for line in lines[1:])
    note = {
        "id": note_id, "type": "Note", "attributedTo": actor.id, "content": content,
        "to": [PUBLIC], "cc": [actor.id + "/followers", group], "inReplyTo": in_reply_to,
        "published": "2025-01-05T10:00:00Z", "url": note_id, "sensitive": False,
        "tag": [{"type": "Mention", "href": group, "name": "@g"}],
    }  # fmt: skip
    return {"@context": [AS_CONTEXT], "id": note_id + "/activity", "type": "Create", "actor": actor.id,
            "published": note["published"], "to": note["to"], "cc": note["cc"], "object": note}  # fmt: skip


def lemmy_page(fake: FakeInstance, actor: FakeActor, group: str, title: str, body: str) -> dict[str, Any]:
    """Create{Page} as Lemmy sends a new post to a community (audience, Markdown source)."""
    page_id = fake.url(f"/post/{uuid.uuid4().int >> 96}")
    page = {
        "type": "Page", "id": page_id, "attributedTo": actor.id, "to": [group, PUBLIC], "cc": [],
        "name": title, "content": f"<p>{body}</p>", "mediaType": "text/html",
        "source": {"content": body, "mediaType": "text/markdown"}, "audience": group,
        "published": "2025-01-05T10:00:00Z", "sensitive": False,
    }  # fmt: skip
    return {"id": activity_id(fake, "Create"), "type": "Create", "actor": actor.id, "to": [group, PUBLIC],
            "cc": [], "audience": group, "object": page}  # fmt: skip


def lemmy_comment(fake: FakeInstance, actor: FakeActor, group: str, parent: str, body: str) -> dict[str, Any]:
    comment_id = fake.url(f"/comment/{uuid.uuid4().int >> 96}")
    note = {
        "type": "Note", "id": comment_id, "attributedTo": actor.id, "to": [PUBLIC], "cc": [group],
        "content": f"<p>{body}</p>", "inReplyTo": parent, "mediaType": "text/html",
        "source": {"content": body, "mediaType": "text/markdown"}, "audience": group,
        "published": "2025-01-05T10:00:00Z",
    }  # fmt: skip
    return {"id": activity_id(fake, "Create"), "type": "Create", "actor": actor.id, "to": [PUBLIC],
            "cc": [group], "audience": group, "object": note}  # fmt: skip


def update_of(fake: FakeInstance, actor: FakeActor, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": activity_id(fake, "Update"), "type": "Update", "actor": actor.id,
            "to": obj.get("to", [PUBLIC]), "cc": obj.get("cc", []), "object": obj}  # fmt: skip


def delete_of(
    fake: FakeInstance, actor: FakeActor, object_id: str, *, tombstone: bool = True
) -> dict[str, Any]:
    obj: Any = {"id": object_id, "type": "Tombstone"} if tombstone else object_id
    return {"id": activity_id(fake, "Delete"), "type": "Delete", "actor": actor.id, "to": [PUBLIC],
            "object": obj}  # fmt: skip


def like(fake: FakeInstance, actor: FakeActor, object_id: str, kind: str = "Like") -> dict[str, Any]:
    return {"id": activity_id(fake, kind), "type": kind, "actor": actor.id, "object": object_id}


def flag(fake: FakeInstance, actor: FakeActor, targets: list[str], text: str) -> dict[str, Any]:
    return {"@context": AS_CONTEXT, "id": activity_id(fake, "Flag"), "type": "Flag", "actor": actor.id,
            "content": text, "object": targets}  # fmt: skip


async def local_thread(node: InboxNode, community: str, title: str = "Question locale") -> tuple[int, int]:
    """A thread written by a local member: (thread id, opening post id)."""
    user_id = await make_user(node.pool, "amina")
    async with node.pool.acquire() as conn:
        found = await communities.find(conn, community)
        assert found is not None
        author = User(user_id, "amina", "Amina", "member", "approved")
        created = await threads.create_thread(conn, found, author, title, "Corps de la question.")
        await conn.execute("DELETE FROM outbox_events")  # only what the inbox emits is looked at
    return created.thread_id, created.post_id


async def deliver(
    node: InboxNode, fake: FakeInstance, activity: dict[str, Any], actor: FakeActor, path: str = "/inbox"
) -> None:
    """``fake`` posts ``activity`` signed by ``actor`` (202 expected), then the worker runs."""
    response = await fake.send(node.url(path), activity, actor=actor)
    assert response.status == 202, response.text
    await node.process()


async def outcome(node: InboxNode, activity: dict[str, Any]) -> tuple[str, str]:
    """(status, outcome) of the stored activity."""
    row = await node.pool.fetchrow(
        "SELECT status, outcome FROM inbox_items WHERE activity_id = $1", activity["id"]
    )
    assert row is not None
    return row["status"], row["outcome"]
