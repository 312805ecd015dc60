"""A real Mastodon-API server against a real node (issue 9, quality bars).

Takahē (jointakahe/takahe v0.11.0, a Python ActivityPub server that speaks the Mastodon
client API, from ``../shared/interop``) runs as https://takahe.test; our node as
https://node-a.test, both behind nginx terminating TLS with a throw-away local CA, in
the node's default allowlist mode with takahe.test allowed. Signature checks stay on.

What a Mastodon-app user there sees, through the client API: she finds a public
community by its handle, follows it, sees a new thread in her home timeline (the group's
boost) and the thread's replies in ``/api/v1/statuses/ID/context``; she replies, boosts
and favourites, and each shows on our thread page.

Takahē is installed once (about 3 minutes on 2 cores; cached under /tmp per kit version,
its migrated database kept as a template on the test PostgreSQL server): later runs copy
the template and start in seconds.
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from node import threads
from tests.conftest import create_test_database, drop_test_database
from tests.helpers import eventually
from tests.interop import (
    NodeSpec,
    RealNode,
    TakahePeer,
    TlsProxy,
    hosts,
    make_ca,
    real_nodes,
    takahe_install,
    takahe_missing,
)
from tests.liveserver import free_port

pytestmark = pytest.mark.federation

NODE_HOST, TAKAHE_HOST = "node-a.test", "takahe.test"
NODE_IP, TAKAHE_IP = "127.0.0.21", "127.0.0.13"
HANDLE = f"@general@{NODE_HOST}"
STEP = 60.0  # Takahē's worker polls its queues: a federation step may take a while


@dataclass
class Scene:
    node: RealNode
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
    run = tmp_path_factory.mktemp("takahe")
    certs = make_ca(run / "ca", [NODE_HOST, TAKAHE_HOST])
    ca = str(certs / "ca.crt")
    takahe_dsn = await create_test_database(server_dsn, install.template)
    try:
        with hosts({NODE_HOST: NODE_IP, TAKAHE_HOST: TAKAHE_IP}):
            spec = NodeSpec("a", NODE_IP, base_url=f"https://{NODE_HOST}", public_communities=("general",))
            async with real_nodes(server_dsn, template_db, run, [spec], env={"SSL_CERT_FILE": ca}) as nodes:
                node = nodes["a"]
                await node.admin("allow-domain", TAKAHE_HOST)
                takahe_port = free_port(TAKAHE_IP)
                proxy = TlsProxy(
                    run / "nginx",
                    certs,
                    [
                        f"{NODE_HOST}={NODE_IP}:{NODE_IP}:{node.live.port}",
                        f"{TAKAHE_HOST}={TAKAHE_IP}:{TAKAHE_IP}:{takahe_port}",
                    ],
                )
                proxy.start()
                takahe = TakahePeer(
                    install, takahe_dsn, ca, run / "takahe", listen=TAKAHE_IP, port=takahe_port
                )
                try:
                    takahe.start()
                    yield Scene(node, takahe, ssl.create_default_context(cafile=ca))
                finally:
                    takahe.stop()
                    proxy.stop()
    finally:
        await drop_test_database(server_dsn, takahe_dsn)


async def within(scene: Scene, probe: Any, what: str) -> Any:
    try:
        return await eventually(probe, what, within=STEP, every=0.5)
    except AssertionError as exc:
        items = await scene.node.pool.fetch(
            "SELECT activity_type, status, outcome, error FROM inbox_items ORDER BY id"
        )
        received = "\n".join(" | ".join(str(v) for v in item.values()) for item in items)
        logs = f"{scene.takahe.log()}\nnode log:\n{scene.node.live.log()[-4000:]}"
        raise AssertionError(f"{exc}\nnode inbox:\n{received}\n{logs}") from None


async def thread_page(scene: Scene, thread_id: int) -> str:
    url = scene.node.url(f"/t/{thread_id}")
    async with aiohttp.ClientSession() as session, session.get(url, ssl=scene.tls) as response:
        assert response.status == 200
        return await response.text()


async def test_a_takahe_user_follows_a_community_and_sees_its_threads_and_replies(scene: Scene) -> None:
    node, takahe = scene.node, scene.takahe
    # When tina of Takahē looks the community up by its handle
    found = await takahe.aapi("GET", "/api/v2/search?resolve=true&q=" + urllib.parse.quote(HANDLE))
    (group,) = [a for a in found["accounts"] if a["acct"] == HANDLE.lstrip("@")]
    # And follows it
    await takahe.aapi("POST", f"/api/v1/accounts/{group['id']}/follow")

    # Then the follow is accepted
    async def following() -> bool:
        rows = await takahe.aapi("GET", f"/api/v1/accounts/relationships?id[]={group['id']}")
        return bool(rows and rows[0]["following"])

    await within(scene, following, "Takahē sees its follow of the community accepted")

    # When a member of the node opens a thread
    amina = await node.member("amina")
    created = await node.new_thread("general", amina, "Accueil aux urgences", "Une fiche réflexe ?")
    page_id = node.url(f"/t/{created.thread_id}")

    # Then it shows in tina's home timeline, as the group's boost of the Page
    async def in_home() -> dict[str, Any] | None:
        timeline = await takahe.aapi("GET", "/api/v1/timelines/home?limit=40")
        return next((s["reblog"] for s in timeline if (s.get("reblog") or {}).get("uri") == page_id), None)

    status = await within(scene, in_home, "the new thread reaches the home timeline")
    assert status["account"]["acct"] == f"amina@{NODE_HOST}"

    # When another member answers in the thread
    bastien = await node.member("bastien")
    async with node.pool.acquire() as conn:
        reply = await threads.create_reply(conn, created.thread_id, bastien, "Oui : une fiche par box.")
    reply_id = node.url(f"/p/{reply}")

    # Then the answer shows in the thread's context on Takahē
    async def in_context() -> list[dict[str, Any]] | None:
        context = await takahe.aapi("GET", f"/api/v1/statuses/{status['id']}/context")
        return [s for s in context["descendants"] if s["uri"] == reply_id] or None

    (answer,) = await within(scene, in_context, "the reply shows in /api/v1/statuses/ID/context")
    assert answer["in_reply_to_id"] == status["id"]
    assert "une fiche par box" in answer["content"]

    # When tina replies to the thread, boosts it and favourites it
    await takahe.aapi(
        "POST",
        "/api/v1/statuses",
        {"status": f"@amina@{NODE_HOST} Merci, nous faisons pareil.", "in_reply_to_id": status["id"],
         "visibility": "public"},
    )  # fmt: skip
    await takahe.aapi("POST", f"/api/v1/statuses/{status['id']}/reblog")
    await takahe.aapi("POST", f"/api/v1/statuses/{status['id']}/favourite")

    # Then each shows on our thread page
    for shown, what in (
        ("nous faisons pareil", "tina's reply"),
        ("partagé 1 fois", "tina's boost"),
        ('<span class="likes">1 J\'aime</span>', "tina's favourite"),
    ):

        async def page_shows(text: str = shown) -> bool:
            return text in await thread_page(scene, created.thread_id)

        await within(scene, page_shows, f"{what} shows on the thread page")
    stored = await node.pool.fetchrow(
        "SELECT p.thread_id, a.domain FROM posts p JOIN actors a ON a.id = p.remote_author_id"
        " WHERE p.thread_id = $1 AND NOT p.is_opening AND a.domain = $2",
        created.thread_id,
        TAKAHE_HOST,
    )
    assert stored is not None
