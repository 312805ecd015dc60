"""Remote communities (issue 11): a Group of another server that our node follows is a
row of ``communities`` named ``name@host`` (migration 0120). It is never served by us as
one of our Groups."""

from __future__ import annotations

import dataclasses

import asyncpg
import httpx
import pytest

from federation import actors, remote
from node import communities, threads
from tests.ap_kit import AP, open_federation  # noqa: F401  (fixture)
from tests.helpers import login, make_community, make_user
from tests.remote_kit import make_remote_community


async def test_a_remote_community_is_a_community_row_found_by_its_actor(pool: asyncpg.Pool) -> None:
    # Given a remote Group stored as a remote community
    remote = await make_remote_community(pool, "lecture", "Forum.Example", visibility="members")

    # Then it is a community named name@host, remote, found by its actor and by name
    assert remote.remote and remote.actor_id is not None
    assert remote.name == "lecture@forum.example" and remote.visibility == "members"
    async with pool.acquire() as conn:
        assert await communities.by_actor(conn, remote.actor_id) == remote
        assert await communities.find(conn, "lecture@forum.example") == remote
        # And storing it again updates the same row
        again = await communities.upsert_remote(
            conn, actor_id=remote.actor_id, name=remote.name, title="Nouveau titre",
            description="", visibility="public",
        )  # fmt: skip
        assert again.id == remote.id and again.title == "Nouveau titre" and again.visibility == "public"
        # And a local community is not remote
        ours = await communities.by_id(conn, await make_community(pool, "juridique", visibility="public"))
        assert ours is not None and not ours.remote and ours.actor_id is None


async def test_a_remote_community_is_never_local(pool: asyncpg.Pool) -> None:
    remote = await make_remote_community(pool)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE communities SET visibility = 'local' WHERE id = $1", remote.id)
        with pytest.raises(ValueError):
            await communities.upsert_remote(
                conn, actor_id=remote.actor_id or 0, name=remote.name, title="", description="",
                visibility="local",
            )  # fmt: skip


async def test_count_followers_counts_our_subscribed_members(pool: asyncpg.Pool) -> None:
    remote = await make_remote_community(pool)
    for name in ("amina", "basile"):
        await pool.execute(
            "INSERT INTO community_follows (user_id, community_id) VALUES ($1, $2)",
            await make_user(pool, name), remote.id,
        )  # fmt: skip
    async with pool.acquire() as conn:
        assert await communities.count_followers(conn, remote.id) == 2


async def test_our_federation_endpoints_never_serve_a_remote_community(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a public remote community stored here, and one of ours for comparison
    remote = await make_remote_community(pool, "lecture", "forum.example", visibility="public")
    await make_community(pool, "juridique", visibility="public")
    assert (await client.get("/c/juridique", headers=AP)).status_code == 200
    unsigned = await client.post("/c/juridique/inbox", content=b"{}", headers={"Content-Type": AP["Accept"]})
    assert unsigned.status_code not in (200, 202, 404)  # refused for its missing signature, not unknown

    # When a server asks us for it as if it were one of our Groups
    name = remote.name
    asked = [
        await client.get(f"/c/{name}", headers=AP),
        await client.get(f"/c/{name}/outbox", headers=AP),
        await client.get(f"/c/{name}/followers", headers=AP),
        await client.get(f"/c/{name}/featured", headers=AP),
        await client.get(f"/c/{name}/moderators", headers=AP),
        await client.get("/.well-known/webfinger", params={"resource": f"acct:{name}@testserver"}),
        await client.get("/.well-known/webfinger", params={"resource": "http://testserver/c/" + name}),
        await client.post(f"/c/{name}/inbox", content=b"{}", headers={"Content-Type": AP["Accept"]}),
    ]

    # Then every answer is 404, exactly like a name that never existed
    assert [r.status_code for r in asked] == [404] * len(asked)


async def test_a_remote_community_page_shows_its_origin_and_no_local_only_action(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a remote community followed by the node, with a moderator known from its server
    remote = await make_remote_community(pool, "lecture", "forum.example", visibility="public")
    instance = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain) VALUES ($1, 'Application', false, 'forum.example',"
        " 'forum.example') RETURNING id", "https://forum.example/actor"
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO group_follows (community_id, follower_id, follow_activity_id, state) VALUES ($1, $2, $3, 'accepted')",
        remote.id, instance, "https://testserver/activities/1",
    )  # fmt: skip
    moderator = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, display_name, url) VALUES"
        " ('https://forum.example/u/zoe', 'Person', false, 'zoe', 'forum.example', 'Zoé', 'javascript:alert(1)')"
        " RETURNING id"
    )
    await pool.execute(
        "INSERT INTO remote_moderators (community_id, actor_id) VALUES ($1, $2)", remote.id, moderator
    )
    await make_user(pool, "amina")
    await login(client, "amina")

    # When a member opens its page
    page = await client.get("/c/lecture@forum.example")

    # Then it says where it comes from, links to the original and to its moderator (never a script URL)
    assert page.status_code == 200
    assert (
        "Communauté de forum.example" in page.text and 'href="https://forum.example/c/lecture"' in page.text
    )
    assert "Suivie par ce nœud" in page.text
    assert (
        'href="https://forum.example/u/zoe"' in page.text
        and "Zoé" in page.text
        and "javascript:" not in page.text
    )
    # And its library (the documents its server sent) is read-only here: no upload
    assert 'href="/c/lecture@forum.example/documents"' in page.text
    library = await client.get("/c/lecture@forum.example/documents")
    assert library.status_code == 200 and "/documents/nouveau" not in library.text
    assert (await client.get("/c/lecture@forum.example/documents/nouveau")).status_code == 404
    # And it is listed with its host
    assert "forum.example</span>" in (await client.get("/communautes")).text


async def test_refresh_community_follows_the_group_and_creates_nothing(pool: asyncpg.Pool) -> None:
    # Given a remote community whose Group now has another name and approves its followers
    ours = await make_remote_community(pool, "lecture", "forum.example", visibility="public")
    async with pool.acquire() as conn:
        group = await actors.get_cached(conn, "https://forum.example/c/lecture")
        assert group is not None
        changed = dataclasses.replace(
            group, display_name="Lecture (fermée)", manually_approves_followers=True
        )

        # When it is refreshed, inside a transaction that must stay usable
        async with conn.transaction():
            refreshed = await remote.refresh_community(conn, changed)
            stranger = dataclasses.replace(group, id=await make_actor(conn, "https://forum.example/c/autre"))
            assert await remote.refresh_community(conn, stranger) is None

    # Then the row follows the Group, and no community was made for a Group we do not follow
    assert refreshed is not None and refreshed.id == ours.id
    assert refreshed.title == "Lecture (fermée)" and refreshed.visibility == "members"
    assert await pool.fetchval("SELECT count(*) FROM communities") == 1


async def make_actor(conn: asyncpg.Connection, uri: str) -> int:
    actor_id: int = await conn.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain) VALUES ($1, 'Group', false, 'autre', 'forum.example')"
        " RETURNING id", uri,
    )  # fmt: skip
    return actor_id


@pytest.mark.parametrize(
    ("profile", "shown"),
    [("https://forum.example/u/zoe", 'href="https://forum.example/u/zoe"'), ("javascript:alert(1)", None)],
)
async def test_a_remote_author_links_to_her_profile_on_her_server_never_to_a_script(
    client: httpx.AsyncClient, pool: asyncpg.Pool, profile: str, shown: str | None
) -> None:
    # Given a thread of a public remote community opened by a remote author, whose profile URL is `profile`
    remote = await make_remote_community(pool, "lecture", "forum.example", visibility="public")
    author = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, display_name, url) VALUES"
        " ('https://forum.example/u/zoe', 'Person', false, 'zoe', 'forum.example', 'Zoé', $1) RETURNING id",
        profile,
    )
    async with pool.acquire() as conn:
        thread_id = await threads.store_remote_thread(
            conn,
            threads.RemoteThread(
                item_id=0, community_id=remote.id, author_id=author, ap_id="https://forum.example/post/1",
                title="Accueil de nuit", source="Comment faites-vous ?", content_html="<p>Comment faites-vous ?</p>",
                announce_page=False,
            ),
            None,
        )  # fmt: skip

    # When a visitor opens the thread
    page = await client.get(f"/t/{thread_id}")

    # Then the author's name, her server, and a link to her profile there (http(s) only) are shown
    assert page.status_code == 200
    assert "Zoé" in page.text and "@zoe@forum.example" in page.text
    if shown is None:
        assert "javascript:" not in page.text
    else:
        assert shown in page.text and 'rel="nofollow noopener noreferrer"' in page.text
