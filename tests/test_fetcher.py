"""The guarded fetcher (docs/architecture.md §4), against real fake instances on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ipaddress
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from federation import signatures
from federation.errors import FetchError
from federation.fetcher import (
    AddressPolicy,
    Fetcher,
    IPAddress,
    Limits,
    check_url,
    guarded_session,
    is_dev_address,
    is_public_address,
)
from node.settings import Settings, load
from tests.fakefedi import FakeInstance

OUR_ACTOR = "http://127.0.0.1:8000/actor"
OUR_KEY_ID = OUR_ACTOR + "#main-key"
PRIVATE_PEM, PUBLIC_PEM = signatures.generate_key_pair()


async def our_signer() -> tuple[str, RSAPrivateKey]:
    return OUR_KEY_ID, signatures.load_private_key(PRIVATE_PEM)


def make_settings(tmp_path: Path, dev: bool) -> Settings:
    return load(
        {
            "VBG_BASE_URL": "http://127.0.0.1:8000",
            "VBG_DATA_DIR": str(tmp_path),
            "VBG_SECRET_KEY": "s" * 40,
            "VBG_DEV_ALLOW_PRIVATE_PEERS": "1" if dev else "0",
        }
    )


def only(*addresses: str) -> AddressPolicy:
    """A policy (http allowed) that lets exactly these addresses through."""
    allowed = {ipaddress.ip_address(a) for a in addresses}
    return AddressPolicy(allow_http=True, allow_address=lambda ip: ip in allowed)


@pytest.fixture
async def masto() -> AsyncIterator[FakeInstance]:
    async with FakeInstance("127.0.0.31", software="mastodon") as inst:
        inst.trust_key(OUR_KEY_ID, PUBLIC_PEM)
        yield inst


@pytest.fixture
async def dev_fetcher(tmp_path: Path) -> AsyncIterator[Fetcher]:
    async with Fetcher(make_settings(tmp_path, dev=True), our_signer) as fetcher:
        yield fetcher


def note(inst: FakeInstance, path: str | None = None, **fields: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "id": inst.url(path) if path else inst.new_id(),
        "type": "Note",
        "content": "Bonjour",
    }
    doc.update(fields)
    return doc


# ---------------------------------------------------------------- what works, and how it is asked


async def test_object_is_fetched_with_a_signed_get_that_verifies_at_the_peer(
    masto: FakeInstance, dev_fetcher: Fetcher
) -> None:
    # Given a note on a remote instance that requires signed fetches
    doc = masto.add_object(note(masto))
    # When we fetch it
    got = await dev_fetcher.fetch_object(str(doc["id"]) + "#fragment")
    # Then we get the document, and the peer saw a GET signed by our instance actor
    assert got == doc
    (request,) = masto.received
    assert request.method == "GET" and request.signature_ok, request.signature_error
    assert request.key_id == OUR_KEY_ID
    assert "application/activity+json" in request.headers["Accept"]
    assert signatures.parse(request.headers).headers == ("(request-target)", "host", "date")


async def test_query_string_is_signed_and_served(masto: FakeInstance, dev_fetcher: Fetcher) -> None:
    doc = masto.add_object({"id": masto.url("/c/x/outbox?page=2"), "type": "OrderedCollectionPage"})
    assert await dev_fetcher.fetch_object(str(doc["id"])) == doc
    assert masto.received[0].path == "/c/x/outbox?page=2" and masto.received[0].signature_ok


async def test_webfinger_and_nodeinfo_use_fetch_json(masto: FakeInstance, dev_fetcher: Fetcher) -> None:
    # Given an actor on the remote instance
    alice = masto.add_actor("alice")
    # When we look her up and read the instance's NodeInfo
    jrd = await dev_fetcher.fetch_json(
        masto.url(f"/.well-known/webfinger?resource=acct:alice@{masto.domain}")
    )
    links = await dev_fetcher.fetch_json(masto.url("/.well-known/nodeinfo"))
    info = await dev_fetcher.fetch_json(links["links"][0]["href"])
    actor = await dev_fetcher.fetch_object(alice.id)
    # Then each answers, and every GET was signed
    assert jrd["links"][0]["href"] == alice.id
    assert info["software"]["name"] == "mastodon"
    assert actor["publicKey"]["publicKeyPem"] == alice.public_pem
    assert all(r.signature_ok for r in masto.received)


async def test_fetch_object_refuses_webfinger_json(masto: FakeInstance, dev_fetcher: Fetcher) -> None:
    masto.add_actor("alice")
    url = masto.url(f"/.well-known/webfinger?resource=acct:alice@{masto.domain}")
    with pytest.raises(FetchError, match="content type"):
        await dev_fetcher.fetch_object(url)


async def test_gzip_encoded_document_is_decoded(masto: FakeInstance, dev_fetcher: Fetcher) -> None:
    doc = note(masto, "/objects/gz")
    masto.add_response(
        "/objects/gz", gzip.compress(json.dumps(doc).encode()), headers={"Content-Encoding": "gzip"}
    )
    assert await dev_fetcher.fetch_object(str(doc["id"])) == doc


@pytest.mark.parametrize(
    "content_type",
    [
        "application/activity+json; charset=utf-8",
        'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
    ],
)
async def test_activitystreams_content_types_are_accepted(
    masto: FakeInstance, dev_fetcher: Fetcher, content_type: str
) -> None:
    doc = masto.add_object(note(masto), content_type=content_type)
    assert await dev_fetcher.fetch_object(str(doc["id"])) == doc


# ---------------------------------------------------------------- addresses and schemes


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.0.0.31",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "240.0.0.1",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "2002:7f00:1::1",
        "2002:a00:1::1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.31", True),
        ("10.1.2.3", True),
        ("fd00::1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("8.8.8.8", True),
        ("169.254.169.254", False),
        ("fe80::1", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
    ],
)
def test_dev_policy_allows_loopback_and_private_but_not_metadata_or_multicast(
    address: str, allowed: bool
) -> None:
    ip: IPAddress = ipaddress.ip_address(address)
    assert is_dev_address(ip) is allowed


@pytest.mark.parametrize(
    ("url", "policy"),
    [
        ("http://example.org/x", AddressPolicy()),
        ("ftp://example.org/x", AddressPolicy(allow_http=True)),
        ("https://user:pw@example.org/x", AddressPolicy()),
        ("https://127.0.0.1/x", AddressPolicy()),
        ("https://[::ffff:127.0.0.1]/x", AddressPolicy()),
        ("https://[fe80::1]/x", AddressPolicy()),
        ("https://10.0.0.1:8443/x", AddressPolicy()),
        ("/relative", AddressPolicy()),
    ],
)
def test_check_url_refuses_bad_schemes_credentials_and_literal_private_addresses(
    url: str, policy: AddressPolicy
) -> None:
    with pytest.raises(FetchError):
        check_url(url, policy)


async def test_without_dev_setting_loopback_peers_are_refused(tmp_path: Path, masto: FakeInstance) -> None:
    # Given a production fetcher (no VBG_DEV_ALLOW_PRIVATE_PEERS)
    doc = masto.add_object(note(masto))
    async with Fetcher(make_settings(tmp_path, dev=False), our_signer) as fetcher:
        # When it is asked for a loopback peer, by http or https
        for url in (str(doc["id"]), str(doc["id"]).replace("http://", "https://")):
            with pytest.raises(FetchError):
                await fetcher.fetch_object(url)
    # Then nothing reached the peer
    assert masto.received == []


async def test_names_resolving_to_loopback_are_refused_at_connect_time(tmp_path: Path) -> None:
    # Given a peer listening on 127.0.0.1, reached by the NAME "localhost"
    async with FakeInstance("127.0.0.1") as local:
        local.trust_key(OUR_KEY_ID, PUBLIC_PEM)
        url = f"http://localhost:{local.port}/objects/1"
        local.add_response("/objects/1", {"id": url, "type": "Note"})
        settings = make_settings(tmp_path, dev=True)
        # When the address policy only allows public addresses (http allowed, so only the socket guard can say no)
        strict = AddressPolicy(allow_http=True, allow_address=is_public_address)
        async with Fetcher(settings, our_signer, policy=strict) as fetcher:
            with pytest.raises(FetchError, match="forbidden address"):
                await fetcher.fetch_object(url)
        assert local.received == []
        # Then the same fetch passes under the dev policy (the refusal was the guard's)
        async with Fetcher(settings, our_signer) as fetcher:
            assert (await fetcher.fetch_object(url))["id"] == url


async def test_guarded_session_refuses_private_addresses_for_delivery_code() -> None:
    # Given the shared session factory used by delivery, under the production policy
    session = guarded_session(AddressPolicy(allow_http=True))
    try:
        # Then a connection to a loopback name is refused before any byte is sent
        with pytest.raises(aiohttp.ClientConnectorError, match="forbidden address"):
            await session.get("http://localhost:9/")
    finally:
        await session.close()


async def test_domain_policy_hook_refuses_before_connecting(tmp_path: Path, masto: FakeInstance) -> None:
    asked: list[str] = []

    async def domain_allowed(domain: str) -> bool:
        asked.append(domain)
        return False

    doc = masto.add_object(note(masto))
    async with Fetcher(
        make_settings(tmp_path, dev=True), our_signer, domain_allowed=domain_allowed
    ) as fetcher:
        with pytest.raises(FetchError, match="instance policy") as caught:
            await fetcher.fetch_object(str(doc["id"]))
    assert caught.value.status == 403
    # the policy is asked with the domain as actors.domain spells it: host and non-default port
    assert asked == [masto.domain] and masto.received == []


# ---------------------------------------------------------------- redirects


async def test_redirect_to_a_private_address_is_refused(tmp_path: Path, masto: FakeInstance) -> None:
    # Given a public-looking peer (the only address allowed) that redirects to another address
    async with FakeInstance("127.0.0.32") as inner:
        target = inner.add_object(note(inner))
        masto.redirect("/objects/moved", str(target["id"]))
        masto.redirect("/objects/to-localhost", f"http://localhost:{inner.port}/objects/x")
        async with Fetcher(
            make_settings(tmp_path, dev=True), our_signer, policy=only("127.0.0.31")
        ) as fetcher:
            # When we follow the redirects
            for path in ("/objects/moved", "/objects/to-localhost"):
                with pytest.raises(FetchError, match="forbidden address"):
                    await fetcher.fetch_object(masto.url(path))
        # Then the first hop was made, signed, and the private target never reached
        assert [r.path for r in masto.received] == ["/objects/moved", "/objects/to-localhost"]
        assert all(r.signature_ok for r in masto.received)
        assert inner.received == []


async def test_same_host_redirect_is_rechecked_resigned_and_refetched_from_the_id(
    masto: FakeInstance, dev_fetcher: Fetcher
) -> None:
    doc = masto.add_object(note(masto, "/objects/7"))
    masto.redirect("/@alice/7", "/objects/7", status=301)
    assert await dev_fetcher.fetch_object(masto.url("/@alice/7")) == doc
    # /@alice/7 -> /objects/7 (id differs from the URL asked) -> /objects/7 fetched again from its id
    assert [r.path for r in masto.received] == ["/@alice/7", "/objects/7", "/objects/7"]
    assert all(r.signature_ok for r in masto.received)


async def test_more_than_three_redirects_are_refused(masto: FakeInstance, dev_fetcher: Fetcher) -> None:
    masto.add_object(note(masto, "/objects/end"))
    for i in range(4):
        masto.redirect(f"/r{i}", "/objects/end" if i == 3 else f"/r{i + 1}")
    # Three redirects are followed …
    assert (await dev_fetcher.fetch_object(masto.url("/r1")))["id"] == masto.url("/objects/end")
    # … a fourth is not
    with pytest.raises(FetchError, match="too many redirects"):
        await dev_fetcher.fetch_object(masto.url("/r0"))


# ---------------------------------------------------------------- what comes back


async def test_gzip_bomb_is_stopped_at_one_mebibyte_decompressed(
    masto: FakeInstance, dev_fetcher: Fetcher
) -> None:
    # Given a 10 KiB gzip body that expands to 12 MiB
    bomb = gzip.compress(b'{"id": "' + b"A" * (12 * 1024 * 1024) + b'"}', compresslevel=9)
    assert len(bomb) < 16 * 1024
    masto.add_response("/objects/bomb", bomb, headers={"Content-Encoding": "gzip"})
    # When we fetch it, then the body cap (on the DECOMPRESSED size) refuses it
    with pytest.raises(FetchError, match="size limit"):
        await dev_fetcher.fetch_object(masto.url("/objects/bomb"))


async def test_oversized_plain_body_is_refused(masto: FakeInstance, dev_fetcher: Fetcher) -> None:
    big = note(masto, "/objects/big", content="x" * (1024 * 1024))
    masto.add_object(big)
    with pytest.raises(FetchError, match="size limit"):
        await dev_fetcher.fetch_object(str(big["id"]))


async def test_chunked_oversized_body_is_refused_while_streaming(
    masto: FakeInstance, dev_fetcher: Fetcher
) -> None:
    # Given a peer that streams without Content-Length (no early refusal possible)
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/activity+json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(40):
            await response.write(b" " * 64 * 1024)
        return response

    masto.add_route("GET", "/objects/stream", endless)
    with pytest.raises(FetchError, match="size limit"):
        await dev_fetcher.fetch_object(masto.url("/objects/stream"))


@pytest.mark.parametrize(
    "content_type",
    ["text/html; charset=utf-8", "application/json", "application/ld+json", "application/jrd+json", ""],
)
async def test_wrong_content_type_is_refused(
    masto: FakeInstance, dev_fetcher: Fetcher, content_type: str
) -> None:
    doc = masto.add_object(note(masto), content_type=content_type)
    with pytest.raises(FetchError, match="content type"):
        await dev_fetcher.fetch_object(str(doc["id"]))


async def test_id_on_another_host_is_refused_without_following_it(
    masto: FakeInstance, dev_fetcher: Fetcher
) -> None:
    # Given a document that claims to be an object of another server
    masto.add_response("/objects/liar", {"id": "http://127.0.0.99:8000/objects/1", "type": "Note"})
    # Then it is refused and that other server is not asked
    with pytest.raises(FetchError, match="id does not match"):
        await dev_fetcher.fetch_object(masto.url("/objects/liar"))
    assert [r.path for r in masto.received] == ["/objects/liar"]


async def test_id_mismatch_twice_on_the_same_host_is_refused(
    masto: FakeInstance, dev_fetcher: Fetcher
) -> None:
    masto.add_response("/objects/a", {"id": masto.url("/objects/b"), "type": "Note"})
    masto.add_response("/objects/b", {"id": masto.url("/objects/c"), "type": "Note"})
    with pytest.raises(FetchError, match="id does not match"):
        await dev_fetcher.fetch_object(masto.url("/objects/a"))
    assert [r.path for r in masto.received] == ["/objects/a", "/objects/b"]


@pytest.mark.parametrize("body", [{"type": "Note"}, {"id": 5, "type": "Note"}])
async def test_document_without_a_string_id_is_refused(
    masto: FakeInstance, dev_fetcher: Fetcher, body: dict[str, object]
) -> None:
    masto.add_response("/objects/noid", body)
    with pytest.raises(FetchError, match="id does not match"):
        await dev_fetcher.fetch_object(masto.url("/objects/noid"))


@pytest.mark.parametrize(("body", "reason"), [(b"not json", "not JSON"), (b"[1, 2]", "not a JSON object")])
async def test_non_object_json_is_refused(
    masto: FakeInstance, dev_fetcher: Fetcher, body: bytes, reason: str
) -> None:
    masto.add_response("/objects/odd", body)
    with pytest.raises(FetchError, match=reason):
        await dev_fetcher.fetch_object(masto.url("/objects/odd"))


async def test_gone_object_reports_the_remote_status(masto: FakeInstance, dev_fetcher: Fetcher) -> None:
    tombstone = note(masto, "/objects/gone", type="Tombstone")
    masto.add_object(tombstone, status=410)
    with pytest.raises(FetchError) as caught:
        await dev_fetcher.fetch_object(str(tombstone["id"]))
    assert caught.value.remote_status == 410


async def test_unsigned_fetch_would_have_been_refused_by_the_peer(masto: FakeInstance) -> None:
    # Control for the signature checks above: the fake really requires signatures
    doc = masto.add_object(note(masto))
    response = await masto.fetch(str(doc["id"]), variant="unsigned")
    assert response.status == 401


async def test_overall_deadline_stops_a_slow_peer(tmp_path: Path, masto: FakeInstance) -> None:
    # Given a peer that takes 5 s to answer
    released = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(released.wait(), 5)
        return web.json_response({"id": masto.url("/objects/slow")}, content_type="application/activity+json")

    masto.add_route("GET", "/objects/slow", slow)
    limits = Limits(deadline=0.5, connect_timeout=0.5)
    async with Fetcher(make_settings(tmp_path, dev=True), our_signer, limits=limits) as fetcher:
        started = time.monotonic()
        # When we fetch with a half-second deadline, then we give up on time
        with pytest.raises(FetchError, match="deadline"):
            await fetcher.fetch_object(masto.url("/objects/slow"))
        assert time.monotonic() - started < 2
    released.set()


# ---------------------------------------------------------------- delivery POST


async def test_post_activity_is_signed_with_digest_and_returns_the_status(
    masto: FakeInstance, dev_fetcher: Fetcher
) -> None:
    # Given a remote actor and an activity for her inbox
    alice = masto.add_actor("alice")
    body = json.dumps(
        {"id": "http://127.0.0.1:8000/activities/1", "type": "Follow", "actor": OUR_ACTOR}
    ).encode()
    # When we deliver it
    status = await dev_fetcher.post_activity(
        alice.inbox, body, OUR_KEY_ID, signatures.load_private_key(PRIVATE_PEM)
    )
    # Then the inbox accepted a POST whose signature covers the digest
    assert status == 202
    (request,) = masto.received
    assert request.signature_ok and request.json["type"] == "Follow"
    assert "digest" in signatures.parse(request.headers).headers
    assert masto.inbox_activities() == [request.json]


async def test_post_activity_reports_refusals_as_statuses(dev_fetcher: Fetcher) -> None:
    async with FakeInstance("127.0.0.33", inbox_status=500) as broken:
        broken.trust_key(OUR_KEY_ID, PUBLIC_PEM)
        key = signatures.load_private_key(PRIVATE_PEM)
        assert await dev_fetcher.post_activity(broken.url("/inbox"), b"{}", OUR_KEY_ID, key) == 500
        # A key the peer cannot match is a 401 from the peer, not an exception here
        broken.trust_key(OUR_KEY_ID, signatures.generate_key_pair()[1])
        assert await dev_fetcher.post_activity(broken.url("/inbox"), b"{}", OUR_KEY_ID, key) == 401
