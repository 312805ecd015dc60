"""The one access rule (``node.access``): the pure table, and the actor documents it
shapes (full to who may read, key-only to strangers, nothing to a blocked instance)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from federation import policy, validation
from node import access
from node.access import Decision, Kind, Requester
from tests.ap_kit import (  # noqa: F401  (fixtures)
    approve,
    get_ap,
    make_thread,
    partner,
    settings,
    signed_get,
)
from tests.fakefedi import FakeInstance
from tests.helpers import make_community, make_user

KEY_ONLY_FIELDS = {"@context", "id", "type", "preferredUsername", "inbox", "outbox", "endpoints", "publicKey"}


# --- the rule, as a table ---------------------------------------------------------

# kind → (public, members, local) for content
CONTENT = {
    Kind.VISITOR: (True, False, False),
    Kind.PENDING: (True, False, False),
    Kind.MEMBER: (True, True, True),
    Kind.EXPERT: (True, True, True),
    Kind.MODERATOR: (True, True, True),
    Kind.ADMIN: (True, True, True),
    Kind.UNSIGNED: (False, False, False),
    Kind.REFUSED: (False, False, False),
    Kind.ALLOWED: (True, False, False),
    Kind.PARTNER: (True, True, False),
    Kind.BLOCKED: (False, False, False),
}


@pytest.mark.parametrize("kind", list(Kind))
def test_content_rule_for_every_requester(kind: Kind) -> None:
    requester = Requester(kind)
    got = tuple(access.may_read(requester, v) for v in access.VISIBILITIES)
    assert got == CONTENT[kind]
    assert not access.may_read(requester, "unknown")


def test_open_mode_lets_unsigned_gets_read_public_content_only() -> None:
    unsigned = Requester(Kind.UNSIGNED, open_mode=True)
    assert access.may_read(unsigned, "public")
    assert not access.may_read(unsigned, "members") and not access.may_read(unsigned, "local")
    assert not access.may_read(Requester(Kind.BLOCKED, open_mode=True), "public")
    assert not access.may_read(Requester(Kind.REFUSED, open_mode=True), "public")


def test_actor_forms() -> None:
    def form(kind: Kind, visibility: str) -> Decision:
        return access.actor_decision(Requester(kind), visibility)

    assert form(Kind.UNSIGNED, "public") is Decision.KEY_ONLY
    assert form(Kind.REFUSED, "public") is Decision.KEY_ONLY
    assert form(Kind.ALLOWED, "public") is Decision.FULL
    assert form(Kind.ALLOWED, "members") is Decision.KEY_ONLY
    assert form(Kind.PARTNER, "members") is Decision.FULL
    assert form(Kind.BLOCKED, "public") is Decision.NONE
    assert form(Kind.PARTNER, "local") is Decision.NONE


def test_webfinger_rule() -> None:
    assert access.may_discover(Requester(Kind.UNSIGNED), "public")
    assert not access.may_discover(Requester(Kind.UNSIGNED), "members")
    assert not access.may_discover(Requester(Kind.ALLOWED), "members")
    assert access.may_discover(Requester(Kind.PARTNER), "members")
    assert not access.may_discover(Requester(Kind.BLOCKED), "public")
    assert not access.may_discover(Requester(Kind.PARTNER), "local")


def test_accounts_map_to_requesters() -> None:
    assert access.of_role("approved", "member").kind is Kind.MEMBER
    assert access.of_role("approved", "admin").kind is Kind.ADMIN
    assert access.of_role("pending", "admin").kind is Kind.PENDING
    assert access.of_role("suspended", "moderator").kind is Kind.PENDING
    assert access.of_user(None) is access.VISITOR


# --- actor documents --------------------------------------------------------------


async def test_a_member_is_key_only_to_an_unsigned_get(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given a member with a real name and a bio (open mode: the most open the node gets)
    amina = await make_user(pool, "amina", display_name="Dr Amina Kaboré")
    await pool.execute("UPDATE users SET bio = 'Gynécologue à Ouagadougou' WHERE id = $1", amina)
    async with pool.acquire() as conn:
        await policy.set_federation_mode(conn, "open")

    # When an unsigned GET fetches her actor
    response = await get_ap(client, "/u/amina")

    # Then it has her key and inboxes, and nothing that says who she is
    assert response.status_code == 200
    person = response.json()
    assert set(person) == KEY_ONLY_FIELDS
    validation.validate_emitted(person, "key_only_actor")
    assert person["preferredUsername"] == "amina" and person["publicKey"]["owner"] == person["id"]
    assert "Kabor" not in response.text and "Gynécologue" not in response.text


async def test_a_member_shows_her_name_to_whom_may_read_her_posts(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811
) -> None:
    # Given a member who posts only in a members-only community, and an allowed instance
    amina = await make_user(pool, "amina", display_name="Dr Amina Kaboré")
    await make_thread(pool, await make_community(pool, "medical", visibility="members"), amina)
    alice = partner.add_actor("alice")

    # When the allowed (not approved) instance fetches her, Then it gets her key only
    assert set((await signed_get(client, "/u/amina", alice)).json()) == KEY_ONLY_FIELDS
    assert (await signed_get(client, "/u/amina/followers", alice)).status_code == 404

    # When she posts in a public community, Then allowed instances see her name
    await make_thread(pool, await make_community(pool, "juridique", visibility="public"), amina)
    assert (await signed_get(client, "/u/amina", alice)).json()["name"] == "Dr Amina Kaboré"

    # And an approved partner always does
    await pool.execute("UPDATE posts SET deleted_at = now() WHERE author_id = $1", amina)
    assert set((await signed_get(client, "/u/amina", alice)).json()) == KEY_ONLY_FIELDS
    await approve(pool, partner)
    assert (await signed_get(client, "/u/amina", alice)).json()["name"] == "Dr Amina Kaboré"


async def test_a_blocked_instance_gets_no_actor(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811
) -> None:
    # Given a member, a community, and an instance that admins suspend
    await make_user(pool, "amina")
    await make_community(pool, "juridique", visibility="public")
    alice = partner.add_actor("alice")
    async with pool.acquire() as conn:
        await policy.suspend_domain(conn, partner.host, reason="test")
    missing = await signed_get(client, "/u/personne", alice)

    # When it asks, signed, Then every actor is missing to it
    for path in ("/u/amina", "/c/juridique"):
        response = await signed_get(client, path, alice)
        assert (response.status_code, response.content) == (404, missing.content), path


async def test_a_partner_reads_the_outbox_of_a_members_only_group_never_addressed_to_public(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811
) -> None:
    # Given a members-only community with a thread, and an approved partner
    amina = await make_user(pool, "amina")
    await make_thread(pool, await make_community(pool, "medical", visibility="members"), amina, "Cas")
    await approve(pool, partner)
    alice = partner.add_actor("alice")

    # When the partner reads its outbox and the outbox's first page (what a backfill reads)
    outbox = await signed_get(client, "/c/medical/outbox", alice)
    first = await signed_get(client, "/c/medical/outbox?page=1", alice)

    # Then it lists the thread, addressed to the group and its followers, never to Public
    assert outbox.json()["totalItems"] == 1
    (item,) = first.json()["orderedItems"]
    group = "http://testserver/c/medical"
    assert (item["type"], item["to"], item["cc"]) == ("Announce", [group, f"{group}/followers"], [])
    assert item["object"]["object"]["name"] == "Cas"
    assert "https://www.w3.org/ns/activitystreams#Public" not in first.text
    # and an unsigned reader still gets nothing
    assert (await get_ap(client, "/c/medical/outbox")).status_code == 404
