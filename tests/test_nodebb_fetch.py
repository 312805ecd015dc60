"""Signed GETs as NodeBB 4.15 sends them: ``(request-target)`` from the path alone,
without the query string (``GET /t/1/context?page=1`` signed as ``get /t/1/context``).
Mastodon accepts that form on GETs; so do we, for reading only."""

from __future__ import annotations

import asyncpg
import httpx

from federation import signatures
from node import metrics
from tests.ap_kit import (  # noqa: F401  (fixtures)
    approve,
    members_only_paths,
    partner,
    settings,
    signed_get,
)
from tests.fakefedi import FakeInstance


def path_only_exported() -> float:
    found = metrics.samples().get("vbg_signed_fetches_total", [])
    return sum(value for labels, value in found if labels.get("target") == "path_only")


async def test_nodebb_reads_a_members_only_context_once_its_instance_is_approved(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811  (the fixture)
) -> None:
    # Given a members-only thread and a NodeBB server allowed by policy but not approved
    context = next(p for p in await members_only_paths(pool) if p.endswith("/context"))
    bob = partner.add_actor("bob")
    page = f"{context}?page=1"

    # When it asks for the context's first page, signing the path alone, Then it gets nothing
    assert (await signed_get(client, page, bob, "path_only")).status_code == 404

    # When its instance is approved, Then the same request reads the page
    await approve(pool, partner)
    before = signatures.REQUEST_TARGET_FORMS["path_only"]
    exported = path_only_exported()
    response = await signed_get(client, page, bob, "path_only")
    assert response.status_code == 200
    assert response.json()["type"] == "OrderedCollectionPage" and len(response.json()["orderedItems"]) == 2
    # And the short form was counted, and exported to the operator's metrics
    assert signatures.REQUEST_TARGET_FORMS["path_only"] == before + 1
    assert path_only_exported() == exported + 1
    # But a signature over another path still gets 404
    other = await signed_get(client, "/t/999999/context?page=1", bob, "path_only")
    assert other.status_code == 404
