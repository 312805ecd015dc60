"""A thread followed across two of our nodes and answered from software nobody here
wrote (issue 11, quality bar: « a member of our node follows a thread of theirs and is
notified of a reply »).

The Fedify peer of ``../shared/interop`` hosts only Person actors, so the group is ours:
node A (https://node-a.test) hosts a public community, node B (https://node-b.test)
follows it (``vbg-node admin follow-remote``, the node-wide follow) — both behind nginx
terminating TLS with a throw-away CA, signatures checked everywhere. On B, bruno answers
A's thread and carla, in her browser over TLS, follows it (« Suivre ce fil »). The Fedify
peer's alice answers bruno's post, addressing A's group: A stores it and relays it
(Announce) to B; B fetches the Note from the Fedify peer itself (a signed GET to a server
we did not write), stores it in its copy of the thread and notifies bruno (a reply to his
post) and carla (a reply in a thread she follows: her notifications page lists it and
leads to the reply); B's thread page shows it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import pytest

from tests.helpers import csrf_from, eventually, login
from tests.interop import (
    FedifyPeer,
    NodeSpec,
    RealNode,
    TlsProxy,
    bruno_and_carla_notified,
    fedify_workdir,
    followed_thread,
    hosts,
    interop_missing,
    make_ca,
    node_logs,
    real_nodes,
    reply_stored_on_a_and_b,
)

pytestmark = pytest.mark.federation

A_HOST, B_HOST, PEER_HOST = "node-a.test", "node-b.test", "fedify.test"
A_IP, B_IP, PEER_IP = "127.0.0.41", "127.0.0.42", "127.0.0.43"
GROUP = f"https://{A_HOST}/c/entraide"


@dataclass
class Scene:
    a: RealNode
    b: RealNode
    peer: FedifyPeer
    tls: ssl.SSLContext


@pytest.fixture(scope="module")
async def scene(
    server_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Scene]:
    missing = interop_missing()
    if missing:
        pytest.skip(missing)
    try:
        workdir = fedify_workdir()
    except RuntimeError as exc:
        pytest.skip(f"the Fedify peer could not be installed from the npm registry: {exc}")
    run = tmp_path_factory.mktemp("interop-thread")
    certs = make_ca(run / "ca", [A_HOST, B_HOST, PEER_HOST])
    ca = str(certs / "ca.crt")
    with hosts({A_HOST: A_IP, B_HOST: B_IP, PEER_HOST: PEER_IP}):
        specs = [
            NodeSpec("a", A_IP, base_url=f"https://{A_HOST}", public_communities=("entraide",)),
            NodeSpec("b", B_IP, base_url=f"https://{B_HOST}"),
        ]
        async with real_nodes(server_dsn, template_db, run, specs, env={"SSL_CERT_FILE": ca}) as nodes:
            a, b = nodes["a"], nodes["b"]
            for node in (a, b):
                await node.admin("federation-mode", "open")
            proxy = TlsProxy(
                run / "nginx",
                certs,
                [f"{A_HOST}={A_IP}:{A_IP}:{a.live.port}", f"{B_HOST}={B_IP}:{B_IP}:{b.live.port}"],
            )
            peer = FedifyPeer(
                workdir, certs, run / "fedify", origin=f"https://{PEER_HOST}", listen=f"{PEER_IP}:443",
                users=["alice"],
            )  # fmt: skip
            proxy.start()
            try:
                peer.start()
                try:
                    yield Scene(a, b, peer, ssl.create_default_context(cafile=ca))
                finally:
                    peer.stop()
            finally:
                proxy.stop()


async def within(scene: Scene, probe: Any, what: str) -> Any:
    try:
        return await eventually(probe, what)
    except AssertionError as exc:
        nodes = {"a": scene.a, "b": scene.b}
        raise AssertionError(f"{exc}\npeer log:\n{scene.peer.log()}\n{node_logs(nodes)}") from None


async def test_a_fedify_reply_in_a_followed_remote_thread_notifies_bs_members(scene: Scene) -> None:
    a, b, peer = scene.a, scene.b, scene.peer

    async def wait(probe: Any, what: str) -> Any:
        return await within(scene, probe, what)

    # Given B follows A's public community, amina's thread there, bruno's answer on B …
    followed = await followed_thread(a, b, A_HOST, wait)
    thread_id, bruno_ap_id = followed.thread_id, followed.bruno_ap_id
    # … and carla, in her browser, follows it (« Suivre ce fil »)
    async with httpx.AsyncClient(base_url=b.settings.base_url, verify=scene.tls) as carla_browser:
        await login(carla_browser, "carla")
        thread_page = await carla_browser.get(f"/t/{thread_id}")
        assert thread_page.status_code == 200 and f'action="/t/{thread_id}/suivre"' in thread_page.text
        followed_form = await carla_browser.post(
            f"/t/{thread_id}/suivre", data={"action": "follow", "csrf_token": csrf_from(thread_page.text)}
        )
        assert followed_form.status_code == 303, followed_form.text

    # When the Fedify peer's alice answers bruno's post, addressed to A's group
    sent = await peer.apost(
        "/_peer/post",
        {
            "as": "alice",
            "content": "<p>Et les accueils de jour rouvrent à 8 h.</p>",
            "inReplyTo": bruno_ap_id,
            "audience": GROUP,
            "mention": [f"@entraide@{A_HOST}"],
        },
    )
    note_id = sent["object"]
    assert note_id.startswith(f"https://{PEER_HOST}/")

    # Then A stores it under bruno's post, and B, told by A's Announce, fetched it from the peer
    stored_b = await reply_stored_on_a_and_b(a, b, followed, note_id, wait, "Fedify")
    relayed = await b.pool.fetch(
        "SELECT status, outcome FROM inbox_items"
        " WHERE activity_type = 'Announce' AND actor_uri = $1 AND strpos(document::text, $2) > 0",
        GROUP,
        note_id,
    )
    assert "done" in [r["status"] for r in relayed], [dict(r) for r in relayed]
    author = await b.pool.fetchval(
        "SELECT a.uri FROM posts p JOIN actors a ON a.id = p.remote_author_id WHERE p.id = $1", stored_b["id"]
    )
    assert author == f"https://{PEER_HOST}/users/alice"

    # And bruno is notified of a reply to his post, carla of a reply in the thread she follows
    page = await bruno_and_carla_notified(b, followed, stored_b, wait)
    # carla's notifications page (over TLS, on B) lists it, and opening it leads to the reply
    async with httpx.AsyncClient(base_url=b.settings.base_url, verify=scene.tls) as carla_browser:
        await login(carla_browser, "carla")
        listed = await carla_browser.get("/notifications")
        assert listed.status_code == 200
        notification_id = page.items[0]["id"]
        assert f'action="/notifications/{notification_id}"' in listed.text and "a répondu" in listed.text
        opened = await carla_browser.post(
            f"/notifications/{notification_id}", data={"csrf_token": csrf_from(listed.text)}
        )
        assert opened.status_code == 303, opened.text
        assert opened.headers["location"].endswith(f"/p/{stored_b['id']}"), opened.headers

    # and B's thread page shows the reply
    async with (
        aiohttp.ClientSession() as session,
        session.get(b.url(f"/t/{thread_id}"), ssl=scene.tls) as page_r,
    ):
        assert page_r.status == 200
        assert "Et les accueils de jour rouvrent à 8 h." in await page_r.text()
