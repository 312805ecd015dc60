"""Every route of the app × every kind of requester × every kind of object (issue 8).

The routes come from the router, so a route added tomorrow is walked too. Each object
carries a marker in its text (title, body, display name); each requester may read some
classes of markers (the table below, written out here rather than taken from
``node.access``):

    class      what carries it                                        who may read it
    public     a public community, its thread, reply and document,    everyone in HTML; over
               their author                                           ActivityPub an allowed
                                                                      instance or a partner
    members    a members-only community, its thread, reply and        approved members; an
               document, a member who posts only there                approved partner
    local      a local community, its thread, reply and document      approved members
    remote     a members-only community of another server our node    approved members; over
               follows: its thread and replies (ours, and a remote    ActivityPub only that
               author's)                                              server (not walked here)
    staff      a pending and a suspended account                      moderators and admins
    deleted    a deleted reply's text                                 moderators and admins
                                                                      (its edit history)

Then, for every request:
- no response carries a marker the requester may not read (whatever the route);
- where the path names an object the requester may not read, the answer is
  byte-identical to the one for a missing object on the same route (modulo the path
  itself, which the page may repeat), or, for the Person or Group actor of a member or a
  federated community, its key-only form (an account without an actor — pending,
  suspended — and a local community are missing);
- no answer is a 500.
And for every paged collection of the federation: page 1 and a page past the end.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from federation import actors, policy
from federation.app_state import federation_of
from federation.negotiation import APRoute
from node import threads
from node.sessions import User
from node.settings import Settings
from tests.ap_kit import make_reply, make_thread, settings  # noqa: F401  (settings: a fixture)
from tests.fakefedi import AS_ACCEPT, FakeActor, FakeInstance, signed_headers
from tests.helpers import PASSWORD, csrf, login, make_community, make_user, new_client
from tests.remote_kit import make_remote_community

BASE = "http://testserver"
AP = {"Accept": AS_ACCEPT}
CLASSES = ("public", "members", "local", "remote", "staff", "deleted")
HTML_KINDS = ("visitor", "pending", "member", "expert", "moderator", "admin")
AP_KINDS = ("unsigned", "unsigned_open", "refused", "allowed", "partner", "blocked")
READS: dict[str, set[str]] = {
    "visitor": {"public"},
    "pending": {"public"},
    "member": {"public", "members", "local", "remote"},
    "expert": {"public", "members", "local", "remote"},
    "moderator": {"public", "members", "local", "remote", "staff", "deleted"},
    "admin": {"public", "members", "local", "remote", "staff", "deleted"},
    "unsigned": set(),
    "unsigned_open": {"public"},  # the node in open mode: public content to anyone not blocked
    "refused": set(),
    "allowed": {"public"},
    "partner": {"public", "members"},
    "blocked": set(),
}
KEY_ONLY = {"@context", "id", "type", "preferredUsername", "inbox", "outbox", "endpoints", "publicKey"}
MISSING = {"name": "inexistante", "username": "personne", "id": "999999999"}
PAGED = ("/outbox", "/context", "/replies")
# A deleted reply's text is nobody's, but its place in a readable thread is no secret
# (a tombstone): its URL answers like the thread's other posts.
CONTAINER = {"deleted": "public"}


@dataclass
class World:
    """The objects of every class, by the path parameter that names them."""

    communities: dict[str, str] = field(default_factory=dict)  # name -> class
    users: dict[str, str] = field(default_factory=dict)  # username -> class
    user_ids: dict[int, str] = field(default_factory=dict)
    threads: dict[int, str] = field(default_factory=dict)
    posts: dict[int, str] = field(default_factory=dict)
    documents: dict[int, str] = field(default_factory=dict)


def marker(cls: str, what: str) -> str:
    return f"MARK{cls}{what}"


MARKERS = re.compile(rb"MARK(public|members|local|remote|staff|deleted)")


async def build_world(pool: asyncpg.Pool) -> World:
    world = World()
    author = await make_user(pool, "auteur", display_name=marker("public", "auteur"))
    discreet = await make_user(pool, "discrete", display_name=marker("members", "discrete"))
    world.users.update(auteur="public", discrete="members")
    world.user_ids.update({author: "public", discreet: "members"})
    for cls, visibility in (("public", "public"), ("members", "members"), ("local", "local")):
        name = f"c{visibility}"
        community = await make_community(pool, name, visibility=visibility, title=marker(cls, "titre"))
        world.communities[name] = cls
        writer = discreet if cls == "members" else author
        thread_id, opening = await make_thread(
            pool, community, writer, marker(cls, "fil"), marker(cls, "corps"), pinned=True
        )
        reply = await make_reply(pool, thread_id, writer, marker(cls, "reponse"))
        world.threads[thread_id] = cls
        world.posts.update({opening: cls, reply: cls})
        document = await pool.fetchval(
            "INSERT INTO documents (thread_id, community_id, author_id, title) VALUES ($1, $2, $3, $4) RETURNING id",
            thread_id, community, writer, marker(cls, "document"),
        )  # fmt: skip
        world.documents[document] = cls
    await add_remote_communities(pool, world, author, discreet)
    public_thread = min(t for t, c in world.threads.items() if c == "public")
    deleted = await make_reply(pool, public_thread, author, marker("deleted", "efface"))
    async with pool.acquire() as conn:
        await threads.delete_post(conn, deleted, User(author, "auteur", "auteur", "member", "approved"))
    world.posts[deleted] = "deleted"
    for name, status in (("enattente", "pending"), ("suspendue", "suspended")):
        user_id = await make_user(pool, name, status=status, display_name=marker("staff", name))
        world.users[name] = "staff"
        world.user_ids[user_id] = "staff"
    return world


async def add_remote_communities(pool: asyncpg.Pool, world: World, author: int, discreet: int) -> None:
    """A public and a members-only community of another server (issue 11), each with a
    thread one of our members opened there, her reply, and a remote author's reply."""
    for cls, visibility, writer in (("public", "public", author), ("remote", "members", discreet)):
        community = await make_remote_community(
            pool, f"distante{visibility}", "forum.example", visibility=visibility, title=marker(cls, "titre")
        )
        world.communities[community.name] = cls
        thread_id, opening = await make_thread(
            pool, community.id, writer, marker(cls, "fil"), marker(cls, "corps")
        )
        reply = await make_reply(pool, thread_id, writer, marker(cls, "reponse"))
        theirs = await pool.fetchval(
            "INSERT INTO actors (uri, kind, local, username, domain, display_name) VALUES ($1, 'Person', false,"
            " $2, 'forum.example', $3) RETURNING id",
            f"https://forum.example/u/zoe{visibility}", f"zoe{visibility}", marker(cls, "zoe"),
        )  # fmt: skip
        remote_reply = await make_reply(
            pool, thread_id, None, marker(cls, "distante"), remote_author_id=theirs,
            ap_id=f"https://forum.example/comment/{visibility}",
        )  # fmt: skip
        world.threads[thread_id] = cls
        world.posts.update({opening: cls, reply: cls, remote_reply: cls})


def routes_of(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Mount) and route.routes:
            yield from routes_of(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            yield prefix + route.path, route


_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


def objects_for(template: str, world: World) -> list[tuple[str, str]]:
    """(class, value) of the objects this route template can name, by its first parameter."""
    params = _PARAM.findall(template)
    if not params:
        return []
    name = params[0]
    if template.startswith("/c/") and name == "name" or template.startswith("/admin/communautes/"):
        return [(c, n) for n, c in world.communities.items()]
    if template.startswith("/u/") and name == "username":
        return [(c, u) for u, c in world.users.items()]
    if template.startswith("/t/"):
        return [(c, str(t)) for t, c in world.threads.items()]
    if template.startswith("/p/"):
        return [(c, str(p)) for p, c in world.posts.items()]
    if template.startswith("/documents/"):
        return [(c, str(d)) for d, c in world.documents.items()]
    if template.startswith("/admin/membres/"):
        return [("staff", str(u)) for u in world.user_ids]
    return []


def concrete(template: str, first: str | None) -> str:
    """The template with its first parameter set to ``first`` (others: missing values)."""
    seen = 0

    def value(match: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        if seen == 1 and first is not None:
            return first
        return MISSING.get(match.group(1), "999999999" if match.group(1).endswith("id") else "inexistant")

    return _PARAM.sub(value, template)


def normalised(response: httpx.Response, path: str) -> tuple[int, bytes]:
    """The answer, with the asked path (a page may repeat it: its login link, a form's
    action) and the session's CSRF token taken out."""
    body = response.content.replace(path.encode(), b"PATH")
    body = re.sub(rb"/connexion\?next=[^\"]*", b"/connexion", body)
    body = re.sub(rb'value="[0-9a-f]{64}"', b"TOKEN", body)
    return response.status_code, body


# --- the requesters -------------------------------------------------------------------


@dataclass
class Requester:
    kind: str
    browser: httpx.AsyncClient | None = None  # HTML kinds: a browser with its session
    signer: FakeActor | None = None  # ActivityPub kinds: who signs (None: unsigned)
    token: str = ""

    @property
    def is_html(self) -> bool:
        return self.kind in HTML_KINDS

    async def request(self, client: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
        if self.browser is not None:
            data = {"csrf_token": self.token} if method == "POST" else None
            return await self.browser.request(method, path, data=data)
        headers = dict(AP)
        if self.signer is not None:
            headers = signed_headers(method, BASE + path, None, self.signer.key, "ok", AP)
        return await client.request(method, path, headers=headers)


@pytest.fixture
async def requesters(
    app: Starlette,
    pool: asyncpg.Pool,
    settings: Settings,  # noqa: F811
) -> AsyncIterator[dict[str, Requester]]:
    found: dict[str, Requester] = {}
    roles = {"member": "member", "expert": "expert", "moderator": "moderator", "admin": "admin"}
    for kind, role in roles.items():
        await make_user(pool, f"r{kind}", role=role)
    await make_user(pool, "rpending", status="pending")
    async with pool.acquire() as conn:
        me = await actors.instance_actor(conn, settings)
    assert me.public_key_id and me.public_key_pem
    async with FakeInstance("127.0.0.51") as allowed, FakeInstance("127.0.0.52") as partner:
        refused, blocked = FakeInstance("127.0.0.53", port=8053), FakeInstance("127.0.0.54", port=8054)
        async with pool.acquire() as conn:
            await policy.allow_domain(conn, allowed.host)
            await policy.allow_domain(conn, partner.host)
            await policy.suspend_domain(conn, blocked.host, reason="test")
            await conn.execute(
                "INSERT INTO instances (domain, approved, approved_at) VALUES ($1, true, now())",
                partner.domain,
            )
        for fake in (allowed, partner):
            fake.trust_key(me.public_key_id, me.public_key_pem)
        signers = {"allowed": allowed, "partner": partner, "refused": refused, "blocked": blocked}
        found["unsigned"] = Requester("unsigned")
        found["unsigned_open"] = Requester("unsigned_open")
        for kind, fake in signers.items():
            found[kind] = Requester(kind, signer=fake.add_actor(f"a{kind}"))
        browsers = []
        for kind in HTML_KINDS:
            browser = new_client(app)
            browsers.append(browser)
            if kind != "visitor":
                await login(browser, f"r{kind}")
            found[kind] = Requester(kind, browser=browser, token=await csrf(browser, "/connexion"))
        try:
            yield found
        finally:
            for browser in browsers:
                await browser.aclose()
            await federation_of(app).close()  # the fetcher a signed GET created


# --- the walk ---------------------------------------------------------------------------


def methods_of(route: Route) -> list[str]:
    return sorted((route.methods or {"GET"}) - {"HEAD"})


def is_federation(route: Route) -> bool:
    return route.endpoint.__module__.startswith("federation.")


def is_actor(route: Route) -> bool:
    return is_federation(route) and route.name in ("ap_person", "ap_group")


def paths_for(template: str, route: Route, world: World) -> Iterator[tuple[str | None, str, str]]:
    """(class of the object, path, path of a missing object on the same route)."""
    objects = objects_for(template, world)
    missing = concrete(template, None)
    yield None, missing, missing
    for cls, value in objects:
        path = concrete(template, value)
        yield cls, path, missing
        if is_federation(route) and template.endswith(PAGED):
            for page in ("1", "999"):
                yield cls, f"{path}?page={page}", f"{missing}?page={page}"


def readable_on(requester: Requester, route: Route) -> set[str]:
    """What ``requester`` may read through ``route``: an HTML page fetched by a server
    is fetched as by any visitor (the public forum is public to browsers)."""
    readable = set(READS[requester.kind])
    if not requester.is_html and not is_federation(route):
        readable.add("public")
    return readable


def leaks(response: httpx.Response, readable: set[str]) -> set[str]:
    return {m.decode() for m in MARKERS.findall(response.content)} - readable


async def walk(
    client: httpx.AsyncClient, requester: Requester, world: World, app: Starlette, method: str
) -> list[str]:
    problems: list[str] = []
    ap_templates = {t for t, r in routes_of(app.routes) if isinstance(r, APRoute)}
    for template, route in routes_of(app.routes):
        if method not in methods_of(route) or getattr(route.endpoint, "csrf_exempt", False):
            continue
        if requester.is_html and isinstance(route, APRoute):
            continue  # a browser's request reaches the page of this path
        if not requester.is_html and template in ap_templates and not isinstance(route, APRoute):
            continue  # a server's request reaches the ActivityPub route of this path
        misses: dict[str, tuple[int, bytes]] = {}
        readable = readable_on(requester, route)
        for cls, path, missing in paths_for(template, route, world):
            if method == "POST" and (cls is None or CONTAINER.get(cls, cls) in readable):
                continue  # POSTs only where they must be refused: nothing may change
            response = await requester.request(client, method, path)
            where = f"{requester.kind} {method} {path}"
            if response.status_code >= 500:
                problems.append(f"{where}: {response.status_code}")
                continue
            leaked = leaks(response, readable)
            if leaked:
                problems.append(f"{where}: shows {sorted(leaked)}")
            if cls is None or CONTAINER.get(cls, cls) in readable:
                continue
            if missing not in misses:
                misses[missing] = normalised(await requester.request(client, method, missing), missing)
            # (a remote community's Group is not ours to serve: it answers like a missing one)
            if (
                is_actor(route)
                and requester.kind != "blocked"
                and cls in ("public", "members")
                and "@" not in path
            ):
                if response.status_code != 200 or set(response.json()) != KEY_ONLY:
                    problems.append(f"{where}: not a key-only actor")
            elif normalised(response, path) != misses[missing]:
                problems.append(f"{where}: {response.status_code}, unlike a missing object")
    return problems


@pytest.mark.parametrize("kind", [*HTML_KINDS, *AP_KINDS])
async def test_every_route_serves_each_requester_only_what_it_may_read(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    app: Starlette,
    requesters: dict[str, Requester],
    kind: str,
) -> None:
    # Given objects of every class, and one requester of this kind
    world = await build_world(pool)
    requester = requesters[kind]
    if kind == "unsigned_open":
        async with pool.acquire() as conn:
            await policy.set_federation_mode(conn, "open")
    before = await pool.fetchval("SELECT count(*) FROM audit_log") + await pool.fetchval(
        "SELECT count(*) FROM posts WHERE deleted_at IS NULL"
    )

    # When it walks every GET route, and POSTs to every object it may not read
    problems = await walk(client, requester, world, app, "GET")
    if requester.is_html:
        problems += await walk(client, requester, world, app, "POST")

    # Then it saw only what it may read, refusals looked like missing objects, and
    # its refused POSTs changed nothing
    assert problems == [], "\n".join(problems)
    after = await pool.fetchval("SELECT count(*) FROM audit_log") + await pool.fetchval(
        "SELECT count(*) FROM posts WHERE deleted_at IS NULL"
    )
    assert after == before


def test_every_object_route_is_walked(app: Starlette) -> None:
    # Every route naming a community, member, thread or post gets objects of its classes:
    # a new route under these prefixes is covered the day it is added.
    world = World({"c": "public"}, {"u": "public"}, {1: "staff"}, {1: "public"}, {1: "public"})
    named = [
        t for t, _ in routes_of(app.routes) if re.match(r"/(c|u|t|p|admin/communautes|admin/membres)/\{", t)
    ]
    assert len(named) > 30
    assert all(objects_for(t, world) for t in named), [t for t in named if not objects_for(t, world)]
    assert PASSWORD  # (the requesters log in with the helpers' password)
