"""Our actors (keys encrypted at rest, Person / Group / Application documents) and
remote actors (fetched, cached, keyId ownership checked, key rotation)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.hashes import SHA256

from federation import actors, keys, policy, signatures, validation
from federation.errors import SignatureError, ValidationError
from federation.fetcher import Fetcher
from node.settings import Secret, Settings, load
from tests.ap_kit import approve, partner, signed_get  # noqa: F401  (partner: a fixture)
from tests.conftest import TEST_SECRET
from tests.fakefedi import FakeInstance
from tests.helpers import make_community, make_user

AP = {"Accept": "application/activity+json"}
BASE = "http://testserver"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """This module fetches from fake servers on loopback: private peers allowed."""
    return load(
        {
            "VBG_BASE_URL": BASE,
            "VBG_DATA_DIR": str(tmp_path / "data"),
            "VBG_SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": database_url,
            "VBG_WORKERS_IN_SERVE": "0",
            "VBG_DEV_ALLOW_PRIVATE_PEERS": "1",
            "VBG_NODE_NAME": "Réseau VBG Test",
        }
    )


# --- keys -------------------------------------------------------------------------


async def test_private_keys_are_stored_encrypted_and_decrypt_back(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given a member whose actor is created on first need
    amina = await make_user(pool, "amina")
    async with pool.acquire() as conn:
        actor = await actors.ensure_local_actor(conn, settings, "Person", user_id=amina)
        row = await conn.fetchrow("SELECT * FROM actors WHERE id = $1", actor.id)

    # Then the stored private key is ciphertext: no PEM anywhere in the row
    assert row["private_key_enc"] is not None
    assert b"PRIVATE KEY" not in row["private_key_enc"]
    assert all("PRIVATE KEY" not in str(value) for value in dict(row).values())
    assert row["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")

    # And it decrypts to the private half of the published public key
    private = actors.private_key(settings, actor)
    signature = private.sign(b"bonjour", padding.PKCS1v15(), SHA256())
    keys.load_public_key(row["public_key_pem"]).verify(signature, b"bonjour", padding.PKCS1v15(), SHA256())
    assert private.key_size == 2048


async def test_private_key_needs_the_node_secret_and_its_own_actor(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    # Given a community actor
    community = await make_community(pool, "medical")
    async with pool.acquire() as conn:
        actor = await actors.ensure_local_actor(conn, settings, "Group", community_id=community)
    assert actor.private_key_enc is not None

    # When decrypted with another node secret, or as another actor's key, Then it refuses
    other = dataclasses.replace(settings, secret_key=Secret("another-secret-" + "y" * 40))
    with pytest.raises(keys.KeyDecryptError):
        keys.decrypt_private_key(other, actor.uri, actor.private_key_enc)
    with pytest.raises(keys.KeyDecryptError):
        keys.decrypt_private_key(settings, f"{BASE}/c/autre", actor.private_key_enc)


async def test_local_actor_is_created_once(pool: asyncpg.Pool, settings: Settings) -> None:
    amina = await make_user(pool, "amina")
    async with pool.acquire() as conn:
        first = await actors.ensure_local_actor(conn, settings, "Person", user_id=amina)
        again = await actors.ensure_local_actor(conn, settings, "Person", user_id=amina)
        count = await conn.fetchval("SELECT count(*) FROM actors WHERE user_id = $1", amina)

    assert again.id == first.id and again.public_key_pem == first.public_key_pem and count == 1
    assert first.uri == f"{BASE}/u/amina" and first.public_key_id == f"{BASE}/u/amina#main-key"
    assert first.inbox == f"{BASE}/u/amina/inbox" and first.shared_inbox == f"{BASE}/inbox"


async def test_local_signer_is_the_instance_actor(pool: asyncpg.Pool, settings: Settings) -> None:
    key_id, private = await actors.local_signer(pool, settings)
    async with pool.acquire() as conn:
        instance = await actors.instance_actor(conn, settings)

    assert key_id == f"{BASE}/actor#main-key" == instance.public_key_id
    assert instance.kind == "Application" and instance.username == "testserver"
    assert signatures.public_pem_of(private) == instance.public_key_pem


# --- our actor documents ----------------------------------------------------------


async def test_person_document(client: httpx.AsyncClient, pool: asyncpg.Pool, partner: FakeInstance) -> None:  # noqa: F811
    # Given an approved member, and an approved partner instance
    await make_user(pool, "amina", display_name="Amina K.", organisation="Hôpital Nord")
    await approve(pool, partner)

    # When the partner fetches her actor
    response = await signed_get(client, "/u/amina", partner.add_actor("alice"))

    # Then it is a Person with keys, inbox, shared inbox and nothing private
    assert response.status_code == 200
    person = response.json()
    validation.validate_emitted(person)
    assert person["type"] == "Person" and person["id"] == f"{BASE}/u/amina"
    assert person["preferredUsername"] == "amina" and person["name"] == "Amina K."
    assert person["inbox"] == f"{BASE}/u/amina/inbox"
    assert person["endpoints"] == {"sharedInbox": f"{BASE}/inbox"}
    assert person["followers"] == f"{BASE}/u/amina/followers"
    assert person["publicKey"]["id"] == f"{BASE}/u/amina#main-key"
    assert person["publicKey"]["owner"] == person["id"]
    assert person["publicKey"]["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert person["manuallyApprovesFollowers"] is False and person["discoverable"] is False
    assert "Hôpital Nord" not in response.text and "@localhost" not in response.text
    stored = await pool.fetchval("SELECT public_key_pem FROM actors WHERE uri = $1", person["id"])
    assert stored == person["publicKey"]["publicKeyPem"]


async def test_only_approved_members_have_an_actor(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await make_user(pool, "enattente", status="pending")
    await make_user(pool, "refusee", status="refused")

    for name in ("enattente", "refusee", "inconnue"):
        assert (await client.get(f"/u/{name}", headers=AP)).status_code == 404


async def test_group_document_members_only(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    partner: FakeInstance,  # noqa: F811
) -> None:
    # Given a members-only community, and an approved partner instance
    await make_community(pool, "medical", visibility="members", title="Prise en charge médicale")
    await approve(pool, partner)

    # When the partner fetches its actor
    group = (await signed_get(client, "/c/medical", partner.add_actor("alice"))).json()

    # Then it is a FEP-1b12 Group that approves its followers
    validation.validate_emitted(group)
    uri = f"{BASE}/c/medical"
    assert group["type"] == "Group" and group["id"] == uri
    assert group["name"] == "Prise en charge médicale" and group["preferredUsername"] == "medical"
    assert group["summary"] == "<p>Une communauté de test.</p>"
    assert group["attributedTo"] == f"{uri}/moderators"
    assert group["featured"] == f"{uri}/featured"
    assert group["outbox"] == f"{uri}/outbox" and group["followers"] == f"{uri}/followers"
    assert group["inbox"] == f"{uri}/inbox" and group["endpoints"]["sharedInbox"] == f"{BASE}/inbox"
    assert group["manuallyApprovesFollowers"] is True
    assert group["postingRestrictedToMods"] is False
    assert group["publicKey"]["owner"] == uri


async def test_group_document_public_and_local(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await make_community(pool, "juridique", visibility="public")
    async with pool.acquire() as conn:  # open mode: unsigned GETs read public documents
        await policy.set_federation_mode(conn, "open")
    await make_community(pool, "interne", visibility="local")

    public = (await client.get("/c/juridique", headers=AP)).json()
    local = await client.get("/c/interne", headers=AP)

    assert public["manuallyApprovesFollowers"] is False
    assert local.status_code == 404
    assert (await client.get("/c/interne/moderators", headers=AP)).status_code == 404


async def test_moderators_collection(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # Given a public community with an expert, a node moderator, and an ordinary member
    community = await make_community(pool, "medical", visibility="public")
    expert = await make_user(pool, "docteure", role="expert")
    await make_user(pool, "moderatrice", role="moderator")
    await make_user(pool, "membre")
    await pool.execute(
        "INSERT INTO community_experts (community_id, user_id) VALUES ($1, $2)", community, expert
    )

    # When the group's moderators are read (open mode: unsigned GETs read public collections)
    async with pool.acquire() as conn:
        await policy.set_federation_mode(conn, "open")
    collection = (await client.get("/c/medical/moderators", headers=AP)).json()

    # Then they are the expert and the node moderator
    validation.validate_emitted(collection)
    assert sorted(collection["orderedItems"]) == [f"{BASE}/u/docteure", f"{BASE}/u/moderatrice"]


async def test_application_actor_is_served_unsigned(client: httpx.AsyncClient) -> None:
    response = await client.get("/actor")

    assert response.status_code == 200
    actor = response.json()
    validation.validate_emitted(actor)
    assert actor["type"] == "Application" and actor["id"] == f"{BASE}/actor"
    assert actor["preferredUsername"] == "testserver" and actor["name"] == "Réseau VBG Test"
    assert actor["inbox"] == f"{BASE}/actor/inbox"
    assert actor["publicKey"]["id"] == f"{BASE}/actor#main-key"


# --- remote actors ----------------------------------------------------------------


@pytest.fixture
async def remote(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[tuple[FakeInstance, Fetcher]]:
    """A fake server trusting our instance key, and a fetcher signing as our instance actor."""
    async with FakeInstance("127.0.0.42") as fake:
        async with pool.acquire() as conn:
            me = await actors.instance_actor(conn, settings)
        assert me.public_key_id and me.public_key_pem
        fake.trust_key(me.public_key_id, me.public_key_pem)
        async with Fetcher(settings, signer=actors.instance_signer(pool, settings)) as fetcher:
            yield fake, fetcher


async def test_remote_actor_is_fetched_sanitised_and_cached(
    pool: asyncpg.Pool, remote: tuple[FakeInstance, Fetcher]
) -> None:
    # Given a remote Person whose summary carries a script
    fake, fetcher = remote
    zoe = fake.add_actor(
        "zoe", summary='<p>Juriste <script>alert(1)</script><a href="javascript:x">lien</a></p>'
    )

    # When we look it up twice
    async with pool.acquire() as conn:
        actor = await actors.get_or_fetch(conn, fetcher, zoe.id)
        again = await actors.get_or_fetch(conn, fetcher, zoe.id)

    # Then it was fetched once (signed), stored with what we need, summary cleaned
    fetches = [r for r in fake.received if r.path == "/users/zoe"]
    assert len(fetches) == 1 and fetches[0].signature_ok
    assert again.id == actor.id
    assert actor.kind == "Person" and not actor.local
    assert actor.username == "zoe" and actor.domain == fake.domain
    assert actor.inbox == zoe.inbox and actor.shared_inbox == zoe.shared_inbox
    assert actor.public_key_id == zoe.key_id and actor.public_key_pem == zoe.public_pem
    assert "script" not in actor.summary_html and "javascript" not in actor.summary_html
    assert "Juriste" in actor.summary_html


async def test_key_id_resolves_to_its_owner(pool: asyncpg.Pool, remote: tuple[FakeInstance, Fetcher]) -> None:
    fake, fetcher = remote
    zoe = fake.add_actor("zoe")

    async with pool.acquire() as conn:
        actor = await actors.by_key_id(conn, fetcher, zoe.key_id)

    assert actor.uri == zoe.id and actor.public_key_id == zoe.key_id


async def test_key_owned_by_another_actor_is_refused(
    pool: asyncpg.Pool, remote: tuple[FakeInstance, Fetcher]
) -> None:
    # Given an actor whose publicKey claims to belong to somebody else
    fake, fetcher = remote
    mallory = fake.add_actor("mallory")
    alice = fake.add_actor("alice")
    mallory.extra["publicKey"] = {"id": mallory.key_id, "owner": alice.id, "publicKeyPem": mallory.public_pem}

    # When its key id is resolved, Then it is refused and nothing is cached
    async with pool.acquire() as conn:
        with pytest.raises(SignatureError):
            await actors.by_key_id(conn, fetcher, mallory.key_id)
        assert await conn.fetchval("SELECT count(*) FROM actors WHERE uri = $1", mallory.id) == 0


async def test_key_served_by_another_actor_is_refused(
    pool: asyncpg.Pool, remote: tuple[FakeInstance, Fetcher]
) -> None:
    # Given a key id whose document names an actor that does not publish that key
    fake, fetcher = remote
    alice = fake.add_actor("alice")
    fake.add_object(
        {"id": fake.url("/keys/1"), "type": "Key", "owner": alice.id, "publicKeyPem": alice.public_pem}
    )

    # When it is resolved, Then the owner check fails
    async with pool.acquire() as conn:
        with pytest.raises(SignatureError):
            await actors.by_key_id(conn, fetcher, fake.url("/keys/1"))


async def test_rotated_key_is_picked_up_on_refresh(
    pool: asyncpg.Pool, remote: tuple[FakeInstance, Fetcher]
) -> None:
    # Given a cached remote actor that then rotates its key
    fake, fetcher = remote
    zoe = fake.add_actor("zoe")
    async with pool.acquire() as conn:
        await actors.by_key_id(conn, fetcher, zoe.key_id)
    new_private, new_public = signatures.generate_key_pair()
    zoe.private_pem, zoe.public_pem = new_private, new_public

    async with pool.acquire() as conn:
        # When the key is looked up, the cache answers; with refresh, the new key comes in
        cached = await actors.by_key_id(conn, fetcher, zoe.key_id)
        refreshed = await actors.by_key_id(conn, fetcher, zoe.key_id, refresh=True)

    assert cached.public_key_pem != new_public
    assert refreshed.id == cached.id and refreshed.public_key_pem == new_public


async def test_document_that_is_not_an_actor_is_refused(
    pool: asyncpg.Pool, remote: tuple[FakeInstance, Fetcher]
) -> None:
    fake, fetcher = remote
    note_id = fake.new_id()
    fake.add_object({"id": note_id, "type": "Note", "content": "x", "attributedTo": fake.url("/users/x")})

    async with pool.acquire() as conn:
        with pytest.raises(ValidationError):
            await actors.get_or_fetch(conn, fetcher, note_id)
