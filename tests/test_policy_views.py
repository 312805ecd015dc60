"""The admin page ``/admin/federation``: permissions, CSRF, every change audited."""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest

from node import sessions
from tests.helpers import csrf_from, make_community, make_user

PAGE = "/admin/federation"


async def log_in_as(client: httpx.AsyncClient, pool: asyncpg.Pool, username: str, role: str) -> int:
    user_id = await make_user(pool, username, role=role)
    token = await sessions.create(pool, user_id, "pytest", "203.0.113.7")
    client.cookies.set(sessions.COOKIE, token)
    return user_id


async def admin_token(client: httpx.AsyncClient) -> str:
    page = await client.get(PAGE)
    assert page.status_code == 200
    return csrf_from(page.text)


async def submit(client: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    return await client.post(PAGE + path, data={**data, "csrf_token": await admin_token(client)})


@pytest.mark.parametrize("role", [None, "member", "moderator"])
async def test_only_admins_see_the_page(
    client: httpx.AsyncClient, pool: asyncpg.Pool, role: str | None
) -> None:
    if role:
        await log_in_as(client, pool, "someone", role)
    assert (await client.get(PAGE)).status_code == 404
    assert (await client.get(PAGE + "/export.csv")).status_code == 404
    blocked = await client.post(PAGE + "/blocages", data={"domain": "x.example", "severity": "suspend"})
    assert blocked.status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM domain_blocks") == 0


async def test_a_form_without_csrf_token_is_refused(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await log_in_as(client, pool, "admin", "admin")
    response = await client.post(PAGE + "/mode", data={"mode": "open"})
    assert response.status_code == 403
    assert (
        await pool.fetchval("SELECT value #>> '{}' FROM node_settings WHERE key = 'federation_mode'")
        == "allowlist"
    )


async def test_admin_blocks_and_unblocks_a_domain(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    admin = await log_in_as(client, pool, "admin", "admin")
    # When the admin suspends a domain with a reason
    response = await submit(
        client,
        "/blocages",
        {
            "domain": "Spam.Example",
            "severity": "suspend",
            "reason": "Spam",
            "private_comment": "note",
            "reject_reports": "1",
        },
    )
    # Then it is stored, shown on the page, and audited with the admin's id
    assert response.status_code == 303 and response.headers["location"] == PAGE + "?fait=bloque"
    page = await client.get(response.headers["location"])
    assert "Blocage enregistré." in page.text and "spam.example" in page.text
    row = await pool.fetchrow(
        "SELECT severity, reject_reports, public_comment, created_by FROM domain_blocks"
    )
    assert tuple(row) == ("suspend", True, "Spam", admin)
    # When it is lifted
    assert (await submit(client, "/blocages/lever", {"domain": "spam.example"})).status_code == 303
    assert await pool.fetchval("SELECT count(*) FROM domain_blocks") == 0
    audit = await pool.fetch("SELECT action, actor_id, actor_label FROM audit_log ORDER BY id")
    assert [tuple(r) for r in audit] == [
        ("federation.block_domain", admin, "admin"),
        ("federation.unblock_domain", admin, "admin"),
    ]


async def test_bad_input_shows_a_french_error_and_changes_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await log_in_as(client, pool, "admin", "admin")
    bad_domain = await submit(client, "/blocages", {"domain": "pas un domaine", "severity": "suspend"})
    assert bad_domain.status_code == 400 and "Nom de domaine invalide" in bad_domain.text
    bad_severity = await submit(client, "/blocages", {"domain": "x.example", "severity": "banish"})
    assert bad_severity.status_code == 400 and "Sévérité inconnue" in bad_severity.text
    own = await submit(client, "/blocages", {"domain": "testserver", "severity": "suspend"})
    assert own.status_code == 400
    assert await pool.fetchval("SELECT count(*) FROM domain_blocks") == 0


async def test_admin_switches_mode_and_edits_the_allowlist(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await log_in_as(client, pool, "admin", "admin")
    assert "Actuellement : liste d'autorisation" in (await client.get(PAGE)).text
    assert (
        await submit(client, "/autorises", {"domain": "partner.example", "note": "CHU"})
    ).status_code == 303
    assert (await submit(client, "/mode", {"mode": "open", "reason": "ouverture"})).status_code == 303
    page = await client.get(PAGE)
    assert "Actuellement : ouvert" in page.text and "partner.example" in page.text
    assert (await submit(client, "/autorises/retirer", {"domain": "partner.example"})).status_code == 303
    assert await pool.fetchval("SELECT count(*) FROM domain_allows") == 0
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["federation.allow_domain", "federation.mode", "federation.disallow_domain"]


async def test_csv_import_and_export(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await log_in_as(client, pool, "admin", "admin")
    csv_text = (
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
        "spam.example,suspend,false,false,Spam,false\n"
        "pics.example,noop,true,false,,false\n"
    )
    # When the admin uploads a Mastodon CSV
    response = await client.post(
        PAGE + "/import",
        data={"csrf_token": await admin_token(client)},
        files={"file": ("blocks.csv", csv_text.encode(), "text/csv")},
    )
    # Then its blocks are applied, and the export gives the same file back
    assert response.status_code == 303
    assert await pool.fetchval("SELECT count(*) FROM domain_blocks") == 2
    export = await client.get(PAGE + "/export.csv")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert export.headers["content-disposition"].startswith("attachment;")
    assert sorted(export.text.splitlines()) == sorted(csv_text.splitlines())


async def test_a_malformed_upload_shows_numbered_lines_and_applies_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await log_in_as(client, pool, "admin", "admin")
    csv_text = "#domain,#severity\nfine.example,suspend\nbad domain,suspend\n"
    response = await client.post(
        PAGE + "/import",
        data={"csrf_token": await admin_token(client)},
        files={"file": ("blocks.csv", csv_text.encode(), "text/csv")},
    )
    assert response.status_code == 400
    assert "Rien n&#39;a été importé." in response.text
    assert "Ligne 3 : domaine « bad domain » invalide" in response.text
    assert await pool.fetchval("SELECT count(*) FROM domain_blocks") == 0
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_admin_approves_a_partner_instance(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await log_in_as(client, pool, "admin", "admin")
    await pool.execute("INSERT INTO instances (domain, software) VALUES ('partner.example', 'vbg-node')")
    assert "non approuvée" in (await client.get(PAGE)).text
    response = await submit(client, "/instances", {"domain": "partner.example", "decision": "approve"})
    assert response.status_code == 303
    assert await pool.fetchval("SELECT approved FROM instances WHERE domain = 'partner.example'") is True


async def test_a_pending_partner_follow_shows_with_what_approving_opens(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given a follow of a members-only community, pending, from a domain we hold no instance row for
    await log_in_as(client, pool, "admin", "admin")
    community = await make_community(pool, "medical", visibility="members")
    actor = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, inbox)"
        " VALUES ('https://chu.example/u/bob', 'Person', false, 'bob', 'chu.example', 'https://chu.example/inbox')"
        " RETURNING id"
    )
    await pool.execute(
        "INSERT INTO community_followers (community_id, actor_id, follow_activity_id, state)"
        " VALUES ($1, $2, 'https://chu.example/follows/1', 'pending')",
        community,
        actor,
    )
    # When the admin opens the federation page
    page = (await client.get(PAGE)).text
    # Then the domain is listed with its pending follow and what approving it would open
    assert "chu.example" in page
    assert "Approuver ouvrira à chu.example la lecture" in page
    title = await pool.fetchval("SELECT title FROM communities WHERE id = $1", community)
    assert f"demandes en attente pour : {title}" in page.replace("&#39;", "'")
    # And approving it from there accepts the follow
    response = await submit(client, "/instances", {"domain": "chu.example", "decision": "approve"})
    assert response.status_code == 303
    assert (
        await pool.fetchval("SELECT state FROM community_followers WHERE actor_id = $1", actor) == "accepted"
    )


# --- the instances, a page at a time -------------------------------------------------


async def pending_follow(pool: asyncpg.Pool, community: int, domain: str) -> None:
    actor = await pool.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain) VALUES ($1, 'Person', false, 'bob', $2)"
        " RETURNING id",
        f"https://{domain}/u/bob",
        domain,
    )
    await pool.execute(
        "INSERT INTO community_followers (community_id, actor_id, follow_activity_id, state)"
        " VALUES ($1, $2, $3, 'pending')",
        community,
        actor,
        f"https://{domain}/follows/1",
    )


def listed(html: str) -> list[str]:
    section = html[html.index('<section id="instances">') :]
    return re.findall(r"<tr>\n<td>([a-z0-9.-]+)", section)


def instances_link(html: str, rel: str) -> str | None:
    match = re.search(rf'<a href="(/admin/federation\?instances_[^"]+)" rel="{rel}"', html)
    return match.group(1).replace("&amp;", "&") if match else None


async def walk(client: httpx.AsyncClient, start: str, rel: str) -> tuple[list[list[str]], str]:
    pages: list[list[str]] = []
    url: str | None = start
    last = start
    while url is not None:
        page = await client.get(url)
        assert page.status_code == 200, url
        pages.append(listed(page.text))
        last, url = url, instances_link(page.text, rel)
    return pages, last


async def test_every_instance_is_listed_page_by_page_pending_ones_first(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Given 230 known instances, and pending follows from three domains (one not yet known)
    await log_in_as(client, pool, "admin", "admin")
    await pool.execute("INSERT INTO instances (domain) SELECT 'n' || lpad(g::text, 3, '0') || '.example'"
                       " FROM generate_series(1, 230) g")  # fmt: skip
    community = await make_community(pool, "medical")
    for domain in ("n200.example", "z-inconnue.example", "a-chu.example"):
        await pending_follow(pool, community, domain)
    # When the admin walks the instances down, then back up
    down, last = await walk(client, PAGE, "next")
    up, top = await walk(client, last, "prev")
    # Then each domain was listed once: the pending ones first, then the others, by domain
    others = [f"n{g:03d}.example" for g in range(1, 231) if g != 200]
    assert [d for page in down for d in page] == [
        "a-chu.example",
        "n200.example",
        "z-inconnue.example",
        *others,
    ]
    assert [len(page) for page in down] == [100, 100, 32]
    # And going back up gives the same pages
    assert up == down[::-1]
    assert "instances_avant=" in top and instances_link((await client.get(top)).text, "prev") is None
    assert instances_link((await client.get(PAGE)).text, "prev") is None
    assert instances_link((await client.get(last)).text, "next") is None


async def test_instance_pages_past_the_end_or_malformed_are_missing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await log_in_as(client, pool, "admin", "admin")
    await pool.execute("INSERT INTO instances (domain) VALUES ('a.example'), ('b.example')")
    assert listed((await client.get(PAGE)).text) == ["a.example", "b.example"]
    for query in ("instances_apres=1.b.example", "instances_avant=1.a.example", "instances_apres=2.a",
                  "instances_apres=1.", "instances_avant=0.a%20b"):  # fmt: skip
        assert (await client.get(f"{PAGE}?{query}")).status_code == 404, query
    # And a page from a cursor lists what follows it
    assert listed((await client.get(f"{PAGE}?instances_apres=1.a.example")).text) == ["b.example"]


@pytest.mark.parametrize("role", [None, "member", "moderator"])
async def test_only_admins_see_the_pages_of_instances(
    client: httpx.AsyncClient, pool: asyncpg.Pool, role: str | None
) -> None:
    await pool.execute("INSERT INTO instances (domain) VALUES ('a.example'), ('b.example')")
    if role:
        await log_in_as(client, pool, "someone", role)
    for query in ("instances_apres=1.a.example", "instances_avant=1.b.example"):
        response = await client.get(f"{PAGE}?{query}")
        assert response.status_code == 404 and "<td>a.example" not in response.text
