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

from node import notifications
from tests.conftest import create_test_database, drop_test_database
from tests.helpers import eventually
from tests.interop import (
    NodeSpec,
    RealNode,
    TakahePeer,
    TlsProxy,
    bruno_and_carla_notified,
    followed_thread,
    hosts,
    make_ca,
    node_logs,
    real_nodes,
    reply_stored_on_a_and_b,
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

    async def wait(probe: Any, what: str) -> Any:
        return await within(scene, probe, what)

    # Given B follows A's public community, amina's thread there, bruno's answer on B …
    followed = await followed_thread(a, b, A_HOST, wait)
    thread_id, bruno_ap_id = followed.thread_id, followed.bruno_ap_id
    # … and carla follows it (« Suivre ce fil »)
    async with b.pool.acquire() as conn:
        await notifications.set_following(conn, followed.carla.id, thread_id, True)

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

    # Then A stores it under bruno's post, and B, told by A's Announce, fetched it from Takahē
    stored_b = await reply_stored_on_a_and_b(a, b, followed, note_id, wait, "Takahē")

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
    await bruno_and_carla_notified(b, followed, stored_b, wait)

    # and B's thread page shows the reply
    async with (
        aiohttp.ClientSession() as session,
        session.get(b.url(f"/t/{thread_id}"), ssl=scene.tls) as page_r,
    ):
        assert page_r.status == 200
        assert "Et les accueils de jour rouvrent à 8 h." in await page_r.text()
