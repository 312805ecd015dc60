"""WebFinger, NodeInfo 2.1 and host-meta."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from node.errors import Conflict
from tests.ap_kit import approve, make_reply, make_thread, partner, settings  # noqa: F401  (fixtures)
from tests.fakefedi import AS_ACCEPT, FakeActor, FakeInstance, signed_headers
from tests.helpers import make_community, make_user

BASE = "http://testserver"
AP_JSON = "application/activity+json"


async def webfinger(client: httpx.AsyncClient, resource: str) -> httpx.Response:
    return await client.get("/.well-known/webfinger", params={"resource": resource})


async def signed_webfinger(client: httpx.AsyncClient, resource: str, signer: FakeActor) -> httpx.Response:
    url = f"{BASE}/.well-known/webfinger?resource={resource}"  # ':', '/' and '@' need no escape here
    headers = signed_headers("GET", url, None, signer.key, "ok", {"Accept": AS_ACCEPT})
    return await client.get(url.removeprefix(BASE), headers=headers)


async def posts_publicly(pool: asyncpg.Pool, user_id: int) -> None:
    community = await make_community(pool, "juridique", visibility="public")
    await make_thread(pool, community, user_id)


def self_link(jrd: dict[str, object]) -> dict[str, object]:
    links = jrd["links"]
    assert isinstance(links, list)
    return next(link for link in links if link["rel"] == "self")


async def test_webfinger_finds_a_member(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given an approved member who posted in a public community (her name is public)
    await posts_publicly(pool, await make_user(pool, "amina"))

    # When a server looks up @amina@testserver
    response = await webfinger(client, "acct:amina@testserver")

    # Then it gets her actor id as the self link, and her profile page
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jrd+json")
    jrd = response.json()
    assert jrd["subject"] == "acct:amina@testserver"
    assert jrd["aliases"] == [f"{BASE}/u/amina"]
    link = self_link(jrd)
    assert link["type"] == AP_JSON and link["href"] == f"{BASE}/u/amina"
    profile = [lk for lk in jrd["links"] if lk["rel"] == "http://webfinger.net/rel/profile-page"]
    assert profile == [
        {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": f"{BASE}/u/amina"}
    ]


async def test_webfinger_finds_a_public_community(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await make_community(pool, "juridique", visibility="public")

    jrd = (await webfinger(client, "acct:juridique@testserver")).json()
    link = self_link(jrd)
    assert link["href"] == f"{BASE}/c/juridique"
    assert link["properties"] == {"https://www.w3.org/ns/activitystreams#type": "Group"}

    # Mastodon's search form sends "@name@domain" shapes too
    assert (await webfinger(client, "@juridique@testserver")).status_code == 200


async def test_webfinger_accepts_the_actor_url(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await posts_publicly(pool, await make_user(pool, "amina"))

    member = (await webfinger(client, f"{BASE}/u/amina")).json()
    group = (await webfinger(client, f"{BASE}/c/juridique")).json()
    instance = (await webfinger(client, f"{BASE}/actor")).json()

    assert member["subject"] == "acct:amina@testserver"
    assert group["subject"] == "acct:juridique@testserver"
    assert self_link(instance)["href"] == f"{BASE}/actor"


async def test_webfinger_refuses_unknown_hidden_and_foreign(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a pending member, a local community and an approved member
    await make_user(pool, "enattente", status="pending")
    await make_community(pool, "interne", visibility="local")
    await make_user(pool, "amina")

    # When names that are unknown, not discoverable, or on another domain are looked up
    resources = [
        "acct:personne@testserver",
        "acct:enattente@testserver",
        "acct:interne@testserver",
        "acct:amina@ailleurs.example",
        "https://ailleurs.example/u/amina",
        f"{BASE}/u/enattente",
        "amina",
    ]
    # Then each is 404, like a name that never existed
    for resource in resources:
        assert (await webfinger(client, resource)).status_code == 404, resource
    assert (await client.get("/.well-known/webfinger")).status_code == 400


async def test_members_and_communities_share_one_namespace(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a member named "juridique" who posted publicly
    juridique = await make_user(pool, "juridique")
    community = await make_community(pool, "ouverte", visibility="public")
    await make_thread(pool, community, juridique)

    # When a community with the same name is created, Then it is refused
    with pytest.raises(Conflict):
        await make_community(pool, "juridique", visibility="public")

    # And the name keeps resolving to the member only
    jrd = (await webfinger(client, "acct:juridique@testserver")).json()
    assert self_link(jrd)["href"] == f"{BASE}/u/juridique"


async def test_webfinger_tells_strangers_nothing_of_members_only_names(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811
) -> None:
    # Given a member who never posted publicly, and a members-only community
    await make_user(pool, "amina")
    await make_community(pool, "medical", visibility="members")
    unknown = await webfinger(client, "acct:personne@testserver")
    resources = ["acct:amina@testserver", f"{BASE}/u/amina", "acct:medical@testserver"]
    alice = partner.add_actor("alice")

    # When an unsigned request, or an allowed but not approved instance, looks them up
    for resource in resources:
        # Then each answers exactly like an unknown name
        response = await webfinger(client, resource)
        assert (response.status_code, response.content) == (404, unknown.content), resource
        response = await signed_webfinger(client, resource, alice)
        assert (response.status_code, response.content) == (404, unknown.content), resource

    # But an approved partner (a signed request) finds them
    await approve(pool, partner)
    for resource in resources:
        assert (await signed_webfinger(client, resource, alice)).status_code == 200, resource


async def test_nodeinfo_discovery_and_honest_counts(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given 3 approved members (one active through a session, one through a post, one idle
    # for a year) and a pending one; 2 live threads, 1 deleted; 2 live replies, 1 deleted
    active_session = await make_user(pool, "amina")
    active_post = await make_user(pool, "bastien")
    idle = await make_user(pool, "chloe")
    await make_user(pool, "enattente", status="pending")
    await pool.execute(
        "INSERT INTO sessions (token_hash, user_id, expires_at, last_seen_at) VALUES ('\\x01', $1, now() + interval '1 day', now())",
        active_session,
    )
    community = await make_community(pool, "juridique", visibility="public")
    thread, _ = await make_thread(pool, community, active_post)
    other, _ = await make_thread(pool, community, idle)
    deleted, _ = await make_thread(pool, community, idle)
    await pool.execute("UPDATE threads SET deleted_at = now() WHERE id = $1", deleted)
    await pool.execute("UPDATE posts SET created_at = now() - interval '1 year' WHERE author_id = $1", idle)
    await make_reply(pool, thread, active_post)
    await make_reply(pool, other, active_post)
    gone = await make_reply(pool, other, active_post)
    await pool.execute("UPDATE posts SET deleted_at = now() WHERE id = $1", gone)

    # When a server discovers and reads NodeInfo
    links = await client.get("/.well-known/nodeinfo")
    response = await client.get("/nodeinfo/2.1")

    # Then the counts are exactly what the node holds
    assert links.headers["content-type"].startswith("application/json")
    assert links.json() == {
        "links": [
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": f"{BASE}/nodeinfo/2.0"},
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": f"{BASE}/nodeinfo/2.1"},
        ]
    }
    assert response.headers["content-type"] == (
        'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"'
    )
    info = response.json()
    assert info["version"] == "2.1"
    assert info["software"]["name"] == "vbg-node" and info["software"]["version"]
    assert info["protocols"] == ["activitypub"]
    assert info["openRegistrations"] is False
    assert info["usage"]["users"] == {"total": 3, "activeMonth": 2, "activeHalfyear": 2}
    assert info["usage"]["localPosts"] == 2
    assert info["usage"]["localComments"] == 2
    assert info["metadata"]["nodeName"] == "Réseau VBG"


async def test_nodeinfo_2_0_is_served_for_the_software_that_reads_only_it(client: httpx.AsyncClient) -> None:
    # When a server that knows only NodeInfo 2.0 (Takahē, older crawlers) follows its link
    links = (await client.get("/.well-known/nodeinfo")).json()["links"]
    href = next(link["href"] for link in links if link["rel"].endswith("/schema/2.0"))
    response = await client.get(href.removeprefix(BASE))

    # Then it gets a 2.0 document, in 2.0's shape (software: name and version only)
    assert response.status_code == 200
    assert response.headers["content-type"] == (
        'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.0#"'
    )
    info = response.json()
    assert info["version"] == "2.0"
    assert set(info["software"]) == {"name", "version"} and info["software"]["name"] == "vbg-node"
    assert info["protocols"] == ["activitypub"] and "users" in info["usage"]
    # And a version we do not serve is a plain 404
    assert (await client.get("/nodeinfo/1.0")).status_code == 404


async def test_host_meta_points_to_webfinger(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/host-meta")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xrd+xml")
    assert f'template="{BASE}/.well-known/webfinger?resource={{uri}}"' in response.text
    assert 'rel="lrdd"' in response.text
