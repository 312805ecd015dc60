"""Content negotiation: the same URL serves the HTML page or the ActivityStreams document."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from federation import policy
from federation.negotiation import wants_activitypub
from tests.ap_kit import make_thread
from tests.helpers import make_community, make_user

LD_AS = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/activity+json", True),
        (LD_AS, True),
        ("application/ld+json", True),
        (
            'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
            True,
        ),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("application/json", False),
        ('application/ld+json; profile="https://example.org/other"', False),
        ("application/activity+json;q=0", False),
        ("", False),
        ("*/*", False),
    ],
)
def test_which_accept_headers_ask_for_activitypub(accept: str, expected: bool) -> None:
    assert wants_activitypub(accept) is expected


async def test_same_url_serves_html_or_activitystreams(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given a public community with a thread, on an open node (in allowlist mode a thread's
    # JSON needs a signed GET: test_integration_access.py)
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, _ = await make_thread(pool, community, amina)
    async with pool.acquire() as conn:
        await policy.set_federation_mode(conn, "open")

    for path in ("/c/juridique", f"/t/{thread_id}"):
        # When a server asks with an ActivityStreams Accept
        for accept in ("application/activity+json", LD_AS):
            doc = await client.get(path, headers={"Accept": accept})
            # Then it gets JSON-LD with our context, varying on Accept
            assert doc.status_code == 200, (path, accept)
            assert doc.headers["content-type"] == "application/activity+json; charset=utf-8"
            assert doc.headers["vary"] == "Accept"
            body = doc.json()
            assert body["id"] == f"http://testserver{path}"
            assert body["@context"][:2] == [
                "https://www.w3.org/ns/activitystreams",
                "https://w3id.org/security/v1",
            ]
            assert body["@context"][2]["stickied"] == "lemmy:stickied"

        # When a browser asks for the same URL, Then it never gets the JSON document
        page = await client.get(path, headers={"Accept": "text/html"})
        assert not page.headers.get("content-type", "").startswith("application/activity+json"), path
        assert page.headers.get("content-type", "").startswith("text/html"), path


async def test_html_only_paths_are_left_to_the_forum(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # An ActivityPub request for a forum-only sub-page does not hit a federation route
    await make_community(pool, "juridique", visibility="public")

    response = await client.get("/c/juridique/nouveau", headers={"Accept": "application/activity+json"})

    assert not response.headers.get("content-type", "").startswith("application/activity+json")
