"""Admin member management, profile pages and the append-only audit log."""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from tests.helpers import (
    NEXT_PAGE,
    PREVIOUS_PAGE,
    csrf,
    link,
    login,
    make_community,
    make_user,
    post_form,
    without_next,
)


async def as_admin(client: httpx.AsyncClient, pool: asyncpg.Pool) -> int:
    admin_id = await make_user(pool, "admin", role="admin")
    await login(client, "admin")
    return admin_id


async def test_admin_searches_members_by_name(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await as_admin(client, pool)
    await make_user(pool, "amina", display_name="Amina Koné")
    await make_user(pool, "binta", display_name="Binta Sow")
    page = await client.get("/admin/membres", params={"q": "koné"})
    assert page.status_code == 200
    assert "Amina Koné" in page.text
    assert "Binta Sow" not in page.text
    # LIKE wildcards typed in the search are taken literally
    assert "Amina" not in (await client.get("/admin/membres", params={"q": "%"})).text


async def add_sixty_members(pool: asyncpg.Pool) -> None:
    """Sixty approved members besides the admin, « membre00 » … « membre59 »."""
    await pool.execute(
        "INSERT INTO users (username, display_name, email, password_hash, role, status) "
        "SELECT 'membre' || lpad(i::text, 2, '0'), 'Membre ' || i, 'm' || i || '@exemple.org', 'x', "
        "'member', 'approved' FROM generate_series(0, 59) i"
    )


async def test_admin_member_list_pages_by_name(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given 60 members besides the admin (« membre00 » … « membre59 »)
    await as_admin(client, pool)
    await add_sixty_members(pool)
    # When the admin reads the list, then the next page by its link
    first = (await client.get("/admin/membres", params={"q": "membre"})).text
    after = re.search(r'href="/admin/membres\?q=membre&amp;apres=([^"]+)" rel="next"', first)
    assert after is not None and "avant=" not in first
    second = (await client.get("/admin/membres", params={"q": "membre", "apres": after[1]})).text
    # Then each page has its names, in order, and the second page links back to the first
    assert "@membre00" in first and "@membre49" in first and "@membre50" not in first
    assert "@membre50" in second and "@membre59" in second and "@membre49" not in second
    assert 'rel="next"' not in second
    before = re.search(r'href="/admin/membres\?q=membre&amp;avant=([^"]+)" rel="prev"', second)
    assert before is not None
    again = (await client.get("/admin/membres", params={"q": "membre", "avant": before[1]})).text
    assert again.count("@membre") == 50 and "@membre00" in again and 'rel="prev"' not in again


async def test_a_member_search_cursor_past_every_match_is_a_missing_page(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given 60 members « membre00 » … « membre59 », the admin on the first page of a search
    await as_admin(client, pool)
    await add_sixty_members(pool)
    first = (await client.get("/admin/membres", params={"q": "membre"})).text
    onwards = link(NEXT_PAGE, first)
    assert onwards is not None and link(PREVIOUS_PAGE, first) is None
    # When the ten members of the next page are erased before she follows the link
    await pool.execute("DELETE FROM users WHERE username >= 'membre50' AND username LIKE 'membre%'")
    # Then it is a missing page, as in every keyset list, not an empty one
    assert (await client.get(onwards)).status_code == 404
    # And so are the pages past the last name and before the first
    for params in (
        {"q": "membre", "apres": "membre49"},
        {"q": "membre", "avant": "membre00"},
        {"apres": "zz"},
    ):
        assert (await client.get("/admin/membres", params=params)).status_code == 404, params
    # While the first page of a search with no match is a page that says so, and an
    # empty cursor is the first page
    none = await client.get("/admin/membres", params={"q": "personne"})
    assert none.status_code == 200 and "Aucun membre trouvé." in none.text
    top = await client.get("/admin/membres", params={"q": "membre", "avant": ""})
    assert top.status_code == 200 and top.text.count("@membre") == 50 and link(NEXT_PAGE, top.text) is None


async def test_admin_changes_a_role_and_it_is_audited(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given an admin and a member
    admin_id = await as_admin(client, pool)
    amina = await make_user(pool, "amina")

    # When the admin makes her a moderator
    response = await post_form(client, f"/admin/membres/{amina}/role", {"role": "moderator"}, page="/admin")

    # Then her role changed and the audit log says who did what
    assert response.status_code == 303
    assert await pool.fetchval("SELECT role FROM users WHERE id = $1", amina) == "moderator"
    row = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'member.role'")
    assert row["actor_id"] == admin_id
    assert row["target_id"] == str(amina)
    assert row["details"] == {"username": "amina", "from": "member", "to": "moderator"}


async def test_unknown_role_and_own_role_are_refused(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    admin_id = await as_admin(client, pool)
    amina = await make_user(pool, "amina")
    unknown = await post_form(client, f"/admin/membres/{amina}/role", {"role": "roi"}, page="/admin")
    assert unknown.status_code == 400
    assert "Rôle inconnu." in unknown.text
    own = await post_form(client, f"/admin/membres/{admin_id}/role", {"role": "member"}, page="/admin")
    assert own.status_code == 400
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'member.role'") == 0


async def test_admin_assigns_an_expert_to_communities(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await as_admin(client, pool)
    amina = await make_user(pool, "amina", role="expert")
    medical = await make_community(pool, "medical")
    legal = await make_community(pool, "juridique")
    token = await csrf(client, f"/admin/membres/{amina}")

    response = await client.post(
        f"/admin/membres/{amina}/experts", data={"csrf_token": token, "community": [str(medical), str(legal)]}
    )
    assert response.status_code == 303
    await post_form(client, f"/admin/membres/{amina}/experts", {"community": str(legal)}, page="/admin")

    assert await pool.fetchval("SELECT array_agg(community_id) FROM community_experts") == [legal]
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'member.experts'") == 2
    profile = await client.get("/u/amina")
    assert "Juridique" in profile.text and "Expert·e" in profile.text


async def test_suspension_ends_sessions_and_reactivation_restores_access(
    app: Starlette, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a logged-in member
    await as_admin(client, pool)
    amina = await make_user(pool, "amina")
    transport = httpx.ASGITransport(app=app, client=("192.0.2.60", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as member:
        await login(member, "amina")

        # When an admin suspends her
        response = await post_form(
            client,
            f"/admin/membres/{amina}/suspendre",
            {"reason": "Partage d'un dossier nominatif."},
            page="/admin",
        )

        # Then her session is gone and she cannot log in again
        assert response.status_code == 303
        assert (await member.get("/compte")).status_code == 404
        assert await pool.fetchval("SELECT count(*) FROM sessions WHERE user_id = $1", amina) == 0
        again = await post_form(
            member, "/connexion", {"username": "amina", "password": "un-mot-de-passe-solide"}
        )
        assert again.status_code == 403

        # And once reactivated, she can
        await post_form(client, f"/admin/membres/{amina}/reactiver", {}, page="/admin")
        await login(member, "amina")
        assert (await member.get("/compte")).status_code == 200
    actions = [
        r["action"]
        for r in await pool.fetch("SELECT action FROM audit_log WHERE target_id = $1 ORDER BY id", str(amina))
    ]
    assert actions == ["member.suspend", "member.reactivate"]


@pytest.mark.parametrize("role", [None, "member", "expert", "moderator"])
async def test_only_admins_see_member_management(
    client: httpx.AsyncClient, pool: asyncpg.Pool, role: str | None
) -> None:
    amina = await make_user(pool, "amina")
    if role is not None:
        await make_user(pool, "someone", role=role)
        await login(client, "someone")
    for path in ("/admin", "/admin/membres", f"/admin/membres/{amina}"):
        assert (await client.get(path)).status_code == 404, path


async def test_admin_index_links_to_member_management(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await as_admin(client, pool)
    page = await client.get("/admin")
    assert page.status_code == 200
    assert 'href="/admin/membres"' in page.text


async def test_profile_page_is_for_approved_members_only(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given an approved member with a profile, a pending person and a suspended member
    await make_user(
        pool, "amina", display_name="Amina Koné", organisation="Hôpital régional", profession="medical"
    )
    await make_user(pool, "fatou", status="pending")
    await make_user(pool, "sali", status="suspended")

    # Then an anonymous visitor gets a missing page, exactly as for a name that does not exist
    anonymous = await client.get("/u/amina")
    missing = await client.get("/u/personne")
    assert anonymous.status_code == missing.status_code == 404
    assert without_next(anonymous.text) == without_next(missing.text)

    # And a member sees the profile, but not the non-approved accounts
    await make_user(pool, "binta")
    await login(client, "binta")
    page = await client.get("/u/amina")
    assert page.status_code == 200
    for shown in ("Amina Koné", "Hôpital régional", "Médical", "Membre"):
        assert shown in page.text
    assert (await client.get("/u/fatou")).status_code == 404
    assert (await client.get("/u/sali")).status_code == 404


async def test_audit_log_rows_cannot_be_changed_or_removed(pool: asyncpg.Pool) -> None:
    # Given an audited action
    await make_community(pool, "medical")
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 1

    # Then neither UPDATE, DELETE nor TRUNCATE can touch it
    for statement in (
        "UPDATE audit_log SET reason = 'effacé'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pool.execute(statement)
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 1


async def test_member_ids_out_of_a_bigints_range_are_missing_pages(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await as_admin(client, pool)
    for path in ("/admin/membres/99999999999999999999999", "/admin/membres/0"):
        assert (await client.get(path)).status_code == 404, path
