"""Private conversations through the app in tests: a member's client at her own address,
a conversation started from the « Nouveau message » form."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from tests.helpers import post_form

SUBJECT = "Situation de Mme Hirondelle"
BODY = "Elle **souhaite** porter plainte."


def client_at(app: Starlette, last_octet: int) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{last_octet}", 40000 + last_octet))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def start_conversation(
    client: httpx.AsyncClient, to: str, subject: str = SUBJECT, body: str = BODY
) -> str:
    response = await post_form(
        client, "/messages/nouveau", {"recipients": to, "subject": subject, "body": body}
    )
    assert response.status_code == 303, response.text
    return response.headers["location"].split("#")[0]
