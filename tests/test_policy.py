"""Instance policy: domain matching, decisions, suspension effects and the SQL helpers."""

from __future__ import annotations

import asyncpg
import pytest

from federation import policy
from federation.policy import Block, BlockRequest, InvalidDomain, decide, make_policy
from node.errors import BadRequest, NotFound
from tests.helpers import make_community, make_user

OWN = "node.example"

# ---------------------------------------------------------------- pure matching


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("  example.com  ", "example.com"),
        ("https://Social.Example.com/users/alice", "social.example.com"),
        ("example.com:443", "example.com"),
        ("http://example.com:80/", "example.com"),
        ("127.0.0.2:8001", "127.0.0.2:8001"),
        ("http://127.0.0.2:8001/actor", "127.0.0.2:8001"),
        ("Bücher.Example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("ÉCOLE.example.", "xn--cole-9oa.example"),
        ("*.example.com", "example.com"),
        ("[::1]:8000", "[::1]:8000"),
        ("[0:0::1]", "[::1]"),
        ("under_score.example", "under_score.example"),
        ("localhost:8000", "localhost:8000"),
    ],
)
def test_normalise_domain(text: str, expected: str) -> None:
    assert policy.normalise_domain(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "exa mple.com", "-bad.example", "ex*ample.com", "a..b", "999.1.1.1", "example.com:99999",
     "user@example.com", "example.com:0", "x" * 64 + ".example"],
)  # fmt: skip
def test_normalise_domain_refuses_malformed_input(text: str) -> None:
    with pytest.raises(InvalidDomain) as caught:
        policy.normalise_domain(text)
    assert "invalide" in caught.value.message


@pytest.mark.parametrize(
    ("rule", "domain", "covered"),
    [
        ("example.com", "example.com", True),
        ("example.com", "a.example.com", True),
        ("example.com", "a.b.example.com:8443", True),
        ("example.com", "badexample.com", False),
        ("example.com", "example.com.evil.org", False),
        ("a.example.com", "example.com", False),
        ("127.0.0.2", "127.0.0.2:8001", True),
        ("127.0.0.2:8001", "127.0.0.2:8001", True),
        ("127.0.0.2:8001", "127.0.0.2:8002", False),
        ("127.0.0.2:8001", "127.0.0.2", False),
        ("0.0.2", "127.0.0.2", False),
        ("[::1]", "[::1]:8000", True),
    ],
)
def test_a_rule_covers_its_host_and_every_subdomain(rule: str, domain: str, covered: bool) -> None:
    assert policy.covers(rule, domain) is covered


def _policy(
    mode: str = "allowlist", blocks: tuple[Block, ...] = (), allows: tuple[str, ...] = ()
) -> policy.Policy:
    return make_policy(mode, list(blocks), list(allows))


def test_a_new_node_in_allowlist_mode_refuses_unlisted_domains_but_not_itself() -> None:
    given = _policy("allowlist", allows=("partner.example",))
    refused = decide(given, "stranger.example", OWN)
    assert (refused.allowed_inbound, refused.allowed_outbound, refused.reason) == (
        False,
        False,
        "not_allowlisted",
    )
    assert decide(given, "partner.example", OWN).allowed_inbound
    assert decide(given, "forum.partner.example", OWN).allowed_outbound  # subdomains of a listed domain
    assert decide(given, "NODE.example.", OWN).reason == "own"


def test_open_mode_allows_anyone_not_suspended() -> None:
    given = _policy("open", blocks=(Block("spam.example", "suspend"),))
    assert decide(given, "anyone.example", OWN).allowed_inbound
    refused = decide(given, "x.spam.example", OWN)
    assert not refused.allowed_inbound and not refused.allowed_outbound and refused.reason == "suspended"


def test_suspend_beats_allow() -> None:
    given = _policy(
        "allowlist", blocks=(Block("bad.partner.example", "suspend"),), allows=("partner.example",)
    )
    assert decide(given, "partner.example", OWN).allowed_inbound
    assert decide(given, "bad.partner.example", OWN).reason == "suspended"


def test_silence_and_reject_media_keep_federation_but_flag_the_domain() -> None:
    given = _policy(
        "open",
        blocks=(Block("loud.example", "silence"), Block("pics.example", "reject_media", reject_media=True),
                Block("noisy.example", "noop", reject_reports=True)),
    )  # fmt: skip
    silenced = decide(given, "a.loud.example", OWN)
    assert silenced.allowed_inbound and silenced.silenced and not silenced.reject_media
    media = decide(given, "pics.example", OWN)
    assert media.allowed_outbound and media.reject_media and not media.silenced
    assert decide(given, "noisy.example", OWN).reject_reports


def test_a_port_specific_rule_only_covers_that_port() -> None:
    given = _policy("allowlist", allows=("127.0.0.2:8001",))
    assert decide(given, "127.0.0.2:8001", OWN).allowed_inbound
    assert not decide(given, "127.0.0.2:8002", OWN).allowed_inbound


def test_an_invalid_domain_is_refused() -> None:
    assert decide(_policy("open"), "not a domain", OWN).reason == "invalid"


# ---------------------------------------------------------------- with the database


async def _remote_actor(conn: asyncpg.Connection, domain: str, username: str = "zed") -> int:
    actor_id: int = await conn.fetchval(
        "INSERT INTO actors (uri, kind, local, username, domain, inbox)"
        " VALUES ($1, 'Person', false, $2, $3, $4) RETURNING id",
        f"https://{domain}/users/{username}",
        username,
        domain,
        f"https://{domain}/users/{username}/inbox",
    )
    return actor_id


async def _remote_thread(conn: asyncpg.Connection, community_id: int, actor_id: int, title: str) -> int:
    thread_id: int = await conn.fetchval(
        "INSERT INTO threads (community_id, title, remote_author_id) VALUES ($1, $2, $3) RETURNING id",
        community_id,
        title,
        actor_id,
    )
    await conn.execute(
        "INSERT INTO posts (thread_id, is_opening, source, content_html, remote_author_id, search_vector)"
        " VALUES ($1, true, 'texte', '<p>texte</p>', $2, vbg_tsvector($3, 'texte'))",
        thread_id,
        actor_id,
        title,
    )
    return thread_id


VISIBLE_THREADS = """
SELECT t.title FROM threads t WHERE NOT vbg_actor_hidden(t.remote_author_id) ORDER BY t.id
"""
PUBLIC_THREADS = """
SELECT t.title FROM threads t
WHERE NOT vbg_actor_hidden(t.remote_author_id) AND NOT vbg_actor_silenced(t.remote_author_id) ORDER BY t.id
"""
SEARCH = """
SELECT p.id FROM posts p
WHERE p.search_vector @@ plainto_tsquery('french', vbg_fold($1)) AND NOT vbg_actor_hidden(p.remote_author_id)
"""


async def test_a_new_node_is_in_allowlist_mode(pool: asyncpg.Pool) -> None:
    assert await policy.federation_mode(pool) == "allowlist"
    assert not await policy.inbound_allowed(pool, "stranger.example", own_domain=OWN)
    assert await policy.inbound_allowed(pool, OWN, own_domain=OWN)


async def test_policy_changes_take_effect_at_the_next_decision(pool: asyncpg.Pool) -> None:
    # Given a decision already cached for a domain
    assert not await policy.outbound_allowed(pool, "partner.example", own_domain=OWN)
    # When another connection allows it, then suspends it
    async with pool.acquire() as conn:
        await policy.allow_domain(conn, "partner.example")
    assert await policy.outbound_allowed(pool, "partner.example", own_domain=OWN)
    async with pool.acquire() as conn:
        await policy.suspend_domain(conn, "partner.example", reason="abus")
    # Then each decision sees the change without waiting
    assert (await policy.decision(pool, "partner.example", own_domain=OWN)).reason == "suspended"
    assert not await policy.url_allowed(pool, "https://partner.example/users/x", own_domain=OWN)


async def test_own_domain_is_known_from_local_actors(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO actors (uri, kind, local, username, domain) VALUES ($1, 'Application', true, $2, $3)",
        f"https://{OWN}/actor",
        OWN,
        OWN,
    )
    assert (await policy.decision(pool, OWN)).reason == "own"


async def test_suspend_drops_follows_and_hides_content_until_unblocked(pool: asyncpg.Pool) -> None:
    # Given a remote actor of bad.example following a community and authoring a thread,
    # and an actor of a sibling domain doing the same
    community = await make_community(pool, "medical", visibility="public")
    async with pool.acquire() as conn:
        await policy.set_federation_mode(conn, "open")
        bad = await _remote_actor(conn, "forum.bad.example")
        good = await _remote_actor(conn, "notbad.example")
        for actor, n in ((bad, 1), (good, 2)):
            await conn.execute(
                "INSERT INTO community_followers (community_id, actor_id, follow_activity_id, state)"
                " VALUES ($1, $2, $3, 'accepted')",
                community,
                actor,
                f"https://x.example/follows/{n}",
            )
        await _remote_thread(conn, community, bad, "Violence conjugale : protocole")
        await _remote_thread(conn, community, good, "Accueil des victimes")
    assert len(await pool.fetch(SEARCH, "protocole")) == 1

    # When bad.example is suspended
    async with pool.acquire() as conn:
        done = await policy.suspend_domain(conn, "BAD.example", reason="harcèlement")

    # Then its follows are gone, its content leaves lists and search, the other stays
    assert done["follows_dropped"] == 1
    followers = await pool.fetch("SELECT actor_id FROM community_followers")
    assert [r["actor_id"] for r in followers] == [good]
    assert [r["title"] for r in await pool.fetch(VISIBLE_THREADS)] == ["Accueil des victimes"]
    assert await pool.fetch(SEARCH, "protocole") == []
    assert not await policy.inbound_allowed(pool, "forum.bad.example", own_domain=OWN)

    # When the block is lifted
    async with pool.acquire() as conn:
        await policy.unblock_domain(conn, "bad.example")

    # Then the content shows again but the follow does not come back
    assert len(await pool.fetch(VISIBLE_THREADS)) == 2
    assert len(await pool.fetch(SEARCH, "protocole")) == 1
    assert await pool.fetchval("SELECT count(*) FROM community_followers") == 1


async def test_silenced_content_stays_out_of_public_lists_only(pool: asyncpg.Pool) -> None:
    community = await make_community(pool, "juridique", visibility="public")
    async with pool.acquire() as conn:
        loud = await _remote_actor(conn, "loud.example")
        await _remote_thread(conn, community, loud, "Annonce bruyante")
        await policy.block_domain(conn, BlockRequest("loud.example", "silence"))
    assert [r["title"] for r in await pool.fetch(VISIBLE_THREADS)] == ["Annonce bruyante"]
    assert await pool.fetch(PUBLIC_THREADS) == []
    assert await pool.fetchval("SELECT vbg_actor_silenced(NULL) OR vbg_actor_hidden(NULL)") is False


async def test_a_port_specific_block_in_sql_matches_only_that_port(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        a = await _remote_actor(conn, "127.0.0.2:8001", "a")
        b = await _remote_actor(conn, "127.0.0.2:8002", "b")
        await policy.suspend_domain(conn, "127.0.0.2:8001")
    hidden = await pool.fetch("SELECT id, vbg_actor_hidden(id) AS h FROM actors ORDER BY id")
    assert {r["id"]: r["h"] for r in hidden} == {a: True, b: False}


async def test_every_change_is_audited_with_who_and_why(pool: asyncpg.Pool) -> None:
    admin = await make_user(pool, "admin", role="admin")
    who = policy.Who("admin", admin)
    async with pool.acquire() as conn:
        await policy.suspend_domain(conn, "spam.example", who, reason="spam massif")
        await policy.unblock_domain(conn, "spam.example", who, reason="erreur")
        await policy.allow_domain(conn, "partner.example", who, note="CHU partenaire")
        await policy.disallow_domain(conn, "partner.example", who)
        await policy.set_federation_mode(conn, "open", who, reason="ouverture")
    rows = await pool.fetch(
        "SELECT action, actor_id, actor_label, target_id, reason, created_at FROM audit_log"
        " WHERE action LIKE 'federation.%' ORDER BY id"
    )
    assert [(r["action"], r["target_id"], r["reason"]) for r in rows] == [
        ("federation.block_domain", "spam.example", "spam massif"),
        ("federation.unblock_domain", "spam.example", "erreur"),
        ("federation.allow_domain", "partner.example", "CHU partenaire"),
        ("federation.disallow_domain", "partner.example", ""),
        ("federation.mode", "federation_mode", "ouverture"),
    ]
    assert all(r["actor_id"] == admin and r["actor_label"] == "admin" and r["created_at"] for r in rows)


async def test_bad_input_changes_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(InvalidDomain):
            await policy.block_domain(conn, BlockRequest("not a domain"))
        with pytest.raises(BadRequest):
            await policy.block_domain(conn, BlockRequest("x.example", "banish"))
        with pytest.raises(BadRequest):
            await policy.suspend_domain(conn, OWN, own_domain=OWN)
        with pytest.raises(NotFound):
            await policy.unblock_domain(conn, "never-blocked.example")
        with pytest.raises(BadRequest):
            await policy.set_federation_mode(conn, "closed")
    assert await pool.fetchval("SELECT count(*) FROM domain_blocks") == 0
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'federation.%'") == 0
