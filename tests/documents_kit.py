"""Documents space test kit: a PDF uploaded through the form by a member, and the
upload step itself."""

from __future__ import annotations

import re

import asyncpg
import httpx

from tests.helpers import csrf, login, make_community, make_user
from tests.samples_uploads import pdf_with_author

FIELDS = {
    "title": "Protocole de prise en charge médicale",
    "doc_type": "protocole",
    "description": "Les **étapes** de l'accueil d'une survivante.",
    "tags": "accueil, Urgence",
    "language": "fr",
    "origin": "Hôpital de Panzi",
    "licence": "CC BY 4.0",
    "issued_on": "2026-03-01",
}


async def upload(
    client: httpx.AsyncClient, community: str, data: bytes, name: str = "protocole.pdf", **fields: str
) -> httpx.Response:
    token = await csrf(client, f"/c/{community}/documents/nouveau")
    return await client.post(
        f"/c/{community}/documents/nouveau",
        data={**FIELDS, **fields, "csrf_token": token},
        files={"file": (name, data, "application/octet-stream")},
    )


def document_id(response: httpx.Response) -> int:
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/documents/(\d+)", response.headers["location"])
    assert match
    return int(match.group(1))


async def given_a_document(
    client: httpx.AsyncClient, pool: asyncpg.Pool, visibility: str = "members", data: bytes | None = None
) -> int:
    await make_user(pool, "amina")
    await make_community(pool, "medical", visibility=visibility)
    await login(client, "amina")
    return document_id(await upload(client, "medical", data or pdf_with_author(with_image=False)))
