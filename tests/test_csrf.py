"""Every form-handling route refuses a POST without a valid CSRF token.

The test walks the routes of the whole app (through Mounts), so a route added
later by any area is checked too. The only exemption is an ActivityPub inbox:
its endpoint carries ``csrf_exempt = True`` (see ``node.web.forms.form``).

Path parameters get plausible values that exist in the test's database (ids → 1,
``username`` → the admin, ``name`` → the community): a new route whose parameter
cannot be filled that way adds its value to ``NAMED_VALUES``.
"""

from __future__ import annotations

import asyncpg
import httpx
from starlette.applications import Starlette

from tests.helpers import add_thread, login, make_community, make_user
from tests.routes import checked_routes


async def counts(pool: asyncpg.Pool) -> tuple[int, ...]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions),"
        " (SELECT count(*) FROM audit_log), (SELECT count(*) FROM communities),"
        " (SELECT count(*) FROM community_experts), (SELECT count(*) FROM posts),"
        " (SELECT count(*) FROM posts WHERE deleted_at IS NOT NULL), (SELECT count(*) FROM community_follows)"
    )
    return tuple(row)


async def assert_all_refused(
    client: httpx.AsyncClient, paths: list[str], token: str | None, allowed: tuple[int, ...]
) -> None:
    form = {"username": "admin", "password": "un-mot-de-passe-solide", "reason": "x", "role": "member"}
    if token is not None:
        form["csrf_token"] = token
    for path in paths:
        response = await client.post(path, data=form)
        assert response.status_code in allowed, f"POST {path} answered {response.status_code}"


async def test_the_walk_finds_the_form_routes(app: Starlette) -> None:
    paths = checked_routes(app)
    for expected in (
        "/inscription",
        "/connexion",
        "/deconnexion",
        "/compte/mot-de-passe",
        "/admin/membres/1/role",
    ):
        assert expected in paths


async def test_every_post_route_refuses_a_form_without_csrf_token(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a node with an admin (id 1), a pending person, a community with a thread, the admin logged in
    await make_user(pool, "admin", role="admin")
    await make_user(pool, "amina", status="pending")
    community_id = await make_community(pool, "medical")
    await add_thread(pool, community_id, author_id=1)
    paths = checked_routes(app)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.30", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as admin:
        await login(admin, "admin")
        before = await counts(pool)

        # When every POST route gets a form without token, or with a forged one, as admin and as anonymous
        await assert_all_refused(admin, paths, None, allowed=(403,))
        await assert_all_refused(admin, paths, "0" * 64, allowed=(403,))
        await assert_all_refused(client, paths, None, allowed=(403, 404))

        # Then the admin always got 403 (every path exists for her), anonymous 403 or a
        # missing page, and nothing changed: the admin is even still logged in
        assert await counts(pool) == before
        assert (await admin.get("/admin")).status_code == 200
