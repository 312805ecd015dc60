"""Small factories and page helpers for tests (Given / When / Then)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import httpx
from starlette.applications import Starlette

from node import accounts, communities
from node.sessions import User

PASSWORD = "un-mot-de-passe-solide"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def make_user(
    pool: asyncpg.Pool, username: str = "amina", *, role: str = "member", status: str = "approved", **kw: Any
) -> int:
    async with pool.acquire() as conn:
        return await accounts.create_user(conn, username, PASSWORD, role=role, status=status, **kw)


async def make_member(pool: asyncpg.Pool, username: str, *, role: str = "member") -> User:
    """An approved account and the session user it logs in as."""
    return User(await make_user(pool, username, role=role), username, username.capitalize(), role, "approved")


async def make_community(
    pool: asyncpg.Pool, name: str = "medical", *, visibility: str = "members", title: str | None = None
) -> int:
    async with pool.acquire() as conn:
        return await communities.create_community(
            conn,
            name,
            title or name.capitalize(),
            visibility=visibility,
            description="Une communauté de test.",
        )


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def csrf(client: httpx.AsyncClient, path: str = "/connexion") -> str:
    response = await client.get(path)
    return csrf_from(response.text)


async def post_form(
    client: httpx.AsyncClient, path: str, data: dict[str, str], *, page: str | None = None
) -> httpx.Response:
    """POST a form the way a browser does: fetch a page for its CSRF token first."""
    token = await csrf(client, page or path)
    return await client.post(path, data={**data, "csrf_token": token})


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    """Log ``client`` in through the login form (the session cookie stays in the client)."""
    response = await post_form(client, "/connexion", {"username": username, "password": password})
    assert response.status_code == 303, response.text
    return response


def new_client(app: Starlette) -> httpx.AsyncClient:
    """Another browser on the same app (use with ``async with``), e.g. an anonymous visitor."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50001))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def add_thread(pool: asyncpg.Pool, community_id: int, author_id: int) -> None:
    """Thread 1 with its opening post 1 (plain SQL: only the rows matter here)."""
    thread_id = await pool.fetchval(
        "INSERT INTO threads (community_id, author_id, title) VALUES ($1, $2, 'Un fil') RETURNING id",
        community_id,
        author_id,
    )
    await pool.execute(
        "INSERT INTO posts (thread_id, author_id, is_opening, source, content_html)"
        " VALUES ($1, $2, true, 'Bonjour', '<p>Bonjour</p>')",
        thread_id,
        author_id,
    )


T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, *, within: float = 20.0, every: float = 0.05
) -> T:
    """What ``probe`` returns once it is truthy; fails naming ``what`` after ``within``
    seconds. The one way tests wait for something asynchronous (a worker, a NOTIFY,
    another process): never a fixed sleep."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f}s: {what}")
        await asyncio.sleep(every)


_NEXT = re.compile(r"\?next=[^\"]*\"")


def without_next(html: str) -> str:
    """A page without its ``?next=`` login links: two missing pages at different URLs
    then read the same (each link brings its own visitor back to where she was)."""
    return _NEXT.sub('"', html)


# --- keyset pages (node.keyset) ------------------------------------------------------

NEXT_PAGE = re.compile(r'<a href="([^"]+)" rel="next">')
PREVIOUS_PAGE = re.compile(r'<a href="([^"]+)" rel="prev">')


def link(pattern: re.Pattern[str], html: str) -> str | None:
    found = pattern.search(html)
    return found[1].replace("&amp;", "&") if found else None


async def walk(client: httpx.AsyncClient, start: str, item: re.Pattern[str]) -> tuple[list[str], list[str]]:
    """The items of every page from ``start`` onwards, then back from the last page."""
    onwards: list[list[str]] = []
    path: str | None = start
    html = ""
    while path is not None:
        html = (await client.get(path)).text
        onwards.append(item.findall(html))
        path = link(NEXT_PAGE, html)
    backwards: list[list[str]] = []
    path = link(PREVIOUS_PAGE, html)
    while path is not None:
        html = (await client.get(path)).text
        backwards.insert(0, item.findall(html))
        path = link(PREVIOUS_PAGE, html)
    return [i for page in onwards for i in page], [i for page in backwards + onwards[-1:] for i in page]
