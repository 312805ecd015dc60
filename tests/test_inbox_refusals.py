"""Every refusal of docs/architecture.md §4, at the real inbox over HTTP: each request is refused with
its status, and nothing is stored, processed or relayed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from federation import policy, refusals
from tests import inboxnode as ap
from tests.delivery_kit import deliver_all, jobs, process_outbox
from tests.fakefedi import FakeInstance, signed_headers
from tests.helpers import eventually, make_community
from tests.inboxnode import InboxNode, fake_fixture, node_fixture, running_node

fixture_node = node_fixture("medical")


fixture_masto = fake_fixture("masto", "127.0.0.42")


fixture_other = fake_fixture("other", "127.0.0.43", "lemmy")


async def assert_nothing_kept(node: InboxNode) -> None:
    assert await node.count("inbox_items") == 0
    assert await node.process() == 0
    assert await node.count("threads") == 0
    assert await node.count("community_followers") == 0
    assert await node.count("outbox_events") == 0


def key_fetches(fake: FakeInstance) -> list[str]:
    return [r.path for r in fake.received if r.method == "GET"]


@pytest.mark.parametrize(
    "variant",
    ["unsigned", "wrong_key", "hmac_public_key", "stale_date", "future_date", "bad_digest", "unsigned_digest",
     "no_request_target", "no_date", "rsa_sha512"],
)  # fmt: skip
async def test_a_badly_signed_create_is_refused_401(
    node: InboxNode, masto: FakeInstance, variant: str
) -> None:
    # Given a Mastodon user's note to our community
    alice = masto.add_actor("alice")
    create = ap.mastodon_note(masto, alice, node.group("medical"), "Titre\nCorps")

    # When it arrives signed as `variant`
    response = await masto.send(node.url("/inbox"), create, actor=alice, variant=variant)

    # Then it is refused as unauthenticated and nothing is kept
    assert response.status == 401, response.text
    await assert_nothing_kept(node)


async def test_an_rfc9421_signature_is_verified_and_accepted(node: InboxNode, masto: FakeInstance) -> None:
    # Given a Follow signed with RFC 9421 only (as Fedify sends first)
    alice = masto.add_actor("alice")
    follow = ap.follow(masto, alice, node.group("medical"))
    response = await masto.send(node.url("/inbox"), follow, actor=alice, variant="rfc9421")
    # Then it is accepted at once (no fallback to draft-cavage needed) and handled
    assert response.status == 202, response.text
    assert await node.count("inbox_items") == 1
    assert await node.process() == 1
    assert await node.count("community_followers") == 1


async def test_an_rfc9421_signature_with_another_algorithm_gets_401_not_500(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given an RFC 9421 signature claiming an algorithm we do not verify (the sender
    # then falls back to draft-cavage)
    alice = masto.add_actor("alice")
    url = node.url("/inbox")
    body = json.dumps(ap.follow(masto, alice, node.group("medical"))).encode()
    headers = signed_headers(
        "POST", url, body, alice.key, "rfc9421", {"Content-Type": "application/activity+json"}
    )
    headers["Signature-Input"] = headers["Signature-Input"].replace('alg="rsa-v1_5-sha256"', 'alg="ed25519"')
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        status = response.status
    assert status == 401
    await assert_nothing_kept(node)


async def test_an_rfc9421_body_changed_after_signing_gets_401(node: InboxNode, masto: FakeInstance) -> None:
    alice = masto.add_actor("alice")
    url = node.url("/inbox")
    body = json.dumps(ap.follow(masto, alice, node.group("medical"))).encode()
    headers = signed_headers(
        "POST", url, body, alice.key, "rfc9421", {"Content-Type": "application/activity+json"}
    )
    forged = body.replace(b'"Follow"', b'"Follow" ')
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=forged, headers=headers) as response,
    ):
        status = response.status
    assert status == 401
    await assert_nothing_kept(node)


async def test_a_body_actor_other_than_the_signer_is_refused(node: InboxNode, masto: FakeInstance) -> None:
    # Given bob signs a Follow that claims to come from alice
    alice, bob = masto.add_actor("alice"), masto.add_actor("bob")
    follow = ap.follow(masto, alice, node.group("medical"))

    response = await masto.send(node.url("/inbox"), follow, actor=bob)

    assert response.status == 401
    await assert_nothing_kept(node)


async def test_a_key_whose_owner_is_another_actor_is_refused(node: InboxNode, masto: FakeInstance) -> None:
    # Given mallory publishes her key as owned by alice
    alice = masto.add_actor("alice")
    mallory = masto.add_actor("mallory")
    mallory.extra["publicKey"] = {"id": mallory.key_id, "owner": alice.id, "publicKeyPem": mallory.public_pem}

    # When mallory signs, as alice and as herself
    as_alice = await masto.send(
        node.url("/inbox"), ap.follow(masto, alice, node.group("medical")), actor=mallory
    )
    as_self = await masto.send(
        node.url("/inbox"), ap.follow(masto, mallory, node.group("medical")), actor=mallory
    )

    # Then both are refused
    assert (as_alice.status, as_self.status) == (401, 401)
    await assert_nothing_kept(node)


async def test_an_object_on_another_host_is_refused(
    node: InboxNode, masto: FakeInstance, other: FakeInstance
) -> None:
    # Given alice "creates" a note whose id lives on another server, and "deletes" another's post
    alice = masto.add_actor("alice")
    create = ap.mastodon_note(masto, alice, node.group("medical"), "Titre")
    create["object"]["id"] = other.url("/post/1")
    delete = ap.delete_of(masto, alice, other.url("/post/2"))

    responses = [await masto.send(node.url("/inbox"), a, actor=alice) for a in (create, delete)]

    assert [r.status for r in responses] == [403, 403]
    await assert_nothing_kept(node)


async def test_an_activity_id_on_another_host_is_refused(
    node: InboxNode, masto: FakeInstance, other: FakeInstance
) -> None:
    alice = masto.add_actor("alice")
    follow = ap.follow(masto, alice, node.group("medical"))
    follow["id"] = other.url("/activities/follow/1")

    response = await masto.send(node.url("/inbox"), follow, actor=alice)

    assert response.status == 403
    await assert_nothing_kept(node)


async def test_a_suspended_domain_is_refused_403_before_any_key_fetch(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given the fake's domain is suspended
    alice = masto.add_actor("alice")
    async with node.pool.acquire() as conn:
        await policy.suspend_domain(conn, masto.host)

    # When alice sends a well-signed Follow
    response = await masto.send(
        node.url("/inbox"), ap.follow(masto, alice, node.group("medical")), actor=alice
    )

    # Then it is refused and our node never fetched her key
    assert response.status == 403
    assert key_fetches(masto) == []
    await assert_nothing_kept(node)


async def test_an_unlisted_domain_is_refused_in_allowlist_mode(
    pool: asyncpg.Pool, tmp_path: Path, masto: FakeInstance
) -> None:
    async with running_node(pool, tmp_path, mode="allowlist") as node:
        await make_community(pool, "medical", visibility="public")
        alice = masto.add_actor("alice")

        response = await masto.send(
            node.url("/inbox"),
            ap.mastodon_note(masto, alice, node.group("medical"), "Titre\nCorps"),
            actor=alice,
        )

        assert response.status == 403
        assert key_fetches(masto) == []
        await assert_nothing_kept(node)


async def answer_done() -> None:
    """Until the task answering a refused Follow (``federation.refusals``) has ended."""

    async def ended() -> bool:
        return not refusals._running  # noqa: SLF001  (the module's running answers)

    await eventually(ended, "the refused Follow's answer ends", within=5)


async def outbox_event(node: InboxNode, kind: str) -> dict[str, Any]:
    """The first outbox event of ``kind``, once written (the refusal is answered by a task)."""

    async def written() -> dict[str, Any] | None:
        row = await node.pool.fetchrow("SELECT payload FROM outbox_events WHERE kind = $1", kind)
        return None if row is None else dict(row["payload"])

    return await eventually(written, f"an outbox event {kind}", within=5)


async def test_a_follow_from_an_unlisted_domain_gets_a_signed_reject(
    pool: asyncpg.Pool, tmp_path: Path, masto: FakeInstance
) -> None:
    async with running_node(pool, tmp_path, mode="allowlist") as node:
        # Given a public community, and a server that is not on the allowlist
        await make_community(pool, "medical", visibility="public")
        alice = masto.add_actor("alice")
        refusals._last.clear()  # noqa: SLF001  (no answer to this domain in the last minute)
        follow = ap.follow(masto, alice, node.group("medical"))
        # When its user follows the community
        response = await masto.send(node.url("/inbox"), follow, actor=alice)
        # Then it is refused, nothing of its activity is stored, and once her signature is
        # verified (her key fetched) the group's Reject is queued for her server
        assert response.status == 403
        event = await outbox_event(node, "follow.reject")
        assert event is not None and event["follow"]["id"] == follow["id"]
        assert key_fetches(masto) == ["/users/alice"]
        assert await node.count("inbox_items") == 0 and await node.count("community_followers") == 0
        await process_outbox(node.settings, pool)
        (job,) = await jobs(pool)
        assert job["activity"]["type"] == "Reject" and job["inbox"] == alice.inbox
        # And the delivery worker sends it, signed by the group
        await deliver_all(node.settings, pool)
        (reject,) = masto.inbox_activities()
        assert reject["actor"] == node.group("medical")
        assert reject["object"] == {
            "id": follow["id"],
            "type": "Follow",
            "actor": alice.id,
            "object": node.group("medical"),
        }


async def test_a_forged_follow_from_an_unlisted_domain_gets_nothing(
    pool: asyncpg.Pool, tmp_path: Path, masto: FakeInstance
) -> None:
    async with running_node(pool, tmp_path, mode="allowlist") as node:
        await make_community(pool, "medical", visibility="public")
        alice = masto.add_actor("alice")
        refusals._last.clear()  # noqa: SLF001  (no answer to this domain in the last minute)
        follow = ap.follow(masto, alice, node.group("medical"))
        response = await masto.send(node.url("/inbox"), follow, actor=alice, variant="wrong_key")
        assert response.status == 403
        # Her key is fetched, the signature does not verify: nothing is queued
        await answer_done()
        assert await node.count("outbox_events", "kind = 'follow.reject'") == 0
        assert key_fetches(masto) == ["/users/alice"]


async def test_an_oversize_body_is_refused_413(node: InboxNode, masto: FakeInstance) -> None:
    alice = masto.add_actor("alice")
    create = ap.mastodon_note(masto, alice, node.group("medical"), "Titre\n" + "x" * 300_000)

    response = await masto.send(node.url("/inbox"), create, actor=alice)

    assert response.status == 413
    assert key_fetches(masto) == []
    await assert_nothing_kept(node)


async def test_malformed_json_is_refused_400(node: InboxNode, masto: FakeInstance) -> None:
    alice = masto.add_actor("alice")
    response = await masto.send(node.url("/inbox"), None, actor=alice, body=b'{"type": "Follow", ')
    assert response.status == 400
    await assert_nothing_kept(node)


async def test_a_json_array_or_a_form_is_refused(node: InboxNode, masto: FakeInstance) -> None:
    alice = masto.add_actor("alice")
    array = await masto.send(node.url("/inbox"), None, actor=alice, body=b"[]")
    form = await masto.send(node.url("/inbox"), None, actor=alice, body=b"a=b",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert (array.status, form.status) == (400, 415)
    await assert_nothing_kept(node)


async def test_an_invalid_activity_is_refused_400_after_verification(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given a well-signed Follow whose object is not a URI
    alice = masto.add_actor("alice")
    follow = ap.follow(masto, alice, node.group("medical"))
    follow["object"] = 42

    response = await masto.send(node.url("/inbox"), follow, actor=alice)

    assert response.status == 400
    assert "error" in json.loads(response.body)
    await assert_nothing_kept(node)


async def test_an_unknown_actor_deleting_itself_is_dropped_without_fetch(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given an account we never saw, already gone on its server (its key is gone with it)
    ghost = masto.add_actor("ghost")
    delete = ap.delete_of(masto, ghost, ghost.id, tombstone=False)

    response = await masto.send(node.url("/inbox"), delete, actor=ghost)

    assert response.status == 202
    assert key_fetches(masto) == []
    await assert_nothing_kept(node)


async def test_unknown_inboxes_answer_404(node: InboxNode, masto: FakeInstance) -> None:
    alice = masto.add_actor("alice")
    await make_community(node.pool, "cachee", visibility="local")
    follow = ap.follow(masto, alice, node.group("cachee"))
    for path in ("/u/nobody/inbox", "/c/nothing/inbox", "/c/cachee/inbox"):
        response = await masto.send(node.url(path), follow, actor=alice)
        assert response.status == 404, path
    await assert_nothing_kept(node)


async def test_inbox_answers_carry_the_security_headers(node: InboxNode, masto: FakeInstance) -> None:
    # Given a Mastodon user (the app answers inboxes ahead of its middleware: node.web.app.NodeApp)
    alice = masto.add_actor("alice")
    # When she follows our group at its own inbox, and sends an unsigned note to the shared one
    accepted = await masto.send(
        node.url("/c/medical/inbox"), ap.follow(masto, alice, node.group("medical")), actor=alice
    )
    create = ap.mastodon_note(masto, alice, node.group("medical"), "Titre\nCorps")
    refused = await masto.send(node.url("/inbox"), create, actor=alice, variant="unsigned")
    # Then both answers carry the headers of every answer, the group's (an URL that is
    # also an HTML page) with Vary: Accept, and the refusal says why in JSON
    assert (accepted.status, refused.status) == (202, 401)
    for response in (accepted, refused):
        headers = {k.lower(): v for k, v in response.headers.items()}
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["cache-control"] == "private, no-store"
    assert {k.lower(): v for k, v in accepted.headers.items()}["vary"] == "Accept"
    assert "error" in refused.json()
