"""Library pages (node.documents) have an index path for every filter, both directions of
the keyset and a search: none reads all of ``documents`` or ``document_versions``, nor
all of ``threads`` or ``actors`` to hide remote authors.

As in tests/test_query_plans.py, each plan is asked with sequential scans priced out
(``enable_seqscan = off``): a ``Seq Scan`` still in the plan means no index serves it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import asyncpg
import pytest

from node import documents
from tests.helpers import make_community

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def _library(filters: documents.Filters, direction: str | None = "older") -> tuple[str, tuple[object, ...]]:
    query, args = documents._list_sql(filters, direction)
    if direction is None:  # a search: reader, limit, offset
        return query, (True, 31, 0, *args)
    return query, (False, 31, True, FAR_FUTURE, 2**62, *args)  # a visitor, the top of the list


LIBRARY_QUERIES = {
    "node library": _library(documents.Filters()),
    "node library, newer": _library(documents.Filters(), "newer"),
    "node library, type": _library(documents.Filters(doc_type="protocole")),
    "node library, tag": _library(documents.Filters(tag="urgence")),
    "node library, language": _library(documents.Filters(language="en")),
    "community library": _library(documents.Filters(community_id=1)),
    "community library, newer": _library(documents.Filters(community_id=1), "newer"),
    "community library, type and language": _library(
        documents.Filters(community_id=1, doc_type="fiche", language="fr")
    ),
    "community library, tag": _library(documents.Filters(community_id=1, tag="accueil")),
    "library search": _library(documents.Filters(query="certificat"), None),
    "community library search": _library(documents.Filters(community_id=1, query="certificat"), None),
}


@pytest.mark.parametrize("name", sorted(LIBRARY_QUERIES))
async def test_library_pages_read_documents_by_index(pool: asyncpg.Pool, name: str) -> None:
    query, args = LIBRARY_QUERIES[name]
    await make_community(pool, "medical")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ANALYZE documents")
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + query, *args))
    assert not re.search(r"Seq Scan on (documents|document_versions|threads|actors)\b", plan), plan
    assert "Index" in plan and "hashed SubPlan" not in plan, plan
