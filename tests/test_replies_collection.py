"""``replies`` collections (paged, oldest first) on every Page and Note we serve, so
Mastodon-style servers can backfill a thread's answers."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from federation import collections
from tests.ap_kit import (  # noqa: F401  (fixtures)
    BASE,
    approve,
    get_ap,
    make_reply,
    make_thread,
    members_only_paths,
    open_federation,
    partner,
    settings,
    signed_get,
)
from tests.fakefedi import FakeInstance
from tests.helpers import make_community, make_user


async def test_pages_and_notes_carry_paged_ordered_replies(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a public thread with two answers to the thread and one answer to the first answer
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, opening = await make_thread(pool, community, amina)
    first = await make_reply(pool, thread_id, amina, "Premier")
    second = await make_reply(pool, thread_id, amina, "Deuxième")
    nested = await make_reply(pool, thread_id, amina, "Sous-réponse", parent_id=first)
    gone = await make_reply(pool, thread_id, amina, "Effacée")
    await pool.execute("UPDATE posts SET deleted_at = now() WHERE id = $1", gone)

    # When a server reads the Page and the first Note
    page = (await get_ap(client, f"/t/{thread_id}")).json()
    note = (await get_ap(client, f"/p/{first}")).json()

    # Then each names its replies collection, and the collection lists the direct answers, oldest first
    assert page["replies"] == {
        "id": f"{BASE}/t/{thread_id}/replies",
        "type": "OrderedCollection",
        "first": f"{BASE}/t/{thread_id}/replies?page=1",
    }
    assert note["replies"]["id"] == f"{BASE}/p/{first}/replies"
    collection = (await get_ap(client, f"/t/{thread_id}/replies")).json()
    assert collection["type"] == "OrderedCollection" and collection["totalItems"] == 2
    assert collection["first"] == f"{BASE}/t/{thread_id}/replies?page=1"
    first_page = (await get_ap(client, f"/t/{thread_id}/replies?page=1")).json()
    assert first_page["type"] == "OrderedCollectionPage"
    assert first_page["partOf"] == f"{BASE}/t/{thread_id}/replies"
    assert first_page["orderedItems"] == [f"{BASE}/p/{first}", f"{BASE}/p/{second}"]
    nested_page = (await get_ap(client, f"/p/{first}/replies?page=1")).json()
    assert nested_page["orderedItems"] == [f"{BASE}/p/{nested}"]
    # And an old numbered page leads to the first; an opening post's /p/ form and a deleted post are 404
    assert (await get_ap(client, f"/t/{thread_id}/replies?page=2")).headers["location"] == (
        f"/t/{thread_id}/replies?page=1"
    )
    assert (await get_ap(client, f"/p/{opening}/replies")).status_code == 404
    assert (await get_ap(client, f"/p/{gone}/replies")).status_code == 404


async def test_replies_are_paged(
    client: httpx.AsyncClient, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a thread with three answers and pages of two
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, _ = await make_thread(pool, community, amina)
    ids = [await make_reply(pool, thread_id, amina, f"Réponse {n}") for n in range(3)]
    monkeypatch.setattr(collections, "REPLIES_PAGE_SIZE", 2)

    # When a server walks the collection
    top = (await get_ap(client, f"/t/{thread_id}/replies")).json()
    one = (await get_ap(client, f"/t/{thread_id}/replies?page=1")).json()
    two = (await get_ap(client, one["next"].removeprefix(BASE))).json()

    # Then it gets every answer once, in order, the next page named by the last answer shown
    assert top["first"] == f"{BASE}/t/{thread_id}/replies?page=1" and "last" not in top
    assert one["next"] == f"{BASE}/t/{thread_id}/replies?min_id={ids[1]}"
    assert one["orderedItems"] + two["orderedItems"] == [f"{BASE}/p/{i}" for i in ids]
    assert two["id"] == one["next"] and "next" not in two


async def test_members_only_replies_need_an_approved_instance(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811  (the fixture)
) -> None:
    # Given a members-only thread and a partner allowed by policy but not approved
    thread = next(p for p in await members_only_paths(pool) if p.startswith("/t/") and p.count("/") == 2)
    alice = partner.add_actor("alice")
    replies = f"{thread}/replies?page=1"
    missing = await get_ap(client, "/t/999999")

    # Then neither an unsigned GET nor the unapproved partner learns anything
    unsigned = await get_ap(client, replies)
    assert (unsigned.status_code, unsigned.content) == (404, missing.content)
    assert (await signed_get(client, replies, alice)).status_code == 404
    # But once approved, the partner reads it
    await approve(pool, partner)
    response = await signed_get(client, replies, alice)
    assert response.status_code == 200 and len(response.json()["orderedItems"]) == 1


async def test_in_allowlist_mode_public_replies_go_to_listed_instances_only(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811  (the fixture: allowlist mode, partner listed)
) -> None:
    # Given a public thread with an answer, on a node in allowlist mode
    amina = await make_user(pool, "amina")
    community = await make_community(pool, "juridique", visibility="public")
    thread_id, _ = await make_thread(pool, community, amina)
    reply = await make_reply(pool, thread_id, amina)
    missing = await get_ap(client, "/t/999999")
    alice = partner.add_actor("alice")
    for path in (f"/t/{thread_id}/replies", f"/p/{reply}/replies?page=1"):
        # Then an unsigned GET gets what a missing object gets
        unsigned = await get_ap(client, path)
        assert (unsigned.status_code, unsigned.content) == (404, missing.content), path
        # But the listed partner reads it
        assert (await signed_get(client, path, alice)).status_code == 200, path
