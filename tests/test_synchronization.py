"""FEP-8fcf followers collection synchronization, over real signed HTTP.

Sent: a group's deliveries to its followers carry a signed ``Collection-Synchronization``
header with the digest of that server's followers; the partial collection it names
lists them to a GET signed from that server only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from federation import actors, synchronization
from federation.app_state import federation_of
from node import events
from node.settings import Settings
from tests.ap_kit import signed_get
from tests.delivery_kit import (  # noqa: F401  (fixtures)
    approve_instance,
    community,
    deliver_all,
    fakes,
    fixture_fed_settings,
    fixture_open_node,
    follower,
    member,
    new_thread,
    trust_us,
)
from tests.fakefedi import FakeInstance, Received


@pytest.fixture(name="settings")
def fixture_settings(fed_settings: Settings) -> Settings:
    """The app of these tests may talk to the fakes on loopback."""
    return fed_settings


async def _trusted_by(pool: asyncpg.Pool, settings: Settings, *peers: FakeInstance) -> None:
    """The fakes know our instance key (our node fetches their actors with signed GETs)."""
    async with pool.acquire() as conn:
        me = await actors.instance_actor(conn, settings)
    assert me.public_key_id and me.public_key_pem
    for peer in peers:
        peer.trust_key(me.public_key_id, me.public_key_pem)


def test_the_digest_is_the_feps_example() -> None:
    # The FEP's worked example: two followers on testing.example.org
    ids = ["https://testing.example.org/users/1", "https://testing.example.org/users/2"]
    assert (
        synchronization.digest_of(ids) == "c33f48cd341ef046a206b8a72ec97af65079f9a3a9b90eef79c5920dce45c61f"
    )
    assert synchronization.digest_of([]) == synchronization.EMPTY_DIGEST


def test_the_partial_collection_rule_is_scheme_and_authority() -> None:
    prefix = synchronization.url_prefix("https://testing.example.org/inbox")
    assert prefix == "https://testing.example.org"
    assert synchronization.under_prefix("https://testing.example.org/users/1", prefix)
    assert synchronization.under_prefix("https://testing.example.org", prefix)
    assert not synchronization.under_prefix("https://testing.example.org.evil/users/1", prefix)
    assert not synchronization.under_prefix("http://testing.example.org/users/1", prefix)
    assert synchronization.url_prefix("ftp://x/y") is None


def test_a_header_parses_back_and_bad_ones_are_ignored() -> None:
    header = synchronization.SyncHeader(
        "https://a.example/c/g/followers", "https://a.example/c/g/sync", "ab" * 32
    )
    assert synchronization.parse_header(header.value()) == header
    assert synchronization.parse_header(header.value().replace(", ", ",")) == header
    for bad in (
        None,
        "",
        'collectionId="https://a.example/f", url="https://a.example/s"',  # no digest
        'collectionId="https://a.example/f", url="https://a.example/s", digest="xyz"',
        'collectionId="https://a.example/f" url="https://a.example/s", digest="' + "0" * 64 + '"',
        "x" * 5000,
    ):
        assert synchronization.parse_header(bad) is None


def test_only_our_groups_addressing_their_followers_synchronise(settings: Settings) -> None:
    group = f"{settings.base_url}/c/medical"
    to_followers = {"actor": group, "to": [group, f"{group}/followers"]}
    assert synchronization.synchronised_group(to_followers, settings) == group
    public = {
        "actor": group,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "cc": [f"{group}/followers"],
    }
    assert synchronization.synchronised_group(public, settings) == group
    accept = {"actor": group, "to": ["https://remote.example/u/x"]}
    assert synchronization.synchronised_group(accept, settings) is None
    person = {"actor": f"{settings.base_url}/u/amina", "cc": [f"{settings.base_url}/u/amina/followers"]}
    assert synchronization.synchronised_group(person, settings) is None


def _header_of(record: Received) -> synchronization.SyncHeader:
    raw = {k.lower(): v for k, v in record.headers.items()}.get("collection-synchronization")
    header = synchronization.parse_header(raw)
    assert header is not None, record.headers
    return header


def _signed_names(record: Received) -> list[str]:
    signature = {k.lower(): v for k, v in record.headers.items()}["signature"]
    return signature.split('headers="', 1)[1].split('"', 1)[0].split()


async def test_a_groups_delivery_carries_each_servers_digest_signed(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(2) as (alpha, beta):
        # Given a public community followed by two people on alpha (one still pending)
        # and one on beta
        group = await community(pool, "medical", "public")
        await follower(pool, group, alpha, "ines")
        await follower(pool, group, alpha, "jo")
        await follower(pool, group, alpha, "pending", state="pending")
        await follower(pool, group, beta, "karim")
        author = await member(pool)
        await trust_us(pool, fed_settings, [alpha, beta], users=[author], groups=[group])
        # When a member opens a thread and the worker delivers it
        await new_thread(pool, group, author)
        await deliver_all(fed_settings, pool)
        # Then every POST to a shared inbox carries the digest of that server's
        # accepted followers, the header covered by a signature both verifiers accept
        for fake, names in ((alpha, ["ines", "jo"]), (beta, ["karim"])):
            posts = [r for r in fake.received if r.method == "POST"]
            assert len(posts) == 2  # Announce{Create}, then Announce of the Page id
            expected = synchronization.digest_of(fake.actors[n].id for n in names)
            for record in posts:
                assert record.signature_ok, record.signature_error
                header = _header_of(record)
                assert header.digest == expected
                assert header.collection_id == f"{fed_settings.base_url}/c/medical/followers"
                assert header.url == f"{fed_settings.base_url}/c/medical/followers_synchronization"
                assert "collection-synchronization" in _signed_names(record)


async def test_a_follow_answer_carries_no_header(
    fed_settings: Settings, pool: asyncpg.Pool, open_node: None
) -> None:
    async with fakes(1) as (alpha,):
        # Given a remote person whose Follow of one of our groups was accepted
        group = await community(pool, "medical", "public")
        await trust_us(pool, fed_settings, [alpha], groups=[group])
        actor_id = await follower(pool, group, alpha, "ines")
        follow = {
            "id": alpha.new_id("follows"),
            "type": "Follow",
            "actor": alpha.actors["ines"].id,
            "object": f"{fed_settings.base_url}/c/medical",
        }
        async with pool.acquire() as conn:
            await events.emit(conn, "follow.accept", events.FollowAnswer(group.id, None, follow, actor_id))
        # When the worker delivers the group's Accept
        await deliver_all(fed_settings, pool)
        # Then it goes to her alone, without a synchronization header
        posts = [r for r in alpha.received if r.method == "POST"]
        assert [p.json["type"] for p in posts] == ["Accept"]
        assert posts[0].signature_ok, posts[0].signature_error
        assert "collection-synchronization" not in {k.lower() for k in posts[0].headers}
        assert "collection-synchronization" not in _signed_names(posts[0])


@pytest.fixture
async def served(app: Starlette) -> AsyncIterator[None]:
    """The app's fetcher (created by the first signed GET) is closed after the test."""
    yield
    await federation_of(app).close()  # the fetcher a signed GET created


async def test_the_partial_collection_lists_the_signers_server_only(
    served: None, client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, open_node: None
) -> None:
    async with fakes(2) as (alpha, beta):
        # Given a members-only community followed from alpha (an approved partner) and
        # from beta (not approved), and a public one followed from beta
        group = await community(pool, "medical", "members")
        await follower(pool, group, alpha, "ines")
        await follower(pool, group, alpha, "jo")
        await follower(pool, group, alpha, "later", state="pending")
        await follower(pool, group, beta, "karim")
        await approve_instance(pool, alpha)
        open_group = await community(pool, "ouvert", "public")
        await follower(pool, open_group, beta, "lea")
        await _trusted_by(pool, settings, alpha, beta)
        path = "/c/medical/followers_synchronization"
        # When alpha's actor asks with a signed GET
        answer = await signed_get(client, path, alpha.actors["ines"])
        # Then it gets alpha's accepted followers, nobody else's, never cached
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        assert doc["id"] == f"{settings.base_url}{path}"
        assert doc["type"] == "OrderedCollection"
        mine = [alpha.actors["ines"].id, alpha.actors["jo"].id]
        assert sorted(doc["orderedItems"]) == sorted(mine)
        assert synchronization.digest_of(doc["orderedItems"]) == synchronization.digest_of(mine)
        assert "no-store" in answer.headers["cache-control"]
        # And beta, who may not read the members-only group, gets a 404; its public
        # group's list holds beta's follower only
        assert (await signed_get(client, path, beta.actors["karim"])).status_code == 404
        answer = await signed_get(client, "/c/ouvert/followers_synchronization", beta.actors["karim"])
        assert answer.json()["orderedItems"] == [beta.actors["lea"].id]
        # And an unsigned GET, a badly signed one, or a community that is not ours: 404
        assert (await client.get(path, headers={"Accept": "application/activity+json"})).status_code == 404
        assert (await signed_get(client, path, alpha.actors["ines"], "wrong_key")).status_code == 404
        missing = "/c/nowhere/followers_synchronization"
        assert (await signed_get(client, missing, alpha.actors["ines"])).status_code == 404
