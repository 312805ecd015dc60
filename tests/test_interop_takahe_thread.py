"""A thread followed across two of our nodes and answered from a Mastodon-API server
nobody here wrote (issue 11, quality bar: « a member of our node follows a thread of
theirs and is notified of a reply »), the Takahē twin of test_interop_fedify_thread.

Takahē hosts only people, so the group is ours: node A (https://node-a.test) hosts a
public community, node B (https://node-b.test) follows it (``vbg-node admin
follow-remote``); Takahē runs as https://takahe.test; all behind nginx terminating TLS
with a throw-away CA, signatures checked everywhere. On B, bruno answers A's thread and
carla follows it (« Suivre ce fil »). Through the Mastodon client API, Takahē's tina
finds bruno's post by its URL (Takahē fetches it from B) and answers it mentioning A's
group: A stores the answer and relays it (Announce) to B; B fetches it from Takahē,
stores it under bruno's post and notifies bruno (a reply to his post) and carla (a reply
in a thread she follows); B's thread page shows it.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from node import communities, notifications, threads
from tests.conftest import create_test_database, drop_test_database
from tests.helpers import eventually
from tests.interop import (
    NodeSpec,
    RealNode,
    TakahePeer,
    TlsProxy,
    hosts,
    make_ca,
    node_logs,
    real_nodes,
    takahe_install,
    takahe_missing,
)
from tests.liveserver import free_port

pytestmark = pytest.mark.federation

A_HOST, B_HOST, TAKAHE_HOST = "node-a.test", "node-b.test", "takahe.test"
A_IP, B_IP, TAKAHE_IP = "127.0.0.44", "127.0.0.45", "127.0.0.46"
GROUP = f"https://{A_HOST}/c/entraide"
STEP = 60.0  # Takahē's worker polls its queues: a federation step may take a while


@dataclass
class Scene:
    a: RealNode
    b: RealNode
    takahe: TakahePeer
    tls: ssl.SSLContext


@pytest.fixture(scope="module")
async def scene(
    server_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Scene]:
    missing = takahe_missing(server_dsn)
    if missing:
        pytest.skip(missing)
    install = await takahe_install(server_dsn, TAKAHE_HOST)
    run = tmp_path_factory.mktemp("takahe-thread")
    certs = make_ca(run / "ca", [A_HOST, B_HOST, TAKAHE_HOST])
    ca = str(certs / "ca.crt")
    takahe_dsn = await create_test_database(server_dsn, install.template)
    try:
        with hosts({A_HOST: A_IP, B_HOST: B_IP, TAKAHE_HOST: TAKAHE_IP}):
            specs = [
                NodeSpec("a", A_IP, base_url=f"https://{A_HOST}", public_communities=("entraide",)),
                NodeSpec("b", B_IP, base_url=f"https://{B_HOST}"),
            ]
            async with real_nodes(server_dsn, template_db, run, specs, env={"SSL_CERT_FILE": ca}) as nodes:
                a, b = nodes["a"], nodes["b"]
                for node in (a, b):
                    await node.admin("federation-mode", "open")
                takahe_port = free_port(TAKAHE_IP)
                proxy = TlsProxy(
                    run / "nginx",
                    certs,
                    [
                        f"{A_HOST}={A_IP}:{A_IP}:{a.live.port}",
                        f"{B_HOST}={B_IP}:{B_IP}:{b.live.port}",
                        f"{TAKAHE_HOST}={TAKAHE_IP}:{TAKAHE_IP}:{takahe_port}",
                    ],
                )
                proxy.start()
                takahe = TakahePeer(
                    install, takahe_dsn, ca, run / "takahe", listen=TAKAHE_IP, port=takahe_port
                )
                try:
                    takahe.start()
                    yield Scene(a, b, takahe, ssl.create_default_context(cafile=ca))
                finally:
                    takahe.stop()
                    proxy.stop()
    finally:
        await drop_test_database(server_dsn, takahe_dsn)


async def within(scene: Scene, probe: Any, what: str) -> Any:
    try:
        return await eventually(probe, what, within=STEP, every=0.5)
    except AssertionError as exc:
        nodes = {"a": scene.a, "b": scene.b}
        raise AssertionError(f"{exc}\n{scene.takahe.log()}\n{node_logs(nodes)}") from None


async def test_a_takahe_reply_in_a_followed_remote_thread_notifies_bs_members(scene: Scene) -> None:
    a, b, takahe = scene.a, scene.b, scene.takahe
    amina, bruno, carla = await a.member("amina"), await b.member("bruno"), await b.member("carla")

    # Given B follows A's public community for the whole node (the admin command) …
    out = await b.admin("follow-remote", f"!entraide@{A_HOST}")
    name = f"entraide@{A_HOST}"
    assert name in out, out
    async with b.pool.acquire() as conn:
        community = await communities.find(conn, name)
        assert community is not None and community.remote
        # … and its members subscribe to it on B
        await communities.follow(conn, bruno, community)
        await communities.follow(conn, carla, community)

    async def accepted() -> bool:
        state = await b.pool.fetchval("SELECT state FROM group_follows WHERE community_id = $1", community.id)
        return bool(state == "accepted")

    await within(scene, accepted, "A accepts B's follow")

    # When amina opens a thread in it on A
    created = await a.new_thread("entraide", amina, "Mise à l'abri", "Quelles solutions la nuit ?")

    async def thread_on_b() -> int | None:
        found: int | None = await b.pool.fetchval(
            "SELECT id FROM threads WHERE community_id = $1 AND title = $2", community.id, "Mise à l'abri"
        )
        return found

    thread_id = await within(scene, thread_on_b, "B holds A's new thread")

    # and on B, bruno answers it and carla follows it (« Suivre ce fil »)
    async with b.pool.acquire() as conn:
        bruno_post = await threads.create_reply(conn, thread_id, bruno, "Le 115 répond toute la nuit.")
        await notifications.set_following(conn, carla.id, thread_id, True)
    bruno_ap_id = b.url(f"/p/{bruno_post}")

    async def bruno_on_a() -> int | None:
        found: int | None = await a.pool.fetchval("SELECT id FROM posts WHERE ap_id = $1", bruno_ap_id)
        return found

    await within(scene, bruno_on_a, "A stores bruno's reply sent by B")

    # When Takahē's tina finds bruno's post by its URL and answers it, mentioning A's group
    async def resolved(q: str, key: str) -> dict[str, Any] | None:
        found = await takahe.aapi("GET", "/api/v2/search?resolve=true&q=" + urllib.parse.quote(q))
        return next(iter(found[key]), None)

    group = await within(scene, lambda: resolved(f"@entraide@{A_HOST}", "accounts"), "Takahē finds A's group")
    assert group["acct"] == f"entraide@{A_HOST}"
    status = await within(
        scene, lambda: resolved(bruno_ap_id, "statuses"), "Takahē fetches bruno's post from B"
    )
    assert status["uri"] == bruno_ap_id
    answer = await takahe.aapi(
        "POST",
        "/api/v1/statuses",
        {"status": f"@entraide@{A_HOST} Et les accueils de jour rouvrent à 8 h.",
         "in_reply_to_id": status["id"], "visibility": "public"},
    )  # fmt: skip
    note_id = answer["uri"]
    assert note_id.startswith(f"https://{TAKAHE_HOST}/")

    # Then A stores it in its thread, under bruno's post
    async def on_a() -> Any:
        return await a.pool.fetchrow(
            "SELECT p.thread_id, pp.ap_id AS parent FROM posts p JOIN posts pp ON pp.id = p.parent_id"
            " WHERE p.ap_id = $1",
            note_id,
        )

    stored_a = await within(scene, on_a, "A stores the Takahē reply")
    assert (stored_a["thread_id"], stored_a["parent"]) == (created.thread_id, bruno_ap_id)

    # and B, told by A's Announce, fetched it from Takahē and stored it in its copy
    async def on_b() -> Any:
        return await b.pool.fetchrow(
            "SELECT p.id, p.thread_id, p.parent_id, p.content_html FROM posts p WHERE p.ap_id = $1", note_id
        )

    stored_b = await within(scene, on_b, "B stores the Takahē reply relayed by A")
    assert (stored_b["thread_id"], stored_b["parent_id"]) == (thread_id, bruno_post)
    assert "accueils de jour" in stored_b["content_html"]

    # Takahē also delivers its reply to bruno's inbox (the author it answers): B stores it
    # once, from whichever came first — Takahē's Create or A's Announce —, and the other
    # is recognised as already stored
    async def relay_handled() -> list[dict[str, Any]] | None:
        rows = await b.pool.fetch(
            "SELECT activity_type, actor_uri, status, outcome FROM inbox_items WHERE strpos(document::text, $1) > 0"
            " ORDER BY id",
            note_id,
        )
        items = [dict(r) for r in rows]
        handled = all(i["status"] not in ("pending", "processing") for i in items)
        relayed = any(i["activity_type"] == "Announce" and i["actor_uri"] == GROUP for i in items)
        return items if handled and relayed else None

    items = await within(scene, relay_handled, "B handles A's Announce of the Takahē reply")
    assert [i["status"] for i in items].count("done") == 1, items
    assert all(i["outcome"] == "object already stored" for i in items if i["status"] != "done"), items
    author = await b.pool.fetchval(
        "SELECT a.domain FROM posts p JOIN actors a ON a.id = p.remote_author_id WHERE p.id = $1",
        stored_b["id"],
    )
    assert author == TAKAHE_HOST

    # And bruno is notified of a reply to his post, carla of a reply in the thread she follows
    async def notified() -> dict[int, str] | None:
        rows = await b.pool.fetch(
            "SELECT user_id, kind FROM notifications WHERE post_id = $1", stored_b["id"]
        )
        kinds = {r["user_id"]: r["kind"] for r in rows}
        return kinds if len(kinds) == 2 else None

    kinds = await within(scene, notified, "B notifies bruno and carla")
    assert kinds == {bruno.id: "reply_to_me", carla.id: "reply_followed"}
    async with b.pool.acquire() as conn:
        page = await notifications.page_for(conn, carla)
    assert [(n["kind"], n["post_id"]) for n in page.items][:1] == [("reply_followed", stored_b["id"])]

    # and B's thread page shows the reply
    async with (
        aiohttp.ClientSession() as session,
        session.get(b.url(f"/t/{thread_id}"), ssl=scene.tls) as page_r,
    ):
        assert page_r.status == 200
        assert "Et les accueils de jour rouvrent à 8 h." in await page_r.text()
