"""A real, independent ActivityPub server against a real node (issue 3, quality bars).

The Fedify peer of ``../shared/interop`` (Fedify 2.x on Node 22, written by nobody on
this project) runs as https://fedify.test with its own certificate; our node runs as
https://node-a.test behind nginx terminating TLS, as in production. Both trust a
throw-away local CA (``SSL_CERT_FILE`` for Python, ``NODE_EXTRA_CA_CERTS`` for Node);
the names resolve to loopback through /etc/hosts, which is why the node runs with
``VBG_DEV_ALLOW_PRIVATE_PEERS=1``. Signature checks stay on everywhere: Fedify signs
with RFC 9421 first, and our inbox verifies it (no fallback to draft-cavage needed).

Scenario (the Mastodon interop one, with a Mastodon-shaped Note): the peer finds a
public community by ``@general@node-a.test``, follows it and gets an Accept; a new
thread arrives at the peer as the group's Announces; the peer replies mentioning the
group, the reply shows in the thread page and the group relays it to its other
follower (a fake instance) and to the peer's own instance (issue 9: every follower
instance, the author's included).
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests import inboxnode as ap
from tests.helpers import eventually
from tests.interop import (
    FedifyPeer,
    NodeSpec,
    RealNode,
    TlsClientFake,
    TlsProxy,
    fedify_workdir,
    hosts,
    interop_missing,
    make_ca,
    real_nodes,
)

pytestmark = pytest.mark.federation

NODE_HOST, PEER_HOST = "node-a.test", "fedify.test"
NODE_IP, PEER_IP = "127.0.0.21", "127.0.0.12"
GROUP = f"https://{NODE_HOST}/c/general"


@dataclass
class Scene:
    node: RealNode
    peer: FedifyPeer
    proxy: TlsProxy
    ca_file: str
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
    run = tmp_path_factory.mktemp("interop")
    certs = make_ca(run / "ca", [NODE_HOST, PEER_HOST])
    ca = str(certs / "ca.crt")
    with hosts({NODE_HOST: NODE_IP, PEER_HOST: PEER_IP}):
        spec = NodeSpec("a", NODE_IP, base_url=f"https://{NODE_HOST}", public_communities=("general",))
        async with real_nodes(server_dsn, template_db, run, [spec], env={"SSL_CERT_FILE": ca}) as nodes:
            node = nodes["a"]
            await node.admin("federation-mode", "open")
            proxy = TlsProxy(run / "nginx", certs, [f"{NODE_HOST}={NODE_IP}:{NODE_IP}:{node.live.port}"])
            peer = FedifyPeer(
                workdir, certs, run / "fedify", origin=f"https://{PEER_HOST}", listen=f"{PEER_IP}:443",
                users=["alice", "bob"],
            )  # fmt: skip
            proxy.start()
            try:
                peer.start()
                try:
                    yield Scene(node, peer, proxy, ca, ssl.create_default_context(cafile=ca))
                finally:
                    peer.stop()
            finally:
                proxy.stop()


async def peer_received(scene: Scene, predicate: Any, what: str) -> dict[str, Any]:
    """The first inbox POST the peer recorded that matches ``predicate``."""

    async def probe() -> dict[str, Any] | None:
        inbox = await scene.peer.aget("/_peer/inbox")
        return next((r for r in inbox["received"] if predicate(r["activity"])), None)

    try:
        return await eventually(probe, what)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\npeer log:\n{scene.peer.log()}\nnode log:\n{scene.node.live.log()[-4000:]}"
        ) from None


def of_type(kind: str, object_type: str | None = None) -> Any:
    def match(activity: Any) -> bool:
        if not isinstance(activity, dict) or activity.get("type") != kind:
            return False
        obj = activity.get("object")
        return object_type is None or (isinstance(obj, dict) and obj.get("type") == object_type)

    return match


async def test_fedify_follows_a_public_community_and_its_reply_is_relayed(scene: Scene) -> None:
    node, peer = scene.node, scene.peer
    async with TlsClientFake(scene.ca_file, "127.0.0.33", software="mastodon") as other:
        # Given another server already follows the community
        carol = other.add_actor("carol")
        follow = ap.follow(other, carol, GROUP)
        assert (await other.send(f"{GROUP}/inbox", follow, actor=carol)).status == 202
        await other.wait_for(lambda r: (r.json or {}).get("type") == "Accept", within=20)

        # When the Fedify peer looks the community up by its handle
        found = await peer.aget("/_peer/lookup?q=" + urllib.parse.quote(f"@general@{NODE_HOST}"))
        # Then it finds the Group
        assert (found["id"], found["type"], found["preferredUsername"]) == (GROUP, "Group", "general")

        # When it follows the community
        sent = await peer.apost("/_peer/follow", {"target": f"@general@{NODE_HOST}", "as": "alice"})
        assert sent["target"] == GROUP

        # Then it gets an Accept (signed by us, verified by Fedify: 202)
        accept = await peer_received(scene, of_type("Accept"), "the peer receives an Accept")
        assert accept["status"] == 202 and accept["signature"] == "draft-cavage"
        assert accept["activity"]["object"]["actor"] == f"https://{PEER_HOST}/users/alice"

        async def follow_accepted() -> bool:
            state = await peer.aget("/_peer/state")
            return bool(state["following"]["alice"].get(GROUP, {}).get("accepted"))

        await eventually(follow_accepted, "the peer marks its follow accepted")
        # and Fedify's RFC 9421 signature was verified at once: its inbox POSTs got 202,
        # never the 401 that would make it fall back to draft-cavage
        inbox_posts = [line for line in (scene.proxy.rundir / "access.log").read_text().splitlines()
                       if '"POST /' in line and '/inbox HTTP/' in line]  # fmt: skip
        assert inbox_posts and all('HTTP/1.1" 202 ' in line for line in inbox_posts), inbox_posts

        # When a member of the node opens a thread in the community
        amina = await node.member("amina")
        created = await node.new_thread("general", amina, "Accueil aux urgences", "Une fiche réflexe ?")
        page_id = f"https://{NODE_HOST}/t/{created.thread_id}"

        # Then the peer receives it as the group's Announces: of the Create, and of the Page's id
        relayed = await peer_received(scene, of_type("Announce", "Create"), "the Announce{Create} arrives")
        boost = await peer_received(
            scene,
            lambda a: of_type("Announce")(a) and a.get("object") == page_id,
            "the Announce{Page id} arrives",
        )
        for received in (relayed, boost):
            assert received["status"] == 202 and received["activity"]["actor"] == GROUP
        assert relayed["activity"]["object"]["object"]["name"] == "Accueil aux urgences"

        # When the peer replies with a Mastodon-shaped Note mentioning the group
        reply = await peer.apost(
            "/_peer/post",
            {
                "as": "alice",
                "content": f'<p><span class="h-card"><a href="{GROUP}" class="u-url mention">@general</a>'
                "</span> Oui, une fiche par box.</p>",
                "inReplyTo": page_id,
                "mention": [f"@general@{NODE_HOST}"],
            },
        )
        note_id = reply["object"]

        # Then the reply shows in the thread page on the node
        async def page_shows_reply() -> bool:
            async with aiohttp.ClientSession() as session, session.get(page_id, ssl=scene.tls) as response:
                return response.status == 200 and "Oui, une fiche par box." in await response.text()

        await eventually(page_shows_reply, "the reply appears in the thread page")
        assert (
            await node.pool.fetchval("SELECT thread_id FROM posts WHERE ap_id = $1", note_id)
            == created.thread_id
        )

        # And the group relays it to its other follower, signed
        relay = await other.wait_for(
            lambda r: (
                (r.json or {}).get("type") == "Announce"
                and isinstance(r.json.get("object"), dict)
                and (r.json["object"].get("object") or {}).get("id") == note_id
            ),
            within=20,
        )
        assert relay.signature_ok, relay.signature_error
        assert relay.json["actor"] == GROUP

        # and back to the peer it came from too (its own users follow the group), once
        def relays_the_reply(activity: Any) -> bool:
            return bool(
                of_type("Announce", "Create")(activity) and activity["object"]["object"].get("id") == note_id
            )

        await peer_received(scene, relays_the_reply, "the author's own instance gets the relay")
        inbox = await peer.aget("/_peer/inbox")
        assert sum(relays_the_reply(r["activity"]) for r in inbox["received"]) == 1
        # and Fedify's listeners understood everything we sent
        assert not [e for e in inbox["events"] if e["kind"] == "error"], inbox["events"]
