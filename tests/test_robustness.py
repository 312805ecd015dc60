"""Hostile input is a clear 4xx, never a 500: ids beyond a bigint, NUL bytes and bytes
that are not UTF-8 in URLs, JSON nested thousands deep, ambiguous signature headers,
and two first requests from the same unseen actor at once."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from federation import actors, signatures
from federation.errors import SignatureError
from node.web.requests import MAX_ID, IdConvertor
from tests.ap_kit import make_thread
from tests.fakefedi import AS_TYPE, FakeInstance, signed_headers
from tests.helpers import eventually, make_community, make_user

AP = {"Accept": "application/activity+json"}
BASE = "http://testserver"


def page(response: httpx.Response) -> bytes:
    """A response's bytes, but for the « Se connecter » link that returns to the page asked."""
    return re.sub(rb"/connexion\?next=[^\"]*", b"/connexion", response.content)


def routes_of(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, Route]]:
    found: list[tuple[str, Route]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += routes_of(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            found.append((prefix + route.path, route))
    return found


# --- ids ------------------------------------------------------------------------------


def test_every_id_in_every_route_goes_through_the_one_converter(app: Starlette) -> None:
    # Given every route of the app, from the router
    ids = [
        (path, name, route)
        for path, route in routes_of(app.routes)
        for name in re.findall(r"{([^}:]+)", path)
        if name in ("id", "mid", "number") or name.endswith("_id")
    ]
    assert len(ids) > 30  # the forum's, the federation's, the admin's …

    # Then each id parameter uses the bigint converter
    for path, name, route in ids:
        assert isinstance(route.param_convertors[name], IdConvertor), path


async def test_ids_outside_a_bigint_are_missing_pages(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given a missing thread, as a browser and as a server see it
    html_missing = await client.get("/t/999999")
    ap_missing = await client.get("/t/999999", headers=AP)
    assert html_missing.status_code == ap_missing.status_code == 404

    # When ids that are not bigints are asked, Then each answers exactly like it
    for bad in (str(MAX_ID + 1), "99999999999999999999999", "0", "-1", "007", "1e3", "abc", str(MAX_ID)):
        for path in (f"/t/{bad}", f"/p/{bad}", f"/t/{bad}/context", f"/p/{bad}/historique"):
            html = await client.get(path)
            assert (html.status_code, page(html)) == (404, page(html_missing)), path
            as_ap = await client.get(path, headers=AP)
            assert (as_ap.status_code, as_ap.content) == (404, ap_missing.content), path


# --- NUL bytes and bytes that are not UTF-8 -----------------------------------------------

BAD_PATHS = [
    "/c/med%00ical",
    "/c/%ff",
    "/u/ami%00na",
    "/u/%c3%28",
    "/t/1%00",
    "/p/%ff",
    "/c/medical/outbox%00",
    "/media/%00.jpg",
    "/activities/%ff",
    "/reinitialiser/%00",
    "/%00",
]
BAD_QUERIES = [
    "/recherche?q=%00",
    "/recherche?q=%ff%fe",
    "/c/medical?page=%00",
    "/c/medical/outbox?page=%ff",
    "/.well-known/webfinger?resource=acct:%00@testserver",
    "/.well-known/webfinger?resource=%ff",
    "/connexion?next=%00",
    "/t/1?page=%c3%28",
]


@pytest.mark.parametrize("headers", [{}, AP], ids=["html", "activitypub"])
async def test_unreadable_urls_are_404_or_400_never_500(
    client: httpx.AsyncClient, pool: asyncpg.Pool, headers: dict[str, str]
) -> None:
    # Given a community and a thread, and what a missing page answers
    amina = await make_user(pool, "amina")
    await make_thread(pool, await make_community(pool, "medical", visibility="public"), amina)
    missing = await client.get("/c/inconnue", headers=headers)
    assert missing.status_code == 404

    for url in BAD_PATHS:
        # When a path holds NUL or bytes that are not UTF-8, Then it is a missing page
        for method in ("GET", "POST"):
            response = await client.request(method, url, headers=headers)
            assert response.status_code == 404, (method, url)
            if method == "GET":
                assert page(response) == page(missing), url
    for url in BAD_QUERIES:
        # When a parameter does, Then it is a clear 400
        response = await client.get(url, headers=headers)
        assert response.status_code == 400, url
        assert "illisible" in response.text


# --- the inbox --------------------------------------------------------------------------


async def test_json_nested_thousands_deep_is_a_400(client: httpx.AsyncClient) -> None:
    for body in (b"[" * 20_000 + b"]" * 20_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
        response = await client.post("/inbox", content=body, headers={"Content-Type": AS_TYPE})
        assert response.status_code == 400
    assert response.json()["error"] == "JSON illisible."


def _repeat(header: str, name: str) -> str:
    """``header`` with its parameter ``name`` given a second time (another value first)."""
    value = re.search(rf'{name}="([^"]*)"', header)
    assert value is not None
    return (
        f'{name}="https://ailleurs.example/actor#main-key",' + header
        if name == "keyId"
        else (header + f',{name}="{value.group(1)}"')
    )


@pytest.mark.parametrize("name", ["keyId", "signature", "headers", "algorithm"])
async def test_a_signature_header_repeating_a_parameter_is_refused_401(
    client: httpx.AsyncClient, name: str
) -> None:
    # Given a correctly signed activity
    fake = FakeInstance("127.0.0.44")
    alice = fake.add_actor("alice")
    body = json.dumps({"id": f"{alice.id}#f", "type": "Follow", "actor": alice.id, "object": BASE + "/c/x"})
    headers = signed_headers(
        "POST", BASE + "/inbox", body.encode(), alice.key, "ok", {"Content-Type": AS_TYPE}
    )

    # When its Signature header gives one parameter twice
    headers["Signature"] = _repeat(headers["Signature"], name)
    with pytest.raises(SignatureError, match="repeats"):
        signatures.parse(headers)
    response = await client.post("/inbox", content=body, headers=headers)

    # Then it is refused as unauthenticated, before any key is fetched
    assert response.status_code == 401, response.text
    assert fake.received == []


def test_a_quoted_or_unusual_signature_header_repeating_a_parameter_is_refused() -> None:
    unusual = 'keyId="a", keyId = "b", signature="c2ln", headers="date"'
    with pytest.raises(SignatureError, match="repeats"):
        signatures.parse({"signature": unusual})


# --- two first requests from one unseen actor ---------------------------------------------


async def _store_at_once(pool: asyncpg.Pool, doc: dict[str, Any], racers: int) -> list[Any]:
    """``racers`` connections store ``doc`` released at the same instant: a table lock
    held meanwhile makes them all wait at their first statement, then run together."""

    async def store() -> actors.Actor:
        async with pool.acquire() as conn:
            return await actors.store_remote(conn, doc, doc["id"])

    async with pool.acquire() as gate:
        transaction = gate.transaction()
        await transaction.start()
        await gate.execute("LOCK TABLE actors IN ACCESS EXCLUSIVE MODE")
        tasks = [asyncio.create_task(store()) for _ in range(racers)]

        async def all_waiting() -> bool:
            # pg_locks, not pg_stat_activity: the latter is a snapshot per transaction
            waiting: int = await gate.fetchval(
                "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return waiting >= racers

        await eventually(all_waiting, "every racer waits for the lock", within=10, every=0.005)
        await transaction.commit()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_processes_storing_a_new_actor_at_once_all_succeed(pool: asyncpg.Pool) -> None:
    # Given remote actors this node has never seen (without the store's locks, about one
    # round in twenty hit the unique key id: the 500 of two first requests at once)
    fake = FakeInstance("127.0.0.45", port=8045)  # not started: only its documents are used
    for round_ in range(40):
        doc = fake.add_actor(f"zoe{round_}").document()

        # When three processes store one at the same instant
        results = await _store_at_once(pool, doc, 3)

        # Then all succeed, with one row holding its key
        assert [type(r) for r in results] == [actors.Actor] * 3, results
        assert {r.public_key_id for r in results} == {doc["publicKey"]["id"]}
        assert await pool.fetchval("SELECT count(*) FROM actors WHERE uri = $1", doc["id"]) == 1
