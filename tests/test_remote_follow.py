"""Finding and following a remote community (issue 11, part a), against a fake Lemmy-like
server on loopback (tests/fakefedi.py: real HTTP, signatures checked both ways) and our
node served for real (tests/inboxnode.py).

    « !lecture@host » typed ──> WebFinger + signed GET ──> card ──> « Suivre »
    ──> one Follow by the instance actor (or a member's Person if refused) ──> Accept
    ──> accepted; the last member leaving ──> Undo{Follow} (not for a node-wide follow)
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web

from federation import actors, cli, remote
from node import account_deletion, communities
from node.admin_commands import ADMIN_COMMANDS
from node.errors import BadRequest
from node.sessions import User
from tests.conftest import TEST_SECRET
from tests.delivery_kit import deliver_all, process_outbox
from tests.fakefedi import FakeActor, FakeInstance
from tests.helpers import PASSWORD, login, make_user, post_form
from tests.inboxnode import AS_CONTEXT, InboxNode, running_node

HOST = "127.0.0.201"


@pytest.fixture(name="node")
async def fixture_node(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[InboxNode]:
    async with running_node(pool, tmp_path) as n:
        yield n


@pytest.fixture(name="lemmy")
async def fixture_lemmy() -> AsyncIterator[FakeInstance]:
    async with FakeInstance(HOST, software="lemmy") as fake:
        yield fake


def group_of(fake: FakeInstance, name: str = "lecture", **extra: Any) -> FakeActor:
    return fake.add_actor(name, "Group", name="Lecture partagée", summary="<p>Des <b>livres</b></p><script>x</script>",
                          **extra)  # fmt: skip


@contextlib.asynccontextmanager
async def member(node: InboxNode, username: str, role: str = "member") -> AsyncIterator[httpx.AsyncClient]:
    """A browser of a new approved member, logged in."""
    await make_user(node.pool, username, role=role)
    transport = httpx.ASGITransport(app=node.app, client=("198.51.100.9", 40009))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await login(client, username)
        yield client


def follows_received(fake: FakeInstance, kind: str = "Follow") -> list[dict[str, Any]]:
    return [a for a in fake.inbox_activities() if a.get("type") == kind]


async def group_follow(pool: asyncpg.Pool) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT g.*, a.kind AS follower_kind FROM group_follows g JOIN actors a ON a.id = g.follower_id"
    )
    assert row is not None
    return row


async def answer(
    node: InboxNode, fake: FakeInstance, group: FakeActor, follow: dict[str, Any], kind: str
) -> None:
    activity = {"@context": AS_CONTEXT, "id": fake.url(f"/activities/{kind.lower()}/1"), "type": kind,
                "actor": group.id, "object": follow}  # fmt: skip
    response = await fake.send(node.url("/inbox"), activity, actor=group)
    assert response.status in (200, 202), response.text
    await node.process()


async def test_a_member_finds_a_remote_community_by_its_address(node: InboxNode, lemmy: FakeInstance) -> None:
    # Given a Lemmy-like server with a public community
    group_of(lemmy)

    # When a member types its address in the communities page's search box
    async with member(node, "amina") as amina:
        page = await amina.get("/communautes", params={"adresse": f"!lecture@{lemmy.domain}"})

    # Then the card shows its title, sanitised description, host, software and « Suivre »
    assert page.status_code == 200
    text = page.text
    assert "Lecture partagée" in text and f"!lecture@{lemmy.domain}" in text
    assert "Des livres" in text and "<script>" not in text.split("<main", 1)[-1]
    assert "(lemmy)" in text and "Publique" in text and "Pas encore suivie par ce nœud" in text
    assert f'action="/c/lecture@{lemmy.domain}/suivre"' in text
    # And the community is stored as a remote row, not yet listed (nobody follows it)
    row = await node.pool.fetchrow("SELECT name, visibility, actor_id FROM communities")
    assert row["name"] == f"lecture@{lemmy.domain}" and row["visibility"] == "public" and row["actor_id"]
    # And WebFinger and the Group were fetched from the server itself
    paths = [r.path for r in lemmy.received if r.method == "GET"]
    assert any(p.startswith("/.well-known/webfinger") for p in paths) and "/c/lecture" in paths


@pytest.mark.parametrize("address", ["@lecture@{host}", "lecture@{host}", "http://{host}/c/lecture"])
async def test_every_address_form_finds_the_community(
    node: InboxNode, lemmy: FakeInstance, address: str
) -> None:
    group_of(lemmy)
    async with member(node, "amina") as amina:
        page = await amina.get("/recherche", params={"q": address.format(host=lemmy.domain)})
    assert page.status_code == 200
    assert "Lecture partagée" in page.text and f'action="/c/lecture@{lemmy.domain}/suivre"' in page.text


async def test_the_node_follows_once_and_the_group_accepts(node: InboxNode, lemmy: FakeInstance) -> None:
    # Given a remote community found by a member
    group = group_of(lemmy)
    name = f"lecture@{lemmy.domain}"
    async with member(node, "amina") as amina, member(node, "basile") as basile:
        await amina.get("/communautes", params={"adresse": f"!{name}"})

        # When two members follow it
        assert (await post_form(amina, f"/c/{name}/suivre", {"action": "follow"})).status_code == 303
        assert (await post_form(basile, f"/c/{name}/suivre", {"action": "follow"})).status_code == 303

        # Then the group received one Follow, signed by our instance actor, and it is pending
        follows = follows_received(lemmy)
        assert len(follows) == 1 and follows[0]["actor"] == node.url("/actor")
        assert follows[0]["object"] == group.id
        row = await group_follow(node.pool)
        assert row["state"] == "pending" and row["follower_kind"] == "Application"
        assert row["follow_activity_id"] == follows[0]["id"]
        page = await amina.get(f"/c/{name}")
        assert "en attente" in page.text and f"Communauté de {lemmy.domain}" in page.text
        assert f'/c/{name}/documents"' in page.text  # its library: what its server sends, read-only here

        # When the group accepts
        await answer(node, lemmy, group, follows[0], "Accept")

        # Then the follow is accepted, shown so, the community is listed and its outbox backfilled
        assert (await group_follow(node.pool))["state"] == "accepted"
        jobs = await node.pool.fetch("SELECT kind, community_id FROM backfill_jobs")
        assert [(j["kind"], j["community_id"]) for j in jobs] == [("outbox", row["community_id"])]
        assert "Suivie par ce nœud" in (await amina.get(f"/c/{name}")).text
        assert f'href="/c/{name}"' in (await amina.get("/communautes")).text

        # When one member leaves, nothing is sent; when the last one leaves, Undo{Follow}
        await post_form(amina, f"/c/{name}/suivre", {"action": "unfollow"})
        assert (await group_follow(node.pool))["state"] == "accepted"
        await post_form(basile, f"/c/{name}/suivre", {"action": "unfollow"})
    assert (await group_follow(node.pool))["state"] == "undone"
    await deliver_all(node.settings, node.pool)
    undos = follows_received(lemmy, "Undo")
    assert len(undos) == 1 and undos[0]["actor"] == node.url("/actor")
    assert undos[0]["object"]["id"] == follows[0]["id"]


async def test_a_server_that_wants_a_person_gets_the_members_follow(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given a server whose group refuses follows from an Application (as Lemmy does)
    group = group_of(lemmy)

    async def inbox(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        kind = "Application" if body.get("actor", "").endswith("/actor") else "Person"
        return web.Response(status=400 if kind == "Application" else 202)

    lemmy.add_route("POST", group.inbox_path, inbox)
    name = f"lecture@{lemmy.domain}"
    async with member(node, "amina") as amina:
        await amina.get("/communautes", params={"adresse": f"!{name}"})
        await post_form(amina, f"/c/{name}/suivre", {"action": "follow"})

    # Then the follow is the member's Person's, recorded as such
    row = await group_follow(node.pool)
    follows = [r.json for r in lemmy.received if r.method == "POST" and r.json and r.json["type"] == "Follow"]
    seen = [(r.method, r.path, r.signature_ok) for r in lemmy.received]
    assert row["follower_kind"] == "Person" and row["state"] == "pending", (dict(row), seen)
    assert [f["actor"] for f in follows] == [node.url("/actor"), node.url("/u/amina")], seen
    assert row["follow_activity_id"] == follows[1]["id"]

    # When another member follows, then the first one leaves
    async with member(node, "basile") as basile:
        await post_form(basile, f"/c/{name}/suivre", {"action": "follow"})
    async with node.pool.acquire() as conn:
        amina_id = await conn.fetchval("SELECT id FROM users WHERE username = 'amina'")
        community = await communities.find(conn, name)
        assert community is not None
        await remote.unsubscribe(
            conn,
            node.settings,
            community,
            User(amina_id, "amina", "amina", "member", "approved"),
            node.fetcher,
        )

    # Then her follow is undone and the node follows again in the name of the one who stays
    row = await group_follow(node.pool)
    follower = await node.pool.fetchval("SELECT uri FROM actors WHERE id = $1", row["follower_id"])
    assert follower == node.url("/u/basile") and row["state"] == "pending"
    await deliver_all(node.settings, node.pool)
    undos = [r.json for r in lemmy.received if r.method == "POST" and r.json and r.json["type"] == "Undo"]
    assert [u["actor"] for u in undos] == [node.url("/u/amina")]

    # When basile, now the follower, deletes his account while claire still follows
    async with member(node, "claire") as claire:
        await post_form(claire, f"/c/{name}/suivre", {"action": "follow"})
    basile_id = await node.pool.fetchval("SELECT id FROM users WHERE username = 'basile'")
    async with node.pool.acquire() as conn:
        leaving = User(basile_id, "basile", "basile", "member", "approved")
        await account_deletion.delete_account(conn, leaving, PASSWORD, "keep")
    await process_outbox(node.settings, node.pool)
    await deliver_all(node.settings, node.pool)

    # Then his follow is undone and claire's Person follows instead
    row = await group_follow(node.pool)
    follower = await node.pool.fetchval("SELECT uri FROM actors WHERE id = $1", row["follower_id"])
    assert follower == node.url("/u/claire") and row["state"] == "pending"
    posted = [
        r.json
        for r in lemmy.received
        if r.method == "POST" and r.json and r.json["type"] in ("Undo", "Follow")
    ]
    assert [(p["type"], p["actor"]) for p in posted][-2:] == [
        ("Undo", node.url("/u/basile")),
        ("Follow", node.url("/u/claire")),
    ]


async def test_a_members_only_group_waits_for_approval_and_may_refuse(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    group = group_of(lemmy, manuallyApprovesFollowers=True)
    name = f"lecture@{lemmy.domain}"
    async with member(node, "amina") as amina:
        card = await amina.get("/communautes", params={"adresse": name})
        assert "Membres" in card.text and "doivent approuver" in card.text
        await post_form(amina, f"/c/{name}/suivre", {"action": "follow"})
        assert "doivent approuver" in (await amina.get(f"/c/{name}")).text
        await answer(node, lemmy, group, follows_received(lemmy)[0], "Reject")
        assert "Abonnement refusé" in (await amina.get(f"/c/{name}")).text
    assert (await group_follow(node.pool))["state"] == "rejected"
    assert await node.pool.fetchval("SELECT visibility FROM communities") == "members"
    # And a visitor never sees a members-only remote community (like a missing page)
    transport = httpx.ASGITransport(app=node.app, client=("198.51.100.10", 40010))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as visitor:
        assert (await visitor.get(f"/c/{name}")).status_code == 404
        assert name not in (await visitor.get("/communautes")).text


async def test_an_admin_follows_for_the_whole_node(
    node: InboxNode, lemmy: FakeInstance, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an admin who follows the community for the node from the command line
    group_of(lemmy)
    for key, value in {
        "VBG_BASE_URL": node.settings.base_url,
        "VBG_SECRET_KEY": TEST_SECRET,
        "VBG_DATA_DIR": str(node.settings.data_dir),
        "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
    }.items():
        monkeypatch.setenv(key, value)  # fmt: skip
    name = f"lecture@{lemmy.domain}"
    args = argparse.Namespace(handle=f"!{name}")
    async with node.pool.acquire() as conn:
        await cli.follow_remote(conn, args)
        await cli.list_remote(conn, args)
    out = capsys.readouterr().out
    assert (
        f"{name} : suivie pour tout le nœud" in out and f"{name}\tpending\t0 membre(s)\ttout le nœud" in out
    )
    assert (await group_follow(node.pool))["node_wide"]

    # When a member follows then leaves, the node keeps following (no Undo)
    async with member(node, "amina") as amina:
        await post_form(amina, f"/c/{name}/suivre", {"action": "follow"})
        await post_form(amina, f"/c/{name}/suivre", {"action": "unfollow"})
    assert (await group_follow(node.pool))["state"] == "pending"
    assert len(follows_received(lemmy)) == 1

    # When the admin drops it from the admin page, Undo{Follow} is sent
    async with member(node, "admin", role="admin") as admin:
        listing = await admin.get("/admin/communautes")
        assert f"!{name}" in listing.text and "suivie pour tout le nœud" in listing.text
        dropped = await post_form(admin, "/admin/communautes-distantes", {"action": "drop", "name": name})
        assert dropped.status_code == 303
        assert (await admin.get(f"/admin/communautes/{name}")).status_code == 404  # its texts are not ours
    assert (await group_follow(node.pool))["state"] == "undone"
    await deliver_all(node.settings, node.pool)
    assert len(follows_received(lemmy, "Undo")) == 1
    assert (
        await node.pool.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'remote_community.%'") == 2
    )


async def test_an_admin_follows_from_the_admin_page(node: InboxNode, lemmy: FakeInstance) -> None:
    group_of(lemmy)
    async with member(node, "admin", role="admin") as admin:
        done = await post_form(admin, "/admin/communautes-distantes", {"action": "follow", "adresse": f"!lecture@{lemmy.domain}"})  # fmt: skip
        assert done.status_code == 303
        refused = await post_form(admin, "/admin/communautes-distantes", {"action": "follow", "adresse": "pas une adresse"})  # fmt: skip
        assert refused.status_code == 400 and "Adresse non reconnue" in refused.text
    row = await group_follow(node.pool)
    assert row["node_wide"] and row["state"] == "pending" and row["requested_by"] is not None


BAD = {
    "unknown": ("!personne@{host}", "Aucune communauté n'a été trouvée"),
    "person": ("!alice@{host}", "n'est pas celle d'une communauté"),
    "elsewhere": ("!ailleurs@{host}", "renvoie vers un autre serveur"),
    "garbage": ("!casse@{host}", "n'a pas pu être lue"),
    "oversized": ("!enorme@{host}", "n'a pas pu être lue"),
    "not a handle": ("cherche des livres@", "Adresse non reconnue"),
}


@pytest.mark.parametrize("case", BAD)
async def test_bad_addresses_get_a_french_error_and_store_nothing(
    node: InboxNode, lemmy: FakeInstance, case: str
) -> None:
    # Given a server with a Person, a WebFinger pointing elsewhere, garbage and a huge document
    lemmy.add_actor("alice")
    for username in ("ailleurs", "casse", "enorme"):
        group_of(lemmy, username)
    lemmy.add_route("GET", "/.well-known/webfinger", _webfinger_with_tricks(lemmy))
    lemmy.add_response("/c/casse", b"{not json", status=200)
    lemmy.add_response("/c/enorme", {"id": lemmy.url("/c/enorme"), "type": "Group", "x": "a" * 1_200_000})
    lemmy.actors.pop("casse"), lemmy.actors.pop("enorme")  # served by the responses above
    before = await node.pool.fetchval("SELECT count(*) FROM actors WHERE NOT local")
    address, message = BAD[case]

    async with member(node, "amina") as amina:
        page = await amina.get("/communautes", params={"adresse": address.format(host=lemmy.domain)})

    assert page.status_code == 200 and message in html.unescape(page.text), page.text[-2000:]
    assert await node.pool.fetchval("SELECT count(*) FROM communities") == 0
    assert await node.pool.fetchval("SELECT count(*) FROM actors WHERE NOT local") == before


def _webfinger_with_tricks(fake: FakeInstance) -> Any:
    async def handler(request: web.Request) -> web.Response:
        resource = request.query.get("resource", "")
        name = resource.removeprefix("acct:").split("@", 1)[0]
        if name == "personne":
            return web.Response(status=404)
        href = fake.url(f"/c/{name}") if name != "alice" else fake.url("/u/alice")
        if name == "ailleurs":
            href = "http://127.0.0.202:9/c/ailleurs"
        jrd = {
            "subject": resource,
            "links": [{"rel": "self", "type": "application/activity+json", "href": href}],
        }
        return web.json_response(jrd, content_type="application/jrd+json")

    return handler


async def test_visitors_cannot_look_remote_servers_up(node: InboxNode, lemmy: FakeInstance) -> None:
    group_of(lemmy)
    transport = httpx.ASGITransport(app=node.app, client=("198.51.100.10", 40010))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as visitor:
        page = await visitor.get("/communautes", params={"adresse": f"!lecture@{lemmy.domain}"})
    assert "Connectez-vous pour chercher" in page.text
    assert not [r for r in lemmy.received if r.path.startswith("/.well-known/webfinger")]
    assert await node.pool.fetchval("SELECT count(*) FROM communities") == 0


async def test_the_instance_actor_key_signs_the_follow(node: InboxNode, lemmy: FakeInstance) -> None:
    group_of(lemmy)
    async with member(node, "amina") as amina:
        await amina.get("/communautes", params={"adresse": f"!lecture@{lemmy.domain}"})
        await post_form(amina, f"/c/lecture@{lemmy.domain}/suivre", {"action": "follow"})
    async with node.pool.acquire() as conn:
        me = await actors.instance_actor(conn, node.settings)
    posts = [r for r in lemmy.received if r.method == "POST"]
    assert posts and all(r.signature_ok and r.key_id == me.public_key_id for r in posts)


async def test_a_group_hidden_until_accepted_is_read_again_on_accept(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given a group its server shows us in key-only form (no followers collection) until it accepts us
    group = group_of(lemmy)
    accepted = False

    async def group_document(request: web.Request) -> web.Response:
        doc = group.document()
        if not accepted:
            del doc["followers"], doc["name"], doc["summary"]
        return web.json_response(doc, content_type="application/activity+json")

    lemmy.add_route("GET", "/c/lecture", group_document)
    name = f"lecture@{lemmy.domain}"
    async with member(node, "amina") as amina:
        card = await amina.get("/communautes", params={"adresse": name})
        assert "Membres" in card.text, card.text.split("<main", 1)[-1][:3000]  # unknown: members-only
        await post_form(amina, f"/c/{name}/suivre", {"action": "follow"})

        # When it accepts, and now serves its full document: a public group
        accepted = True
        await answer(node, lemmy, group, follows_received(lemmy)[0], "Accept")

    # Then the community is what the full document says
    row = await node.pool.fetchrow("SELECT visibility, title FROM communities")
    assert row["visibility"] == "public" and row["title"] == "Lecture partagée"
    assert (await group_follow(node.pool))["state"] == "accepted"


async def test_the_admin_commands_are_registered_and_unfollow_remote_undoes(
    node: InboxNode, lemmy: FakeInstance, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command names are a public interface
    assert {"follow-remote", "unfollow-remote", "list-remote"} <= ADMIN_COMMANDS.keys()
    for key, value in {
        "VBG_BASE_URL": node.settings.base_url,
        "VBG_SECRET_KEY": TEST_SECRET,
        "VBG_DATA_DIR": str(node.settings.data_dir),
        "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
    }.items():
        monkeypatch.setenv(key, value)  # fmt: skip
    group_of(lemmy)
    name = f"lecture@{lemmy.domain}"

    # Given a member who follows the community
    async with member(node, "amina") as amina:
        await amina.get("/communautes", params={"adresse": name})
        await post_form(amina, f"/c/{name}/suivre", {"action": "follow"})

    # When an admin unfollows it for the node, an unknown name being refused first
    async with node.pool.acquire() as conn:
        with pytest.raises(BadRequest):
            await cli.unfollow_remote(conn, argparse.Namespace(handle="!inconnue@ailleurs.example"))
        await cli.unfollow_remote(conn, argparse.Namespace(handle=f"!{name}"))
        await cli.list_remote(conn, argparse.Namespace())

    # Then Undo{Follow} goes although a member still follows, and the list says so
    out = capsys.readouterr().out
    assert f"{name} : abonnement retiré (Undo envoyé)" in out and f"{name}\tundone\t1 membre(s)" in out
    await deliver_all(node.settings, node.pool)
    assert len(follows_received(lemmy, "Undo")) == 1


async def test_the_last_follower_deleting_her_account_undoes_the_follow(
    node: InboxNode, lemmy: FakeInstance
) -> None:
    # Given the only member who follows a remote community
    group_of(lemmy)
    name = f"lecture@{lemmy.domain}"
    async with member(node, "amina") as amina:
        await amina.get("/communautes", params={"adresse": name})
        await post_form(amina, f"/c/{name}/suivre", {"action": "follow"})
    amina_id = await node.pool.fetchval("SELECT id FROM users WHERE username = 'amina'")

    # When she deletes her account and the outbox events are processed
    async with node.pool.acquire() as conn:
        await account_deletion.delete_account(
            conn, User(amina_id, "amina", "amina", "member", "approved"), PASSWORD, "keep"
        )
    await process_outbox(node.settings, node.pool)

    # Then the node's follow is undone
    assert (await group_follow(node.pool))["state"] == "undone"
    await deliver_all(node.settings, node.pool)
    assert len(follows_received(lemmy, "Undo")) == 1
