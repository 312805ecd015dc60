"""Visibility rules: anonymous visitors (and accounts not approved) see public communities
only; anything they may not read answers exactly like a missing page."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from node import communities, threads
from node.sessions import User
from tests.helpers import login, make_community, make_user, new_client, post_form, without_next


async def member(pool: asyncpg.Pool, username: str, role: str = "member", status: str = "approved") -> User:
    user_id = await make_user(pool, username, role=role, status=status)
    return User(user_id, username, username, role, status)


async def seed(pool: asyncpg.Pool) -> dict[str, threads.Created]:
    """One thread with an edited reply in each kind of community."""
    for name, visibility in (("juridique", "public"), ("medical", "members"), ("coordination", "local")):
        await make_community(pool, name, visibility=visibility)
    author = await member(pool, "amina")
    created = {}
    async with pool.acquire() as conn:
        for name in ("juridique", "medical", "coordination"):
            community = await communities.find(conn, name)
            assert community is not None
            created[name] = await threads.create_thread(
                conn, community, author, f"Titre {name}", f"Corps {name}"
            )
            reply = await threads.create_reply(conn, created[name].thread_id, author, "Réponse")
            await threads.edit_post(conn, reply, author, "Réponse corrigée")
    return created


def paths(c: threads.Created, name: str) -> list[str]:
    return [
        f"/c/{name}",
        f"/c/{name}/nouveau",
        f"/t/{c.thread_id}",
        f"/p/{c.post_id}",
        f"/p/{c.post_id}/historique",
        f"/p/{c.post_id}/repondre",
        f"/p/{c.post_id}/modifier",
        f"/p/{c.post_id}/supprimer",
    ]


async def missing_page(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/c/nexistepas")


def test_can_read_decides_by_visibility_and_approval() -> None:
    approved = User(1, "a", "A", "member", "approved")
    for status in ("pending", "refused", "suspended"):
        other = User(2, "b", "B", "member", status)
        assert communities.can_read(other, "public")
        assert not communities.can_read(other, "members")
        assert not communities.can_read(other, "local")
    assert communities.can_read(None, "public") and not communities.can_read(None, "members")
    assert all(communities.can_read(approved, v) for v in communities.VISIBILITIES)


@pytest.mark.parametrize("name", ["medical", "coordination"])
async def test_anonymous_visitor_gets_the_missing_page_for_members_and_local_content(
    pool: asyncpg.Pool, client: httpx.AsyncClient, name: str
) -> None:
    # Given threads in members-only and local communities
    created = await seed(pool)
    missing = await missing_page(client)
    # When an anonymous visitor asks for any of their pages
    for path in paths(created[name], name):
        response = await client.get(path)
        # Then the answer is exactly the missing page
        assert response.status_code == 404, path
        assert without_next(response.text) == without_next(missing.text), path


async def test_pending_account_reads_like_an_anonymous_visitor(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    created = await seed(pool)
    await member(pool, "attente", status="pending")
    await login(client, "attente")
    for path in paths(created["medical"], "medical")[:4]:
        assert (await client.get(path)).status_code == 404, path
    assert (await client.get(f"/t/{created['juridique'].thread_id}")).status_code == 200


async def test_anonymous_visitor_reads_public_communities_but_not_history(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    created = await seed(pool)
    page = await client.get("/c/juridique")
    assert page.status_code == 200 and "Titre juridique" in page.text
    thread = await client.get(f"/t/{created['juridique'].thread_id}")
    assert thread.status_code == 200 and "Corps juridique" in thread.text
    # History is for moderators and the community's experts
    history = await client.get(f"/p/{created['juridique'].post_id}/historique")
    assert history.status_code == 404


async def test_communities_list_shows_only_what_the_viewer_may_read(
    pool: asyncpg.Pool, client: httpx.AsyncClient, app: Starlette
) -> None:
    await seed(pool)
    anonymous = await client.get("/communautes")
    assert "Juridique" in anonymous.text
    assert "Medical" not in anonymous.text and "Coordination" not in anonymous.text
    async with new_client(app) as browser:
        await login(browser, "amina")
        listing = await browser.get("/communautes")
    for title in ("Juridique", "Medical", "Coordination"):
        assert title in listing.text
    assert "1 discussion" in listing.text


async def test_member_sees_every_community_page_and_its_animators(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    created = await seed(pool)
    expert = await member(pool, "docteur", role="expert")
    await pool.execute(
        "UPDATE users SET display_name = 'Dr Mukendi', organisation = 'Hôpital de Panzi' WHERE id = $1",
        expert.id,
    )
    community_id = await pool.fetchval("SELECT id FROM communities WHERE name = 'medical'")
    await pool.execute("INSERT INTO community_experts VALUES ($1, $2)", community_id, expert.id)
    await login(client, "amina")
    for name in ("medical", "coordination"):
        page = await client.get(f"/c/{name}")
        assert page.status_code == 200
        assert f"Titre {name}" in page.text
        assert (await client.get(f"/t/{created[name].thread_id}")).status_code == 200
    page = await client.get("/c/medical")
    assert "Dr Mukendi" in page.text and "Hôpital de Panzi" in page.text


async def test_follow_and_unfollow_from_the_community_page(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await seed(pool)
    await login(client, "amina")
    response = await post_form(client, "/c/medical/suivre", {"action": "follow"}, page="/c/medical")
    assert response.status_code == 303
    assert await pool.fetchval("SELECT count(*) FROM community_follows") == 1
    assert "Ne plus suivre" in (await client.get("/c/medical")).text
    await post_form(client, "/c/medical/suivre", {"action": "unfollow"}, page="/c/medical")
    assert await pool.fetchval("SELECT count(*) FROM community_follows") == 0


async def test_anonymous_cannot_follow(pool: asyncpg.Pool, client: httpx.AsyncClient) -> None:
    await seed(pool)
    response = await post_form(client, "/c/juridique/suivre", {"action": "follow"}, page="/connexion")
    assert response.status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM community_follows") == 0


async def test_admin_creates_and_edits_a_community(pool: asyncpg.Pool, client: httpx.AsyncClient) -> None:
    await member(pool, "admin", role="admin")
    await login(client, "admin")
    form = {
        "name": "sante_mentale",
        "title": "Santé mentale",
        "description": "Échanges entre psychologues",
        "rules": "Anonymisez chaque cas.",
        "visibility": "members",
    }
    response = await post_form(client, "/admin/communautes", form)
    assert response.status_code == 303
    row = await pool.fetchrow("SELECT * FROM communities WHERE name = 'sante_mentale'")
    assert (row["title"], row["visibility"], row["rules"]) == (
        "Santé mentale",
        "members",
        "Anonymisez chaque cas.",
    )
    edit = {"action": "update", "title": "Santé mentale et soutien", "description": "D", "rules": "R"}
    response = await post_form(client, "/admin/communautes/sante_mentale", edit)
    assert response.status_code == 303
    assert (
        await pool.fetchval("SELECT title FROM communities WHERE name = 'sante_mentale'")
        == "Santé mentale et soutien"
    )
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["community.create", "community.update"]


async def test_admin_community_form_errors_are_french_and_write_nothing(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await member(pool, "admin", role="admin")
    await make_community(pool, "medical")
    await login(client, "admin")
    for form in (
        {"name": "Nom Invalide!", "title": "T", "visibility": "members"},
        {"name": "medical", "title": "Doublon", "visibility": "members"},
        {"name": "valide", "title": "", "visibility": "members"},
        {"name": "valide", "title": "T", "visibility": "secret"},
    ):
        response = await post_form(client, "/admin/communautes", form)
        assert response.status_code in (400, 409)
        assert "Le formulaire contient" in response.text
    assert await pool.fetchval("SELECT count(*) FROM communities") == 1


async def test_community_admin_is_for_admins_only(pool: asyncpg.Pool, client: httpx.AsyncClient) -> None:
    await member(pool, "modo", role="moderator")
    await login(client, "modo")
    assert (await client.get("/admin/communautes")).status_code == 404
    response = await post_form(
        client, "/admin/communautes", {"name": "x_y_z", "title": "T"}, page="/communautes"
    )
    assert response.status_code == 404
