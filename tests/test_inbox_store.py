"""How the inbox stores: concurrent requests share one INSERT and one COMMIT (group
commit; a batch waits for the requests still being verified, not longer), the instance
policy is read from the process's cache but checked again by that INSERT, and a
document PostgreSQL refuses fails alone."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from federation import inbox, policy
from tests import inboxnode as ap
from tests.fakefedi import FakeActor, FakeInstance
from tests.inboxnode import InboxNode, fake_fixture, node_fixture

fixture_node = node_fixture("medical")


fixture_masto = fake_fixture("masto", "127.0.0.44")


def new_thread(masto: FakeInstance, node: InboxNode, actor: FakeActor, n: int) -> dict[str, Any]:
    return ap.mastodon_note(masto, actor, node.group("medical"), f"Question {n}\n\nUn cas à discuter.")


async def test_concurrent_activities_are_each_stored_once(node: InboxNode, masto: FakeInstance) -> None:
    # Given four Mastodon users whose keys our node already knows
    senders = [masto.add_actor(f"user{i}") for i in range(4)]
    for i, actor in enumerate(senders):
        assert (
            await masto.send(node.url("/inbox"), new_thread(masto, node, actor, i), actor=actor)
        ).status == 202

    # When 24 new threads arrive at once, each of the first 8 twice
    notes = [new_thread(masto, node, senders[i % 4], 100 + i) for i in range(24)]
    sends = [masto.send(node.url("/inbox"), note, actor=senders[i % 4]) for i, note in enumerate(notes)]
    sends += [masto.send(node.url("/inbox"), note, actor=senders[i % 4]) for i, note in enumerate(notes[:8])]
    answers = await asyncio.gather(*sends)

    # Then every one is answered 202 and stored once, then processed into its thread
    assert [a.status for a in answers] == [202] * 32
    assert await node.count("inbox_items") == 28
    assert await node.process() == 28
    assert await node.count("threads") == 28


async def test_a_domain_suspended_after_its_key_was_cached_is_refused_403(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given alice's key is known and cached by the inbox
    alice = masto.add_actor("alice")
    assert (
        await masto.send(node.url("/inbox"), new_thread(masto, node, alice, 1), actor=alice)
    ).status == 202
    fetches = len(masto.received)

    # When her domain is suspended and she sends another well-signed thread
    async with node.pool.acquire() as conn:
        await policy.suspend_domain(conn, masto.host)
    response = await masto.send(node.url("/inbox"), new_thread(masto, node, alice, 2), actor=alice)

    # Then it is refused, nothing more is stored, and her key was not fetched again
    assert response.status == 403
    assert await node.count("inbox_items") == 1
    assert len(masto.received) == fetches


async def test_a_document_postgresql_refuses_fails_alone_with_400(
    node: InboxNode, masto: FakeInstance
) -> None:
    # Given alice's key is known
    alice = masto.add_actor("alice")
    assert (
        await masto.send(node.url("/inbox"), new_thread(masto, node, alice, 1), actor=alice)
    ).status == 202

    # When a valid activity whose text holds a NUL escape (refused by jsonb) arrives with two good ones
    bad = new_thread(masto, node, alice, 2)
    bad_body = json.dumps(bad).replace("Question 2", "Question\\u0000 2").encode()
    answers = await asyncio.gather(
        masto.send(node.url("/inbox"), new_thread(masto, node, alice, 3), actor=alice),
        masto.send(node.url("/inbox"), None, actor=alice, body=bad_body),
        masto.send(node.url("/inbox"), new_thread(masto, node, alice, 4), actor=alice),
    )

    # Then the bad one gets 400 and the two others are stored
    assert [a.status for a in answers] == [202, 400, 202]
    assert await node.count("inbox_items") == 3


def waiting(n: int) -> inbox.Incoming:
    """A verified activity waiting for its INSERT."""
    doc = {
        "id": f"https://masto.example/activities/{n}",
        "type": "Create",
        "actor": "https://masto.example/u/a",
    }
    return inbox.Incoming(
        doc["id"], "Create", doc["actor"], "", doc, json.dumps(doc).encode(), "masto.example"
    )


async def verified_then_stored(writer: inbox.Writer, n: int) -> None:
    """What ``inbox.accept`` does once a request is verified."""
    writer.done_verifying()
    await writer.store(waiting(n))


async def transactions(node: InboxNode) -> list[int]:
    """How many items each transaction stored."""
    rows = await node.pool.fetch("SELECT count(*) AS n FROM inbox_items GROUP BY xmin::text ORDER BY 1")
    return [r["n"] for r in rows]


async def test_a_batch_waits_for_the_requests_being_verified_and_not_for_the_clock(
    node: InboxNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a writer whose batches would wait up to a minute, and three requests being verified
    monkeypatch.setattr(inbox, "GATHER_FOR", 60.0)
    writer = inbox.Writer(node.pool, inbox.PolicyGate(node.settings.domain))
    writer.verifying = 3

    # When the first is stored, the second refused (never stored), then the third stored
    first = asyncio.create_task(verified_then_stored(writer, 1))
    await asyncio.sleep(0.01)
    writer.done_verifying()
    await asyncio.wait_for(asyncio.gather(first, verified_then_stored(writer, 3)), 5)

    # Then both are stored by one transaction, as soon as no request was left on its way
    assert await transactions(node) == [2]


async def test_a_batch_waits_at_most_gather_for_a_request_still_being_verified(
    node: InboxNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a writer and two requests being verified
    monkeypatch.setattr(inbox, "GATHER_FOR", 0.01)
    writer = inbox.Writer(node.pool, inbox.PolicyGate(node.settings.domain))
    writer.verifying = 2

    # When one is stored while the other is still being verified (its key being fetched …)
    await asyncio.wait_for(verified_then_stored(writer, 1), 5)

    # Then it was stored without waiting for the other
    assert await transactions(node) == [1]
    assert writer.verifying == 1
